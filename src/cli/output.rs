//! What the commands print besides their results: the error line, generated text, progress.

use anyhow::{Context, Result};
use std::process::ExitCode;

/// The error and its causes on one line, `a: b: c`, each said once: a cause whose text the
/// message before it already ends with is left out (`std::io::Error` inside a library error
/// that prints its source itself would otherwise read `(os error 2): ... (os error 2)`).
pub(super) fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Prints each row as one JSON object per line (`--json`), or as the text line `text` makes of it.
pub(super) fn print_rows<T: serde::Serialize>(
    rows: impl IntoIterator<Item = T>,
    json: bool,
    text: impl Fn(&T) -> String,
) -> Result<()> {
    for row in rows {
        if json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            println!("{}", text(&row));
        }
    }
    Ok(())
}

/// Writes generated text to standard output; a reader that stopped early (`| head`) is no error.
pub(super) fn print_bytes(bytes: &[u8]) -> Result<ExitCode> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write to standard output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Progress of a long subcommand (`generate`, `leerlingen import`, `backup`): a bar on
/// standard output when it is a terminal; otherwise (a log, a pipe) a plain line at every
/// tenth of the total, so a log shows the run advancing without escape codes.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: &'static str,
    total: u64,
    next_line: u64,
}

impl Progress {
    /// `total` may be an estimate (the bar then stops at full); 0 means unknown (a spinner).
    pub(super) fn new(what: &'static str, total: u64) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stdout()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                (total > 0).then_some(total),
                indicatif::ProgressDrawTarget::stdout(),
            );
            let template = if total > 0 {
                "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)"
            } else {
                "{spinner} {msg} ({elapsed})"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        if bar.is_none() && total == 0 {
            println!("{what} ...");
        }
        Progress {
            bar,
            what,
            total,
            next_line: total / 10,
        }
    }

    pub(super) fn set(&mut self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.total > 0 && done >= self.next_line.max(1) => {
                println!(
                    "{}: {done} of {} ({}%)",
                    self.what,
                    self.total,
                    done * 100 / self.total
                );
                self.next_line = done + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    pub(super) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_says_each_cause_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        // A library error that prints its source itself and also returns it.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x: {source}")]
        struct Doubling {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Doubling { source: io }).context("cannot start");
        assert_eq!(
            super::error_chain(&error),
            "cannot start: cannot read x: No such file or directory (os error 2)"
        );
    }
}
