//! Scope and audit: a reader of school A never sees school B, on any read path, with any cursor or link.

use super::*;
use std::collections::BTreeSet;

/// The demo gateway with data in 99XX01 (samples 01-03) and in 99YY.
fn two_schools() -> Gateway {
    super::two_schools(&[
        "01-drip-een-resultaat.xml",
        "02-batch-vijf-leerlingen.xml",
        "03-toets-met-onderdelen.xml",
    ])
}

fn grant(school: &str) -> Vec<String> {
    [
        "--school",
        school,
        "--scope",
        "las",
        "--mandate",
        "DPA-1",
        "--valid-from",
        "2020-01-01",
    ]
    .iter()
    .map(|text| text.to_string())
    .collect()
}

fn add(gateway: &Gateway, name: &str, flags: &[String]) -> String {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    reader(gateway, name, &flags)
}

/// Whether a body holds any of 99YY's afnames (their keys are unique to it).
fn leaks(body: &Value) -> bool {
    body.to_string().contains("YY-SECRET")
}

fn assert_refused(gateway: &Gateway, path: &str, token: Option<&str>, status: u16) {
    let (got, content_type, body) = gateway.get_json(path, token);
    assert_eq!(got, status, "GET {path}: {body}");
    assert_eq!(content_type, "application/problem+json", "GET {path}");
    let problem_members = [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "request_id",
        "parameter",
    ];
    assert!(
        body.as_object().is_some_and(|members| members
            .keys()
            .all(|key| problem_members.contains(&key.as_str()))),
        "GET {path} returned more than a problem: {body}"
    );
    assert!(!leaks(&body), "GET {path} leaked: {body}");
}

#[test]
fn a_reader_of_one_school_never_sees_another() {
    let gateway = two_schools();
    let reader_xx = add(&gateway, "las-xx", &grant("99XX01"));
    let reader_yy = add(&gateway, "las-yy", &grant("99YY"));
    // The 99YY reader sees its own data; it proves the data is there to leak.
    let own = gateway.get_ok("/api/v1/schools/99YY/toetsafnames", &reader_yy);
    assert_eq!(own["items"].as_array().unwrap().len(), 2);
    let yy_next = own["next"].as_str().unwrap().to_string();
    let yy_cursors: Vec<i64> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["change_seq"].as_i64().unwrap())
        .collect();

    // Every read path of 99YY, in every spelling of the school, is 403 for the 99XX01 reader.
    for path in [
        "/api/v1/schools/99YY/toetsafnames".to_string(),
        "/api/v1/schools/99YY00/toetsafnames".to_string(),
        "/api/v1/schools/%39%39YY/toetsafnames".to_string(),
        "/api/v1/schools/99YY/toetsafnames?since=0&limit=1000".to_string(),
        "/api/v1/schools/99YY/leerlingen/YY0001/toetsafnames".to_string(),
        "/api/v1/schools/99YY/toetsen/QT-PAGE".to_string(),
        "/api/v1/schools/99YY/toetsen/GEEN-TOETS".to_string(),
        // The 99YY reader's own `next` link, replayed with the other token.
        yy_next.clone(),
        // Another school form that is not the granted one, and schools that do not exist.
        "/api/v1/schools/99XX/toetsafnames".to_string(),
        "/api/v1/schools/99ZZ01/toetsafnames".to_string(),
        "/api/v1/schools/99xx01/toetsafnames".to_string(),
    ] {
        assert_refused(&gateway, &path, Some(&reader_xx), 403);
    }
    // An unknown school and an ungranted one get the same answer (apart from the name).
    let (_, _, unknown) = gateway.get_json("/api/v1/schools/99ZZ01/toetsafnames", Some(&reader_xx));
    let (_, _, ungranted) = gateway.get_json("/api/v1/schools/99YY/toetsafnames", Some(&reader_xx));
    assert_eq!(unknown["type"], ungranted["type"]);
    assert_eq!(unknown["title"], ungranted["title"]);

    // Crafted cursors on its own school never bring 99YY data: every cursor from
    // zero past the end, including the exact change_seq values of 99YY's afnames.
    let (_, _, own_xx) = gateway.get_json(
        "/api/v1/schools/99XX01/toetsafnames?limit=1000",
        Some(&reader_xx),
    );
    let end = own_xx["consistent_through"].as_i64().unwrap();
    let xx_keys: BTreeSet<String> = own_xx["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["afname_key"].as_str().unwrap().to_string())
        .collect();
    assert!(!xx_keys.is_empty());
    let mut cursors: Vec<i64> = (0..=end + 2).collect();
    cursors.extend(yy_cursors.iter().map(|seq| seq - 1));
    cursors.extend([i64::MAX, i64::MAX - 1]);
    for cursor in cursors {
        for limit in [1, 1000] {
            let path = format!("/api/v1/schools/99XX01/toetsafnames?since={cursor}&limit={limit}");
            let body = gateway.get_ok(&path, &reader_xx);
            assert!(!leaks(&body), "{path} leaked: {body}");
            for item in body["items"].as_array().unwrap() {
                assert!(
                    xx_keys.contains(item["afname_key"].as_str().unwrap()),
                    "{path}: {item}"
                );
            }
        }
    }
    // The other school's learner and toets, asked through the reader's own school: nothing.
    let crossed = gateway.get_ok(
        "/api/v1/schools/99XX01/leerlingen/YY0001/toetsafnames?since=0",
        &reader_xx,
    );
    assert!(crossed["items"].as_array().unwrap().is_empty());
    assert!(!leaks(&crossed));
    // The other school's `next` link rewritten to the reader's own school only reads its own school.
    let rewritten = yy_next.replace("/schools/99YY/", "/schools/99XX01/");
    assert!(!leaks(&gateway.get_ok(&rewritten, &reader_xx)));
    // Its own `next` link pointed at the other school: refused.
    let own_next = own_xx["next"]
        .as_str()
        .unwrap()
        .replace("/schools/99XX01/", "/schools/99YY/");
    assert_refused(&gateway, &own_next, Some(&reader_xx), 403);
}

#[test]
fn tokens_scopes_and_mandates_are_enforced() {
    let gateway = two_schools();
    let path = "/api/v1/schools/99XX01/toetsafnames";
    let valid = add(&gateway, "las-valid", &grant("99XX01"));
    gateway.get_ok(path, &valid);
    // 401: no token, a wrong one, a forged one with a valid lookup part, a revoked one, another scheme.
    assert_refused(&gateway, path, None, 401);
    assert_refused(&gateway, path, Some("uwlrr_0000"), 401);
    let mut forged = valid.clone();
    forged.replace_range(forged.len() - 4.., "0000");
    assert_refused(&gateway, path, Some(&forged), 401);
    let (status, _, _) = {
        let response = reqwest::blocking::Client::new()
            .get(gateway.url(path))
            .header("Authorization", format!("Basic {valid}"))
            .send()
            .unwrap();
        (response.status().as_u16(), (), ())
    };
    assert_eq!(status, 401);
    let revoked = add(&gateway, "las-revoked", &grant("99XX01"));
    gateway.cli_stdout(&["readers", "revoke", "las-revoked"]);
    assert_refused(&gateway, path, Some(&revoked), 401);
    // 403: a token for the xAPI only, an expired mandate, a mandate not yet valid, a withdrawn grant.
    let xapi_only = reader(
        &gateway,
        "xapi-only",
        &words("--school 99XX01 --scope xapi --mandate M --valid-from 2020-01-01"),
    );
    assert_refused(&gateway, path, Some(&xapi_only), 403);
    let expired = reader(&gateway,
        "las-expired",
        &words("--school 99XX01 --scope las --mandate M --valid-from 2020-01-01 --valid-until 2021-12-31"),
    );
    assert_refused(&gateway, path, Some(&expired), 403);
    let future = reader(
        &gateway,
        "las-future",
        &words("--school 99XX01 --scope las --mandate M --valid-from 2099-01-01"),
    );
    assert_refused(&gateway, path, Some(&future), 403);
    let withdrawn = add(&gateway, "las-withdrawn", &grant("99XX01"));
    gateway.get_ok(path, &withdrawn);
    gateway.cli_stdout(&["readers", "withdraw", "las-withdrawn", "--school", "99XX01"]);
    assert_refused(&gateway, path, Some(&withdrawn), 403);
    // A renewed mandate lets the expired reader in again.
    gateway.cli_stdout(&words(
        "readers grant las-expired --school 99XX01 --mandate M-2 --valid-from 2020-01-01",
    ));
    gateway.get_ok(path, &expired);
    // `readers list` shows mandates and validity, never a token.
    let list = gateway.cli_stdout(&["readers", "list"]);
    assert!(list.contains("las-expired") && list.contains("M-2") && list.contains("withdrawn"));
    for token in [&valid, &revoked, &expired, &future, &withdrawn, &xapi_only] {
        assert!(!list.contains(token.as_str()));
        assert!(
            !gateway.logs().contains(token.as_str()),
            "a token was logged"
        );
    }
    // Only GET.
    let response = reqwest::blocking::Client::new()
        .post(gateway.url(path))
        .header("Authorization", format!("Bearer {valid}"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET");
}

#[test]
fn every_read_is_audited_with_reader_school_learners_and_count() {
    let gateway = two_schools();
    let reader = add(&gateway, "las-audit", &grant("99XX01"));
    let page = gateway.get_ok("/api/v1/schools/99XX01/toetsafnames?limit=4", &reader);
    let returned: BTreeSet<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["leerlingid"].as_str().unwrap().to_string())
        .collect();
    gateway.get_ok(
        "/api/v1/schools/99XX01/leerlingen/LL0006/toetsafnames",
        &reader,
    );
    gateway.get_ok("/api/v1/schools/99XX01/toetsen/DEMO-REK-M4", &reader);
    assert_refused(
        &gateway,
        "/api/v1/schools/99YY/toetsafnames",
        Some(&reader),
        403,
    );
    assert_refused(
        &gateway,
        "/api/v1/schools/99XX01/toetsafnames?limit=0",
        Some(&reader),
        400,
    );
    assert_refused(
        &gateway,
        "/api/v1/schools/99XX01/toetsafnames",
        Some("uwlrr_wrong"),
        401,
    );

    let rows = read_audit(&gateway, &["--reader", "las-audit"]);
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let summary: Vec<(String, u64, String, u64)> = rows
        .iter()
        .map(|row| {
            (
                row["actor"].as_str().unwrap().to_string(),
                row["status"].as_u64().unwrap(),
                row["school"].as_str().unwrap_or("").to_string(),
                row["records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("las-audit".to_string(), 200, "99XX01".to_string(), 4),
            ("las-audit".to_string(), 200, "99XX01".to_string(), 3),
            ("las-audit".to_string(), 200, "99XX01".to_string(), 1),
            ("las-audit".to_string(), 403, "99YY".to_string(), 0),
            ("las-audit".to_string(), 400, "99XX01".to_string(), 0),
        ]
    );
    let learners: BTreeSet<String> = rows[0]["leerlingen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap().to_string())
        .collect();
    assert_eq!(learners, returned);
    assert_eq!(rows[1]["leerlingen"], serde_json::json!(["LL0006"]));
    for row in &rows {
        assert!(row["at"].as_str().unwrap().starts_with("20"));
        assert!(!row["request_id"].as_str().unwrap().is_empty());
        assert!(row["detail"]
            .as_str()
            .unwrap()
            .starts_with("GET /api/v1/schools/"));
    }
    // Who read this learner? The filters find it.
    assert_eq!(
        read_audit(&gateway, &["--leerling", "LL0006"]).len(),
        if returned.contains("LL0006") { 2 } else { 1 }
    );
    assert_eq!(read_audit(&gateway, &["--school", "99YY"]).len(), 1);
    // The audit view also lists administrative actions, such as adding this reader.
    let everything = gateway.cli_stdout(&["audit", "--limit", "1000"]);
    assert!(everything.contains("readers.add") && everything.contains("las-audit"));
    // The invalid token leaves no audit row (there is nobody to name), and is not logged.
    assert!(!gateway.logs().contains("uwlrr_wrong"));
    assert!(!everything.contains(&reader));
}

/// Issue 16 finding 9: `change_seq` and `consistent_through` were gateway-wide, so a
/// school's reader saw how busy the other schools were. Positions now count the reader's
/// school only: 99YY's feed does not move while 99XX01 receives messages.
#[test]
fn issue16_feed_positions_do_not_reveal_other_schools_activity() {
    let gateway = super::two_schools(&[]);
    let reader_yy = add(&gateway, "las-yy", &grant("99YY"));
    let before = gateway.get_ok("/api/v1/schools/99YY/toetsafnames?since=0", &reader_yy);
    let positions = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["change_seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(positions(&before), [1, 2]);
    assert_eq!(before["consistent_through"], 2);
    // 99XX01 gets 30 afnames in three messages.
    busy_99xx01(&gateway);
    let after = gateway.get_ok("/api/v1/schools/99YY/toetsafnames?since=0", &reader_yy);
    assert_eq!(after["consistent_through"], 2, "{after}");
    assert_eq!(after["next_cursor"], 2, "{after}");
    assert_eq!(positions(&after), [1, 2]);
    // 99YY's next change is position 3, right after its own last one.
    gateway.post_ok(message(
        "99YY",
        None,
        &aanmaakdatum(10),
        &[Resultaat {
            key: "YY-SECRET-3".into(),
            leerlingid: "YY0001".into(),
            score: 53,
        }],
    ));
    let next = gateway.get_ok(
        &format!(
            "/api/v1/schools/99YY/toetsafnames?since={}",
            after["next_cursor"]
        ),
        &reader_yy,
    );
    assert_eq!(positions(&next), [3]);
    assert_eq!(next["consistent_through"], 3);
}
