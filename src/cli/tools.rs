//! The commands that need no data dir: `replay`, `generate`, `completions`, `man`.

use super::args::{Cli, GenerateArgs, ReplayArgs};
use super::output::{print_bytes, Progress};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "uwlr-gateway", &mut script);
    print_bytes(&script)
}

/// The main page on standard output, or with `out` one page per command into that folder.
pub(super) fn man(out: Option<&Path>) -> Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    match out {
        Some(dir) => {
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            print_bytes(&page)
        }
    }
}

pub(super) fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let options = crate::tools::replay::ReplayOptions {
        paths: args.paths,
        url: args.url,
        klantcode: args.klantcode,
        klantnaam: args.klantnaam,
        key: args.key,
        concurrency: args.concurrency,
        rate: args.rate,
        restamp: args.restamp,
        expect: args.expect,
        timeout: std::time::Duration::from_secs(args.timeout),
        ca_file: args.ca_file,
    };
    let report = crate::tools::replay::replay(&options)?;
    print!("{}", crate::tools::replay::summary(&report));
    let all_accepted = report.answers.iter().all(|answer| answer.accepted());
    let unanswered = report
        .answers
        .iter()
        .any(|answer| answer.transport_error.is_some());
    Ok(
        match (
            options.expect.is_some(),
            report.differences.is_empty(),
            all_accepted,
        ) {
            (true, true, _) => ExitCode::SUCCESS,
            (true, false, _) => ExitCode::from(1),
            (false, _, true) => ExitCode::SUCCESS,
            // README: 1 for a call without an answer, 2 for faults.
            (false, _, false) if unanswered => ExitCode::from(1),
            (false, _, false) => ExitCode::from(2),
        },
    )
}

pub(super) fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let options = crate::tools::generate::GenerateOptions {
        schools: args.schools,
        learners: args.learners,
        toetsen: args.toetsen,
        afnames: args.afnames,
        seed: args.seed,
        drip: args.drip,
        klantcode: args.klantcode,
        klantnaam: args.klantnaam,
        autorisatiesleutel: args.key,
        out: args.out,
    };
    // Counted in resultaten: the total is known (corrections add a few beyond it).
    let mut progress = Progress::new(
        "writing resultaten",
        u64::from(options.schools) * options.afnames,
    );
    let report =
        crate::tools::generate::generate_with_progress(&options, &mut |done| progress.set(done))?;
    progress.finish();
    println!(
        "wrote {} messages ({} resultaten, {} bytes), roster {}",
        report.messages,
        report.resultaten,
        report.bytes,
        report.roster.display()
    );
    println!(
        "to prepare a gateway, run the commands in {}",
        report.setup.display()
    );
    Ok(ExitCode::SUCCESS)
}
