//! The xAPI 1.0.3 read side: `GET /xapi/statements` over the statements the bridge published, `GET /xapi/about` and the xAPI Profile.
//!
//! The answer holds the statements as the bridge stored them (same ids), with
//! `stored`, `version` and `authority` added as an LRS does. Only statements of schools the
//! reader may read today are ever looked at; a `more` link holds the query and
//! a position, never a school, so the scope is applied anew on every page.

use super::problem::QueryError;
use super::{Asked, ReadSettings, Served, Touched};
use crate::bridge::read::{self as xapi_json, Format, Languages, Rendering};
use crate::store::readers::Reader;
use crate::store::reading::Reading;
use crate::store::statements::{StatementFilter, StatementOrder, StatementRow};
use base64::Engine;
use std::collections::{BTreeMap, HashMap};

/// The xAPI version this endpoint speaks, sent on every answer.
pub(crate) const VERSION: &str = xapi_json::XAPI_VERSION;
/// Statements per page when `limit` is 0 or absent, and the most one page holds.
pub(crate) const MAX_LIMIT: u32 = 500;
/// The path under which `more` links continue a query.
pub(crate) const MORE_PATH: &str = "/xapi/statements/more/";
/// Where the gateway's xAPI Profile is always served (also at its IRI when that is on this gateway).
pub(crate) const PROFILE_PATH: &str = "/xapi/profile";
/// The methods the xAPI resources answer (POST only in the Alternate Request Syntax).
pub(crate) const ALLOW: &str = "GET, HEAD, OPTIONS";
/// The header that says up to when the Statement Resource is complete.
pub(crate) const CONSISTENT_THROUGH: &str = "x-experience-api-consistent-through";
/// The headers a browser-based reader may see (CORS); the others are safelisted.
const EXPOSED_HEADERS: &str =
    "X-Experience-API-Version, X-Experience-API-Consistent-Through, Last-Modified, X-Request-Id";
/// The request headers a CORS preflight may ask for.
const ALLOWED_HEADERS: &str =
    "Authorization, X-Experience-API-Version, Content-Type, Accept-Language, If-Match, If-None-Match";

/// Whether a path is the Statement Resource (a query or a `more` link).
pub(crate) fn is_statement_resource(path: &str) -> bool {
    path == "/xapi/statements" || path.starts_with(MORE_PATH)
}

/// An instant as the store writes `stored_at`: RFC 3339 UTC with milliseconds.
pub(crate) fn stamp(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The CORS headers for a request from `origin`, when it is admitted; `None` when the
/// request has no `Origin` or one not in `origins` (then the browser withholds the answer).
pub(crate) fn cors_headers(
    origins: &[String],
    origin: Option<&str>,
) -> Option<Vec<(&'static str, String)>> {
    let origin = origin?;
    if !origins
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    {
        return None;
    }
    Some(vec![
        ("access-control-allow-origin", origin.to_string()),
        ("vary", "Origin".to_string()),
        (
            "access-control-allow-methods",
            "GET, HEAD, POST, OPTIONS".to_string(),
        ),
        ("access-control-allow-headers", ALLOWED_HEADERS.to_string()),
        ("access-control-expose-headers", EXPOSED_HEADERS.to_string()),
        ("access-control-max-age", "600".to_string()),
    ])
}

/// `stored` as an HTTP-date for `Last-Modified` (whole seconds, as HTTP-dates are).
fn http_date(stored_at: &str) -> Option<String> {
    let instant = chrono::DateTime::parse_from_rfc3339(stored_at).ok()?;
    let system: std::time::SystemTime = instant.with_timezone(&chrono::Utc).into();
    Some(httpdate::fmt_http_date(system))
}

/// The parameters the Statement Resource knows (xAPI 1.0.3 Communication 2.1.3); any other is refused.
const PARAMETERS: &[&str] = &[
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
];

/// One statement or a StatementResult.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StatementQuery {
    /// `statementId` (voided = false) or `voidedStatementId` (voided = true).
    Single {
        id: String,
        voided: bool,
        format: Format,
        attachments: bool,
    },
    Many {
        filter: StatementFilter,
        limit: u32,
        format: Format,
        attachments: bool,
    },
}

/// Where a `more` link continues: the original query string, the last statement answered,
/// the snapshot bound (the newest statement of the reader's schools when the query began).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct More {
    #[serde(rename = "q")]
    pub(crate) query: String,
    #[serde(rename = "a")]
    pub(crate) after: Position,
    #[serde(rename = "t")]
    pub(crate) through: Position,
}

/// A place in the statement order, as a `more` link holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Position {
    /// A statement of the reader's schools, by id: the reader knows it, and it tells
    /// nothing about the gateway's other statements (as a storage `seq` would).
    Statement(String),
    /// A storage `seq`, in links handed out before; still read, never written.
    Seq(i64),
}

impl More {
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a More serialises");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub(crate) fn decode(token: &str) -> Option<More> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The storage order at a `more` link's position; a statement that is gone makes the link invalid.
fn seq_at(reading: &Reading, position: &Position) -> Result<i64, QueryError> {
    match position {
        Position::Seq(seq) => Ok(*seq),
        Position::Statement(id) => reading
            .statement_seq(id)?
            .ok_or_else(|| QueryError::NotFound("this more link is not valid".into())),
    }
}

/// Checks `X-Experience-API-Version`: `1.0` or `1.0.x` is accepted, anything else is 400.
pub(crate) fn check_version(value: Option<&str>) -> Result<(), QueryError> {
    let refuse = |reason: &str| QueryError::BadHeader {
        name: "X-Experience-API-Version",
        reason: reason.to_string(),
    };
    let value = value.ok_or_else(|| refuse("missing; send 1.0.3"))?.trim();
    let patch = match value.strip_prefix("1.0") {
        Some("") => return Ok(()),
        Some(rest) => rest.strip_prefix('.'),
        None => None,
    };
    match patch {
        Some(patch) if !patch.is_empty() && patch.bytes().all(|byte| byte.is_ascii_digit()) => {
            Ok(())
        }
        _ => Err(refuse(&format!("{value} is not supported; send 1.0.3"))),
    }
}

fn boolean(params: &BTreeMap<String, String>, name: &str) -> Result<bool, QueryError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(QueryError::bad_parameter(name, "must be true or false")),
    }
}

fn uuid(params: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, QueryError> {
    params
        .get(name)
        .map(|text| {
            uuid::Uuid::parse_str(text)
                .ok()
                .filter(|_| text.len() == 36)
                .map(|parsed| parsed.hyphenated().to_string())
                .ok_or_else(|| QueryError::bad_parameter(name, "must be a UUID"))
        })
        .transpose()
}

fn iri(params: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, QueryError> {
    params
        .get(name)
        .map(|text| match text.split_once(':') {
            Some((scheme, rest))
                if !scheme.is_empty()
                    && !rest.is_empty()
                    && scheme
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"+-.".contains(&byte))
                    && !text.chars().any(char::is_whitespace) =>
            {
                Ok(text.clone())
            }
            _ => Err(QueryError::bad_parameter(name, "must be an IRI")),
        })
        .transpose()
}

/// A timestamp parameter as the store writes `stored_at`: RFC 3339 UTC, milliseconds (truncated).
fn timestamp(params: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, QueryError> {
    params
        .get(name)
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|instant| {
                    let utc = instant.with_timezone(&chrono::Utc);
                    let truncated = utc.timestamp_millis();
                    chrono::DateTime::from_timestamp_millis(truncated)
                        .unwrap_or(utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .map_err(|_| {
                    QueryError::bad_parameter(
                        name,
                        "must be an RFC 3339 timestamp with a time zone",
                    )
                })
        })
        .transpose()
}

/// Parses a Statement Resource query string (xAPI 1.0.3 Communication 2.1.3, 3.2).
pub(crate) fn parse_query(query: &str) -> Result<StatementQuery, QueryError> {
    let params = super::parse_params(query, PARAMETERS)?;
    let format = match params.get("format").map(String::as_str) {
        None | Some("exact") => Format::Exact,
        Some("ids") => Format::Ids,
        Some("canonical") => Format::Canonical,
        Some(_) => {
            return Err(QueryError::bad_parameter(
                "format",
                "must be ids, exact or canonical",
            ))
        }
    };
    let attachments = boolean(&params, "attachments")?;
    let statement_id = uuid(&params, "statementId")?;
    let voided_statement_id = uuid(&params, "voidedStatementId")?;
    let single = match (statement_id, voided_statement_id) {
        (Some(_), Some(_)) => {
            return Err(QueryError::bad_parameter(
                "voidedStatementId",
                "cannot be combined with statementId",
            ))
        }
        (Some(id), None) => Some((id, false)),
        (None, Some(id)) => Some((id, true)),
        (None, None) => None,
    };
    if let Some((id, voided)) = single {
        if let Some(other) = params.keys().find(|name| {
            !matches!(
                name.as_str(),
                "statementId" | "voidedStatementId" | "format" | "attachments"
            )
        }) {
            return Err(QueryError::bad_parameter(
                other,
                "cannot be combined with statementId or voidedStatementId",
            ));
        }
        return Ok(StatementQuery::Single {
            id,
            voided,
            format,
            attachments,
        });
    }
    let limit = match params.get("limit") {
        None => 0,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|_| text.bytes().all(|byte| byte.is_ascii_digit()))
            .ok_or_else(|| {
                QueryError::bad_parameter(
                    "limit",
                    "must be a whole number, 0 for the server's maximum",
                )
            })?,
    };
    let limit = if limit == 0 {
        MAX_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let filter = StatementFilter {
        agent: params
            .get("agent")
            .map(|text| {
                xapi_json::agent_ifi(text)
                    .map_err(|reason| QueryError::bad_parameter("agent", reason))
            })
            .transpose()?,
        verb: iri(&params, "verb")?,
        activity: iri(&params, "activity")?,
        registration: uuid(&params, "registration")?,
        related_activities: boolean(&params, "related_activities")?,
        // The gateway's statements name no instructor, team or authority to match beyond the actor.
        related_agents: boolean(&params, "related_agents")?,
        since: timestamp(&params, "since")?,
        until: timestamp(&params, "until")?,
        order: if boolean(&params, "ascending")? {
            StatementOrder::Ascending
        } else {
            StatementOrder::Descending
        },
    };
    Ok(StatementQuery::Many {
        filter,
        limit,
        format,
        attachments,
    })
}

/// A stored statement as answered, rendered by the bridge.
fn render(row: &StatementRow, rendering: &Rendering) -> Result<String, QueryError> {
    xapi_json::render(&row.statement, &row.stored_at, rendering).map_err(|error| {
        QueryError::Store(crate::store::StoreError::corrupt(
            format!("statement {}", row.id),
            error,
        ))
    })
}

/// Answers `GET /xapi/statements` (or a `more` link) for an authenticated reader.
pub(crate) fn answer(
    reading: &Reading,
    reader: &Reader,
    today: chrono::NaiveDate,
    asked: &Asked,
    settings: &ReadSettings,
    more: Option<&str>,
) -> Result<Served, QueryError> {
    let languages = Languages::parse(asked.accept_language.as_deref());
    let rendering = |format: Format| Rendering {
        format,
        authority: &settings.authority,
        languages: &languages,
    };
    let (query_text, position) = match more {
        None => (asked.query.clone(), None),
        Some(token) => {
            if !asked.query.is_empty() {
                return Err(QueryError::bad_parameter(
                    "more",
                    "a more link takes no parameters",
                ));
            }
            let more = More::decode(token)
                .ok_or_else(|| QueryError::NotFound("this more link is not valid".into()))?;
            (more.query.clone(), Some(more))
        }
    };
    let query = parse_query(&query_text)?;
    let schools: HashMap<i64, String> = reading
        .readable_schools(reader.id, today)?
        .into_iter()
        .map(|readable| (readable.id, readable.school.to_string()))
        .collect();
    let school_ids: Vec<i64> = schools.keys().copied().collect();
    // Before the snapshot's first read, so that it is no later than the snapshot.
    let now = stamp(chrono::Utc::now());
    let read = reading.snapshot(|snapshot| {
        let consistent_through = snapshot.consistent_through(&school_ids, &now)?;
        let (rows, json_text, attachments) = match query {
            StatementQuery::Single {
                id,
                voided,
                format,
                attachments,
            } => {
                // Another school's statement and no statement look the same: 404 (MAPPING.md C15).
                let row = snapshot
                    .statement(&school_ids, &id, voided)?
                    .ok_or_else(|| {
                        QueryError::NotFound(format!(
                            "no {}statement {id}",
                            if voided { "voided " } else { "" }
                        ))
                    })?;
                let value = render(&row, &rendering(format))?;
                (vec![row], value, attachments)
            }
            StatementQuery::Many {
                filter,
                limit,
                format,
                attachments,
            } => {
                let page = Page {
                    school_ids: &school_ids,
                    filter: &filter,
                    limit,
                    query_text: &query_text,
                    position: position.as_ref(),
                };
                let (rows, body) = page.read(snapshot, &rendering(format))?;
                (rows, body, attachments)
            }
        };
        Ok::<_, QueryError>((consistent_through, rows, json_text, attachments))
    });
    let (consistent_through, rows, json_text, attachments) = read?;
    // The newest `stored` among the statements answered (Communication 2.1.3, 2.2).
    let last_modified = rows
        .iter()
        .map(|row| row.stored_at.as_str())
        .max()
        .and_then(http_date);
    let touched = touched(&rows, &schools);
    let (body, content_type) = if attachments {
        (multipart(&json_text), MULTIPART)
    } else {
        (json_text, "application/json")
    };
    Ok(Served {
        body,
        content_type,
        headers: std::iter::once((CONSISTENT_THROUGH, consistent_through))
            .chain(last_modified.map(|date| ("last-modified", date)))
            .collect(),
        touched,
    })
}

/// One page of a statement query, between the query's first answer and a `more` link's position.
struct Page<'a> {
    school_ids: &'a [i64],
    filter: &'a StatementFilter,
    limit: u32,
    query_text: &'a str,
    position: Option<&'a More>,
}

impl Page<'_> {
    /// The page's rows (at most `limit`) and its body with the `more` link, read in `snapshot`.
    fn read(
        &self,
        snapshot: &Reading,
        rendering: &Rendering,
    ) -> Result<(Vec<StatementRow>, String), QueryError> {
        let (through, through_id) = match self.position {
            Some(more) => (seq_at(snapshot, &more.through)?, more.through.clone()),
            None => match snapshot.newest_statement(self.school_ids)? {
                Some((seq, id)) => (seq, Position::Statement(id)),
                None => (0, Position::Seq(0)),
            },
        };
        let after = match self.position {
            Some(more) => Some(seq_at(snapshot, &more.after)?),
            None => None,
        };
        let limit = self.limit;
        let mut rows =
            snapshot.statements(self.school_ids, self.filter, after, through, limit + 1)?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let more_link = match rows.last() {
            Some(last) if has_more => {
                let token = More {
                    query: self.query_text.to_string(),
                    after: Position::Statement(last.id.clone()),
                    through: through_id,
                }
                .encode();
                format!("{MORE_PATH}{token}")
            }
            _ => String::new(),
        };
        let rendered = rows
            .iter()
            .map(|row| render(row, rendering))
            .collect::<Result<Vec<_>, _>>()?;
        let more_text = serde_json::Value::String(more_link).to_string();
        let body = format!(
            "{{\"statements\":[{}],\"more\":{more_text}}}",
            rendered.join(",")
        );
        Ok((rows, body))
    }
}

/// What an answer disclosed, per school: the learners named and how many statements (the read audit).
fn touched(rows: &[StatementRow], schools: &HashMap<i64, String>) -> Vec<Touched> {
    let mut by_school: BTreeMap<i64, (Vec<&str>, u64)> = BTreeMap::new();
    for row in rows {
        let entry = by_school.entry(row.school_id).or_default();
        entry.1 += 1;
        if let Some(leerlingid) = row.leerlingid.as_deref() {
            entry.0.push(leerlingid);
        }
    }
    by_school
        .into_iter()
        .map(|(school_id, (leerlingen, records))| {
            let school = schools.get(&school_id).map(String::as_str).unwrap_or("?");
            Touched::school(school, leerlingen.into_iter(), records)
        })
        .collect()
}

/// `attachments=true` asks for multipart/mixed; the gateway's statements have no attachments, so the one part is the JSON.
const MULTIPART: &str = "multipart/mixed; boundary=uwlr-gateway-xapi-statements";

fn multipart(json: &str) -> String {
    format!(
        "--uwlr-gateway-xapi-statements\r\nContent-Type: application/json\r\n\r\n{json}\r\n--uwlr-gateway-xapi-statements--\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_header() {
        for good in ["1.0", "1.0.0", "1.0.3", " 1.0.3 ", "1.0.10"] {
            assert!(check_version(Some(good)).is_ok(), "{good}");
        }
        for bad in [
            None,
            Some(""),
            Some("0.95"),
            Some("1.1.0"),
            Some("2.0.0"),
            Some("1.0."),
            Some("1.0.x"),
            Some("1.00"),
        ] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }

    fn bad(query: &str) -> String {
        match parse_query(query) {
            Err(QueryError::BadParameter { name, .. }) => name,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn query_rules() {
        let id = "0b3d6f3e-8a62-5b0c-9d3e-1f2a3b4c5d6e";
        assert_eq!(
            bad(&format!("statementId={id}&voidedStatementId={id}")),
            "voidedStatementId"
        );
        assert_eq!(bad(&format!("statementId={id}&verb=http://x/y")), "verb");
        assert_eq!(bad("statementid=1"), "statementid");
        assert_eq!(bad("Limit=1"), "Limit");
        assert_eq!(bad("limit=-1"), "limit");
        assert_eq!(bad("ascending=yes"), "ascending");
        assert_eq!(bad("format=full"), "format");
        assert_eq!(bad("since=2026-10-01"), "since");
        assert_eq!(bad("registration=abc"), "registration");
        assert_eq!(bad("verb=not an iri"), "verb");
        assert_eq!(bad("agent={\"name\":\"x\"}"), "agent");
        assert_eq!(
            bad("agent={\"mbox\":\"mailto:a@b.nl\",\"account\":{\"homePage\":\"https://x\",\"name\":\"1\"}}"),
            "agent"
        );
        assert!(matches!(
            parse_query(&format!("statementId={id}&format=ids&attachments=false")),
            Ok(StatementQuery::Single {
                voided: false,
                format: Format::Ids,
                ..
            })
        ));
        let Ok(StatementQuery::Many { filter, limit, .. }) =
            parse_query("limit=0&ascending=true&since=2026-10-01T10:00:00.123456%2B02:00&agent=%7B%22objectType%22%3A%22Agent%22%2C%22account%22%3A%7B%22name%22%3A%22L1%22%2C%22homePage%22%3A%22https%3A%2F%2Fx%22%7D%7D")
        else {
            panic!("a valid query");
        };
        assert_eq!(limit, MAX_LIMIT);
        assert_eq!(filter.order, StatementOrder::Ascending);
        assert_eq!(filter.since.as_deref(), Some("2026-10-01T08:00:00.123Z"));
        assert_eq!(
            filter.agent.as_deref(),
            Some(r#"{"account":{"homePage":"https://x","name":"L1"}}"#)
        );
    }

    #[test]
    fn more_tokens_round_trip_and_refuse_garbage() {
        let more = More {
            query: "agent=%7B%7D&limit=2".into(),
            after: Position::Statement("0f5e3c4a-1111-5222-8333-944455556666".into()),
            through: Position::Statement("0f5e3c4a-7777-5888-8999-aaaabbbbcccc".into()),
        };
        assert_eq!(More::decode(&more.encode()), Some(more));
        // Links handed out before held storage seqs; they are still read.
        use base64::Engine;
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"q":"limit=2","a":17,"t":40}"#);
        assert_eq!(
            More::decode(&old),
            Some(More {
                query: "limit=2".into(),
                after: Position::Seq(17),
                through: Position::Seq(40),
            })
        );
        assert_eq!(More::decode("not base64!"), None);
        assert_eq!(More::decode("e30"), None);
    }
}
