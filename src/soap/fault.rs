//! The one place where outcomes and errors become HTTP answers: SOAP 1.1 faults, the bevestiging, 4xx.

use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::uwlr::NS_LEERRESULTATEN;
use hyper::StatusCode;
use quick_xml::escape::escape;
use yaserde::{YaDeserialize, YaSerialize};

/// An answer ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    pub(crate) receipt_id: Option<String>,
}

/// Requests refused before any SOAP processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not GET or POST on a known path.
    MethodNotAllowed,
    NotFound,
    /// A Content-Type that cannot be SOAP 1.1.
    UnsupportedMediaType(String),
    /// The body exceeds the configured limit (bytes).
    TooLarge(u64),
    /// The SOAPAction names an operation we do not offer.
    UnknownAction(String),
    /// The body did not arrive in time or the connection broke mid-body.
    IncompleteBody(String),
    /// A budget is spent (connections or spool space, per address or in total);
    /// the reason says which. Not the sender's fault, and not ours: try again later.
    Busy(String),
}

/// Seconds a sender is asked to wait after a `Busy` refusal (the `Retry-After` header).
pub(crate) const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The bevestiging: the (empty) `leerresultaten_bevestiging` the WSDL defines.
pub(crate) fn bevestiging(receipt_id: &str) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "text/xml; charset=utf-8",
        body: format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">",
                "<soap:Body><leerresultaten_bevestiging xmlns=\"{}\"/></soap:Body></soap:Envelope>\n"
            ),
            NS_LEERRESULTATEN
        ),
        receipt_id: Some(receipt_id.to_string()),
    }
}

/// Our fault detail (`gw:violations` in `urn:uwlr-gateway:fault:1`): every violation, the receipt that
/// records the refusal, and how many violations were left out over the cap.
#[derive(Debug, Default, PartialEq, YaSerialize, YaDeserialize)]
#[yaserde(
    rename = "violations",
    prefix = "gw",
    namespaces = { "gw" = "urn:uwlr-gateway:fault:1" }
)]
pub(crate) struct FaultDetail {
    #[yaserde(attribute = true)]
    pub(crate) count: u64,
    #[yaserde(prefix = "gw", rename = "receiptId")]
    pub(crate) receipt_id: Option<String>,
    #[yaserde(prefix = "gw")]
    pub(crate) violation: Vec<ViolationDetail>,
    #[yaserde(prefix = "gw")]
    pub(crate) omitted: Option<u64>,
}

/// One violation in the detail: the rule, its Edu-V code, where and what, and the message.
#[derive(Debug, Default, PartialEq, YaSerialize, YaDeserialize)]
#[yaserde(prefix = "gw", namespaces = { "gw" = "urn:uwlr-gateway:fault:1" })]
pub(crate) struct ViolationDetail {
    #[yaserde(prefix = "gw")]
    pub(crate) rule: String,
    #[yaserde(prefix = "gw", rename = "eduvCode")]
    pub(crate) eduv_code: String,
    #[yaserde(prefix = "gw")]
    pub(crate) line: Option<u64>,
    #[yaserde(prefix = "gw")]
    pub(crate) column: Option<u64>,
    #[yaserde(prefix = "gw")]
    pub(crate) path: Option<String>,
    #[yaserde(prefix = "gw")]
    pub(crate) value: Option<String>,
    #[yaserde(prefix = "gw")]
    pub(crate) message: String,
}

impl FaultDetail {
    fn new(violations: &Violations, receipt_id: Option<&str>) -> FaultDetail {
        FaultDetail {
            count: violations.total(),
            receipt_id: receipt_id.map(str::to_string),
            violation: violations
                .items
                .iter()
                .map(|violation| ViolationDetail {
                    rule: violation.rule.code().to_string(),
                    eduv_code: violation.rule.eduv_code().to_string(),
                    line: violation.line,
                    column: violation.column,
                    path: violation.path.clone(),
                    value: violation.value.clone(),
                    message: violation.message.clone(),
                })
                .collect(),
            omitted: (violations.omitted > 0).then_some(violations.omitted),
        }
    }

    /// The detail as an XML fragment (no declaration) for the fault's `detail` element.
    fn to_xml(&self) -> String {
        let config = yaserde::ser::Config {
            perform_indent: false,
            write_document_declaration: false,
            indent_string: None,
        };
        yaserde::ser::to_string_with_config(self, &config)
            .expect("a fault detail always serialises")
    }
}

/// A SOAP 1.1 fault (section 4.4) naming every violation. The faultcode is the
/// UWLR code of the leading rule, qualified with the SOAP envelope namespace as
/// SOAP 1.1's dotted `Client.*` extension codes are.
pub(crate) fn fault(
    violations: &Violations,
    receipt_id: Option<&str>,
    status: StatusCode,
) -> Reply {
    let rule = violations.leading_rule();
    let faultstring = summary(violations);
    let detail = FaultDetail::new(violations, receipt_id).to_xml();
    Reply {
        status,
        content_type: "text/xml; charset=utf-8",
        body: format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault>",
                "<faultcode>soap:{}</faultcode><faultstring>{}</faultstring>",
                "<detail>{}</detail></soap:Fault></soap:Body></soap:Envelope>\n"
            ),
            rule.faultcode(),
            escape(&faultstring),
            detail
        ),
        receipt_id: receipt_id.map(str::to_string),
    }
}

/// The faultstring: the UWLR text of the leading rule, then how many problems and the first one.
fn summary(violations: &Violations) -> String {
    let rule = violations.leading_rule();
    let first = violations
        .items
        .iter()
        .find(|violation| violation.rule == rule)
        .map(|violation| violation.message.as_str())
        .unwrap_or("");
    match violations.total() {
        0 | 1 => format!("{}: {first}", rule.faultstring()),
        total => format!(
            "{}: {first} (en nog {} andere fouten, zie detail)",
            rule.faultstring(),
            total - 1
        ),
    }
}

/// A rejected message: HTTP 500 as SOAP 1.1 prescribes for faults.
pub(crate) fn rejected(violations: &Violations, receipt_id: Option<&str>) -> Reply {
    fault(violations, receipt_id, StatusCode::INTERNAL_SERVER_ERROR)
}

/// Our own failure; the cause is logged where the reply is sent, not shown.
pub(crate) fn internal(request_id: &str) -> Reply {
    let violations = Violations::single(Violation::new(
        Rule::Intern,
        format!(
            "internal error; quote request id {request_id} to the operator; nothing was stored"
        ),
    ));
    fault(&violations, None, StatusCode::INTERNAL_SERVER_ERROR)
}

/// Requests refused before SOAP processing: 4xx, with a SOAP fault where the client spoke SOAP.
pub(crate) fn refusal(refusal: &Refusal) -> Reply {
    let plain = |status: StatusCode, text: String| Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: text + "\n",
        receipt_id: None,
    };
    match refusal {
        Refusal::MethodNotAllowed => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST for SOAP calls and GET for ?wsdl, ?xsd=NAME and /health".into(),
        ),
        Refusal::NotFound => plain(StatusCode::NOT_FOUND, "no such resource".into()),
        Refusal::UnsupportedMediaType(content_type) => plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type '{content_type}' is not SOAP 1.1; send text/xml; charset=utf-8"),
        ),
        Refusal::TooLarge(limit) => fault(
            &Violations::single(crate::domain::rules::too_large(*limit)),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        Refusal::UnknownAction(action) => rejected(
            &Violations::single(
                Violation::new(
                    Rule::Bericht,
                    format!(
                        "unknown SOAPAction; this service offers only {}",
                        super::envelope::OPERATION
                    ),
                )
                .with_value(action),
            ),
            None,
        ),
        Refusal::Busy(reason) => Reply {
            // A SOAP fault, so SOAP clients show the reason, but HTTP 503 with Retry-After
            // (set where the reply is sent): the sender did nothing wrong and may resend as is.
            status: StatusCode::SERVICE_UNAVAILABLE,
            content_type: "text/xml; charset=utf-8",
            body: format!(
                concat!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><soap:Fault>",
                    "<faultcode>soap:Server.Bezet</faultcode><faultstring>De gateway is tijdelijk bezet: {}; probeer het over {} seconden opnieuw</faultstring>",
                    "</soap:Fault></soap:Body></soap:Envelope>\n"
                ),
                escape(reason),
                BUSY_RETRY_AFTER_SECS
            ),
            receipt_id: None,
        },
        Refusal::IncompleteBody(reason) => fault(
            &Violations::single(Violation::new(
                Rule::Bericht,
                format!("the request body is incomplete: {reason}"),
            )),
            None,
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// Our failure to handle a message: `Server.Bezet` (HTTP 503, `Retry-After`) when the store
/// stayed locked, as the same message may succeed later; otherwise `Server.InterneFout`
/// with no detail, a corrupt stored row included (its cause is logged, never shown).
pub(crate) fn intake_failed(error: &crate::intake::IntakeError, request_id: &str) -> Reply {
    match error {
        crate::intake::IntakeError::Store(store) if store.is_busy() => {
            refusal(&Refusal::Busy("the database is busy".into()))
        }
        _ => internal(request_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_every_violation_and_escapes() {
        let mut violations = Violations::default();
        violations.push(Violation::new(Rule::Score, "score <te hoog>").with_value("99"));
        violations.push(Violation::new(Rule::Xsd, "element & zo").at_line(Some(3), Some(7)));
        let reply = rejected(&violations, Some("r-1"));
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(reply
            .body
            .contains("<faultcode>soap:Client.OngeldigBericht</faultcode>"));
        assert!(reply.body.contains("UWLR-SCORE"));
        assert!(reply.body.contains("<gw:line>3</gw:line>"));
        assert!(reply.body.contains("score &lt;te hoog&gt;"));
        assert!(reply.body.contains("count=\"2\""));
        assert!(reply.body.contains("<gw:receiptId>r-1</gw:receiptId>"));
        roxmltree_like_check(&reply.body);
        // The same bytes as the hand-written detail before it was a type, and it reads back.
        let detail = concat!(
            "<detail><gw:violations xmlns:gw=\"urn:uwlr-gateway:fault:1\" count=\"2\">",
            "<gw:receiptId>r-1</gw:receiptId><gw:violation><gw:rule>UWLR-SCORE</gw:rule>",
            "<gw:eduvCode>0099</gw:eduvCode><gw:value>99</gw:value>",
            "<gw:message>score &lt;te hoog&gt;</gw:message></gw:violation><gw:violation>",
            "<gw:rule>UWLR-XSD</gw:rule><gw:eduvCode>0011</gw:eduvCode><gw:line>3</gw:line>",
            "<gw:column>7</gw:column><gw:message>element &amp; zo</gw:message></gw:violation>",
            "</gw:violations></detail>"
        );
        assert!(reply.body.contains(detail), "{}", reply.body);
        let start = reply.body.find("<gw:violations").unwrap();
        let end = reply.body.find("</detail>").unwrap();
        let read: FaultDetail = yaserde::de::from_str(&reply.body[start..end]).unwrap();
        assert_eq!(read, FaultDetail::new(&violations, Some("r-1")));
        assert_eq!(read.violation[0].message, "score <te hoog>");
    }

    /// The fault must itself be well-formed XML.
    fn roxmltree_like_check(xml: &str) {
        let mut reader = quick_xml::Reader::from_str(xml);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(error) => panic!("fault is not well-formed: {error}"),
            }
        }
    }

    #[test]
    fn refusals_have_clear_statuses() {
        assert_eq!(
            refusal(&Refusal::TooLarge(10)).status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            refusal(&Refusal::MethodNotAllowed).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            refusal(&Refusal::UnsupportedMediaType("application/json".into())).status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert!(bevestiging("r").body.contains("leerresultaten_bevestiging"));
        let busy = refusal(&Refusal::Busy("spool <vol>".into()));
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.body.contains("soap:Server.Bezet"));
        assert!(busy.body.contains("spool &lt;vol&gt;"));
        roxmltree_like_check(&busy.body);
    }
}
