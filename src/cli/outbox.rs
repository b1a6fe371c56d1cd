//! `outbox`: xAPI delivery per LRS and its dead letters.

use super::args::OutboxCommand;
use super::output::print_rows;
use super::{connect, connect_read_only};
use crate::config::Config;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn run(config: &Config, command: OutboxCommand) -> Result<ExitCode> {
    use crate::store::outbox as rows;
    let session = match command {
        OutboxCommand::Retry { .. } => connect(config)?,
        _ => connect_read_only(config)?,
    };
    match command {
        OutboxCommand::Status { json } => {
            let statements: i64 = crate::store::statements::count_statements(&session)?;
            if json {
                let (cursor, end) = crate::store::outbox::publisher_progress(&session)?;
                let status = serde_json::json!({
                    "statements": statements,
                    "publisher": {"cursor": cursor, "end": end, "pending": end - cursor},
                    "lrs": rows::outbox_status(&session)?,
                });
                println!("{status}");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{statements} statements generated");
            let (cursor, end) = crate::store::outbox::publisher_progress(&session)?;
            println!("{} accepted changes not yet turned into statements (publisher at {cursor} of {end})", end - cursor);
            let now = chrono::Utc::now();
            for row in rows::outbox_status(&session)? {
                let lag = row
                    .oldest_pending_stored_at
                    .as_deref()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .map(|at| {
                        format!(
                            "{:.1}s",
                            (now - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64
                                / 1000.0
                        )
                    })
                    .unwrap_or_else(|| "0s".into());
                println!(
                    "{:<16} pending {:>7}  lag {:>8}  delivered {:>7}  dead letters {:>5} ({} requeued)  last {} {}{}",
                    row.lrs,
                    row.pending,
                    lag,
                    row.delivered,
                    row.dead_letters,
                    row.requeued,
                    row.last_attempt_at.as_deref().unwrap_or("-"),
                    row.last_status.map(|status| status.to_string()).unwrap_or_else(|| "-".into()),
                    row.last_error.map(|error| format!(" ({error})")).unwrap_or_default()
                );
            }
        }
        OutboxCommand::Retry { lrs } => {
            let requeued = rows::requeue_dead_letters(&session, lrs.as_deref())?;
            println!("{requeued} dead letters requeued");
        }
        OutboxCommand::DeadLetters { lrs, json } => {
            print_rows(
                rows::list_dead_letters(&session, lrs.as_deref())?,
                json,
                |row| {
                    format!(
                        "{:<16} {}  seq {:<8} HTTP {:<4} {} attempts {}{}  {}",
                        row.lrs,
                        row.statement_id,
                        row.seq,
                        row.status
                            .map(|status| status.to_string())
                            .unwrap_or_else(|| "-".into()),
                        row.failed_at,
                        row.attempts,
                        if row.requeued { " requeued" } else { "" },
                        row.answer.replace('\n', " ")
                    )
                },
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
