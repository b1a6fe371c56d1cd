//! `receipts`: what happened to received messages.

use super::args::ReceiptsCommand;
use super::connect_read_only;
use crate::config::Config;
use anyhow::{bail, Result};
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: ReceiptsCommand) -> Result<ExitCode> {
    let session = connect_read_only(config)?;
    match command {
        ReceiptsCommand::List { limit, json } => {
            for receipt in crate::store::intake::list_receipts(&session, limit)? {
                if json {
                    println!("{}", serde_json::to_string(&receipt)?);
                    continue;
                }
                let field = |name: &str| receipt[name].as_str().unwrap_or("-").to_string();
                println!(
                    "{}  {}  {:<8}  {:<8}  {:<10}  {:>7} resultaten  {}",
                    field("id"),
                    field("received_at"),
                    field("klantcode"),
                    field("school"),
                    field("outcome"),
                    receipt["counts"]["resultaten"],
                    receipt["faultcode"].as_str().unwrap_or("")
                );
            }
        }
        ReceiptsCommand::Show { id } => {
            let Some((_, receipt)) = crate::store::intake::load_receipt(&session, &id)? else {
                bail!("no receipt {id}");
            };
            println!("{}", serde_json::to_string_pretty(&receipt)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
