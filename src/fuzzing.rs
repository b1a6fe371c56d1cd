//! The bodies of the fuzz targets in fuzz/, shared with the regression test that replays every input they ever crashed on.
//!
//! Each function must never panic, whatever the bytes; they return nothing because
//! only a panic, a hang or a sanitizer report is a finding.

use crate::body::Body;
use crate::domain::rules::{self, UnknownVocabularies};
use crate::domain::SchoolCode;
use crate::soap::envelope::{self, Framing};
use crate::uwlr::scan::{Item, Pass, Root, Scanner};
use crate::uwlr::{Resultaat, School, Toets, ToetsafnameHead};
use crate::vdex::{self, Vocabularies};
use std::sync::OnceLock;

/// The envelope and header pass: the scanner up to the school block, the root and
/// Body checks, the autorisatie header and SOAPAction parsing.
pub fn envelope(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = envelope::soap_action_operation(text);
    }
    let body = Body::Memory(bytes::Bytes::copy_from_slice(data));
    let Ok(reader) = body.reader() else { return };
    let mut scanner = Scanner::new(reader, Pass::SkipToetsafnames);
    let mut root: Option<Root> = None;
    let mut headers = Vec::new();
    let mut body_element = None;
    loop {
        match scanner.next() {
            Ok(Some(Item::Root(found))) => root = Some(found),
            Ok(Some(Item::HeaderElement(node))) => {
                if headers.len() < 16 {
                    headers.push(node);
                }
            }
            Ok(Some(Item::BodyElement {
                namespace, name, ..
            })) => body_element = Some((namespace, name)),
            Ok(Some(Item::School(_))) | Ok(None) | Err(_) => break,
            Ok(Some(_)) => {}
        }
    }
    let body_element = body_element
        .as_ref()
        .map(|(namespace, name)| (namespace, name.as_str()));
    let _ = envelope::check_root(root.as_ref(), body_element, Framing::SoapOnly);
    let _ = envelope::check_root(root.as_ref(), body_element, Framing::SoapOrBare);
    let _ = envelope::autorisatie(&headers);
}

fn embedded_vocabularies() -> &'static Vocabularies {
    static VOCABULARIES: OnceLock<Vocabularies> = OnceLock::new();
    VOCABULARIES.get_or_init(|| Vocabularies::load(None).expect("embedded vocabularies"))
}

/// The message model: every item of a full scanner pass becomes a wire type, and
/// the store-free rules run on it.
pub fn message(data: &[u8]) {
    let vocabularies = embedded_vocabularies();
    let body = Body::Memory(bytes::Bytes::copy_from_slice(data));
    let Ok(reader) = body.reader() else { return };
    let mut scanner = Scanner::new(reader, Pass::Everything);
    let mut unknown = UnknownVocabularies::new();
    let mut toetsen: Vec<Toets> = Vec::new();
    let mut resultaten: Vec<Resultaat> = Vec::new();
    let mut head = ToetsafnameHead::default();
    for _ in 0..100_000 {
        match scanner.next() {
            Ok(Some(Item::School(node))) => {
                let school = School::from_node(&node);
                let _ = rules::check_xsdversie(&school, &["2.2".to_string()]);
                let _ = rules::read_aanmaakdatum(&school);
                let _ = SchoolCode::from_parts(
                    school.brincode.as_deref(),
                    school.dependancecode.as_deref(),
                    school.schoolkey.as_deref(),
                );
            }
            Ok(Some(Item::ToetsafnameStart { .. })) => head = ToetsafnameHead::default(),
            Ok(Some(Item::AfnameField(node))) => head.set_field(&node),
            Ok(Some(Item::Resultaat(node))) => {
                let _ = node.to_json();
                if resultaten.len() < 1000 {
                    resultaten.push(Resultaat::from_node(&node));
                }
            }
            Ok(Some(Item::Toets(node))) => {
                let toets = Toets::from_node(&node);
                let _ = rules::check_toets(&toets, vocabularies, &mut unknown);
                if toetsen.len() < 1000 {
                    toetsen.push(toets);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = rules::check_toetsen_identity(&toetsen);
    for resultaat in &resultaten {
        if let Some(definition) = toetsen
            .iter()
            .find(|toets| toets.toetscode.waarde == resultaat.toetscode)
        {
            let _ = rules::check_resultaat(
                &head.leerlingid,
                resultaat,
                definition,
                vocabularies,
                &mut unknown,
            );
        }
    }
}

/// The VDEX loader on an arbitrary document.
pub fn vdex(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vocabulary) = vdex::parse("fuzz.vdex", text) {
        let identifier = vocabulary.identifier.clone();
        let mut vocabularies = Vocabularies::default();
        vocabularies.add(vocabulary);
        let _ = vocabularies.check(Some(&identifier), "term");
    }
}
