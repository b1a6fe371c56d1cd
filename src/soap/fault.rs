//! The one place where outcomes and errors become HTTP answers: SOAP 1.1 faults, the bevestiging, 4xx.

use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::uwlr::NS_LEERRESULTATEN;
use hyper::StatusCode;
use quick_xml::escape::escape;

/// Namespace of our fault detail (rule codes, positions, Edu-V codes).
pub const NS_DETAIL: &str = "urn:uwlr-gateway:fault:1";

/// An answer ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    pub receipt_id: Option<String>,
}

/// Requests refused before any SOAP processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
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
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// The bevestiging: the (empty) `leerresultaten_bevestiging` the WSDL defines.
pub fn bevestiging(receipt_id: &str) -> Reply {
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

fn text_element(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("<gw:{name}>{}</gw:{name}>", escape(value)));
}

fn violation_xml(out: &mut String, violation: &Violation) {
    out.push_str("<gw:violation>");
    text_element(out, "rule", violation.rule.code());
    text_element(out, "eduvCode", violation.rule.eduv_code());
    if let Some(line) = violation.line {
        text_element(out, "line", &line.to_string());
    }
    if let Some(column) = violation.column {
        text_element(out, "column", &column.to_string());
    }
    if let Some(path) = &violation.path {
        text_element(out, "path", path);
    }
    if let Some(value) = &violation.value {
        text_element(out, "value", value);
    }
    text_element(out, "message", &violation.message);
    out.push_str("</gw:violation>");
}

/// A SOAP 1.1 fault (section 4.4) naming every violation. The faultcode is the
/// UWLR code of the leading rule, qualified with the SOAP envelope namespace as
/// SOAP 1.1's dotted `Client.*` extension codes are.
pub fn fault(violations: &Violations, receipt_id: Option<&str>, status: StatusCode) -> Reply {
    let rule = violations.leading_rule();
    let faultstring = summary(violations);
    let mut detail = String::new();
    detail.push_str(&format!(
        "<gw:violations xmlns:gw=\"{NS_DETAIL}\" count=\"{}\">",
        violations.total()
    ));
    if let Some(receipt_id) = receipt_id {
        text_element(&mut detail, "receiptId", receipt_id);
    }
    for violation in &violations.items {
        violation_xml(&mut detail, violation);
    }
    if violations.omitted > 0 {
        text_element(&mut detail, "omitted", &violations.omitted.to_string());
    }
    detail.push_str("</gw:violations>");
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
pub fn rejected(violations: &Violations, receipt_id: Option<&str>) -> Reply {
    fault(violations, receipt_id, StatusCode::INTERNAL_SERVER_ERROR)
}

/// Our own failure; the cause is logged where the reply is sent, not shown.
pub fn internal(request_id: &str) -> Reply {
    let violations = Violations::single(Violation::new(
        Rule::Intern,
        format!(
            "internal error; quote request id {request_id} to the operator; nothing was stored"
        ),
    ));
    fault(&violations, None, StatusCode::INTERNAL_SERVER_ERROR)
}

/// Requests refused before SOAP processing: 4xx, with a SOAP fault where the client spoke SOAP.
pub fn refusal(refusal: &Refusal) -> Reply {
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
pub fn intake_failed(error: &crate::intake::IntakeError, request_id: &str) -> Reply {
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
