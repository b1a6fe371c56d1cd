//! `leerlingen`: import a roster, erase one learner, export what the gateway holds about one.

use super::args::{LearnerArgs, LeerlingenCommand};
use super::output::Progress;
use super::{connect, load_keyring};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::admin;
use crate::store::session::Session;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: LeerlingenCommand) -> Result<ExitCode> {
    match command {
        LeerlingenCommand::Import { file } => import(config, &file),
        LeerlingenCommand::Erase { learner } => erase(config, &learner),
        LeerlingenCommand::Export { learner, out } => export(config, &learner, &out),
    }
}

fn import(config: &Config, file: &Path) -> Result<ExitCode> {
    let mut session = connect(config)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rows = crate::roster::parse(&bytes).with_context(|| format!("{}", file.display()))?;
    let mut progress = Progress::new("importing leerlingen", rows.len() as u64);
    let (imported, released) = session.write(|transaction| -> Result<_> {
        let imported =
            admin::import_leerlingen_with_progress(transaction, &rows, "cli", &mut |done| {
                progress.set(done as u64)
            })?;
        progress.set(imported as u64);
        Ok((
            imported,
            crate::store::intake::release_quarantine(transaction)?,
        ))
    })?;
    progress.finish();
    println!("imported {imported} leerlingen; released {released} afnames from quarantine");
    Ok(ExitCode::SUCCESS)
}

/// The learner `args` names, or an error saying the school does not know them.
fn find_learner(session: &Session, args: &LearnerArgs) -> Result<crate::store::erasure::Learner> {
    let school = SchoolCode::parse(&args.school).map_err(anyhow::Error::msg)?;
    crate::store::erasure::find_learner(
        session,
        &school,
        args.leerlingid.as_deref(),
        args.eckid.as_deref(),
    )?
    .with_context(|| {
        format!(
            "school {} holds nothing about that leerling",
            school.as_str()
        )
    })
}

fn erase(config: &Config, args: &LearnerArgs) -> Result<ExitCode> {
    let keyring = load_keyring(config, true)?;
    let mapping = config.xapi_mapping()?;
    let mut session = connect(config)?;
    let learner = find_learner(&session, args)?;
    let report = crate::governance::erase(&mut session, &keyring, &mapping, &learner, "cli")?;
    let counts = &report.counts;
    println!(
        "erased leerling {} of {}: {} toetsafnames ({} quarantined), {} earlier states, {} roster rows; \
         rewrote {} receipts, {} read audit rows, {} audit rows to name {}",
        learner.leerlingid,
        report.school,
        counts.toetsafnames,
        counts.quarantined,
        counts.toetsafnames_history,
        counts.leerlingen,
        counts.receipts_rewritten,
        counts.read_audit_rewritten,
        counts.audit_rewritten,
        report.learner_hash
    );
    println!(
        "removed {} statements; {} voiding statements queued for delivery",
        counts.xapi_statements_removed, counts.xapi_statements_voided
    );
    if report.lrs.is_empty() {
        println!("no LRS held statements about this leerling");
    } else {
        println!(
            "LRSs that held data (ask each to delete it; voiding does not): {}",
            report.lrs.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn export(config: &Config, args: &LearnerArgs, out: &Path) -> Result<ExitCode> {
    let session = connect(config)?;
    let learner = find_learner(&session, args)?;
    let document =
        crate::store::access_request::export(&session, &learner, &crate::store::now_text())?;
    let text = serde_json::to_string_pretty(&document)?;
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    admin::audit(
        &session,
        "cli",
        "leerlingen.export",
        &format!(
            "{} {} toetsafnames",
            learner.school,
            document["toetsafnames"].as_array().map_or(0, Vec::len)
        ),
    )?;
    println!(
        "wrote {} ({} toetsafnames, {} statements, {} reads)",
        out.display(),
        document["toetsafnames"].as_array().map_or(0, Vec::len),
        document["statements"].as_array().map_or(0, Vec::len),
        document["reads"].as_array().map_or(0, Vec::len)
    );
    Ok(ExitCode::SUCCESS)
}
