//! `purge` and `disclosures`: retention and the register of who received a school's data.

use super::{connect, open_existing_store};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::session::Session;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn purge(config: &Config, now: bool, json: bool) -> Result<ExitCode> {
    let settings = crate::store::retention::RetentionSettings::from_config(config);
    let store = open_existing_store(config)?;
    let clock = crate::domain::Clock::System;
    let report = if now {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(crate::governance::purge(&store, clock, settings))?;
        store.close();
        report
    } else {
        let session = Session::open(&store)?;
        let (schools, counts) =
            crate::store::retention::plan(&session, clock.now(), clock.today(), &settings)?;
        crate::governance::PurgeReport { schools, counts }
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if now { "purged" } else { "would purge" };
    for school in &report.schools {
        println!(
            "{verb} school {} (last mandate ended {})",
            school.code, school.mandate_ended
        );
    }
    let counts = &report.counts;
    println!(
        "{verb}: {} toetsafnames, {} earlier states, {} toetsen, {} leerlingen, {} statements; \
         expired {} receipts, {} audit rows, {} read audit rows, {} feed removals",
        counts.toetsafnames,
        counts.toetsafnames_history,
        counts.toetsen,
        counts.leerlingen,
        counts.xapi_statements,
        counts.receipts_expired,
        counts.audit_expired,
        counts.read_audit_expired,
        counts.removals_expired
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn disclosures(config: &Config, school: &str, json: bool) -> Result<ExitCode> {
    let school = SchoolCode::parse(school).map_err(anyhow::Error::msg)?;
    let session = connect(config)?;
    let register = crate::store::disclosures::register(&session, &school, None, None)?;
    if json {
        println!("{}", serde_json::to_string(&register)?);
        return Ok(ExitCode::SUCCESS);
    }
    for reader in &register.readers {
        println!(
            "reader {:<20} {:<5} {} .. {}  {} requests, {} records",
            reader.reader,
            reader.api,
            reader.first_read,
            reader.last_read,
            reader.requests,
            reader.records
        );
    }
    for lrs in &register.lrs {
        println!(
            "lrs    {:<20} {:<9} {} statements stored {} .. {}, last delivery {}  {}",
            lrs.lrs,
            lrs.identity,
            lrs.statements,
            lrs.first_stored.as_deref().unwrap_or("-"),
            lrs.last_stored.as_deref().unwrap_or("-"),
            lrs.last_delivered_at.as_deref().unwrap_or("-"),
            lrs.url
        );
    }
    if register.readers.is_empty() && register.lrs.is_empty() {
        println!("no reader or LRS received data of {}", register.school);
    }
    Ok(ExitCode::SUCCESS)
}
