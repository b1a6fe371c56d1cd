//! The store boundary (issue 12): no rusqlite type, connection, transaction or SQL text
//! outside `src/store/`, so a second engine can live behind it.

use crate::harness::repo_root;
use std::path::{Path, PathBuf};

/// Names of the engine a caller must not use: its crate, its connection and transactions.
const ENGINE_NAMES: &[&str] = &["rusqlite", "Connection", "Transaction"];

#[test]
fn no_engine_type_or_sql_outside_the_store() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if relative.starts_with("src/store/") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let reaches = reasons(&text);
        if !reaches.is_empty() {
            found.push(format!("{relative}: {}", reaches.join("; ")));
        }
    }
    assert!(
        found.is_empty(),
        "outside src/store/, move these behind the store:\n{}",
        found.join("\n")
    );
}

/// The scanner finds what it must and skips comments and words inside ordinary strings.
#[test]
fn the_scanner_tells_code_and_sql_from_prose() {
    let check = |source: &str, expected: usize| {
        assert_eq!(reasons(source).len(), expected, "{source}");
    };
    check("fn f(c: &rusqlite::Connection) {}", 2);
    check("use crate::store::connection::Connection;", 1);
    check(
        "let t = c.unchecked_transaction(); // a Transaction here",
        0,
    );
    check(
        r#"c.execute("DELETE FROM receipts WHERE id = ?1", [id]);"#,
        1,
    );
    check(
        r##"c.query_row(r#"SELECT count(*)
        FROM t"#, [], f);"##,
        1,
    );
    check(
        r#"write!(f, "Connection: close\r\n"); let q = '"'; fn g<'a>() {}"#,
        0,
    );
    check(
        r#"c.execute("INSERT OR IGNORE INTO t (a) VALUES (?1)", [a]);"#,
        1,
    );
    check(r#"c.execute_batch("PRAGMA foreign_keys = ON");"#, 1);
    check(r#"let q = format!("SELECT {columns} FROM {table}");"#, 1);
    check(r###"let x = br#"<a/>"#; let c: Connection = open();"###, 1);
    check(r#"Method::DELETE => "DELETE","#, 0);
    check(r#"let s = "SELECTED rows: {n}"; let h = "BEGINNER";"#, 0);
    check(
        r#"/// Reads with `rusqlite`.
        let s = "select a school from the list";"#,
        0,
    );
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// Why a source file reaches the engine: engine names in its code, SQL in its strings.
fn reasons(source: &str) -> Vec<String> {
    let (code, strings) = split(source);
    let mut reasons = Vec::new();
    for name in ENGINE_NAMES {
        if words(&code).any(|word| word == *name) {
            reasons.push(format!("names {name}"));
        }
    }
    for text in strings {
        if is_sql(&text) {
            let line = text.lines().next().unwrap_or_default().trim().to_string();
            reasons.push(format!("SQL {line:?}"));
        }
    }
    reasons
}

fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// Words that open an SQL statement, in the upper case the code writes SQL in.
const SQL_VERBS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "CREATE",
    "DROP",
    "ALTER",
    "PRAGMA",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ATTACH",
    "DETACH",
    "WITH",
    "VACUUM",
];

/// SQL in the upper case the code writes it in: a string that opens with a statement verb,
/// or holds one of the store's statement shapes anywhere (`SELECT … FROM`, `INSERT [OR …]
/// INTO`, `UPDATE … SET`, `DELETE FROM`), also when `format!` fills in parts of it.
fn is_sql(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .collect();
    let has = |word: &str| words.contains(&word);
    let near = |first: &str, second: &str, within: usize| {
        words.iter().enumerate().any(|(at, word)| {
            *word == first && words[at + 1..].iter().take(within).any(|w| *w == second)
        })
    };
    // Two words at least: `"DELETE"` alone is an HTTP method.
    let opens =
        words.len() > 1 && SQL_VERBS.contains(&words[0]) && text.trim_start().starts_with(words[0]);
    opens
        || (has("SELECT") && has("FROM"))
        || near("INSERT", "INTO", 3)
        || near("REPLACE", "INTO", 1)
        || (has("UPDATE") && has("SET"))
        || near("DELETE", "FROM", 1)
}

/// The code of a Rust source without comments and string contents, and the string
/// literals' contents (ordinary, byte and raw strings; char literals and lifetimes skipped).
fn split(source: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::new();
    let mut strings = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if c == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    index += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !previous_is_word(&chars, index)
        {
            let mut hashes = 0;
            let mut at = index + 1;
            while chars.get(at) == Some(&'#') {
                hashes += 1;
                at += 1;
            }
            if chars.get(at) != Some(&'"') {
                code.push(c);
                index += 1;
                continue;
            }
            at += 1;
            let start = at;
            loop {
                if at >= chars.len() {
                    break;
                }
                if chars[at] == '"' && (1..=hashes).all(|k| chars.get(at + k) == Some(&'#')) {
                    break;
                }
                at += 1;
            }
            strings.push(chars[start..at.min(chars.len())].iter().collect());
            code.push_str("\"\"");
            index = at + 1 + hashes;
        } else if c == '"' {
            let mut at = index + 1;
            let mut text = String::new();
            while at < chars.len() && chars[at] != '"' {
                if chars[at] == '\\' {
                    at += 1;
                }
                if let Some(&character) = chars.get(at) {
                    text.push(character);
                }
                at += 1;
            }
            strings.push(text);
            code.push_str("\"\"");
            index = at + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\'', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut at = index + 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                index = at + 1;
            } else if chars.get(index + 2) == Some(&'\'') {
                index += 3;
            } else {
                index += 1;
            }
            code.push(' ');
        } else {
            code.push(c);
            index += 1;
        }
    }
    (code, strings)
}

/// Whether the character before `index` belongs to an identifier, so that an `r` there is
/// not a raw string's prefix; the `b` of a byte raw string (`br"…"`) does not count.
fn previous_is_word(chars: &[char], index: usize) -> bool {
    let is_word = |at: usize| chars[at].is_alphanumeric() || chars[at] == '_';
    if index == 0 || !is_word(index - 1) {
        return false;
    }
    !(chars[index - 1] == 'b' && (index == 1 || !is_word(index - 2)))
}
