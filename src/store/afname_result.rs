//! The stored form of an afname's result (`toetsafnames.result`): what the sender reported, or the onderdeel keys a derived total sums.
//!
//! The intake writes it, the LAS feed serves it as it is, and the bridge reads it into a
//! statement; declaring it once here keeps the three in step. Its text must not change for
//! a given result: the feed hands it out as raw JSON and statement ids digest it, so the
//! fields are declared in the sorted order in which they were always written.

use crate::uwlr::Uitslag;
use serde::{Deserialize, Serialize};

/// One afname's result as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum AfnameResult {
    /// A toets total the gateway added up from onderdeel results (README, Decisions).
    Derived {
        /// The keys of the onderdeel results it sums, sorted.
        afgeleid_uit: Vec<String>,
        uitslag: Uitslag,
    },
    /// A result as its sender reported it (`infourl` is stored as null when absent).
    Reported {
        infourl: Option<String>,
        uitslag: Uitslag,
    },
}

impl AfnameResult {
    /// Reads a stored result; `None` for text that is not one (never written by the gateway).
    pub(crate) fn parse(text: &str) -> Option<AfnameResult> {
        serde_json::from_str(text).ok()
    }

    /// The text the store keeps.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an afname result always serialises")
    }

    pub(crate) fn uitslag(&self) -> &Uitslag {
        match self {
            AfnameResult::Derived { uitslag, .. } | AfnameResult::Reported { uitslag, .. } => {
                uitslag
            }
        }
    }

    pub(crate) fn infourl(&self) -> Option<&str> {
        match self {
            AfnameResult::Reported { infourl, .. } => infourl.as_deref(),
            AfnameResult::Derived { .. } => None,
        }
    }

    /// The onderdeel result keys a derived total sums; `None` for a reported result.
    pub(crate) fn afgeleid_uit(&self) -> Option<&[String]> {
        match self {
            AfnameResult::Derived { afgeleid_uit, .. } => Some(afgeleid_uit),
            AfnameResult::Reported { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is what `serde_json::json!` wrote before the type existed, byte for byte.
    #[test]
    fn stored_text_is_unchanged() {
        let check = |result: AfnameResult, expected: &str| {
            assert_eq!(result.to_json(), expected);
            assert_eq!(AfnameResult::parse(expected), Some(result));
        };
        let oso = serde_json::json!({"toetsscore": {"aantalgoed": "7"}, "a": [1]});
        check(
            AfnameResult::Reported {
                infourl: None,
                uitslag: Uitslag::Score(Some(42)),
            },
            &serde_json::json!({"uitslag": Uitslag::Score(Some(42)), "infourl": None::<String>})
                .to_string(),
        );
        check(
            AfnameResult::Reported {
                infourl: Some("https://x.example/\"i\"".into()),
                uitslag: Uitslag::Osoresultaat(oso.clone()),
            },
            &serde_json::json!({"uitslag": Uitslag::Osoresultaat(oso), "infourl": "https://x.example/\"i\""})
                .to_string(),
        );
        check(
            AfnameResult::Reported {
                infourl: None,
                uitslag: Uitslag::Score(None),
            },
            r#"{"infourl":null,"uitslag":{"score":null}}"#,
        );
        check(
            AfnameResult::Derived {
                afgeleid_uit: vec!["K-1".into(), "K-2".into()],
                uitslag: Uitslag::Score(Some(50)),
            },
            &serde_json::json!({"uitslag": {"score": 50u64}, "afgeleid_uit": ["K-1", "K-2"]})
                .to_string(),
        );
        // Rows written before `infourl` was stored read as reported results without one.
        assert_eq!(
            AfnameResult::parse(r#"{"uitslag":{"score":7}}"#),
            Some(AfnameResult::Reported {
                infourl: None,
                uitslag: Uitslag::Score(Some(7)),
            })
        );
        assert_eq!(AfnameResult::parse("not json"), None);
    }
}
