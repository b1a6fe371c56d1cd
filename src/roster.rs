//! Reading rosters of known learners: CSV, or the UWLR `leerlinggegevens_antwoord` a LAS returns.

use crate::domain::SchoolCode;
use crate::store::admin::LeerlingRow;
use yaserde::{YaDeserialize, YaSerialize};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RosterError {
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("leerlinggegevens XML: {0}")]
    Xml(String),
    #[error("the roster holds no leerlingen")]
    Empty,
}

/// Reads either format; XML is recognised by its first non-blank byte.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(0);
    let rows = if bytes[start..].starts_with(b"<") {
        parse_xml(bytes)?
    } else {
        parse_csv(bytes)?
    };
    if rows.is_empty() {
        return Err(RosterError::Empty);
    }
    Ok(rows)
}

/// CSV with columns `school,leerlingid,eckid,naam` (eckid and naam may be empty); a header line is optional.
pub(crate) fn parse_csv(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 1;
        let record = record.map_err(|error| RosterError::Csv {
            line,
            reason: error.to_string(),
        })?;
        let field = |position: usize| {
            record
                .get(position)
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        if index == 0 && field(0).is_some_and(|value| value.eq_ignore_ascii_case("school")) {
            continue;
        }
        if record.iter().all(|value| value.trim().is_empty()) {
            continue;
        }
        let school = field(0).ok_or_else(|| RosterError::Csv {
            line,
            reason: "school is empty".into(),
        })?;
        let school =
            SchoolCode::parse(school).map_err(|reason| RosterError::Csv { line, reason })?;
        let leerlingid = field(1).ok_or_else(|| RosterError::Csv {
            line,
            reason: "leerlingid is empty".into(),
        })?;
        if leerlingid.len() > 256 {
            return Err(RosterError::Csv {
                line,
                reason: "leerlingid longer than 256 characters".into(),
            });
        }
        rows.push(LeerlingRow {
            school,
            leerlingid: leerlingid.to_string(),
            eckid: field(2).map(str::to_string),
            naam: field(3).map(str::to_string),
        });
    }
    Ok(rows)
}

/// `leerlinggegevens_antwoord`, as far as the roster reads it: the school and its leerlingen.
/// Other elements (names, groups, birth dates) are skipped, so nothing else is kept.
#[derive(Debug, Default, PartialEq, YaDeserialize, YaSerialize)]
#[yaserde(
    rename = "leerlinggegevens_antwoord",
    prefix = "ll",
    namespaces = { "ll" = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens" }
)]
pub(crate) struct LeerlinggegevensAntwoord {
    #[yaserde(prefix = "ll")]
    pub(crate) leerlinggegevens: Leerlinggegevens,
}

#[derive(Debug, Default, PartialEq, YaDeserialize, YaSerialize)]
#[yaserde(
    prefix = "ll",
    namespaces = { "ll" = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens" }
)]
pub(crate) struct Leerlinggegevens {
    #[yaserde(prefix = "ll")]
    pub(crate) school: Option<RosterSchool>,
    #[yaserde(prefix = "ll")]
    pub(crate) leerlingen: Option<Leerlingen>,
}

/// The school identification: brincode (with dependancecode) or schoolkey.
#[derive(Debug, Default, PartialEq, YaDeserialize, YaSerialize)]
#[yaserde(
    prefix = "ll",
    namespaces = { "ll" = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens" }
)]
pub(crate) struct RosterSchool {
    #[yaserde(prefix = "ll")]
    pub(crate) brincode: Option<String>,
    #[yaserde(prefix = "ll")]
    pub(crate) dependancecode: Option<String>,
    #[yaserde(prefix = "ll")]
    pub(crate) schoolkey: Option<String>,
}

#[derive(Debug, Default, PartialEq, YaDeserialize, YaSerialize)]
#[yaserde(
    prefix = "ll",
    namespaces = { "ll" = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens" }
)]
pub(crate) struct Leerlingen {
    #[yaserde(prefix = "ll")]
    pub(crate) leerling: Vec<RosterLeerling>,
}

/// One leerling: its LAS key and, when the LAS has one, its ECK iD.
#[derive(Debug, Default, PartialEq, YaDeserialize, YaSerialize)]
#[yaserde(
    prefix = "ll",
    namespaces = { "ll" = "http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens" }
)]
pub(crate) struct RosterLeerling {
    #[yaserde(attribute = true)]
    pub(crate) key: Option<String>,
    #[yaserde(attribute = true)]
    pub(crate) eckid: Option<String>,
}

/// How deep a roster document may nest; it needs six levels.
const MAX_DEPTH: usize = 64;

/// One streaming pass before the document is built: a DOCTYPE (its entities would be
/// expanded) and nesting deeper than `MAX_DEPTH` (the parser keeps a frame per level)
/// are refused, and malformed XML is named with its position.
fn check_markup(bytes: &[u8]) -> Result<(), RosterError> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buffer = Vec::new();
    let mut depth = 0usize;
    loop {
        buffer.clear();
        let event = reader.read_event_into(&mut buffer).map_err(|error| {
            RosterError::Xml(format!("at byte {}: {error}", reader.error_position()))
        })?;
        match event {
            quick_xml::events::Event::DocType(_) => {
                return Err(RosterError::Xml("a DOCTYPE is not allowed".into()))
            }
            quick_xml::events::Event::Start(_) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(RosterError::Xml(format!(
                        "nesting deeper than {MAX_DEPTH} elements"
                    )));
                }
            }
            quick_xml::events::Event::End(_) => depth = depth.saturating_sub(1),
            quick_xml::events::Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// `leerlinggegevens_antwoord`: the school identification and every `leerling/@key` (+ `@eckid`).
pub(crate) fn parse_xml(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
    check_markup(bytes)?;
    let antwoord: LeerlinggegevensAntwoord =
        yaserde::de::from_reader(bytes).map_err(|error| RosterError::Xml(error.to_string()))?;
    let gegevens = antwoord.leerlinggegevens;
    let school = gegevens
        .school
        .and_then(|school| {
            SchoolCode::from_parts(
                school.brincode.as_deref(),
                school.dependancecode.as_deref(),
                school.schoolkey.as_deref(),
            )
        })
        .ok_or_else(|| {
            RosterError::Xml("no school identification (brincode or schoolkey)".into())
        })?;
    gegevens
        .leerlingen
        .map(|leerlingen| leerlingen.leerling)
        .unwrap_or_default()
        .into_iter()
        .map(|leerling| {
            let key = leerling
                .key
                .map(|key| key.trim().to_string())
                .ok_or_else(|| RosterError::Xml("a leerling without key".into()))?;
            Ok(LeerlingRow {
                school: school.clone(),
                leerlingid: key,
                eckid: leerling
                    .eckid
                    .map(|eckid| eckid.trim().to_string())
                    .filter(|eckid| !eckid.is_empty()),
                naam: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_and_without_header() {
        let rows =
            parse(b"school,leerlingid,eckid,naam\n99XX01,L1,,Anna\n99XX01, L2 ,E2\n\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].naam.as_deref(), Some("Anna"));
        assert_eq!(rows[0].eckid, None);
        assert_eq!(rows[1].leerlingid, "L2");
        assert!(parse(b"99XX01,\n").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn leerlinggegevens_antwoord() {
        let xml = br#"<ll:leerlinggegevens_antwoord xmlns:ll="http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens">
          <ll:leerlinggegevens><ll:school><ll:brincode>99XX</ll:brincode><ll:dependancecode>01</ll:dependancecode></ll:school>
          <ll:leerlingen><ll:leerling key="L1" eckid="E1"><ll:achternaam>X</ll:achternaam></ll:leerling><ll:leerling key="L2"/></ll:leerlingen>
          </ll:leerlinggegevens></ll:leerlinggegevens_antwoord>"#;
        let rows = parse(xml).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].school.as_str(), "99XX01");
        assert_eq!(rows[0].eckid.as_deref(), Some("E1"));
        assert_eq!(rows[1].leerlingid, "L2");
        // The default namespace instead of a prefix, and a schoolkey.
        let xml = br#"<leerlinggegevens_antwoord xmlns="http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens">
          <leerlinggegevens><school><schoolkey> SK-1 </schoolkey></school>
          <leerlingen><leerling key=" L3 " eckid=""/></leerlingen></leerlinggegevens></leerlinggegevens_antwoord>"#;
        let rows = parse(xml).unwrap();
        assert_eq!(rows[0].school.as_str(), "SK-1");
        assert_eq!(
            (rows[0].leerlingid.as_str(), rows[0].eckid.as_deref()),
            ("L3", None)
        );
        for (bad, why) in [
            (&br#"<!DOCTYPE x [<!ENTITY e "L9">]><ll:leerlinggegevens_antwoord xmlns:ll="http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens"/>"#[..], "DOCTYPE"),
            (br#"<ll:leerlinggegevens_antwoord xmlns:ll="http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens"><ll:leerlinggegevens><ll:school/></ll:leerlinggegevens></ll:leerlinggegevens_antwoord>"#, "no school"),
            (br#"<ll:leerlinggegevens_antwoord xmlns:ll="http://www.edustandaard.nl/leerresultaten/2/leerlinggegevens"><ll:leerlinggegevens><ll:school><ll:brincode>99XX</ll:brincode></ll:school><ll:leerlingen><ll:leerling/></ll:leerlingen></ll:leerlinggegevens></ll:leerlinggegevens_antwoord>"#, "without key"),
            (b"<ll:leerlinggegevens_antwoord", "leerlinggegevens XML"),
            (&"<a>".repeat(65).into_bytes(), "nesting deeper than 64"),
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
