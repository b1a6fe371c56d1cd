//! SOAP 1.1 header blocks (issue 13, section 4.2.3): mustUnderstand, actors, and blocks the gateway does not know.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{self, check, count, Expect};

/// A valid demo message (number `sequence`) with `block` placed in the SOAP Header before autorisatie.
fn with_header_block(sequence: u32, block: &str) -> Vec<u8> {
    let text = String::from_utf8(
        Message::demo(&aanmaakdatum(sequence))
            .afname(
                "LL0001",
                vec![Resultaat::score(&format!("HDR-{sequence}"), "HDR-T", 3)],
            )
            .toets(Toets::new("HDR-T"))
            .envelope(),
    )
    .expect("UTF-8");
    let header = "<soapenv:Header>\n";
    assert!(text.contains(header));
    text.replacen(
        header,
        &format!("<soapenv:Header xmlns:x=\"urn:example:x\">\n{block}\n"),
        1,
    )
    .into_bytes()
}

fn stored(gateway: &harness::Gateway, sequence: u32) -> i64 {
    count(
        &gateway.db(),
        &format!("SELECT count(*) FROM toetsafnames WHERE afname_key = 'HDR-{sequence}'"),
    )
}

#[test]
fn an_unknown_header_block_with_must_understand_gets_a_must_understand_fault() {
    let gateway = harness::spawn_default();
    for (sequence, block) in [
        (
            1,
            r#"<x:transactie soapenv:mustUnderstand="1"><x:id>1</x:id></x:transactie>"#,
        ),
        (
            2,
            r#"<x:transactie soapenv:mustUnderstand="1" soapenv:actor="http://schemas.xmlsoap.org/soap/actor/next"/>"#,
        ),
    ] {
        let reply = gateway.post(with_header_block(sequence, block));
        check(
            block,
            &reply,
            &Expect::fault("MustUnderstand", &["UWLR-MUSTUNDERSTAND"]),
        );
        let fault = harness::fault_of(&reply);
        assert!(
            fault.faultstring.contains("{urn:example:x}transactie"),
            "the fault names the block: {}",
            fault.faultstring
        );
        assert_eq!(stored(&gateway, sequence), 0, "{block}: nothing is stored");
    }
}

#[test]
fn must_understand_on_autorisatie_is_accepted() {
    let gateway = harness::spawn_default();
    let text = String::from_utf8(with_header_block(1, "")).expect("UTF-8");
    let body = text.replacen(
        "<aut:autorisatie ",
        "<aut:autorisatie soapenv:mustUnderstand=\"1\" ",
        1,
    );
    assert!(body.contains("mustUnderstand"));
    check("autorisatie", &gateway.post(body), &Expect::Accepted);
    assert_eq!(stored(&gateway, 1), 1);
}

#[test]
fn unknown_header_blocks_without_must_understand_or_for_another_actor_are_ignored() {
    let gateway = harness::spawn_default();
    for (sequence, block) in [
        (1, r#"<x:transactie><x:id>1</x:id></x:transactie>"#),
        (2, r#"<x:transactie soapenv:mustUnderstand="0"/>"#),
        (
            3,
            r#"<x:transactie soapenv:mustUnderstand="1" soapenv:actor="urn:example:tussenstation"/>"#,
        ),
        // Unqualified, it is not SOAP's attribute.
        (4, r#"<x:transactie mustUnderstand="1"/>"#),
    ] {
        let reply = gateway.post(with_header_block(sequence, block));
        check(block, &reply, &Expect::Accepted);
        assert_eq!(stored(&gateway, sequence), 1, "{block}");
    }
}

#[test]
fn validate_reports_an_unknown_header_block_with_must_understand() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = "samples/53-uwlr-mustunderstand-onbekende-header.xml";
    let output = harness::cli_with_data_dir(scratch.path(), &["validate", file]);
    assert!(!output.status.success(), "{}", output.stdout);
    assert!(
        output.stdout.contains(&format!(
            "{file}:3:81: UWLR-MUSTUNDERSTAND header block {{urn:example:transactie}}transactie"
        )),
        "{}",
        output.stdout
    );
}
