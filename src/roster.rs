//! Reading rosters of known learners: CSV, or the UWLR `leerlinggegevens_antwoord` a LAS returns.

use crate::domain::SchoolCode;
use crate::store::admin::LeerlingRow;
use quick_xml::events::Event;
use quick_xml::NsReader;

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("leerlinggegevens XML: {0}")]
    Xml(String),
    #[error("the roster holds no leerlingen")]
    Empty,
}

/// Reads either format; XML is recognised by its first non-blank byte.
pub fn parse(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
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
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
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

/// `leerlinggegevens_antwoord`: the school identification and every `leerling/@key` (+ `@eckid`).
pub fn parse_xml(bytes: &[u8]) -> Result<Vec<LeerlingRow>, RosterError> {
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let (mut brincode, mut dependancecode, mut schoolkey) =
        (None::<String>, None::<String>, None::<String>);
    let mut learners: Vec<(String, Option<String>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|error| RosterError::Xml(error.to_string()))?;
        let (start, is_empty) = match &event {
            Event::Start(start) => (Some(start.clone()), false),
            Event::Empty(start) => (Some(start.clone()), true),
            _ => (None, false),
        };
        if let Some(start) = start {
            let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
            if name == "leerling" && path.last().map(String::as_str) == Some("leerlingen") {
                let mut key = None;
                let mut eckid = None;
                for attribute in start.attributes().flatten() {
                    let value = attribute
                        .unescape_value()
                        .map_err(|error| RosterError::Xml(error.to_string()))?
                        .trim()
                        .to_string();
                    match attribute.key.local_name().as_ref() {
                        b"key" => key = Some(value),
                        b"eckid" if !value.is_empty() => eckid = Some(value),
                        _ => {}
                    }
                }
                let key = key.ok_or_else(|| RosterError::Xml("a leerling without key".into()))?;
                learners.push((key, eckid));
            }
            if !is_empty {
                if path.len() >= 64 {
                    return Err(RosterError::Xml("nesting deeper than 64 elements".into()));
                }
                path.push(name);
            }
            continue;
        }
        match event {
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let in_school = path.len() >= 2 && path[path.len() - 2] == "school";
                if in_school {
                    let value = text
                        .unescape()
                        .map_err(|error| RosterError::Xml(error.to_string()))?
                        .trim()
                        .to_string();
                    match path.last().map(String::as_str) {
                        Some("brincode") => brincode = Some(value),
                        Some("dependancecode") => dependancecode = Some(value),
                        Some("schoolkey") => schoolkey = Some(value),
                        _ => {}
                    }
                }
            }
            Event::DocType(_) => return Err(RosterError::Xml("a DOCTYPE is not allowed".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    let school = SchoolCode::from_parts(
        brincode.as_deref(),
        dependancecode.as_deref(),
        schoolkey.as_deref(),
    )
    .ok_or_else(|| RosterError::Xml("no school identification (brincode or schoolkey)".into()))?;
    Ok(learners
        .into_iter()
        .map(|(leerlingid, eckid)| LeerlingRow {
            school: school.clone(),
            leerlingid,
            eckid,
            naam: None,
        })
        .collect())
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
    }
}
