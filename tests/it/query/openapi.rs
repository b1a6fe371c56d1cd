//! The OpenAPI document in the repository is what the server serves, and the live server keeps to it (schemathesis).

use super::*;

#[test]
fn the_served_document_is_the_repository_file() {
    let gateway = spawn();
    let (status, content_type, served) = gateway.get_json("/api/v1/openapi.json", None);
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let file = std::fs::read_to_string(repo_root().join("src/query/openapi.json")).unwrap();
    let kept: Value = serde_json::from_str(&file).expect("src/query/openapi.json is JSON");
    assert_eq!(served, kept);
    assert_eq!(served["openapi"], "3.1.0");
    for path in [
        "/api/v1/schools/{school}/toetsafnames",
        "/api/v1/schools/{school}/leerlingen/{leerlingid}/toetsafnames",
        "/api/v1/schools/{school}/toetsen/{toetscode}",
        "/xapi/statements",
        "/xapi/about",
        "/api/v1/receipts/{id}",
        "/health",
    ] {
        assert!(
            served["paths"][path]["get"].is_object(),
            "{path} is documented"
        );
    }
    // Issue 14: every HTTP resource besides the SOAP service (which has its WSDL) is in it.
    assert!(served["paths"]["/api/v1/admin/leerlingen"]["post"].is_object());
    assert!(
        served["paths"]["/api/v1/admin/schools/{school}/leerlingen/{leerlingid}"]["delete"]
            .is_object()
    );
    assert!(served["paths"]["/api/v1/admin/schools/{school}/leerlingen"]["delete"].is_object());
}

/// Where schemathesis is: `$SCHEMATHESIS`, else the `.venv` that `.ci/setup-query` fills.
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    repo_root().join(".venv/bin/schemathesis")
}

#[test]
fn the_live_server_keeps_to_its_openapi_document() {
    let tool = schemathesis();
    assert!(
        tool.exists(),
        "schemathesis is missing at {}: run .ci/setup-query (it installs schemathesis into .venv) \
         or set SCHEMATHESIS to its path",
        tool.display()
    );
    // With the admin API on, so its operation is reached (schemathesis sends the reader token: 401).
    let gateway = spawn_with(&[("UWLR_ADMIN_TOKEN", "schemathesis-admin-token-2026")]);
    for sample in [
        "01-drip-een-resultaat.xml",
        "02-batch-vijf-leerlingen.xml",
        "03-toets-met-onderdelen.xml",
        "08-oso-resultaten.xml",
        "09-somscore-onderdelen.xml",
        "10-varianten-infourl-eckid.xml",
    ] {
        gateway.post_accepted(&[sample]);
    }
    let token = reader(
        &gateway,
        "las-schemathesis",
        &words("--school 99XX01 --scope las,xapi --mandate DPA-TEST --valid-from 2020-01-01"),
    );
    let report = gateway.scratch().join("schemathesis");
    let output = Command::new(&tool)
        .arg("--config-file")
        .arg(repo_root().join("tests/it/query/schemathesis.toml"))
        .arg("run")
        .arg(gateway.url("/api/v1/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--seed",
            "5",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--report-dir")
        .arg(&report)
        .current_dir(gateway.scratch())
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}"
    );
    assert!(text.contains("passed"), "schemathesis ran no test:\n{text}");
    // It read data, not only refusals: the audit has 200s with records.
    let served = read_audit(&gateway, &["--reader", "las-schemathesis"])
        .iter()
        .filter(|row| row["status"] == 200 && row["records"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(served > 0, "schemathesis never got data");
}

/// A request of the locked-database test: documented path, method, path asked,
/// Authorization, body, and the status it must get with gateway.sqlite locked and with
/// xapi.sqlite locked.
/// The expected status of a core write sent beside the erasure while `xapi.sqlite` is locked:
/// 200, or 503 when it queues behind the erasure, which holds the core's write lock while it
/// waits for `xapi.sqlite`'s (one transaction over both files).
const BEHIND_ERASURE: u16 = 0;

type LockedRequest<'a> = (&'a str, &'a str, String, &'a str, &'a str, (u16, u16));

/// The answers each operation of the document lists under a database another process keeps
/// locked past the gateway's busy timeout, first `gateway.sqlite`, then `xapi.sqlite`: every
/// resource that writes the locked file (the admin API the core, the read API's audit the
/// xAPI file, the erasure both) asks to retry with 503 and `Retry-After`, a resource that only
/// reads answers as usual, and each status is one its operation in the document lists.
#[test]
fn under_a_locked_database_every_answer_is_one_the_document_lists() {
    if crate::harness::sqlite_only("holds SQLite's file locks on gateway.sqlite and xapi.sqlite") {
        return;
    }
    const ADMIN: &str = "openapi-admin-token-2026";
    let gateway = spawn_with(&[("UWLR_ADMIN_TOKEN", ADMIN)]);
    let receipt = gateway.post_sample("01-drip-een-resultaat.xml");
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let receipt_id = receipt.receipt_id.expect("a receipt id");
    let token = reader(
        &gateway,
        "las-locked",
        &words("--school 99XX01 --scope las,xapi --mandate DPA-TEST --valid-from 2020-01-01"),
    );
    let file = std::fs::read_to_string(repo_root().join("src/query/openapi.json")).unwrap();
    let document: Value = serde_json::from_str(&file).unwrap();
    let reader_token = format!("Bearer {token}");
    let admin_token = format!("Bearer {ADMIN}");
    let basic = "Basic REVNTy1FQTpkZW1vLWF1dG9yaXNhdGllc2xldXRlbC0yMDI2"; // DEMO-EA's key
                                                                          // (documented path, method, path asked, Authorization, body, the status it must get)
    let requests: Vec<LockedRequest> = vec![
        (
            "/api/v1/schools/{school}/toetsafnames",
            "get",
            "/api/v1/schools/99XX01/toetsafnames".into(),
            &reader_token,
            "",
            (200, 503),
        ),
        (
            "/api/v1/schools/{school}/leerlingen/{leerlingid}/toetsafnames",
            "get",
            "/api/v1/schools/99XX01/leerlingen/LL0001/toetsafnames".into(),
            &reader_token,
            "",
            (200, 503),
        ),
        (
            "/api/v1/schools/{school}/toetsen/{toetscode}",
            "get",
            "/api/v1/schools/99XX01/toetsen/DEMO-TAAL-DRIP".into(),
            &reader_token,
            "",
            (200, 503),
        ),
        (
            "/xapi/statements",
            "get",
            "/xapi/statements".into(),
            &reader_token,
            "",
            (200, 503),
        ),
        (
            "/api/v1/admin/leerlingen",
            "post",
            "/api/v1/admin/leerlingen".into(),
            &admin_token,
            "99XX01,LOCK-LL1,,\n",
            (503, BEHIND_ERASURE),
        ),
        (
            "/api/v1/admin/schools/{school}/leerlingen/{leerlingid}",
            "delete",
            "/api/v1/admin/schools/99XX01/leerlingen/LL0001".into(),
            &admin_token,
            "",
            (503, 503),
        ),
        (
            "/api/v1/receipts/{id}",
            "get",
            format!("/api/v1/receipts/{receipt_id}"),
            basic,
            "",
            (200, 200),
        ),
        (
            "/status/data",
            "get",
            "/status/data".into(),
            &admin_token,
            "",
            (200, 200),
        ),
        ("/health", "get", "/health".into(), "", "", (200, 200)),
        (
            "/xapi/about",
            "get",
            "/xapi/about".into(),
            "",
            "",
            (200, 200),
        ),
    ];
    // The read API audits on the xAPI writer (issue 19): a core locked by a batch does not
    // hold up its reads, a locked xapi.sqlite does.
    for file in ["gateway.sqlite", "xapi.sqlite"] {
        let holder = rusqlite::Connection::open(gateway.data_dir.join(file))
            .expect("open the database file for writing");
        holder
            .execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        let answers: Vec<(u16, Option<String>, String)> = std::thread::scope(|scope| {
            let threads: Vec<_> = requests
                .iter()
                .map(|(_, method, path, authorization, body, _)| {
                    let request = gateway
                        .http
                        .request(method.to_uppercase().parse().unwrap(), gateway.url(path))
                        .header("X-Experience-API-Version", "1.0.3")
                        .body(body.to_string());
                    let request = match authorization.is_empty() {
                        true => request,
                        false => request.header("Authorization", *authorization),
                    };
                    scope.spawn(move || {
                        let response = request.send().expect("answered");
                        let retry_after = response
                            .headers()
                            .get("retry-after")
                            .map(|value| value.to_str().unwrap().to_string());
                        (
                            response.status().as_u16(),
                            retry_after,
                            response.text().unwrap(),
                        )
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .collect()
        });
        holder
            .execute_batch("ROLLBACK")
            .expect("let go of the lock");
        for ((documented, method, path, _, _, expected), (status, retry_after, body)) in
            requests.iter().zip(answers)
        {
            let listed = &document["paths"][documented][method]["responses"];
            assert!(
                listed.is_object(),
                "{method} {documented} is in the document"
            );
            assert!(
                listed[status.to_string()].is_object(),
                "{method} {path} answered {status}, which the document does not list: {body}"
            );
            let expected = if file == "gateway.sqlite" {
                expected.0
            } else {
                expected.1
            };
            if expected == BEHIND_ERASURE {
                assert!(
                    status == 200 || status == 503,
                    "{file} locked: {method} {path}: {body}"
                );
            } else {
                assert_eq!(status, expected, "{file} locked: {method} {path}: {body}");
            }
            if status == 503 {
                assert_eq!(retry_after.as_deref(), Some("5"), "{method} {path}");
                assert!(body.contains("urn:uwlr-gateway:problem:busy"), "{body}");
            }
        }
    }
}
