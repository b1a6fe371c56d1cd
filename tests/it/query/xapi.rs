//! The xAPI read side: Statement Resource query semantics, voiding, `more` links and scope.

use super::*;
use chrono::Timelike;
use std::collections::BTreeSet;

fn xapi_reader(gateway: &Gateway, name: &str, school: &str) -> String {
    reader(
        gateway,
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
    let connection = gateway.db();
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
    let gateway = two_schools(&[
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
    let gateway = spawn();
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
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
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
    let las_only = reader(
        &gateway,
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
    busy_99xx01(&gateway);
    gateway.wait_published();
    assert_eq!(more(&gateway), before);
    // The link still leads to the rest of 99YY's statements, and only those.
    let rest = xapi_ok(&gateway, &before, &reader_yy);
    assert!(!ids(&rest).is_empty());
    assert!(!rest.to_string().contains("XX-BUSY"));
}

/// The statements the bridge stored, as JSON, oldest first.
fn stored_statements(gateway: &Gateway) -> Vec<Value> {
    let connection = gateway.db();
    let mut statement = connection
        .prepare("SELECT statement FROM xapi_statements ORDER BY seq")
        .unwrap();
    statement
        .query_map(rusqlite::params![], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|text| serde_json::from_str(&text.unwrap()).unwrap())
        .collect()
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn instant(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|_| panic!("an RFC 3339 instant: {text}"))
        .with_timezone(&chrono::Utc)
}

/// Issue 17: consistent-through was the newest statement's `stored` (1970 for a school
/// without statements) and absent on errors; xAPI wants a recent instant on every answer.
#[test]
fn issue17_consistent_through_is_the_present_when_nothing_waits_and_on_every_answer() {
    let gateway = spawn();
    let reader = xapi_reader(&gateway, "xapi-now", "99XX01");
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    let (status, headers, body) = xapi_get(&gateway, "/xapi/statements", Some(&reader));
    assert_eq!(status, 200, "{body}");
    assert!(statements(&body).is_empty());
    let through = instant(header(&headers, "x-experience-api-consistent-through").unwrap());
    assert!(
        through >= before && through <= chrono::Utc::now(),
        "no statements and nothing waiting: the present, not {through}"
    );
    gateway.post_accepted(&["01-drip-een-resultaat.xml"]);
    gateway.wait_published();
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    let (_, headers, _) = xapi_get(&gateway, "/xapi/statements?limit=1", Some(&reader));
    let through = instant(header(&headers, "x-experience-api-consistent-through").unwrap());
    assert!(through >= before, "caught up: the present, not {through}");
    // Every answer of the Statement Resource carries it, errors included.
    let client = reqwest::blocking::Client::new();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let answers = [
        client
            .get(gateway.url("/xapi/statements"))
            .header("X-Experience-API-Version", "1.0.3"),
        client
            .get(gateway.url("/xapi/statements"))
            .bearer_auth(&reader),
        client
            .get(gateway.url("/xapi/statements?limit=x"))
            .header("X-Experience-API-Version", "1.0.3")
            .bearer_auth(&reader),
        client
            .get(gateway.url(&format!("/xapi/statements?statementId={unknown}")))
            .header("X-Experience-API-Version", "1.0.3")
            .bearer_auth(&reader),
        client
            .get(gateway.url("/xapi/statements/more/garbage"))
            .header("X-Experience-API-Version", "1.0.3")
            .bearer_auth(&reader),
        client
            .delete(gateway.url("/xapi/statements"))
            .header("X-Experience-API-Version", "1.0.3")
            .bearer_auth(&reader),
    ];
    let mut statuses = Vec::new();
    for request in answers {
        let response = request.send().unwrap();
        statuses.push(response.status().as_u16());
        let value = header(response.headers(), "x-experience-api-consistent-through")
            .unwrap_or_else(|| panic!("{} without consistent-through", response.status()));
        assert!(instant(value) >= before, "{value}");
        assert_eq!(
            header(response.headers(), "x-experience-api-version"),
            Some("1.0.3")
        );
    }
    assert_eq!(statuses, [401, 400, 400, 404, 404, 405]);
}

/// While changes wait for the publisher, consistent-through is the newest committed
/// `stored`: statements still to come are stamped later than that, never earlier.
#[test]
fn issue17_consistent_through_waits_for_the_publisher() {
    // The publisher sleeps 5 s after each round, so a change made right after one waits.
    let gateway = spawn_with(&[("UWLR_XAPI_PUBLISH_PAUSE_MS", "5000")]);
    let reader = xapi_reader(&gateway, "xapi-lag", "99XX01");
    gateway.post_accepted(&["01-drip-een-resultaat.xml"]);
    gateway.wait_published();
    let published = stored_statements(&gateway).len();
    gateway.post_accepted(&["02-batch-vijf-leerlingen.xml"]);
    let (status, headers, _) = xapi_get(&gateway, "/xapi/statements", Some(&reader));
    assert_eq!(status, 200);
    let connection = gateway.db();
    let (count, newest, waiting): (usize, String, bool) = connection
        .query_row(
            "SELECT (SELECT count(*) FROM xapi_statements), (SELECT MAX(stored_at) FROM xapi_statements),
                    (SELECT cursor_seq FROM xapi_publisher) < (SELECT seq FROM change_counter)",
            rusqlite::params![],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert!(
        waiting && count == published,
        "sample 02 must still wait for the publisher (the machine was too slow for this test)"
    );
    assert_eq!(
        header(&headers, "x-experience-api-consistent-through"),
        Some(newest.as_str())
    );
    // Once published, the present again.
    gateway.wait_published();
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(5);
    let (_, headers, _) = xapi_get(&gateway, "/xapi/statements", Some(&reader));
    assert!(instant(header(&headers, "x-experience-api-consistent-through").unwrap()) >= before);
}

/// Issue 17: statements came without `authority`; `Last-Modified` was missing.
#[test]
fn issue17_every_statement_names_the_gateway_as_authority_and_last_modified_is_stored() {
    let gateway = two_schools(&["01-drip-een-resultaat.xml", "07-update-afname.xml"]);
    gateway.wait_published();
    let reader = xapi_reader(&gateway, "xapi-authority", "99XX01");
    let expected = serde_json::json!({
        "objectType": "Agent",
        "name": "uwlr-gateway",
        "account": {"homePage": "https://uwlr-gateway.example/xapi", "name": "uwlr-gateway"},
    });
    let (status, headers, body) = xapi_get(&gateway, "/xapi/statements", Some(&reader));
    assert_eq!(status, 200);
    let list = statements(&body);
    assert!(list.len() >= 2, "a statement and a voiding statement");
    for statement in list {
        assert_eq!(statement["authority"], expected, "{statement}");
    }
    let newest = list[0]["stored"].as_str().unwrap();
    let last_modified = header(&headers, "last-modified").expect("Last-Modified on a list");
    assert_eq!(
        httpdate::parse_http_date(last_modified).unwrap(),
        std::time::SystemTime::from(instant(newest).with_nanosecond(0).unwrap())
    );
    // A single statement, a voided one and format=ids carry it too.
    let voided = stored(&gateway, "99XX01")
        .into_iter()
        .find(|(_, voided)| *voided)
        .unwrap()
        .0;
    for path in [
        format!(
            "/xapi/statements?statementId={}",
            list[1]["id"].as_str().unwrap()
        ),
        format!("/xapi/statements?voidedStatementId={voided}"),
    ] {
        let (status, headers, statement) = xapi_get(&gateway, &path, Some(&reader));
        assert_eq!(status, 200, "{path}");
        assert_eq!(statement["authority"], expected);
        let stored = instant(statement["stored"].as_str().unwrap());
        assert_eq!(
            httpdate::parse_http_date(header(&headers, "last-modified").unwrap()).unwrap(),
            std::time::SystemTime::from(stored.with_nanosecond(0).unwrap())
        );
    }
    let ids = xapi_ok(&gateway, "/xapi/statements?format=ids", &reader);
    for statement in statements(&ids) {
        assert_eq!(
            statement["authority"],
            serde_json::json!({"objectType": "Agent", "account": expected["account"]})
        );
    }
    // An empty answer has nothing to date.
    let (_, headers, _) = xapi_get(
        &gateway,
        "/xapi/statements?registration=00000000-0000-4000-8000-000000000000",
        Some(&reader),
    );
    assert!(headers.get("last-modified").is_none());
}

/// The authority is the one configured.
#[test]
fn issue17_the_authority_comes_from_the_configuration() {
    let gateway = spawn_with(&[
        ("UWLR_XAPI_AUTHORITY_NAME", "Stichting Toetsdata"),
        ("UWLR_XAPI_AUTHORITY_MBOX", "mailto:lrs@toetsdata.example"),
    ]);
    gateway.post_accepted(&["01-drip-een-resultaat.xml"]);
    gateway.wait_published();
    let reader = xapi_reader(&gateway, "xapi-configured", "99XX01");
    let body = xapi_ok(&gateway, "/xapi/statements", &reader);
    assert_eq!(
        statements(&body)[0]["authority"],
        serde_json::json!({"objectType": "Agent", "name": "Stichting Toetsdata", "mbox": "mailto:lrs@toetsdata.example"})
    );
}

/// Issue 17: HEAD and the Alternate Request Syntax (xAPI Communication 1.1, 1.3) were 405.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn issue17_head_and_the_alternate_request_syntax_answer_as_get() {
    let gateway = published();
    let reader = xapi_reader(&gateway, "xapi-alt", "99XX01");
    let client = reqwest::blocking::Client::new();
    let query = "limit=2&verb=http%3A%2F%2Fadlnet.gov%2Fexpapi%2Fverbs%2Fscored";
    let (status, get_headers, get_body) = xapi_get(
        &gateway,
        &format!("/xapi/statements?{query}"),
        Some(&reader),
    );
    assert_eq!(status, 200);
    // HEAD: the same status and headers, no body; the connection stays usable.
    let head = client
        .head(gateway.url(&format!("/xapi/statements?{query}")))
        .header("X-Experience-API-Version", "1.0.3")
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    for name in ["content-type", "x-experience-api-version", "last-modified"] {
        assert_eq!(head.headers().get(name), get_headers.get(name), "{name}");
    }
    assert!(head
        .headers()
        .contains_key("x-experience-api-consistent-through"));
    let address = gateway.base_url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "HEAD /xapi/statements?{query} HTTP/1.1\r\nHost: {address}\r\nX-Experience-API-Version: 1.0.3\r\nAuthorization: Bearer {reader}\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 65536];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head_part, rest) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(head_part.starts_with("HTTP/1.1 200"), "{head_part}");
    assert_eq!(rest, "", "HEAD answers carry no body");
    // A HEAD for a statement that is not there is 404, as a GET would be.
    let missing = client
        .head(gateway.url("/xapi/statements?statementId=00000000-0000-4000-8000-000000000000"))
        .header("X-Experience-API-Version", "1.0.3")
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    // POST ?method=GET with the query and the headers as form parameters: the same answer.
    let form = format!(
        "{query}&Authorization={}&X-Experience-API-Version=1.0.3",
        form_urlencoded::byte_serialize(format!("Bearer {reader}").as_bytes()).collect::<String>()
    );
    let alternate = client
        .post(gateway.url("/xapi/statements?method=GET"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .unwrap();
    assert_eq!(alternate.status().as_u16(), 200);
    assert!(alternate
        .headers()
        .contains_key("x-experience-api-consistent-through"));
    let alternate_body: Value = serde_json::from_str(&alternate.text().unwrap()).unwrap();
    assert_eq!(ids(&alternate_body), ids(&get_body));
    // Its `more` link is followed with a plain GET, and also as POST ?method=GET.
    let more = alternate_body["more"].as_str().unwrap();
    assert!(!more.is_empty());
    let followed = client
        .post(gateway.url(&format!("{more}?method=GET")))
        .body(format!(
            "Authorization={}&X-Experience-API-Version=1.0.3",
            form_urlencoded::byte_serialize(format!("Bearer {reader}").as_bytes())
                .collect::<String>()
        ))
        .send()
        .unwrap();
    assert_eq!(followed.status().as_u16(), 200);
    // The rules of a GET apply: no version, no token, other query parameters, a write, too large.
    let refused = |url: &str, body: String| {
        let response = client.post(gateway.url(url)).body(body).send().unwrap();
        let status = response.status().as_u16();
        assert!(response
            .headers()
            .contains_key("x-experience-api-consistent-through"));
        let problem: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        (status, problem)
    };
    let without_version = form.replace("&X-Experience-API-Version=1.0.3", "");
    assert_eq!(
        refused("/xapi/statements?method=GET", without_version).0,
        400
    );
    let without_token = format!("{query}&X-Experience-API-Version=1.0.3");
    assert_eq!(refused("/xapi/statements?method=GET", without_token).0, 401);
    let (status, problem) = refused("/xapi/statements?method=GET&limit=1", form.clone());
    assert_eq!(
        (status, problem["parameter"].as_str()),
        (400, Some("method"))
    );
    assert_eq!(refused("/xapi/statements?method=PUT", form.clone()).0, 405);
    assert_eq!(
        refused("/xapi/statements?method=GET", format!("{form}&limit=3")).0,
        400
    );
    let (status, _) = refused(
        "/xapi/statements?method=GET",
        format!("{form}&content={}", "x".repeat(70 * 1024)),
    );
    assert_eq!(status, 413);
    // A plain POST (no method) is not the alternate syntax: the resource is read-only.
    assert_eq!(refused("/xapi/statements", "[]".into()).0, 405);
    // The audit holds the query the form carried, never the token.
    let rows = read_audit(&gateway, &["--reader", "xapi-alt"]);
    let line = format!("GET /xapi/statements?{query}");
    let gets = rows
        .iter()
        .filter(|row| row["detail"] == line.as_str())
        .count();
    assert_eq!(gets, 2, "the plain GET and the alternate one: {rows:#?}");
    assert!(!rows.iter().any(|row| row.to_string().contains(&reader)));
}

/// Issue 17: `format=canonical` returned every language of a map; it must return the
/// one that best matches `Accept-Language`, per map.
#[test]
fn issue17_canonical_format_keeps_the_language_the_reader_accepts() {
    let gateway = spawn();
    gateway.post_accepted(&["01-drip-een-resultaat.xml"]);
    gateway.wait_published();
    let reader = xapi_reader(&gateway, "xapi-canonical", "99XX01");
    let exact = xapi_ok(&gateway, "/xapi/statements?limit=1", &reader);
    let display = &statements(&exact)[0]["verb"]["display"];
    assert!(
        display.as_object().unwrap().len() > 1,
        "the stored verb has several languages: {display}"
    );
    let canonical = |accept: Option<&str>| -> Value {
        let mut request = reqwest::blocking::Client::new()
            .get(gateway.url("/xapi/statements?limit=1&format=canonical"))
            .header("X-Experience-API-Version", "1.0.3")
            .bearer_auth(&reader);
        if let Some(accept) = accept {
            request = request.header("Accept-Language", accept);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        statements(&body)[0].clone()
    };
    let dutch = canonical(Some("nl-NL, nl;q=0.9, en;q=0.5"));
    assert_eq!(
        dutch["verb"]["display"],
        serde_json::json!({"nl": "scoorde"})
    );
    let english = canonical(Some("en-GB,en;q=0.9"));
    assert_eq!(
        english["verb"]["display"],
        serde_json::json!({"en-US": "scored"})
    );
    let nothing_fits = canonical(Some("fr"));
    assert_eq!(
        nothing_fits["verb"]["display"],
        serde_json::json!({"nl": "scoorde"})
    );
    for statement in [dutch, english, nothing_fits, canonical(None)] {
        let one = |map: &Value| map.as_object().is_none_or(|map| map.len() == 1);
        assert!(one(&statement["verb"]["display"]));
        assert!(one(&statement["object"]["definition"]["name"]));
        for activity in statement["context"]["contextActivities"]["grouping"]
            .as_array()
            .unwrap()
        {
            assert!(one(&activity["definition"]["name"]));
        }
        // Agents stay exact; the statement keeps its id.
        assert_eq!(statement["actor"], statements(&exact)[0]["actor"]);
        assert_eq!(statement["id"], statements(&exact)[0]["id"]);
    }
}

/// Issue 17: browser-based learning systems of configured origins get CORS headers,
/// preflights are answered without a token, other origins get none.
#[test]
fn issue17_cors_admits_the_configured_origins_only() {
    let gateway = spawn_with(&[(
        "UWLR_XAPI_CORS_ORIGINS",
        "https://leerplatform.example, https://ander.example:8443",
    )]);
    let reader = xapi_reader(&gateway, "xapi-cors", "99XX01");
    let client = reqwest::blocking::Client::new();
    let preflight = |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, gateway.url("/xapi/statements"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header(
                "Access-Control-Request-Headers",
                "authorization, x-experience-api-version",
            )
            .send()
            .unwrap()
    };
    let admitted = preflight("https://leerplatform.example");
    assert_eq!(admitted.status().as_u16(), 204);
    let headers = admitted.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some("https://leerplatform.example")
    );
    let allowed_headers = header(headers, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "x-experience-api-version",
        "accept-language",
    ] {
        assert!(allowed_headers.contains(name), "{allowed_headers}");
    }
    assert!(header(headers, "access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert!(headers.contains_key("x-experience-api-consistent-through"));
    let refused = preflight("https://elders.example");
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // The actual request: the origin is echoed and the xAPI headers are exposed.
    let response = client
        .get(gateway.url("/xapi/statements"))
        .header("Origin", "https://ander.example:8443")
        .header("X-Experience-API-Version", "1.0.3")
        .bearer_auth(&reader)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        Some("https://ander.example:8443")
    );
    let exposed = header(response.headers(), "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "x-experience-api-version",
        "x-experience-api-consistent-through",
        "last-modified",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert!(header(response.headers(), "vary")
        .unwrap()
        .contains("Origin"));
    // Errors are readable by the admitted browser too (it must see why).
    let unauthorised = client
        .get(gateway.url("/xapi/statements"))
        .header("Origin", "https://leerplatform.example")
        .header("X-Experience-API-Version", "1.0.3")
        .send()
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    assert!(unauthorised
        .headers()
        .contains_key("access-control-allow-origin"));
    let other = client
        .get(gateway.url("/xapi/about"))
        .header("Origin", "https://elders.example")
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Without configured origins nobody gets CORS headers.
    let plain = spawn();
    let response = reqwest::blocking::Client::new()
        .get(plain.url("/xapi/about"))
        .header("Origin", "https://leerplatform.example")
        .send()
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// The values a Profiles-spec rule location (`$.a.b[*].c`, the forms the profile uses) selects.
fn locate<'a>(statement: &'a Value, location: &str) -> Vec<&'a Value> {
    let mut values = vec![statement];
    for step in location
        .trim_start_matches('$')
        .split('.')
        .filter(|step| !step.is_empty())
    {
        let (name, all) = match step.strip_suffix("[*]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        values = values
            .into_iter()
            .filter_map(|value| value.get(name))
            .flat_map(|value| match (all, value.as_array()) {
                (true, Some(items)) => items.iter().collect(),
                (true, None) => Vec::new(),
                (false, _) => vec![value],
            })
            .collect();
    }
    values
}

/// Whether `statement` follows `template` (Profiles spec part 3, statement template validation).
fn follows(statement: &Value, template: &Value) -> bool {
    if template["verb"] != statement["verb"]["id"] {
        return false;
    }
    if let Some(activity_type) = template.get("objectActivityType") {
        if statement["object"]["definition"]["type"] != *activity_type {
            return false;
        }
    }
    if let Some(types) = template["contextGroupingActivityType"].as_array() {
        let grouping = locate(
            statement,
            "$.context.contextActivities.grouping[*].definition.type",
        );
        if !types.iter().all(|wanted| grouping.contains(&wanted)) {
            return false;
        }
    }
    template["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|rule| {
            let found = locate(statement, rule["location"].as_str().unwrap());
            let presence_ok = match rule["presence"].as_str() {
                Some("included") => !found.is_empty(),
                Some("excluded") => found.is_empty(),
                _ => true,
            };
            let any_ok = rule["any"]
                .as_array()
                .is_none_or(|any| found.iter().any(|value| any.contains(value)));
            let all_ok = rule["all"]
                .as_array()
                .is_none_or(|all| found.iter().all(|value| all.contains(value)));
            presence_ok && any_ok && all_ok
        })
}

/// Issue 17: the gateway publishes an xAPI Profile at its IRI, and every IRI of every
/// statement the samples produce resolves to a concept of the right type in it.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn issue17_every_sample_statement_resolves_in_the_served_profile() {
    let gateway = spawn();
    // The accepted samples are 01-29; 30 and above are meant to be refused.
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("samples"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(".xml") && name[..2].parse::<u32>().is_ok_and(|n| n < 30))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        gateway.post_accepted(&[name]);
    }
    gateway.wait_published();
    // Served at /xapi/profile and at the profile's IRIs (xapi_base_iri's path on this gateway).
    let profile_at = |path: &str| {
        let response = reqwest::blocking::get(gateway.url(path)).unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            header(response.headers(), "content-type"),
            Some("application/ld+json")
        );
        serde_json::from_str::<Value>(&response.text().unwrap()).unwrap()
    };
    let profile = profile_at("/xapi/profile");
    assert_eq!(profile, profile_at("/xapi/profile/uwlr-2.2"));
    assert_eq!(profile, profile_at("/xapi/profile/uwlr-2.2/v1"));
    assert_eq!(
        profile["@context"],
        "https://w3id.org/xapi/profiles/context"
    );
    assert_eq!(profile["type"], "Profile");
    let version = profile["versions"][0]["id"].as_str().unwrap();
    let concept = |id: &str| -> Option<String> {
        profile["concepts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|concept| concept["id"] == id)
            .map(|concept| concept["type"].as_str().unwrap().to_string())
    };
    let check = |statement: &Value, id: &str, wanted: &str| {
        assert_eq!(
            concept(id).as_deref(),
            Some(wanted),
            "{id} of statement {} is no {wanted} of the profile",
            statement["id"]
        );
    };
    let activities = |statement: &Value| -> Vec<Value> {
        let mut list = vec![statement["object"].clone()];
        for kind in ["parent", "grouping", "category", "other"] {
            list.extend(
                locate(statement, &format!("$.context.contextActivities.{kind}[*]"))
                    .into_iter()
                    .cloned(),
            );
        }
        list
    };
    let all = stored_statements(&gateway);
    assert!(
        all.len() > 50,
        "the samples make many statements: {}",
        all.len()
    );
    let templates = profile["templates"].as_array().unwrap();
    for statement in &all {
        check(statement, statement["verb"]["id"].as_str().unwrap(), "Verb");
        for activity in activities(statement) {
            if let Some(activity_type) = activity["definition"]["type"].as_str() {
                check(statement, activity_type, "ActivityType");
            }
            for key in activity["definition"]["extensions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, _)| key)
            {
                check(statement, key, "ActivityExtension");
            }
        }
        for (path, kind) in [
            ("result", "ResultExtension"),
            ("context", "ContextExtension"),
        ] {
            for key in statement[path]["extensions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, _)| key)
            {
                check(statement, key, kind);
            }
        }
        // A scored statement names this profile version as its category; each statement follows a template.
        if statement["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided" {
            let categories = locate(statement, "$.context.contextActivities.category[*].id");
            assert!(categories.iter().any(|id| *id == version), "{statement}");
        }
        let followed: Vec<&str> = templates
            .iter()
            .filter(|template| follows(statement, template))
            .map(|template| template["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            followed.len(),
            1,
            "statement {} follows {followed:?}",
            statement["id"]
        );
    }
    // Every template is used by the samples.
    for template in templates {
        assert!(
            all.iter().any(|statement| follows(statement, template)),
            "no sample statement follows {}",
            template["id"]
        );
    }
}
