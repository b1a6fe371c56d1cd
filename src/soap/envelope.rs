//! Unwraps the envelope: the right SOAP version, the operation in the Body, the `autorisatie` header.

use crate::domain::{Rule, Violation};
use crate::uwlr::scan::Root;
use crate::uwlr::xmltree::Node;
use crate::uwlr::{Autorisatie, NS_AUTORISATIE, NS_LEERRESULTATEN};

/// The one operation this service offers, as SOAPAction and as the body element.
pub(crate) const OPERATION: &str = "BrengLeerresultaten";
pub(crate) const BODY_ELEMENT: &str = "leerresultaten_verzoek";

/// Whether a bare `leerresultaten_verzoek` (no envelope) is acceptable: only offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    SoapOnly,
    SoapOrBare,
}

/// Checks the root element and the Body's first child.
// A Violation is built at most once per refused message; boxing it would only move the cost.
#[allow(clippy::result_large_err)]
pub(crate) fn check_root(
    root: Option<&Root>,
    body_element: Option<(&Option<String>, &str)>,
    framing: Framing,
) -> Result<(), Violation> {
    let fail = |message: String| Err(Violation::new(Rule::Bericht, message));
    match root {
        None => fail("the body holds no XML element".into()),
        Some(Root::Soap12Envelope) => fail(
            "this is a SOAP 1.2 envelope; the UWLR service speaks SOAP 1.1 (http://schemas.xmlsoap.org/soap/envelope/)".into(),
        ),
        Some(Root::Other { namespace, name }) => fail(format!(
            "root element {{{}}}{name} is not a SOAP 1.1 Envelope",
            namespace.as_deref().unwrap_or("")
        )),
        Some(Root::Verzoek) if framing == Framing::SoapOnly => {
            fail("a bare leerresultaten_verzoek needs a SOAP 1.1 envelope with the autorisatie header".into())
        }
        Some(Root::Verzoek) => Ok(()),
        Some(Root::Soap11Envelope) => match body_element {
            None => fail("the SOAP Body is missing or empty".into()),
            Some((namespace, name)) if namespace.as_deref() == Some(NS_LEERRESULTATEN) && name == BODY_ELEMENT => Ok(()),
            Some((namespace, name)) => fail(format!(
                "unknown operation: the Body holds {{{}}}{name}; this service offers only {OPERATION} ({{{NS_LEERRESULTATEN}}}{BODY_ELEMENT})",
                namespace.as_deref().unwrap_or("")
            )),
        },
    }
}

/// Finds and reads the `autorisatie` header; every missing part is one violation.
pub(crate) fn autorisatie(headers: &[Node]) -> Result<Autorisatie, Vec<Violation>> {
    let Some(node) = headers.iter().find(|node| {
        node.name == "autorisatie" && node.namespace.as_deref() == Some(NS_AUTORISATIE)
    }) else {
        return Err(vec![Violation::new(
            Rule::Autorisatie,
            format!("the autorisatie SOAP header ({{{NS_AUTORISATIE}}}autorisatie) is missing"),
        )
        .at_path("Header/autorisatie")]);
    };
    let (sleutel, klantcode, klantnaam) = Autorisatie::from_node(node);
    let missing = |field: &str| {
        Violation::new(Rule::Autorisatie, format!("{field} is missing or empty"))
            .at_path(format!("Header/autorisatie/{field}"))
            .at_offset(node.offset)
    };
    match (sleutel, klantcode, klantnaam) {
        (Some(autorisatiesleutel), Some(klantcode), Some(klantnaam)) => Ok(Autorisatie {
            autorisatiesleutel,
            klantcode,
            klantnaam,
        }),
        (sleutel, code, naam) => {
            let mut violations = Vec::new();
            if sleutel.is_none() {
                violations.push(missing("autorisatiesleutel"));
            }
            if code.is_none() {
                violations.push(missing("klantcode"));
            }
            if naam.is_none() {
                violations.push(missing("klantnaam"));
            }
            Err(violations)
        }
    }
}

/// A header block addressed to the gateway with `mustUnderstand="1"` that it does not
/// understand: SOAP 1.1 section 4.2.3 says the message must not be processed.
pub(crate) fn not_understood(namespace: Option<&str>, name: &str) -> Violation {
    Violation::new(
        Rule::MustUnderstand,
        format!(
            "header block {{{}}}{name} has mustUnderstand=\"1\" but this gateway understands only {{{NS_AUTORISATIE}}}autorisatie",
            namespace.unwrap_or("")
        ),
    )
    .at_path(format!("Header/{name}"))
}

/// The autorisatie header and the school block were not found in the part of the
/// message that may be read before the sender is authenticated.
pub(crate) fn identity_not_in_prefix(length: u64) -> Violation {
    Violation::new(
        Rule::Bericht,
        format!(
            "the autorisatie header and the school block were not found in the first {length} bytes; the gateway reads no more of a message before its sender is authenticated"
        ),
    )
}

/// Reads the operation from a SOAPAction header value: quoted, bare, or a URI ending in it.
/// An empty value means "see the Body", as SOAP 1.1 section 6.1.1 allows.
pub(crate) fn soap_action_operation(value: &str) -> Option<&str> {
    let value = value.trim().trim_matches('"').trim();
    if value.is_empty() {
        return None;
    }
    Some(value.rsplit(['/', '#']).next().unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_action_forms() {
        assert_eq!(
            soap_action_operation("\"BrengLeerresultaten\""),
            Some("BrengLeerresultaten")
        );
        assert_eq!(
            soap_action_operation("BrengLeerresultaten"),
            Some("BrengLeerresultaten")
        );
        assert_eq!(
            soap_action_operation("\"http://x/y#BrengLeerresultaten\""),
            Some("BrengLeerresultaten")
        );
        assert_eq!(soap_action_operation("\"\""), None);
    }

    #[test]
    fn root_checks() {
        let ns = Some(NS_LEERRESULTATEN.to_string());
        assert!(check_root(
            Some(&Root::Soap11Envelope),
            Some((&ns, BODY_ELEMENT)),
            Framing::SoapOnly
        )
        .is_ok());
        assert!(check_root(
            Some(&Root::Soap11Envelope),
            Some((&ns, "HaalLeerlingen")),
            Framing::SoapOnly
        )
        .is_err());
        assert!(check_root(Some(&Root::Soap11Envelope), None, Framing::SoapOnly).is_err());
        assert!(check_root(Some(&Root::Soap12Envelope), None, Framing::SoapOrBare).is_err());
        assert!(check_root(Some(&Root::Verzoek), None, Framing::SoapOnly).is_err());
        assert!(check_root(Some(&Root::Verzoek), None, Framing::SoapOrBare).is_ok());
    }

    #[test]
    fn missing_header_parts_are_each_named() {
        let node = Node {
            name: "autorisatie".into(),
            namespace: Some(NS_AUTORISATIE.into()),
            children: vec![Node {
                name: "klantcode".into(),
                text: "K".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let violations = autorisatie(&[node]).unwrap_err();
        assert_eq!(violations.len(), 2);
        assert!(autorisatie(&[]).is_err());
    }
}
