//! The head scan: a message read up to its school block (root, header blocks, the Body's element, the school), in one copy that the intake, offline `validate` and the fuzz targets all run.

use crate::domain::Violation;
use crate::soap::envelope::{self, Framing};
use crate::uwlr::scan::{Item, Root, ScanError, Scanner};
use crate::uwlr::xmltree::Node;
use std::io::BufRead;

/// Header blocks kept for the autorisatie lookup; more are skipped (a header is small).
const MAX_HEADERS: usize = 16;

/// Blocks not understood that are reported; the first one already refuses the message.
const MAX_NOT_UNDERSTOOD: usize = 16;

/// What the head of a message holds, as far as the scan got.
#[derive(Default)]
pub(crate) struct Head {
    pub(crate) root: Option<Root>,
    /// Where the root element starts, to place a violation about it.
    pub(crate) root_offset: Option<u64>,
    /// The autorisatie header blocks (at most `MAX_HEADERS`).
    pub(crate) headers: Vec<Node>,
    /// One violation per header block with mustUnderstand that the gateway does not know.
    pub(crate) not_understood: Vec<Violation>,
    pub(crate) body_element: Option<BodyElement>,
    pub(crate) school: Option<Node>,
    /// Why the scan stopped before the school block, when the XML broke off.
    pub(crate) error: Option<ScanError>,
}

/// The first child of soap:Body.
pub(crate) struct BodyElement {
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
    pub(crate) offset: u64,
}

impl Head {
    /// The root and Body checks under `framing`: the violation, placed at the Body's
    /// element or the root, when the message is not one the framing accepts.
    pub(crate) fn root_violation(&self, framing: Framing) -> Option<Violation> {
        let body_element = self
            .body_element
            .as_ref()
            .map(|element| (&element.namespace, element.name.as_str()));
        let violation = envelope::check_root(self.root.as_ref(), body_element, framing).err()?;
        let offset = self
            .body_element
            .as_ref()
            .map(|element| element.offset)
            .or(self.root_offset);
        Some(match offset {
            Some(offset) => violation.at_offset(offset),
            None => violation,
        })
    }
}

/// Reads up to and including the school block. It stops early at a root or a Body
/// element that `framing` refuses (whatever follows cannot change the answer), and at
/// broken XML; the scanner is left just after the school block for the caller's next pass.
pub(crate) fn scan_head<R: BufRead>(scanner: &mut Scanner<R>, framing: Framing) -> Head {
    let mut head = Head::default();
    loop {
        match scanner.next() {
            Ok(Some(Item::Root(root))) => {
                let refused = match root {
                    Root::Soap11Envelope => false,
                    Root::Verzoek => framing == Framing::SoapOnly,
                    Root::Soap12Envelope | Root::Other { .. } => true,
                };
                head.root = Some(root);
                head.root_offset = scanner.root_offset();
                if refused {
                    break;
                }
            }
            Ok(Some(Item::HeaderElement(node))) => {
                if head.headers.len() < MAX_HEADERS {
                    head.headers.push(node);
                }
            }
            Ok(Some(Item::UnknownHeader {
                namespace,
                name,
                must_understand: true,
                offset,
            })) => {
                if head.not_understood.len() < MAX_NOT_UNDERSTOOD {
                    head.not_understood.push(
                        envelope::not_understood(namespace.as_deref(), &name).at_offset(offset),
                    );
                }
            }
            Ok(Some(Item::BodyElement {
                namespace,
                name,
                offset,
            })) => {
                let refused = namespace.as_deref() != Some(crate::uwlr::NS_LEERRESULTATEN)
                    || name != envelope::BODY_ELEMENT;
                head.body_element = Some(BodyElement {
                    namespace,
                    name,
                    offset,
                });
                if refused {
                    break;
                }
            }
            Ok(Some(Item::School(node))) => {
                head.school = Some(node);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                head.error = Some(error);
                break;
            }
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwlr::scan::Pass;

    const ENVELOPE: &str = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:L="http://www.edustandaard.nl/leerresultaten/2/leerresultaten"><S:Body><L:leerresultaten_verzoek><L:school><L:schooljaar>2026-2027</L:schooljaar></L:school></L:leerresultaten_verzoek></S:Body></S:Envelope>"#;
    const BARE: &str = r#"<L:leerresultaten_verzoek xmlns:L="http://www.edustandaard.nl/leerresultaten/2/leerresultaten"><L:school><L:schooljaar>2026-2027</L:schooljaar></L:school></L:leerresultaten_verzoek>"#;

    /// Whether the head scan reached the school block, and the offset of the root violation
    /// (offsets are where a start tag ends).
    fn check(xml: &str, framing: Framing, expected: (bool, Option<u64>)) {
        let mut scanner = Scanner::new(xml.as_bytes(), Pass::SkipToetsafnames);
        let head = scan_head(&mut scanner, framing);
        let violation = head.root_violation(framing);
        assert_eq!(
            (
                head.school.is_some(),
                violation.map(|violation| violation.offset.unwrap_or(u64::MAX))
            ),
            expected,
            "{xml}"
        );
    }

    #[test]
    fn the_head_ends_at_the_school_or_where_the_framing_refuses_the_message() {
        check(ENVELOPE, Framing::SoapOnly, (true, None));
        check(ENVELOPE, Framing::SoapOrBare, (true, None));
        // A bare verzoek: refused at its root by the gateway, read on by `validate`.
        let root_end = BARE.find('>').unwrap() as u64 + 1;
        check(BARE, Framing::SoapOnly, (false, Some(root_end)));
        check(BARE, Framing::SoapOrBare, (true, None));
        // Another operation in the Body: placed where that element's start tag ends.
        let other = ENVELOPE.replace("leerresultaten_verzoek", "iets_anders");
        let offset = (other.find("<L:iets_anders>").unwrap() + "<L:iets_anders>".len()) as u64;
        check(&other, Framing::SoapOnly, (false, Some(offset)));
    }
}
