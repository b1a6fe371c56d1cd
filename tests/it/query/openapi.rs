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
