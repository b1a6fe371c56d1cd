//! `secrets`: the key that seals stored LRS passwords and pseudonym keys.

use super::args::SecretsCommand;
use super::{connect, load_keyring};
use crate::config::Config;
use crate::store::admin;
use anyhow::{bail, Result};
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: SecretsCommand) -> Result<ExitCode> {
    match command {
        SecretsCommand::NewKey => println!("{}", crate::secret::Keyring::new_key_text()),
        SecretsCommand::Rotate => rotate(config)?,
        SecretsCommand::ResetIdKey => reset_id_key(config)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate(config: &Config) -> Result<()> {
    let mut session = connect(config)?;
    let keyring = load_keyring(config, false)?;
    let resealed = session.write(|transaction| -> Result<_> {
        let outcome = crate::store::outbox::reseal_secrets(transaction, &keyring)?;
        if let Some(error) = outcome.unopened.first() {
            // Nothing is committed: the operator fixes the key file and runs it again.
            bail!(
                "{error}; nothing was resealed ({} values do not open)",
                outcome.unopened.len()
            );
        }
        let resealed = outcome.resealed;
        admin::audit(
            transaction,
            "cli",
            "secrets.rotate",
            &format!("{resealed} values resealed"),
        )?;
        Ok(resealed)
    })?;
    println!(
        "resealed {resealed} stored secrets under the first key of {}",
        keyring.origin()
    );
    Ok(())
}

fn reset_id_key(config: &Config) -> Result<()> {
    let forgotten = connect(config)?.write(|transaction| -> Result<_> {
        let forgotten = crate::store::outbox::forget_id_key(transaction)?;
        admin::audit(
            transaction,
            "cli",
            "secrets.reset-id-key",
            if forgotten {
                "forgotten"
            } else {
                "none stored"
            },
        )?;
        Ok(forgotten)
    })?;
    println!(
        "{}",
        if forgotten {
            "the xAPI id key is forgotten; the next serve makes a new one"
        } else {
            "no xAPI id key was stored"
        }
    );
    Ok(())
}
