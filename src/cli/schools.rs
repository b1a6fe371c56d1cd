//! `schools`: which client may send for which school, under which mandate.

use super::args::SchoolsCommand;
use super::output::print_rows;
use super::{connect, connect_read_only};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::admin;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: SchoolsCommand) -> Result<ExitCode> {
    let session = match command {
        SchoolsCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
    let school = |text: &str| SchoolCode::parse(text).map_err(anyhow::Error::msg);
    match command {
        SchoolsCommand::Activate {
            school: code,
            klantcode,
            mandate,
            valid_from,
            valid_until,
        } => {
            let school = school(&code)?;
            let valid_from =
                valid_from.unwrap_or_else(|| crate::domain::Clock::System.today().to_string());
            admin::activate(
                &session,
                &klantcode,
                &school,
                &mandate,
                &valid_from,
                valid_until.as_deref(),
            )?;
            println!("{klantcode} may send for {school} under mandate {mandate} from {valid_from}");
        }
        SchoolsCommand::Deactivate {
            school: code,
            klantcode,
        } => {
            let school = school(&code)?;
            admin::deactivate(&session, &klantcode, &school)?;
            println!("{klantcode} may no longer send for {school}");
        }
        SchoolsCommand::List { json } => {
            print_rows(admin::list_activations(&session)?, json, |row| {
                format!(
                    "{:<10} {:<20} mandate {:<36} {} .. {}  {}",
                    row.school,
                    row.klantcode,
                    row.mandate_ref,
                    row.valid_from,
                    row.valid_until.as_deref().unwrap_or("open"),
                    if row.active { "active" } else { "inactive" }
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
