//! Vocabularies from IMS VDEX files: which terms a vocabulary-bound value may take.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// VDEX files shipped in the binary; an operator's `vdex_dir` adds to or replaces them.
pub(crate) const EMBEDDED: [(&str, &str); 2] = [
    (
        "vakgebieden-po.vdex",
        include_str!("../vdex/vakgebieden-po.vdex"),
    ),
    (
        "uwlr-gateway-referentieniveaus.vdex",
        include_str!("../vdex/uwlr-gateway-referentieniveaus.vdex"),
    ),
];

/// One vocabulary: its identifier and the values that count as its terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Vocabulary {
    pub(crate) identifier: String,
    pub(crate) name: String,
    /// Term identifiers and their captions: a sender may send either, since the
    /// official files' term identifiers are not published beside their captions.
    pub(crate) terms: HashSet<String>,
}

/// Every known vocabulary by identifier.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vocabularies {
    by_identifier: HashMap<String, Vocabulary>,
}

/// What a check of one value found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TermCheck {
    /// No vocabulary attribute: nothing to check.
    Unbound,
    Valid,
    /// The vocabulary is known and the value is not one of its terms.
    Invalid,
    /// The vocabulary is not known here: accepted as is, recorded on the receipt.
    UnknownVocabulary,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum VdexError {
    #[error("{file}: not a readable VDEX file: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: cannot read")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

impl Vocabularies {
    /// The embedded vocabularies plus every `*.vdex` file in `dir`.
    pub(crate) fn load(dir: Option<&Path>) -> Result<Vocabularies, VdexError> {
        let mut vocabularies = Vocabularies::default();
        for (file, contents) in EMBEDDED {
            vocabularies.add(parse(file, contents)?);
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| VdexError::Io {
                file: dir.display().to_string(),
                source,
            })?;
            let mut paths: Vec<_> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "vdex"))
                .collect();
            paths.sort();
            for path in paths {
                let file = path.display().to_string();
                let contents = std::fs::read_to_string(&path).map_err(|source| VdexError::Io {
                    file: file.clone(),
                    source,
                })?;
                vocabularies.add(parse(&file, &contents)?);
            }
        }
        Ok(vocabularies)
    }

    pub(crate) fn add(&mut self, vocabulary: Vocabulary) {
        self.by_identifier
            .insert(vocabulary.identifier.clone(), vocabulary);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_identifier.len()
    }

    pub(crate) fn get(&self, identifier: &str) -> Option<&Vocabulary> {
        self.by_identifier.get(identifier.trim())
    }

    pub(crate) fn check(&self, vocabulaire: Option<&str>, value: &str) -> TermCheck {
        let Some(vocabulaire) = vocabulaire else {
            return TermCheck::Unbound;
        };
        match self.get(vocabulaire) {
            None => TermCheck::UnknownVocabulary,
            Some(vocabulary) if vocabulary.terms.contains(value.trim()) => TermCheck::Valid,
            Some(_) => TermCheck::Invalid,
        }
    }
}

/// Reads one VDEX document: `vocabIdentifier`, `vocabName` and every `term`'s
/// `termIdentifier` and caption strings (nested terms included).
pub(crate) fn parse(file: &str, contents: &str) -> Result<Vocabulary, VdexError> {
    let fail = |reason: String| VdexError::Parse {
        file: file.to_string(),
        reason,
    };
    let mut reader = Reader::from_str(contents);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut vocabulary = Vocabulary::default();
    let mut depth_limit_hit = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|error| fail(error.to_string()))?;
        match event {
            Event::Start(start) => {
                if path.len() >= 64 {
                    depth_limit_hit = true;
                    break;
                }
                path.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|error| fail(error.to_string()))?;
                let text = text.trim();
                let parent = path.last().map(String::as_str);
                let grandparent = path.len().checked_sub(2).map(|index| path[index].as_str());
                let in_term = path.iter().any(|name| name == "term");
                match (grandparent, parent) {
                    (_, Some("vocabIdentifier")) if !in_term => {
                        vocabulary.identifier = text.to_string()
                    }
                    (Some("vocabName"), Some("langstring")) if !in_term => {
                        vocabulary.name = text.to_string()
                    }
                    (_, Some("termIdentifier")) => {
                        vocabulary.terms.insert(text.to_string());
                    }
                    (Some("caption"), Some("langstring")) if in_term => {
                        vocabulary.terms.insert(text.to_string());
                    }
                    _ => {}
                }
            }
            Event::DocType(_) => return Err(fail("a DOCTYPE is not allowed".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    if depth_limit_hit {
        return Err(fail("nesting deeper than 64 elements".into()));
    }
    if vocabulary.identifier.is_empty() {
        return Err(fail("no vocabIdentifier".into()));
    }
    if vocabulary.terms.is_empty() {
        return Err(fail("no terms".into()));
    }
    Ok(vocabulary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAKGEBIEDEN: &str =
        "http://purl.edustandaard.nl/concept/328cc12a-87b2-41c4-aef8-853595f9f9dd";

    #[test]
    fn embedded_vocabularies_load() {
        let vocabularies = Vocabularies::load(None).unwrap();
        assert_eq!(vocabularies.len(), EMBEDDED.len());
        assert_eq!(vocabularies.get(VAKGEBIEDEN).unwrap().terms.len(), 23);
    }

    #[test]
    fn checks_terms() {
        let vocabularies = Vocabularies::load(None).unwrap();
        let check = |vocabulaire: Option<&str>, value: &str| vocabularies.check(vocabulaire, value);
        assert_eq!(
            check(Some(VAKGEBIEDEN), "Rekenen en wiskunde"),
            TermCheck::Valid
        );
        assert_eq!(check(Some(VAKGEBIEDEN), "Rekenen"), TermCheck::Invalid);
        assert_eq!(
            check(Some("urn:x:onbekend"), "iets"),
            TermCheck::UnknownVocabulary
        );
        assert_eq!(check(None, "iets"), TermCheck::Unbound);
    }

    #[test]
    fn refuses_broken_files() {
        assert!(parse("x", "<vdex><term>").is_err());
        assert!(parse("x", "<vdex/>").is_err());
        assert!(parse("x", "<!DOCTYPE x><vdex/>").is_err());
    }
}
