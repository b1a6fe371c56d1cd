//! SOAP 1.1 answers as tests state them: accepted, or which fault with which rule codes.

use super::client::Reply;
use super::gateway::Gateway;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::NsReader;
use std::collections::BTreeSet;

pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_LEERRESULTATEN: &str = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
pub const NS_DETAIL: &str = "urn:uwlr-gateway:fault:1";

/// The outcome of a SOAP call, as a test states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// HTTP 200 with a `leerresultaten_bevestiging`.
    Accepted,
    /// HTTP 500 with a SOAP 1.1 fault: faultcode (local part, in the SOAP envelope
    /// namespace) and the exact set of rule codes in the detail.
    Fault {
        faultcode: String,
        rules: BTreeSet<String>,
    },
}

impl Expect {
    pub fn fault(faultcode: &str, rules: &[&str]) -> Expect {
        Expect::Fault {
            faultcode: faultcode.to_string(),
            rules: rules.iter().map(|rule| rule.to_string()).collect(),
        }
    }
}

/// A parsed SOAP 1.1 fault.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    /// Namespace the faultcode's prefix is bound to.
    pub code_namespace: Option<String>,
    /// The faultcode's local part, e.g. `Client.OngeldigBericht`.
    pub code: String,
    pub faultstring: String,
    /// Rule codes in the detail, in order, with duplicates.
    pub rules: Vec<String>,
    pub receipt_id: Option<String>,
}

impl Fault {
    pub fn rule_set(&self) -> BTreeSet<String> {
        self.rules.iter().cloned().collect()
    }
}

/// An element's (namespace, local name).
type Name = (String, String);

/// Reads a SOAP 1.1 envelope: the Body's first element (namespace, local name), and the fault if that is one.
pub fn parse_envelope(xml: &str) -> Result<(Option<Name>, Option<Fault>), String> {
    let mut reader = NsReader::from_str(xml);
    let mut path: Vec<(String, String)> = Vec::new();
    let mut body_child: Option<(String, String)> = None;
    let mut fault: Option<Fault> = None;
    loop {
        let (resolve, event) = reader
            .read_resolved_event()
            .map_err(|error| error.to_string())?;
        let namespace = match resolve {
            ResolveResult::Bound(Namespace(ns)) => String::from_utf8_lossy(ns).into_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let in_body = path.len() == 2
                    && path[0] == (NS_SOAP11.to_string(), "Envelope".to_string())
                    && path[1] == (NS_SOAP11.to_string(), "Body".to_string());
                if in_body && body_child.is_none() {
                    body_child = Some((namespace.clone(), local.clone()));
                    if namespace == NS_SOAP11 && local == "Fault" {
                        fault = Some(Fault::default());
                    }
                }
                if matches!(event, Event::Start(_)) {
                    path.push((namespace, local));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let Some(fault) = fault.as_mut() else {
                    continue;
                };
                let Some((element_ns, element)) = path.last() else {
                    continue;
                };
                let value = text
                    .unescape()
                    .map_err(|error| error.to_string())?
                    .trim()
                    .to_string();
                let in_fault =
                    path.len() == 4 && path[2] == (NS_SOAP11.to_string(), "Fault".to_string());
                match (element_ns.as_str(), element.as_str()) {
                    ("", "faultcode") if in_fault => {
                        let (resolved, local) = reader.resolve_element(QName(value.as_bytes()));
                        fault.code_namespace = match resolved {
                            ResolveResult::Bound(Namespace(ns)) => {
                                Some(String::from_utf8_lossy(ns).into_owned())
                            }
                            _ => None,
                        };
                        fault.code = String::from_utf8_lossy(local.as_ref()).into_owned();
                    }
                    ("", "faultstring") if in_fault => fault.faultstring = value,
                    (NS_DETAIL, "rule") => fault.rules.push(value),
                    (NS_DETAIL, "receiptId") => fault.receipt_id = Some(value),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if body_child.is_none() {
        return Err("no SOAP 1.1 Body element".into());
    }
    Ok((body_child, fault))
}

/// Tells what a reply says: accepted, or which fault. Fails on anything else
/// (another status, a 200 without bevestiging, a 500 without a SOAP 1.1 fault).
pub fn outcome(reply: &Reply) -> Expect {
    let (body_child, fault) = parse_envelope(&reply.body).unwrap_or_else(|error| {
        panic!(
            "answer is not XML ({error}): HTTP {} {}",
            reply.status, reply.body
        )
    });
    match reply.status {
        200 => {
            assert_eq!(
                body_child,
                Some((
                    NS_LEERRESULTATEN.to_string(),
                    "leerresultaten_bevestiging".to_string()
                )),
                "HTTP 200 without a leerresultaten_bevestiging: {}",
                reply.body
            );
            Expect::Accepted
        }
        500 => {
            let fault =
                fault.unwrap_or_else(|| panic!("HTTP 500 without a SOAP fault: {}", reply.body));
            assert_eq!(
                fault.code_namespace.as_deref(),
                Some(NS_SOAP11),
                "faultcode not qualified with the SOAP 1.1 namespace: {}",
                reply.body
            );
            Expect::Fault {
                faultcode: fault.code.clone(),
                rules: fault.rule_set(),
            }
        }
        other => panic!(
            "a SOAP call must be answered with 200 or 500, got {other}: {}",
            reply.body
        ),
    }
}

/// The fault in a reply; fails if there is none.
pub fn fault_of(reply: &Reply) -> Fault {
    parse_envelope(&reply.body)
        .ok()
        .and_then(|(_, fault)| fault)
        .unwrap_or_else(|| panic!("no SOAP fault in HTTP {}: {}", reply.status, reply.body))
}

/// Checks a reply against its expected outcome; `context` names the case.
#[track_caller]
pub fn check(context: &str, reply: &Reply, expected: &Expect) {
    let actual = outcome(reply);
    assert_eq!(
        &actual, expected,
        "{context}: HTTP {}\n{}",
        reply.status, reply.body
    );
    if let Expect::Accepted = expected {
        assert!(
            reply.receipt_id.is_some(),
            "{context}: an accepted message gets an X-Receipt-Id"
        );
    }
}

/// Sends and checks in one step; returns the reply for further checks.
#[track_caller]
pub fn send_and_check(
    gateway: &Gateway,
    context: &str,
    body: impl Into<Vec<u8>>,
    expected: &Expect,
) -> Reply {
    let reply = gateway.post(body);
    check(context, &reply, expected);
    reply
}
