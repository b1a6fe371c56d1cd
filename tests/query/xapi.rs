//! The xAPI read side: Statement Resource query semantics, voiding, `more` links and scope.

use super::*;
use std::collections::BTreeSet;

fn xapi_reader(gateway: &Gateway, name: &str, school: &str) -> String {
    gateway.reader(
        name,
        &[
            "--school",
            school,
            "--scope",
            "xapi",
            "--mandate",
            "DPA-XAPI",
            "--valid-from",
            "2020-01-01",
        ],
    )
}

/// GET with the xAPI version header and a bearer token: status, headers, body.
fn xapi_get(
    gateway: &Gateway,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::blocking::Client::new()
        .get(gateway.url(path))
        .header("X-Experience-API-Version", "1.0.3");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().expect("GET");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn xapi_ok(gateway: &Gateway, path: &str, token: &str) -> Value {
    let (status, headers, body) = xapi_get(gateway, path, Some(token));
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(headers["x-experience-api-version"], "1.0.3");
    let through = headers["x-experience-api-consistent-through"]
        .to_str()
        .unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(through).is_ok(),
        "consistent-through {through}"
    );
    body
}

fn statements(body: &Value) -> &Vec<Value> {
    body["statements"].as_array().expect("statements")
}

fn ids(body: &Value) -> Vec<String> {
    statements(body)
        .iter()
        .map(|statement| statement["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every statement reachable from `path`, following `more` links.
fn all_pages(gateway: &Gateway, path: &str, token: &str) -> Vec<Value> {
    let mut path = path.to_string();
    let mut all = Vec::new();
    loop {
        let body = xapi_ok(gateway, &path, token);
        all.extend(statements(&body).iter().cloned());
        match body["more"].as_str().unwrap() {
            "" => return all,
            more => {
                assert!(
                    more.starts_with('/') && !more.contains("://"),
                    "more is a relative IRL: {more}"
                );
                path = more.to_string();
            }
        }
    }
}

/// The statements the bridge stored, per school code: (id, voided).
fn stored(gateway: &Gateway, school: &str) -> Vec<(String, bool)> {
    let connection = crate::open_db(gateway.data_dir.path());
    let mut statement = connection
        .prepare(
            "SELECT x.id, x.voided_by IS NOT NULL FROM xapi_statements x JOIN schools s ON s.id = x.school_id
             WHERE s.code = ?1 ORDER BY x.seq",
        )
        .unwrap();
    statement
        .query_map([school], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// 99XX01 with samples 01-03 and 07 (which corrects sample 01's afname), 99YY with two afnames, all published.
fn published() -> Gateway {
    let gateway = Gateway::two_schools(&[
        "01-drip-een-resultaat.xml",
        "02-batch-vijf-leerlingen.xml",
        "03-toets-met-onderdelen.xml",
        "07-update-afname.xml",
    ]);
    gateway.wait_published();
    gateway
}

#[test]
fn about_is_open_and_names_the_version() {
    let gateway = Gateway::spawn();
    let response = reqwest::blocking::get(gateway.url("/xapi/about")).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-experience-api-version"], "1.0.3");
    let body: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
    assert_eq!(body["version"], serde_json::json!(["1.0.3"]));
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.iter()
            .all(|key| ["version", "extensions"].contains(key)),
        "{body}"
    );
}

#[test]
fn statements_are_the_bridges_within_the_readers_schools() {
    let gateway = published();
    let reader_xx = xapi_reader(&gateway, "xapi-xx", "99XX01");
    let reader_yy = xapi_reader(&gateway, "xapi-yy", "99YY");
    let stored_xx = stored(&gateway, "99XX01");
    let stored_yy = stored(&gateway, "99YY");
    assert!(
        stored_xx.iter().any(|(_, voided)| *voided),
        "sample 07 voided a statement"
    );
    // Everything not voided, with the bridge's ids, newest first; none of 99YY.
    let answered = all_pages(&gateway, "/xapi/statements?limit=3", &reader_xx);
    let answered_ids: Vec<String> = answered
        .iter()
        .map(|statement| statement["id"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = stored_xx
        .iter()
        .filter(|(_, voided)| !voided)
        .map(|(id, _)| id.clone())
        .collect();
    expected.reverse();
    assert_eq!(answered_ids, expected);
    for statement in &answered {
        assert!(statement["stored"].is_string() && statement["version"] == "1.0.0");
        assert!(!statement.to_string().contains("YY-SECRET"));
    }
    let yy: Vec<String> = all_pages(&gateway, "/xapi/statements", &reader_yy)
        .iter()
        .map(|statement| statement["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(yy.len(), stored_yy.len());
    assert!(yy.iter().all(|id| !answered_ids.contains(id)));
    // Ascending gives the same statements oldest first.
    let ascending: Vec<String> = all_pages(
        &gateway,
        "/xapi/statements?ascending=true&limit=4",
        &reader_xx,
    )
    .iter()
    .map(|statement| statement["id"].as_str().unwrap().to_string())
    .collect();
    let mut reversed = answered_ids.clone();
    reversed.reverse();
    assert_eq!(ascending, reversed);
    // One statement by id; another school's is 404, as is a voided one asked as statementId.
    let (voided_id, _) = stored_xx
        .iter()
        .find(|(_, voided)| *voided)
        .unwrap()
        .clone();
    let one = xapi_ok(
        &gateway,
        &format!("/xapi/statements?statementId={}", answered_ids[0]),
        &reader_xx,
    );
    assert_eq!(one["id"], answered_ids[0].as_str());
    for (path, token) in [
        (
            format!("/xapi/statements?statementId={}", yy[0]),
            &reader_xx,
        ),
        (
            format!("/xapi/statements?voidedStatementId={}", yy[0]),
            &reader_xx,
        ),
        (
            format!("/xapi/statements?statementId={voided_id}"),
            &reader_xx,
        ),
        (
            format!("/xapi/statements?voidedStatementId={voided_id}"),
            &reader_yy,
        ),
    ] {
        let (status, headers, body) = xapi_get(&gateway, &path, Some(token));
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(headers["x-experience-api-version"], "1.0.3");
    }
    let voided = xapi_ok(
        &gateway,
        &format!("/xapi/statements?voidedStatementId={voided_id}"),
        &reader_xx,
    );
    assert_eq!(voided["id"], voided_id.as_str());
    // The voiding statement is in the list and targets the voided one.
    let voiding: Vec<&Value> = answered
        .iter()
        .filter(|statement| statement["object"]["id"] == voided_id.as_str())
        .collect();
    assert_eq!(voiding.len(), 1);
    assert_eq!(
        voiding[0]["verb"]["id"],
        "http://adlnet.gov/expapi/verbs/voided"
    );
}

#[test]
fn filters_follow_the_statement_resource_rules() {
    let gateway = published();
    let reader = xapi_reader(&gateway, "xapi-filter", "99XX01");
    let all = all_pages(&gateway, "/xapi/statements", &reader);
    let encode = |value: &Value| -> String {
        form_urlencoded::byte_serialize(value.to_string().as_bytes()).collect()
    };
    let encode_text =
        |text: &str| -> String { form_urlencoded::byte_serialize(text.as_bytes()).collect() };
    // Agent: every answer is that learner's (or a statement targeting one of theirs).
    let scored = all
        .iter()
        .find(|statement| statement["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided")
        .unwrap();
    let actor = scored["actor"].clone();
    let by_agent = all_pages(
        &gateway,
        &format!("/xapi/statements?agent={}", encode(&actor)),
        &reader,
    );
    assert!(!by_agent.is_empty());
    let own: Vec<&Value> = all
        .iter()
        .filter(|statement| statement["actor"] == actor)
        .collect();
    for statement in &own {
        assert!(
            by_agent.contains(statement),
            "the learner's own statement {}",
            statement["id"]
        );
    }
    for statement in &by_agent {
        if statement["actor"] == actor {
            continue;
        }
        // Otherwise it targets one of the learner's statements (a voiding statement).
        assert_eq!(
            statement["verb"]["id"], "http://adlnet.gov/expapi/verbs/voided",
            "{statement}"
        );
        let target = statement["object"]["id"].as_str().unwrap();
        let voided = xapi_ok(
            &gateway,
            &format!("/xapi/statements?voidedStatementId={target}"),
            &reader,
        );
        assert_eq!(voided["actor"], actor);
    }
    // Verb, activity, related activities, registration.
    let by_verb = all_pages(
        &gateway,
        "/xapi/statements?verb=http%3A%2F%2Fadlnet.gov%2Fexpapi%2Fverbs%2Fscored",
        &reader,
    );
    assert!(by_verb.iter().all(|statement| statement["verb"]["id"]
        == "http://adlnet.gov/expapi/verbs/scored"
        || statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"));
    let activity = scored["object"]["id"].as_str().unwrap();
    let by_activity = all_pages(
        &gateway,
        &format!("/xapi/statements?activity={}", encode_text(activity)),
        &reader,
    );
    assert!(by_activity
        .iter()
        .any(|statement| statement["object"]["id"] == activity));
    let school_activity = scored["context"]["contextActivities"]["grouping"][0]["id"]
        .as_str()
        .unwrap();
    let direct = all_pages(
        &gateway,
        &format!("/xapi/statements?activity={}", encode_text(school_activity)),
        &reader,
    );
    assert!(
        direct.is_empty(),
        "no statement has the school as its object"
    );
    let related = all_pages(
        &gateway,
        &format!(
            "/xapi/statements?activity={}&related_activities=true",
            encode_text(school_activity)
        ),
        &reader,
    );
    assert_eq!(
        related.len(),
        all.len(),
        "every statement (or its target) is grouped under the school"
    );
    let registration = scored["context"]["registration"].as_str().unwrap();
    let by_registration = all_pages(
        &gateway,
        &format!("/xapi/statements?registration={registration}"),
        &reader,
    );
    assert!(by_registration
        .iter()
        .any(|statement| statement["id"] == scored["id"]));
    // since is exclusive, until inclusive, on `stored`.
    let oldest_first = all_pages(&gateway, "/xapi/statements?ascending=true", &reader);
    let middle = oldest_first[oldest_first.len() / 2]["stored"]
        .as_str()
        .unwrap()
        .to_string();
    let since = all_pages(
        &gateway,
        &format!("/xapi/statements?since={}", encode_text(&middle)),
        &reader,
    );
    let until = all_pages(
        &gateway,
        &format!("/xapi/statements?until={}", encode_text(&middle)),
        &reader,
    );
    assert!(since
        .iter()
        .all(|statement| statement["stored"].as_str().unwrap() > middle.as_str()));
    assert!(until
        .iter()
        .all(|statement| statement["stored"].as_str().unwrap() <= middle.as_str()));
    assert_eq!(since.len() + until.len(), all.len());
    // format=ids keeps identifiers only.
    let ids_only = xapi_ok(&gateway, "/xapi/statements?format=ids&limit=1", &reader);
    let first = &statements(&ids_only)[0];
    assert!(first["verb"].get("display").is_none());
    assert!(first["object"].get("definition").is_none());
    // No match: 200 with no statements.
    let none = xapi_ok(
        &gateway,
        "/xapi/statements?registration=00000000-0000-4000-8000-000000000000",
        &reader,
    );
    assert_eq!(statements(&none).len(), 0);
    assert_eq!(none["more"], "");
    // Refused queries.
    let id = scored["id"].as_str().unwrap();
    for query in [
        format!("statementId={id}&voidedStatementId={id}"),
        format!("statementId={id}&verb=http%3A%2F%2Fx"),
        "statementID=1".to_string(),
        "agent=mbox".to_string(),
        "ascending=1".to_string(),
        "since=yesterday".to_string(),
        "limit=-3".to_string(),
        "format=all".to_string(),
    ] {
        let (status, headers, _) = xapi_get(
            &gateway,
            &format!("/xapi/statements?{query}"),
            Some(&reader),
        );
        assert_eq!(status, 400, "{query}");
        assert_eq!(headers["x-experience-api-version"], "1.0.3");
    }
    // The version header is required on the Statement Resource.
    let response = reqwest::blocking::Client::new()
        .get(gateway.url("/xapi/statements"))
        .header("Authorization", format!("Bearer {reader}"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[test]
fn more_links_and_tokens_never_cross_schools() {
    let gateway = published();
    let reader_xx = xapi_reader(&gateway, "xapi-xx", "99XX01");
    let reader_yy = xapi_reader(&gateway, "xapi-yy", "99YY");
    let las_only = gateway.reader(
        "las-only",
        &words("--school 99XX01 --scope las --mandate M --valid-from 2020-01-01"),
    );
    // 401 without a token, 403 for a LAS-only token; HTTP Basic with the token as password works.
    assert_eq!(xapi_get(&gateway, "/xapi/statements", None).0, 401);
    assert_eq!(
        xapi_get(&gateway, "/xapi/statements", Some(&las_only)).0,
        403
    );
    let basic = reqwest::blocking::Client::new()
        .get(gateway.url("/xapi/statements"))
        .header("X-Experience-API-Version", "1.0.3")
        .basic_auth("xapi-yy", Some(&reader_yy))
        .send()
        .unwrap();
    assert_eq!(basic.status().as_u16(), 200);
    // The 99YY reader's `more` link, replayed by the 99XX01 reader, only reads 99XX01.
    let first = xapi_ok(&gateway, "/xapi/statements?limit=1", &reader_yy);
    let yy_ids = ids(&first);
    let more = first["more"].as_str().unwrap().to_string();
    assert!(!more.is_empty());
    let crossed = xapi_ok(&gateway, &more, &reader_xx);
    assert!(!crossed.to_string().contains("YY-SECRET"));
    assert!(ids(&crossed).iter().all(|id| !yy_ids.contains(id)));
    // A crafted token asking for a 99YY statement by id: 404 for the 99XX01 reader.
    use base64::Engine;
    let crafted = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::json!({"q": format!("statementId={}", yy_ids[0]), "a": 0, "t": i64::MAX})
            .to_string(),
    );
    assert_eq!(
        xapi_get(
            &gateway,
            &format!("/xapi/statements/more/{crafted}"),
            Some(&reader_xx)
        )
        .0,
        404
    );
    assert_eq!(
        xapi_get(
            &gateway,
            &format!("/xapi/statements/more/{crafted}"),
            Some(&reader_yy)
        )
        .0,
        200
    );
    // Garbage tokens are refused, never guessed at.
    assert_eq!(
        xapi_get(&gateway, "/xapi/statements/more/%%%", Some(&reader_xx)).0,
        404
    );
    // Reads are audited with the API, school and learners.
    let rows = read_audit(&gateway, &["--reader", "xapi-yy"]);
    assert!(rows.iter().any(|row| row["api"] == "xapi"
        && row["school"] == "99YY"
        && row["leerlingen"] == serde_json::json!(["YY0001"])));
}

/// Issue 16 finding 9 (the xAPI side of feed positions): a `more` link held the gateway-wide
/// newest storage seq, so a reader of one school could watch the others' activity in it.
/// Now it holds statement ids of the reader's schools only: the same query gives the same
/// link however busy the other schools are.
#[test]
fn issue16_more_links_do_not_reveal_other_schools_activity() {
    let gateway = published();
    let reader_yy = xapi_reader(&gateway, "xapi-yy", "99YY");
    let more = |gateway: &Gateway| {
        let page = xapi_ok(gateway, "/xapi/statements?limit=1", &reader_yy);
        page["more"].as_str().unwrap().to_string()
    };
    let before = more(&gateway);
    assert!(!before.is_empty());
    use base64::Engine;
    let token = before.rsplit('/').next().unwrap();
    let decoded: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap(),
    )
    .unwrap();
    assert!(
        decoded["a"].is_string() && decoded["t"].is_string(),
        "positions are statement ids, not storage seqs: {decoded}"
    );
    // 99XX01 gets 30 more results, all published.
    for batch in 1..=3u32 {
        let results: Vec<Resultaat> = (0..10)
            .map(|n| Resultaat {
                key: format!("XX-BUSY-{batch}-{n}"),
                leerlingid: demo_leerling(n),
                score: 40,
            })
            .collect();
        gateway.send(&message("99XX", Some("01"), &aanmaakdatum(batch), &results));
    }
    gateway.wait_published();
    assert_eq!(more(&gateway), before);
    // The link still leads to the rest of 99YY's statements, and only those.
    let rest = xapi_ok(&gateway, &before, &reader_yy);
    assert!(!ids(&rest).is_empty());
    assert!(!rest.to_string().contains("XX-BUSY"));
}
