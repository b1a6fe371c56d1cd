//! `audit`: the log of reads through the read API and of administrative actions.

use super::args::AuditArgs;
use super::connect_read_only;
use crate::config::Config;
use crate::domain::SchoolCode;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn run(config: &Config, args: AuditArgs) -> Result<ExitCode> {
    let filter = crate::store::readers::AuditFilter {
        reader: args.reader,
        school: args
            .school
            .as_deref()
            .map(SchoolCode::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        leerling: args.leerling,
        reads_only: args.reads,
        limit: args.limit,
    };
    let session = connect_read_only(config)?;
    for line in crate::store::readers::list_audit(&session, &filter)? {
        if args.json {
            println!("{}", serde_json::to_string(&line)?);
        } else if line.action == "read" {
            println!(
                "{}  read    {:<16} {} {:<8} {:>6} records  {} leerlingen  {}",
                line.at,
                line.actor,
                line.status.unwrap_or(0),
                line.school.as_deref().unwrap_or("-"),
                line.records.unwrap_or(0),
                line.leerlingen.as_ref().map_or(0, Vec::len),
                line.detail
            );
        } else {
            println!(
                "{}  {:<7} {:<16} {}",
                line.at, line.action, line.actor, line.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
