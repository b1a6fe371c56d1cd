//! Log output: the tracing subscriber, with every field value escaped so that no request value can forge a line.
//!
//! Klantcodes, klantnamen, paths and the like come from senders; an XML character
//! reference (`&#10;`) or a Basic-auth password puts any character into them. The
//! JSON format escapes every value itself (and its writer the line separators JSON
//! allows raw); the text format writes `%` (Display)
//! values raw, so it gets a field formatter that escapes control characters (and
//! the Unicode line and paragraph separators) in every field of every event and
//! span. Request strings are also logged as `&str` values, which the text format
//! quotes, so a space in them cannot forge a field either.

use crate::config::LogFormat;
use std::borrow::Cow;
use std::fmt::Write as _;
use tracing_subscriber::field::MakeExt;

/// Installs the process's subscriber: stderr, `UWLR_LOG` as filter (default `info`).
pub(crate) fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UWLR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald would get raw escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_writer(|| SeparatorEscaping(std::io::stderr()))
            .try_init(),
        LogFormat::Text => builder.fmt_fields(escaped_fields()).try_init(),
    };
}

/// A JSON log writer that also escapes the line breaks JSON allows raw in strings
/// (U+0085, U+2028, U+2029), which some log viewers break lines at. The JSON
/// structure is ASCII, so they only occur inside strings, where `\uXXXX` is valid;
/// the fmt layer writes each event with one `write_all`.
struct SeparatorEscaping<W>(W);

impl<W: std::io::Write> std::io::Write for SeparatorEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match std::str::from_utf8(buf) {
            Ok(text) if text.contains(['\u{85}', '\u{2028}', '\u{2029}']) => {
                let escaped = text
                    .replace('\u{85}', "\\u0085")
                    .replace('\u{2028}', "\\u2028")
                    .replace('\u{2029}', "\\u2029");
                self.0.write_all(escaped.as_bytes())
            }
            _ => self.0.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The text format's fields, `name=value` separated by spaces, each value escaped.
fn escaped_fields() -> impl for<'writer> tracing_subscriber::fmt::FormatFields<'writer> + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{}={text}", field.name())
        }
    })
    .delimited(" ")
}

/// The most of one request value a log line shows, in bytes.
const MAX_LOGGED_VALUE: usize = 128;

/// A request value cut to `MAX_LOGGED_VALUE` bytes (with `…` when cut): a klantcode is
/// read before the schema check limits it, a path can be as long as hyper takes, and a
/// megabyte of either per request must not reach the log.
pub(crate) fn clip(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_LOGGED_VALUE {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_LOGGED_VALUE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// `text` with control characters and line separators written as `\n`, `\u{1b}`, ….
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(escaped, "{}", c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// An error and every cause below it, `outer: inner: …`, each said once.
pub(crate) fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_line_separators_are_escaped() {
        let check = |input: &str, expected: &str| assert_eq!(escape_controls(input), expected);
        check("DEMO-EA", "DEMO-EA");
        check("Uitgever é ü", "Uitgever é ü");
        check("EVIL\nforged", "EVIL\\nforged");
        check("a\r\tb", "a\\r\\tb");
        check("\u{1b}[31mred", "\\u{1b}[31mred");
        check(
            "nel\u{85}ls\u{2028}ps\u{2029}",
            "nel\\u{85}ls\\u{2028}ps\\u{2029}",
        );
        check("del\u{7f}", "del\\u{7f}");
    }

    #[test]
    fn long_values_are_clipped_at_a_character_boundary() {
        assert_eq!(clip("DEMO-EA"), "DEMO-EA");
        let long = "é".repeat(100);
        let clipped = clip(&long);
        assert_eq!(clipped, format!("{}…", "é".repeat(64)));
    }

    #[test]
    fn the_json_writer_escapes_line_separators() {
        let mut written = Vec::new();
        let mut writer = SeparatorEscaping(&mut written);
        std::io::Write::write_all(
            &mut writer,
            "{\"k\":\"a\u{85}b\u{2028}c\u{2029}\"}\n".as_bytes(),
        )
        .unwrap();
        let line = String::from_utf8(written).unwrap();
        assert_eq!(line, "{\"k\":\"a\\u0085b\\u2028c\\u2029\"}\n");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["k"], "a\u{85}b\u{2028}c\u{2029}");
    }
}
