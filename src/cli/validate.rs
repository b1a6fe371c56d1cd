//! `validate`: the offline checks of message files.

use crate::config::Config;
use crate::domain::Rule;
use crate::vdex::Vocabularies;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn run(config: &Config, files: &[PathBuf]) -> Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    let schemas = crate::schema::prepare(scratch.path(), config.schema_dir.as_deref())?;
    let vocabularies = Vocabularies::load(config.vdex_dir.as_deref())?;
    let mut all_valid = true;
    for file in crate::tools::replay::collect_files(files)? {
        let verdict = crate::intake::validate_offline(
            &file,
            &schemas,
            &vocabularies,
            &config.xsd_versions,
            config.max_body_bytes,
            config.aanmaakdatum_max_skew(),
        )?;
        let violations = &verdict.violations;
        if violations.is_empty() {
            println!("{}: valid", file.display());
        } else {
            all_valid = false;
        }
        for violation in &violations.items {
            println!(
                "{}:{}:{}: {} {}{}",
                file.display(),
                violation.line.unwrap_or(0),
                violation.column.unwrap_or(0),
                violation.rule.code(),
                violation.message,
                violation
                    .value
                    .as_ref()
                    .map(|value| format!(" (value: {value})"))
                    .unwrap_or_default()
            );
        }
        if violations.omitted > 0 {
            println!("{}: … and {} more", file.display(), violations.omitted);
        }
        if verdict.unchecked_resultaten > 0 {
            let versions: Vec<String> = verdict
                .unchecked_versions
                .iter()
                .map(|(toetscode, versie)| format!("{toetscode} versie '{versie}'"))
                .collect();
            println!(
                "{}: not checked offline: {} resultaten are pinned to toets versions this message does not define ({}); the gateway checks them against earlier messages ({}, {}, {})",
                file.display(),
                verdict.unchecked_resultaten,
                versions.join(", "),
                Rule::ToetsVersie.code(),
                Rule::Onderdeel.code(),
                Rule::Score.code()
            );
        }
    }
    let store_rules: Vec<&str> = Rule::ALL
        .into_iter()
        .filter(|rule| rule.needs_store())
        .map(Rule::code)
        .collect();
    println!(
        "not checked offline (they need the gateway's store): {} (the sender's key and klantcode, its activation for the school, the ordering of aanmaakdatum, known leerlingen, toets versions from earlier messages)",
        store_rules.join(", ")
    );
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
