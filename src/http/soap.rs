//! The SOAP endpoint: a `BrengLeerresultaten` call from its headers to its answer, and the WSDL and XSDs.

use super::body::{drain, expects_continue, spool, SpoolError, Spooled};
use super::AppState;
use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::http::body::MEMORY_LIMIT;
use crate::intake::{IntakeError, Outcome};
use crate::metrics::{metrics, MessageOutcome};
use crate::soap::envelope::{soap_action_operation, OPERATION};
use crate::soap::fault::{self, Refusal, Reply};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Points the WSDL's address and imports at this gateway.
pub(crate) fn render_wsdl(endpoint_url: &str) -> String {
    replace_address(
        &rewrite_schema_locations(crate::schema::WSDL, endpoint_url),
        endpoint_url,
    )
}

fn replace_address(wsdl: &str, endpoint_url: &str) -> String {
    let marker = "address location=\"";
    let Some(start) = wsdl.find(marker).map(|index| index + marker.len()) else {
        return wsdl.to_string();
    };
    let Some(length) = wsdl[start..].find('"') else {
        return wsdl.to_string();
    };
    format!(
        "{}{}{}",
        &wsdl[..start],
        endpoint_url,
        &wsdl[start + length..]
    )
}

/// Rewrites every `schemaLocation="…/NAME.xsd"` to `ENDPOINT?xsd=NAME.xsd`, so imports resolve over HTTP.
pub(crate) fn rewrite_schema_locations(document: &str, endpoint_url: &str) -> String {
    let marker = "schemaLocation=\"";
    let mut out = String::with_capacity(document.len() + 256);
    let mut rest = document;
    while let Some(index) = rest.find(marker) {
        let start = index + marker.len();
        out.push_str(&rest[..start]);
        let Some(length) = rest[start..].find('"') else {
            rest = &rest[start..];
            break;
        };
        let location = &rest[start..start + length];
        let name = location.rsplit('/').next().unwrap_or(location);
        out.push_str(&format!("{endpoint_url}?xsd={name}"));
        rest = &rest[start + length..];
    }
    out.push_str(rest);
    out
}

pub(super) fn contract_file(state: &AppState, query: &str) -> Reply {
    let xml = |body: String| Reply {
        status: StatusCode::OK,
        content_type: "text/xml; charset=utf-8",
        body,
        receipt_id: None,
    };
    if query.eq_ignore_ascii_case("wsdl") || query.to_ascii_lowercase().starts_with("wsdl=") {
        return xml(state.wsdl.clone());
    }
    if let Some(name) = query.strip_prefix("xsd=") {
        return match crate::schema::xsd_file(name) {
            Some(contents) => xml(rewrite_schema_locations(contents, &state.endpoint_url)),
            None => fault::refusal(&Refusal::NotFound),
        };
    }
    Reply {
        status: StatusCode::OK,
        content_type: "text/plain; charset=utf-8",
        body: format!(
            "UWLR 2.2 {OPERATION} endpoint. POST SOAP 1.1 here; the WSDL is at {}?wsdl\n",
            state.endpoint_url
        ),
        receipt_id: None,
    }
}

/// Answers one `BrengLeerresultaten` call: a refusal from its headers, or its body
/// received and handed to the intake, whose outcome becomes the bevestiging or a fault.
pub(super) async fn soap_call(
    state: &AppState,
    request: Request<Incoming>,
    request_id: &str,
    peer: SocketAddr,
) -> Reply {
    let (parts, mut body) = request.into_parts();
    let call = Call {
        started: Instant::now(),
        declared: parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok()),
    };
    let drain_refused = !expects_continue(&parts.headers);
    if let Some(refusal) = refused_by_headers(&parts.headers, call.declared, state) {
        if drain_refused {
            drain(&mut body).await;
        }
        call.record(MessageOutcome::Refused, None, None, call.declared_size());
        return fault::refusal(&refusal);
    }
    let Spooled {
        received,
        spool_space,
    } = match spool(state, body, peer, drain_refused).await {
        Ok(spooled) => spooled,
        Err(error) => return call.spool_failed(error, request_id),
    };
    if received.size == 0 {
        call.record(MessageOutcome::Rejected, Some(Rule::Bericht), None, 0);
        return fault::rejected(
            &Violations::single(Violation::new(Rule::Bericht, "the request body is empty")),
            None,
        );
    }
    let size = received.size;
    let outcome = state.intake.receive(received).await;
    // The spooled file is gone once the intake has let go of the body.
    drop(spool_space);
    state
        .released_bytes
        .fetch_add(size.min(8 * MEMORY_LIMIT as u64), Ordering::Relaxed);
    call.answer(outcome, size, request_id)
}

/// A call's headers that refuse it before its body is read: a media type that cannot be
/// SOAP 1.1, another operation's SOAPAction, a declared length over the limit.
fn refused_by_headers(
    headers: &hyper::HeaderMap,
    declared: Option<u64>,
    state: &AppState,
) -> Option<Refusal> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    let limit = state.config.max_body_bytes;
    let action = headers
        .get("soapaction")
        .and_then(|value| value.to_str().ok());
    if !matches!(
        media,
        "text/xml" | "application/xml" | "application/soap+xml"
    ) {
        Some(Refusal::UnsupportedMediaType(media.to_string()))
    } else if let Some(action) = action.filter(|action| {
        soap_action_operation(action).is_some_and(|operation| operation != OPERATION)
    }) {
        Some(Refusal::UnknownAction(action.to_string()))
    } else if declared.is_some_and(|length| length > limit) {
        Some(Refusal::TooLarge(limit))
    } else {
        None
    }
}

/// One SOAP call in progress: what its metrics and log lines need.
struct Call {
    started: Instant,
    /// The `Content-Length` the sender declared, if any.
    declared: Option<u64>,
}

impl Call {
    fn declared_size(&self) -> u64 {
        self.declared.unwrap_or(0)
    }

    fn record(
        &self,
        outcome: MessageOutcome,
        rule: Option<Rule>,
        klantcode: Option<&str>,
        size: u64,
    ) {
        metrics().message(outcome, rule, klantcode, size, self.started.elapsed());
    }

    fn duration_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The answer to a body that could not be received or named no valid sender.
    fn spool_failed(&self, error: SpoolError, request_id: &str) -> Reply {
        let size = self.declared_size();
        match error {
            SpoolError::Refused(refusal) => {
                tracing::info!(?refusal, "request refused while reading the body");
                self.record(MessageOutcome::Refused, None, None, size);
                fault::refusal(&refusal)
            }
            SpoolError::Io(error) => {
                tracing::error!(%error, "cannot spool the request body");
                self.record(MessageOutcome::Error, None, None, size);
                fault::internal(request_id)
            }
            SpoolError::Identify(error) => {
                tracing::error!(%error, "cannot identify the sender");
                self.record(MessageOutcome::Error, None, None, size);
                fault::intake_failed(&error, request_id)
            }
            SpoolError::Unidentified(violations, klantcode) => {
                let rule = violations.leading_rule();
                tracing::info!(
                    outcome = "rejected",
                    receipt = "-",
                    klantcode = crate::logging::clip(klantcode.as_deref().unwrap_or("-")).as_ref(),
                    rule = rule.code(),
                    violations = violations.total(),
                    duration_ms = self.duration_ms(),
                    "message rejected before its body was read"
                );
                // Not authenticated: the klantcode it claimed must not become a label.
                self.record(MessageOutcome::Rejected, Some(rule), None, size);
                fault::rejected(&violations, None)
            }
        }
    }

    /// The answer to a received message: the bevestiging, its fault, or our failure.
    fn answer(&self, outcome: Result<Outcome, IntakeError>, size: u64, request_id: &str) -> Reply {
        let duration_ms = self.duration_ms();
        match outcome {
            Ok(Outcome::Accepted {
                receipt_id,
                counts,
                replay,
                klantcode,
            }) => {
                let outcome = if replay {
                    MessageOutcome::Replay
                } else {
                    MessageOutcome::Accepted
                };
                self.record(outcome, None, Some(&klantcode), size);
                metrics().results_stored(counts.resultaten);
                tracing::info!(
                    outcome = "accepted", receipt = %receipt_id, replay, size,
                    toetsafnames = counts.toetsafnames, resultaten = counts.resultaten,
                    created = counts.created, updated = counts.updated, duration_ms,
                    "message accepted"
                );
                fault::bevestiging(&receipt_id)
            }
            Ok(Outcome::Rejected {
                receipt_id,
                violations,
                klantcode,
            }) => {
                let rule = violations.leading_rule();
                tracing::info!(
                    outcome = "rejected",
                    receipt = receipt_id.as_deref().unwrap_or("-"),
                    klantcode = crate::logging::clip(klantcode.as_deref().unwrap_or("-")).as_ref(),
                    rule = rule.code(),
                    violations = violations.total(),
                    size,
                    duration_ms,
                    "message rejected"
                );
                // A receipt is kept only for an authenticated sender; without one the klantcode
                // is whatever the message claimed and is counted as `unknown`.
                let known = receipt_id.as_ref().and(klantcode.as_deref());
                self.record(MessageOutcome::Rejected, Some(rule), known, size);
                fault::rejected(&violations, receipt_id.as_deref())
            }
            Err(error) => {
                tracing::error!(error = %error, size, duration_ms, "message failed on our side");
                self.record(MessageOutcome::Error, None, None, size);
                fault::intake_failed(&error, request_id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsdl_points_at_this_gateway() {
        let wsdl = render_wsdl("http://gw.example:8080/uwlr/leerresultaten");
        assert!(wsdl.contains("location=\"http://gw.example:8080/uwlr/leerresultaten\""));
        assert!(wsdl.contains("schemaLocation=\"http://gw.example:8080/uwlr/leerresultaten?xsd=UWLR_Leerresultaten_v2p2.xsd\""));
        assert!(!wsdl.contains("../xsd/"));
    }

    #[test]
    fn a_busy_store_asks_the_sender_to_resend_and_a_corrupt_one_says_nothing() {
        use crate::store::StoreError;
        let busy = fault::intake_failed(
            &IntakeError::Store(StoreError::Busy {
                detail: "database is locked".into(),
            }),
            "req-3",
        );
        assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy
            .body
            .contains("<faultcode>soap:Server.Bezet</faultcode>"));
        let corrupt = fault::intake_failed(
            &IntakeError::Store(StoreError::corrupt("stored toets 7", "geheim detail")),
            "req-3",
        );
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(corrupt.body.contains("soap:Server"), "{}", corrupt.body);
        assert!(corrupt.body.contains("req-3"));
        assert!(!corrupt.body.contains("geheim") && !corrupt.body.contains("toets 7"));
    }
}
