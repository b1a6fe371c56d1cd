//! `readers`: the read API's clients, their scopes and school grants.

use super::args::{MandateArgs, ReadersCommand};
use super::{connect, connect_read_only};
use crate::config::Config;
use crate::domain::SchoolCode;
use crate::store::session::Session;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: ReadersCommand) -> Result<ExitCode> {
    use crate::store::readers::{self, Grant};
    let mut session = match command {
        ReadersCommand::List { .. } => connect_read_only(config)?,
        _ => connect(config)?,
    };
    let parse_school = |text: &String| SchoolCode::parse(text).map_err(anyhow::Error::msg);
    let grants = |schools: &[String], mandate: MandateArgs| -> Result<Vec<Grant>> {
        let valid_from = mandate
            .valid_from
            .unwrap_or_else(|| crate::domain::today().format("%Y-%m-%d").to_string());
        schools
            .iter()
            .map(|text| {
                Ok(Grant {
                    school: parse_school(text)?,
                    mandate_ref: mandate.mandate.clone(),
                    valid_from: valid_from.clone(),
                    valid_until: mandate.valid_until.clone(),
                })
            })
            .collect()
    };
    let describe = |grant: &Grant| {
        format!(
            "{} under mandate {} from {} until {}",
            grant.school,
            grant.mandate_ref,
            grant.valid_from,
            grant.valid_until.as_deref().unwrap_or("further notice")
        )
    };
    match command {
        ReadersCommand::Add {
            name,
            schools,
            scopes,
            mandate,
        } => {
            let grants = grants(&schools, mandate)?;
            let scopes: Vec<readers::Scope> = scopes.into_iter().map(Into::into).collect();
            let token = session
                .write(|transaction| readers::add_reader(transaction, &name, &scopes, &grants))?;
            let scope_names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
            println!("reader {name} added with scope {}", scope_names.join(", "));
            for grant in &grants {
                println!("  may read {}", describe(grant));
            }
            println!("bearer token (shown once; send it as 'Authorization: Bearer TOKEN'):");
            println!("{token}");
        }
        ReadersCommand::Grant {
            name,
            schools,
            mandate,
        } => {
            let grants = grants(&schools, mandate)?;
            session.write(|transaction| {
                grants
                    .iter()
                    .try_for_each(|grant| readers::grant_school(transaction, &name, grant))
            })?;
            for grant in &grants {
                println!("reader {name} may read {}", describe(grant));
            }
        }
        ReadersCommand::Withdraw { name, schools } => {
            session.write(|transaction| -> Result<()> {
                for text in &schools {
                    readers::withdraw_school(transaction, &name, &parse_school(text)?)?;
                }
                Ok(())
            })?;
            println!("reader {name} may no longer read {}", schools.join(", "));
        }
        ReadersCommand::List { json } => list(&session, json)?,
        ReadersCommand::Revoke { name } => {
            readers::revoke_reader(&session, &name)?;
            println!("reader {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(session: &Session, json: bool) -> Result<()> {
    use crate::store::readers;
    for reader in readers::list_readers(session, crate::domain::today())? {
        if json {
            println!("{}", serde_json::to_string(&reader)?);
            continue;
        }
        let scopes: Vec<&str> = reader.scopes.iter().map(|scope| scope.as_str()).collect();
        println!(
            "{:<20} scope {:<9} created {}  {}",
            reader.name,
            scopes.join(","),
            reader.created_at,
            reader
                .revoked_at
                .map(|at| format!("revoked {at}"))
                .unwrap_or_else(|| "active".into())
        );
        for grant in reader.schools {
            println!(
                "  {:<10} mandate {:<36} {} .. {}  {}",
                grant.school,
                grant.mandate_ref,
                grant.valid_from,
                grant.valid_until.unwrap_or_else(|| "open".into()),
                match (&grant.withdrawn_at, grant.valid_today) {
                    (Some(at), _) => format!("withdrawn {at}"),
                    (None, true) => "valid today".into(),
                    (None, false) => "not valid today".into(),
                }
            );
        }
    }
    Ok(())
}
