//! The LAS feed: afnames of one school in change order, one learner's afnames, and a toets with all its versions.

use super::problem::QueryError;
use super::{encode_segment, parse_params, Asked, Served, Touched};
use crate::domain::SchoolCode;
use crate::store::feed::{FeedFilter, FeedItem, ToetsVersion};
use crate::store::readers::Reader;
use crate::store::reading::Reading;
use std::collections::BTreeMap;

/// Items per page when the request names no limit.
pub(crate) const DEFAULT_LIMIT: u32 = 100;
/// The most items one page holds.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// A LAS resource, with its path segments decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/api/v1/schools/{school}/toetsafnames`
    Feed { school: String },
    /// `/api/v1/schools/{school}/leerlingen/{leerlingid}/toetsafnames`
    Leerling { school: String, leerlingid: String },
    /// `/api/v1/schools/{school}/toetsen/{toetscode}`
    Toets { school: String, toetscode: String },
}

impl Route {
    pub(crate) fn parse(path: &str) -> Result<Route, QueryError> {
        let not_found = || QueryError::NotFound(format!("no resource at {path}"));
        let rest = path
            .strip_prefix("/api/v1/schools/")
            .ok_or_else(not_found)?;
        let segments: Vec<String> = rest
            .split('/')
            .map(|segment| super::decode_segment(segment).filter(|decoded| !decoded.is_empty()))
            .collect::<Option<_>>()
            .ok_or_else(not_found)?;
        let texts: Vec<&str> = segments.iter().map(String::as_str).collect();
        match texts.as_slice() {
            [school, "toetsafnames"] => Ok(Route::Feed {
                school: school.to_string(),
            }),
            [school, "leerlingen", leerlingid, "toetsafnames"] => Ok(Route::Leerling {
                school: school.to_string(),
                leerlingid: leerlingid.to_string(),
            }),
            [school, "toetsen", toetscode] => Ok(Route::Toets {
                school: school.to_string(),
                toetscode: toetscode.to_string(),
            }),
            _ => Err(not_found()),
        }
    }

    /// The school as written in the path.
    pub(crate) fn school(&self) -> &str {
        match self {
            Route::Feed { school }
            | Route::Leerling { school, .. }
            | Route::Toets { school, .. } => school,
        }
    }
}

/// The body of a feed page.
#[derive(serde::Serialize)]
struct FeedBody<'a> {
    school: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    leerlingid: Option<&'a str>,
    items: &'a [FeedItem],
    next_cursor: i64,
    consistent_through: i64,
    has_more: bool,
    /// The same query from `next_cursor` on, as a relative URL.
    next: String,
}

#[derive(serde::Serialize)]
struct ToetsBody<'a> {
    school: &'a str,
    toetscode: &'a str,
    versions: &'a [ToetsVersion],
}

/// Runs a LAS request for an authenticated reader.
pub(crate) fn answer(
    reading: &Reading,
    reader: &Reader,
    today: chrono::NaiveDate,
    route: &Route,
    asked: &Asked,
) -> Result<Served, QueryError> {
    let school = SchoolCode::parse(&path_param("school", route.school())?)
        .map_err(|_| QueryError::SchoolOutOfScope(route.school().to_string()))?;
    let Some(school_id) = reading.readable_school(reader.id, &school, today)? else {
        return Err(QueryError::SchoolOutOfScope(school.to_string()));
    };
    match route {
        Route::Feed { .. } => {
            let params = parse_params(
                &asked.query,
                &[
                    "since",
                    "limit",
                    "toetscode",
                    "leerlingid",
                    "afnamedatum_from",
                    "afnamedatum_until",
                ],
            )?;
            let filter = FeedFilter {
                toetscode: text_param(&params, "toetscode")?,
                leerlingid: text_param(&params, "leerlingid")?,
                ..date_filter(&params)?
            };
            let path = format!(
                "/api/v1/schools/{}/toetsafnames",
                encode_segment(school.as_str())
            );
            feed_page(reading, school_id, &school, None, &path, &params, filter)
        }
        Route::Leerling { leerlingid, .. } => {
            let leerlingid = &path_param("leerlingid", leerlingid)?;
            let params = parse_params(
                &asked.query,
                &[
                    "since",
                    "limit",
                    "toetscode",
                    "afnamedatum_from",
                    "afnamedatum_until",
                ],
            )?;
            let filter = FeedFilter {
                toetscode: text_param(&params, "toetscode")?,
                leerlingid: Some(leerlingid.clone()),
                ..date_filter(&params)?
            };
            let path = format!(
                "/api/v1/schools/{}/leerlingen/{}/toetsafnames",
                encode_segment(school.as_str()),
                encode_segment(leerlingid)
            );
            feed_page(
                reading,
                school_id,
                &school,
                Some(leerlingid),
                &path,
                &params,
                filter,
            )
        }
        Route::Toets { toetscode, .. } => {
            let toetscode = &path_param("toetscode", toetscode)?;
            parse_params(&asked.query, &[])?;
            let versions = reading.toets_versions(school_id, toetscode)?;
            if versions.is_empty() {
                return Err(QueryError::NotFound(format!(
                    "school {school} has no toets {toetscode}"
                )));
            }
            let body = ToetsBody {
                school: school.as_str(),
                toetscode,
                versions: &versions,
            };
            Ok(Served {
                body: serde_json::to_string(&body)
                    .map_err(|error| crate::store::StoreError::corrupt("toets versions", error))?,
                content_type: "application/json",
                headers: Vec::new(),
                touched: vec![Touched::school(
                    school.as_str(),
                    std::iter::empty(),
                    versions.len() as u64,
                )],
            })
        }
    }
}

fn feed_page(
    reading: &Reading,
    school_id: i64,
    school: &SchoolCode,
    leerlingid: Option<&str>,
    path: &str,
    params: &BTreeMap<String, String>,
    filter: FeedFilter,
) -> Result<Served, QueryError> {
    let since = match params.get("since") {
        None => 0,
        Some(text) => parse_integer(text)
            .filter(|since| *since >= 0)
            .ok_or_else(|| {
                QueryError::bad_parameter(
                    "since",
                    "must be a cursor this API returned (a whole number, 0 to start)",
                )
            })?,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => parse_integer(text)
            .filter(|limit| (1..=i64::from(MAX_LIMIT)).contains(limit))
            .map(|limit| limit as u32)
            .ok_or_else(|| {
                QueryError::bad_parameter(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let page = reading.feed(school_id, since, limit, &filter)?;
    let mut next_query = form_urlencoded::Serializer::new(String::new());
    next_query.append_pair("since", &page.next_cursor.to_string());
    for name in [
        "limit",
        "toetscode",
        "leerlingid",
        "afnamedatum_from",
        "afnamedatum_until",
    ] {
        if let Some(value) = params.get(name) {
            next_query.append_pair(name, value);
        }
    }
    let body = FeedBody {
        school: school.as_str(),
        leerlingid,
        items: &page.items,
        next_cursor: page.next_cursor,
        consistent_through: page.consistent_through,
        has_more: page.has_more,
        next: format!("{path}?{}", next_query.finish()),
    };
    let touched = Touched::school(
        school.as_str(),
        page.items
            .iter()
            .filter_map(|item| item.current.as_ref())
            .map(|current| current.leerlingid.as_str()),
        page.items.len() as u64,
    );
    Ok(Served {
        body: serde_json::to_string(&body)
            .map_err(|error| crate::store::StoreError::corrupt("feed page", error))?,
        content_type: "application/json",
        headers: Vec::new(),
        touched: vec![touched],
    })
}

/// A plain decimal whole number, as cursors and limits are written.
fn parse_integer(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A name or code: 1 to 256 characters.
fn path_param(name: &str, value: &str) -> Result<String, QueryError> {
    match value.chars().count() {
        1..=256 => Ok(value.to_string()),
        _ => Err(QueryError::bad_parameter(
            name,
            "must hold 1 to 256 characters",
        )),
    }
}

fn text_param(params: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, QueryError> {
    params
        .get(name)
        .map(|value| path_param(name, value))
        .transpose()
}

fn date_filter(params: &BTreeMap<String, String>) -> Result<FeedFilter, QueryError> {
    let date = |name: &str| -> Result<Option<String>, QueryError> {
        params
            .get(name)
            .map(|text| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .filter(|_| text.len() == 10)
                    .map(|_| text.clone())
                    .ok_or_else(|| QueryError::bad_parameter(name, "must be a date, YYYY-MM-DD"))
            })
            .transpose()
    };
    // A range that ends before it starts is valid and matches nothing.
    Ok(FeedFilter {
        afnamedatum_from: date("afnamedatum_from")?,
        afnamedatum_until: date("afnamedatum_until")?,
        ..FeedFilter::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let check = |path: &str, expected: Option<Route>| {
            assert_eq!(Route::parse(path).ok(), expected, "{path}")
        };
        check(
            "/api/v1/schools/99XX01/toetsafnames",
            Some(Route::Feed {
                school: "99XX01".into(),
            }),
        );
        check(
            "/api/v1/schools/key%2F1/leerlingen/LL%200001/toetsafnames",
            Some(Route::Leerling {
                school: "key/1".into(),
                leerlingid: "LL 0001".into(),
            }),
        );
        check(
            "/api/v1/schools/99XX/toetsen/DEMO-REK-M4",
            Some(Route::Toets {
                school: "99XX".into(),
                toetscode: "DEMO-REK-M4".into(),
            }),
        );
        check("/api/v1/schools/99XX01", None);
        check("/api/v1/schools//toetsafnames", None);
        check("/api/v1/schools/99XX01/toetsafnames/extra", None);
        check("/api/v1/schools/%FF/toetsafnames", None);
    }

    #[test]
    fn integers_are_plain_decimals() {
        assert_eq!(parse_integer("0"), Some(0));
        assert_eq!(parse_integer("123"), Some(123));
        assert_eq!(parse_integer("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            " 1",
            "0x10",
            "9223372036854775808",
            "00000000000000000001",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad}");
        }
    }
}
