//! The HTTP surface besides SOAP: one problem details style on every error, gzip on request.

use crate::harness::{send_and_check, spawn_gateway, Expect, Options};
use std::io::Read as _;

const ADMIN_TOKEN: &str = "admin-token-van-de-beheerder";

/// Status, headers and raw (undecoded) body of one request.
fn raw(request: reqwest::blocking::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = request.send().expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().unwrap().to_vec())
}

/// Issue 14: the receipts and admin APIs answered errors in another style than the read API
/// (`type: about:blank`, no instance, no request id, no WWW-Authenticate); `/health` and
/// unknown paths in plain text. Every error now has the read API's members and headers.
/// A request to check: what it is, the request, the status it must get, and a header (name, value) it must carry.
type Case<'a> = (
    &'a str,
    reqwest::blocking::RequestBuilder,
    u16,
    Option<(&'a str, &'a str)>,
);

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn every_http_error_is_the_same_problem_details_document() {
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN));
    let base = &gateway.base_url;
    let http = &gateway.http;
    let cases: Vec<Case> = vec![
        (
            "receipt without credentials",
            http.get(format!("{base}/api/v1/receipts/r-1")),
            401,
            Some(("www-authenticate", "Basic")),
        ),
        (
            "receipt with a wrong key",
            http.get(format!("{base}/api/v1/receipts/r-1"))
                .basic_auth(crate::harness::DEMO_KLANTCODE, Some("fout")),
            401,
            Some(("www-authenticate", "Basic")),
        ),
        (
            "unknown receipt",
            http.get(format!("{base}/api/v1/receipts/r-1")).basic_auth(
                crate::harness::DEMO_KLANTCODE,
                Some(crate::harness::DEMO_SLEUTEL),
            ),
            404,
            None,
        ),
        (
            "receipts answer GET only",
            http.delete(format!("{base}/api/v1/receipts/r-1")),
            405,
            Some(("allow", "GET")),
        ),
        (
            "admin with a wrong token",
            http.post(format!("{base}/api/v1/admin/leerlingen"))
                .bearer_auth("niet-het-goede-token")
                .body("school,leerlingid,eckid,naam\n"),
            401,
            Some(("www-authenticate", "Bearer")),
        ),
        (
            "admin roster that does not parse",
            http.post(format!("{base}/api/v1/admin/leerlingen"))
                .bearer_auth(ADMIN_TOKEN)
                .body("dit is geen roster"),
            422,
            None,
        ),
        (
            "admin answers POST only",
            http.get(format!("{base}/api/v1/admin/leerlingen")),
            405,
            Some(("allow", "POST")),
        ),
        (
            "health answers GET only",
            http.post(format!("{base}/health")),
            405,
            Some(("allow", "GET, HEAD")),
        ),
        (
            "unknown path",
            http.get(format!("{base}/bestaat-niet")),
            404,
            None,
        ),
        (
            "read API without a token (the reference style)",
            http.get(format!("{base}/api/v1/schools/99XX01/toetsafnames")),
            401,
            Some(("www-authenticate", "Bearer")),
        ),
    ];
    for (what, request, status, header) in cases {
        let (got, headers, body) = raw(request);
        assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let members: Vec<&str> = problem
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            members,
            [
                "detail",
                "instance",
                "request_id",
                "status",
                "title",
                "type"
            ],
            "{what}: {problem}"
        );
        assert_eq!(problem["status"], status, "{what}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:uwlr-gateway:problem:"),
            "{what}: {problem}"
        );
        assert_eq!(
            problem["request_id"].as_str(),
            headers["x-request-id"].to_str().ok(),
            "{what}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
        if let Some((name, value)) = header {
            let got = headers
                .get(name)
                .map(|value| value.to_str().unwrap().to_string());
            assert!(
                got.as_deref().is_some_and(|got| got.starts_with(value)),
                "{what}: {name} is {got:?}"
            );
        }
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut text)
        .expect("a gzip body");
    text
}

/// JSON answers go out gzip-compressed when the client accepts gzip, and as they are otherwise.
#[test]
fn json_answers_are_gzip_compressed_when_asked() {
    let gateway = spawn_gateway(Options::default());
    let accepted = send_and_check(
        &gateway,
        "01",
        crate::harness::read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    let url = format!(
        "{}/api/v1/receipts/{}",
        gateway.base_url,
        accepted.receipt_id.unwrap()
    );
    let receipt = || {
        gateway.http.get(&url).basic_auth(
            crate::harness::DEMO_KLANTCODE,
            Some(crate::harness::DEMO_SLEUTEL),
        )
    };
    let (status, headers, plain) = raw(receipt());
    assert_eq!(status, 200);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers["vary"], "accept-encoding");
    assert!(
        plain.len() >= 256,
        "the receipt is long enough to compress: {}",
        plain.len()
    );
    for accept in ["gzip", "br, gzip;q=0.8", "*"] {
        let (status, headers, body) = raw(receipt().header("accept-encoding", accept));
        assert_eq!(status, 200, "{accept}");
        assert_eq!(headers["content-encoding"], "gzip", "{accept}");
        assert!(body.len() < plain.len(), "{accept}");
        assert_eq!(gunzip(&body), plain, "{accept}");
    }
    for accept in ["identity", "gzip;q=0", "br"] {
        let (_, headers, body) = raw(receipt().header("accept-encoding", accept));
        assert!(headers.get("content-encoding").is_none(), "{accept}");
        assert_eq!(body, plain, "{accept}");
    }
    // The read API's documents too (the OpenAPI document is long).
    let (status, headers, body) = raw(gateway
        .http
        .get(format!("{}/api/v1/openapi.json", gateway.base_url))
        .header("accept-encoding", "gzip"));
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    let document: serde_json::Value = serde_json::from_slice(&gunzip(&body)).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
}
