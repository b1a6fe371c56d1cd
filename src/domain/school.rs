//! The one written form of a school identification, shared by messages, CLI and URLs.

use std::fmt;

/// A school as UWLR identifies it: brincode plus optional dependancecode, or a schoolkey.
///
/// Written form (CLI, URLs, store): `99XX` for a brincode alone (or with dependancecode
/// `00`, which the standard says means the same), `99XX01` with a dependancecode, and the
/// schoolkey itself otherwise. A schoolkey that happens to look like a brincode form is
/// read as one; the standard's own choice (brincode | schoolkey) makes that clash rare.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SchoolCode(String);

impl SchoolCode {
    /// Builds the code from the message's school identification.
    pub(crate) fn from_parts(
        brincode: Option<&str>,
        dependancecode: Option<&str>,
        schoolkey: Option<&str>,
    ) -> Option<SchoolCode> {
        match (brincode, schoolkey) {
            (Some(brincode), _) => {
                let brincode = brincode.trim();
                match dependancecode.map(str::trim) {
                    None | Some("") | Some("00") => Some(SchoolCode(brincode.to_string())),
                    Some(dependancecode) => Some(SchoolCode(format!("{brincode}{dependancecode}"))),
                }
            }
            (None, Some(schoolkey)) => Some(SchoolCode(schoolkey.trim().to_string())),
            (None, None) => None,
        }
    }

    /// Parses the written form; `99XX00` is folded to `99XX`.
    pub(crate) fn parse(text: &str) -> Result<SchoolCode, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty school code".into());
        }
        if text.len() > 256 {
            return Err("school code longer than 256 characters".into());
        }
        let bytes = text.as_bytes();
        let is_brin = |b: &[u8]| {
            b.len() >= 4
                && b[0].is_ascii_digit()
                && b[1].is_ascii_digit()
                && b[2].is_ascii_uppercase()
                && b[3].is_ascii_uppercase()
        };
        if bytes.len() == 6 && is_brin(bytes) && bytes[4..].iter().all(u8::is_ascii_digit) {
            return Ok(SchoolCode::from_parts(Some(&text[..4]), Some(&text[4..]), None).unwrap());
        }
        Ok(SchoolCode(text.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The (brincode, dependancecode, schoolkey) parts of this code, for storage.
    pub(crate) fn parts(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let bytes = self.0.as_bytes();
        let brin = bytes.len() >= 4
            && bytes[0].is_ascii_digit()
            && bytes[1].is_ascii_digit()
            && bytes[2].is_ascii_uppercase()
            && bytes[3].is_ascii_uppercase();
        match bytes.len() {
            4 if brin => (Some(&self.0), None, None),
            6 if brin && bytes[4..].iter().all(u8::is_ascii_digit) => {
                (Some(&self.0[..4]), Some(&self.0[4..]), None)
            }
            _ => (None, None, Some(&self.0)),
        }
    }
}

impl fmt::Display for SchoolCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(brin: Option<&str>, dep: Option<&str>, key: Option<&str>, expected: &str) {
        let code = SchoolCode::from_parts(brin, dep, key).unwrap();
        assert_eq!(code.as_str(), expected);
        assert_eq!(SchoolCode::parse(expected).unwrap(), code);
    }

    #[test]
    fn written_forms() {
        check(Some("99XX"), None, None, "99XX");
        check(Some("99XX"), Some("00"), None, "99XX");
        check(Some("99XX"), Some("01"), None, "99XX01");
        check(None, None, Some("school-key-1"), "school-key-1");
        assert_eq!(SchoolCode::parse("99XX00").unwrap().as_str(), "99XX");
        assert_eq!(
            SchoolCode::parse("99XX01").unwrap().parts(),
            (Some("99XX"), Some("01"), None)
        );
        assert_eq!(
            SchoolCode::parse("abc").unwrap().parts(),
            (None, None, Some("abc"))
        );
        assert!(SchoolCode::parse(" ").is_err());
    }
}
