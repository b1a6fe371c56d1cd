//! HTTP edges: WSDL and XSDs, health, refusals (415, 405, 404, 413), empty bodies, unknown operations, the receipts API.

use crate::harness::{
    check, fault_of, read_sample, send_and_check, spawn_default, spawn_gateway, Expect, Options,
    DEMO_KLANTCODE, DEMO_SLEUTEL,
};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::{BTreeSet, VecDeque};

/// Every value of `attribute` on elements named `local` (any prefix).
fn attribute_values(xml: &str, local: &str, attribute: &str) -> Vec<String> {
    let mut reader = Reader::from_str(xml);
    let mut values = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(element) | Event::Empty(element)
                if element.local_name().as_ref() == local.as_bytes() =>
            {
                for found in element.attributes().flatten() {
                    if found.key.local_name().as_ref() == attribute.as_bytes() {
                        values.push(found.unescape_value().unwrap().into_owned());
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    values
}

#[test]
fn wsdl_points_at_this_gateway_and_its_imports_resolve() {
    let gateway = spawn_default();
    let wsdl = gateway.get("/uwlr/leerresultaten?wsdl");
    assert_eq!(wsdl.status, 200);
    assert!(
        wsdl.content_type.starts_with("text/xml"),
        "{}",
        wsdl.content_type
    );
    assert_eq!(
        attribute_values(&wsdl.body, "address", "location"),
        std::slice::from_ref(&gateway.endpoint)
    );
    assert!(wsdl.body.contains("soapAction=\"BrengLeerresultaten\""));

    // Follow every schemaLocation, from the WSDL through the XSDs, over HTTP.
    let prefix = format!("{}?xsd=", gateway.endpoint);
    let mut queue: VecDeque<String> =
        attribute_values(&wsdl.body, "import", "schemaLocation").into();
    assert!(!queue.is_empty(), "the WSDL imports its schemas");
    let mut fetched = BTreeSet::new();
    while let Some(location) = queue.pop_front() {
        assert!(
            location.starts_with(&prefix),
            "{location} does not point at ?xsd= of this gateway"
        );
        if !fetched.insert(location.clone()) {
            continue;
        }
        let xsd = gateway.send(gateway.http.get(&location));
        assert_eq!(xsd.status, 200, "{location}");
        assert!(
            xsd.content_type.starts_with("text/xml"),
            "{location}: {}",
            xsd.content_type
        );
        assert!(
            !attribute_values(&xsd.body, "schema", "targetNamespace").is_empty(),
            "{location} is not an XSD"
        );
        for nested in ["import", "include"] {
            queue.extend(attribute_values(&xsd.body, nested, "schemaLocation"));
        }
    }
    let names: BTreeSet<&str> = fetched
        .iter()
        .map(|location| &location[prefix.len()..])
        .collect();
    for name in [
        "UWLR_Leerresultaten_v2p2.xsd",
        "UWLR_Autorisatie_v2p2.xsd",
        "Overstapdossier_1.2_20150302.xsd",
    ] {
        assert!(
            names.contains(name),
            "{name} not reachable from the WSDL: {names:?}"
        );
    }
    assert_eq!(
        gateway
            .get("/uwlr/leerresultaten?xsd=bestaat-niet.xsd")
            .status,
        404
    );
    assert_eq!(
        gateway.get("/uwlr/leerresultaten?xsd=../Cargo.toml").status,
        404
    );
}

#[test]
fn wsdl_uses_the_public_url_when_configured() {
    let gateway =
        spawn_gateway(Options::default().env("UWLR_PUBLIC_URL", "https://uwlr.example.nl/"));
    let wsdl = gateway.get("/uwlr/leerresultaten?wsdl");
    assert_eq!(
        attribute_values(&wsdl.body, "address", "location"),
        ["https://uwlr.example.nl/uwlr/leerresultaten"]
    );
    for location in attribute_values(&wsdl.body, "import", "schemaLocation") {
        assert!(
            location.starts_with("https://uwlr.example.nl/uwlr/leerresultaten?xsd="),
            "{location}"
        );
    }
}

#[test]
fn health_answers() {
    let gateway = spawn_default();
    let health = gateway.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(gateway.get("/bestaat-niet").status, 404);
}

/// Issue 16 finding 9: `/health` showed the receipt count (and the endpoint) to anyone.
#[test]
fn issue16_health_shows_only_liveness_and_version() {
    let gateway = spawn_default();
    send_and_check(
        &gateway,
        "a message",
        read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    let health = gateway.get("/health").json();
    // Liveness, version and the build's commit (issue 14); no counts, addresses or settings.
    let fields: Vec<&str> = health
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["commit", "status", "version"], "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn non_soap_requests_get_4xx() {
    let gateway = spawn_default();
    let sample = read_sample("01-drip-een-resultaat.xml");
    let json = gateway.post_with(
        sample.clone(),
        "application/json",
        Some("\"BrengLeerresultaten\""),
    );
    assert_eq!(json.status, 415, "{}", json.body);
    let none = gateway.send(gateway.http.post(&gateway.endpoint).body(sample.clone()));
    assert_eq!(none.status, 415, "no content type: {}", none.body);
    let put = gateway.send(
        gateway
            .http
            .put(&gateway.endpoint)
            .header("content-type", "text/xml")
            .body(sample.clone()),
    );
    assert_eq!(put.status, 405, "{}", put.body);
    let delete = gateway.send(gateway.http.delete(&gateway.endpoint));
    assert_eq!(delete.status, 405);
    let post_health = gateway.send(gateway.http.post(format!("{}/health", gateway.base_url)));
    assert_eq!(post_health.status, 405);
    // None of these reached the store.
    assert_eq!(
        crate::harness::count(&gateway.db(), "SELECT count(*) FROM receipts"),
        0
    );
    // The same message with the right content type (without SOAPAction, too) is fine.
    check(
        "no SOAPAction",
        &gateway.post_with(sample, "text/xml", None),
        &Expect::Accepted,
    );
}

#[test]
fn bodies_over_the_limit_get_413_with_a_fault() {
    let limit = 4096;
    let gateway = spawn_gateway(Options::default().env("UWLR_MAX_BODY_BYTES", limit.to_string()));
    let big = read_sample("03-toets-met-onderdelen.xml");
    assert!(big.len() > limit, "sample 03 must exceed the test limit");
    // Declared by Content-Length.
    let declared = gateway.post(big.clone());
    // Streamed without a length (chunked): the limit holds while spooling.
    let streamed = gateway.send(
        gateway
            .http
            .post(&gateway.endpoint)
            .header("content-type", "text/xml; charset=utf-8")
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(big))),
    );
    for (how, reply) in [("Content-Length", declared), ("chunked", streamed)] {
        assert_eq!(reply.status, 413, "{how}: {}", reply.body);
        let fault = fault_of(&reply);
        assert_eq!(fault.code, "Client.OngeldigBericht", "{how}");
        assert_eq!(fault.rules, ["UWLR-GROOTTE"], "{how}");
        assert!(
            fault.faultstring.contains(&limit.to_string()),
            "{how}: the fault names the limit: {}",
            fault.faultstring
        );
    }
    // A message under the limit still goes through.
    send_and_check(
        &gateway,
        "small message",
        read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
}

#[test]
fn empty_body_and_unknown_operations_are_faults() {
    let gateway = spawn_default();
    let bericht = Expect::fault("Client.OngeldigBericht", &["UWLR-BERICHT"]);
    send_and_check(&gateway, "empty body", Vec::new(), &bericht);
    send_and_check(&gateway, "whitespace only", b"  \n".to_vec(), &bericht);
    let sample = read_sample("01-drip-een-resultaat.xml");
    let unknown = gateway.post_with(
        sample.clone(),
        "text/xml; charset=utf-8",
        Some("\"HaalLeerlinggegevens\""),
    );
    check("unknown SOAPAction", &unknown, &bericht);
    // A Body with another operation's element.
    let text = String::from_utf8(sample)
        .unwrap()
        .replace("leerresultaten_verzoek", "leerlinggegevens_verzoek");
    send_and_check(&gateway, "unknown body element", text, &bericht);
    // Truncated XML.
    let truncated = read_sample("01-drip-een-resultaat.xml")[..600].to_vec();
    send_and_check(&gateway, "truncated", truncated, &bericht);
    assert_eq!(
        crate::harness::count(&gateway.db(), "SELECT count(*) FROM toetsafnames"),
        0
    );
}

#[test]
fn receipts_api_shows_a_client_its_own_receipts() {
    let gateway = spawn_default();
    gateway.add_client_for_demo_school(
        "EA-ANDER",
        "Andere Uitgever",
        "andere-sleutel-123",
        "DPA-ANDER",
        &[],
    );
    let own = send_and_check(
        &gateway,
        "demo client",
        read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    let own_id = own.receipt_id.unwrap();
    let rejected = send_and_check(
        &gateway,
        "rejected",
        read_sample("43-uwlr-score-boven-normering.xml"),
        &Expect::fault("Client.ScoreOngeldig", &["UWLR-SCORE"]),
    );
    let rejected_id = rejected.receipt_id.unwrap();
    let other_message =
        crate::harness::message::Message::demo(&crate::harness::message::aanmaakdatum(1))
            .client("EA-ANDER", "Andere Uitgever", "andere-sleutel-123")
            .afname(
                "LL0002",
                vec![crate::harness::message::Resultaat::score(
                    "ANDER-1", "ANDER-T", 3,
                )],
            )
            .toets(crate::harness::message::Toets::new("ANDER-T"));
    let other_id = send_and_check(
        &gateway,
        "other client",
        other_message.envelope(),
        &Expect::Accepted,
    )
    .receipt_id
    .unwrap();

    let url = |id: &str| format!("{}/api/v1/receipts/{id}", gateway.base_url);
    let as_demo = |id: &str| {
        gateway.send(
            gateway
                .http
                .get(url(id))
                .basic_auth(DEMO_KLANTCODE, Some(DEMO_SLEUTEL)),
        )
    };

    let mine = as_demo(&own_id);
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.json()["id"], own_id.as_str());
    assert_eq!(mine.json()["outcome"], "accepted");
    let mine = as_demo(&rejected_id);
    assert_eq!(mine.status, 200);
    assert_eq!(mine.json()["outcome"], "rejected");
    assert_eq!(mine.json()["violations"][0]["rule"], "UWLR-SCORE");
    assert_eq!(
        as_demo(&other_id).status,
        404,
        "another client's receipt is not shown"
    );
    assert_eq!(as_demo("bestaat-niet").status, 404);
    let theirs = gateway.send(
        gateway
            .http
            .get(url(&other_id))
            .basic_auth("EA-ANDER", Some("andere-sleutel-123")),
    );
    assert_eq!(theirs.status, 200);

    let bad_key = gateway.send(
        gateway
            .http
            .get(url(&own_id))
            .basic_auth(DEMO_KLANTCODE, Some("verkeerde-sleutel")),
    );
    assert_eq!(bad_key.status, 401, "{}", bad_key.body);
    let unknown_client = gateway.send(
        gateway
            .http
            .get(url(&own_id))
            .basic_auth("ONBEKEND", Some(DEMO_SLEUTEL)),
    );
    assert_eq!(unknown_client.status, 401);
    let anonymous = gateway.send(gateway.http.get(url(&own_id)));
    assert_eq!(anonymous.status, 401);
    assert!(!anonymous.body.contains(&own_id));
}
