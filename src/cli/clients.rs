//! `clients`: the sending clients (EAs) and their ordering state.

use super::args::ClientsCommand;
use super::output::print_rows;
use super::{connect, connect_read_only, read_secret_line};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::admin;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: ClientsCommand) -> Result<ExitCode> {
    let session = match command {
        ClientsCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
    match command {
        ClientsCommand::Add {
            klantcode,
            klantnaam,
            key,
            key_file,
        } => {
            let key = match key_file {
                Some(path) => Some(read_secret_line(&path, "key")?),
                None => key,
            };
            let generated = key.is_none();
            let key = key.unwrap_or_else(admin::generate_key);
            admin::add_client(&session, &klantcode, &klantnaam, &key)?;
            println!("client {klantcode} ({klantnaam}) added");
            if generated {
                println!("autorisatiesleutel (shown once, give it to the schools' EA):");
                println!("{key}");
            }
        }
        ClientsCommand::List { json } => {
            print_rows(admin::list_clients(&session)?, json, |client| {
                format!(
                    "{:<20} {:<30} created {}  {}",
                    client.klantcode,
                    client.klantnaam,
                    client.created_at,
                    client
                        .revoked_at
                        .as_ref()
                        .map(|at| format!("revoked {at}"))
                        .unwrap_or_else(|| "active".into())
                )
            })?;
        }
        ClientsCommand::Revoke { klantcode } => {
            admin::revoke_client(&session, &klantcode)?;
            println!("client {klantcode} revoked");
        }
        ClientsCommand::ResetOrdering { klantcode, school } => {
            let school = SchoolCode::parse(&school).map_err(anyhow::Error::msg)?;
            let forgotten = admin::reset_ordering(&session, &klantcode, &school)?;
            println!(
                "{klantcode} for {school}: ordering reset (last aanmaakdatum was {forgotten}); its next message may carry any aanmaakdatum"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
