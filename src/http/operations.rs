//! The operators' resources: `/health`, `/ready`, `/metrics`, `/status` and `/status/data`.

use super::routes::json_reply;
use super::{admin, AppState, Surface};
use crate::metrics::metrics;
use crate::query::problem::ApiError;
use crate::soap::fault::Reply;
use hyper::{Method, StatusCode};
use std::net::SocketAddr;

/// The operators' resources, on either listener: None when `request` is not for one of them.
/// On the main listener `/metrics` and `/status/data` need the admin token.
pub(super) async fn operations(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
    surface: Surface,
) -> Option<Result<Reply, ApiError>> {
    if !matches!(
        path,
        "/metrics" | "/status" | "/status/data" | "/ready" | "/health"
    ) {
        return None;
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Some(Err(ApiError::MethodNotAllowed("GET, HEAD")));
    }
    if surface == Surface::Main && matches!(path, "/metrics" | "/status/data") {
        if let Err(error) = admin::check_admin_token(state, headers, peer) {
            return Some(Err(error));
        }
    }
    Some(match path {
        "/health" => health(state),
        "/ready" => {
            let limits = crate::status::ReadyLimits {
                max_publisher_lag_secs: state.config.ready_max_publisher_lag_secs,
                max_dead_letters: state.config.ready_max_dead_letters,
            };
            crate::status::ready(&state.intake.store, &state.intake.schemas, limits)
                .await
                .map(|value| json_reply(StatusCode::OK, value))
        }
        "/metrics" => {
            metrics().auth_stats(&state.intake.auth_limit.stats());
            Ok(Reply {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics().render(),
                receipt_id: None,
            })
        }
        "/status" => Ok(Reply {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: crate::status::page().to_string(),
            receipt_id: None,
        }),
        _ => {
            let store = state.intake.store.clone();
            match tokio::task::spawn_blocking(move || crate::status::data(&store)).await {
                Ok(Ok(value)) => Ok(json_reply(StatusCode::OK, value)),
                Ok(Err(error)) => Err(ApiError::Store(error)),
                Err(error) => {
                    tracing::error!(%error, "the status data task failed");
                    Err(ApiError::Internal("cannot read the status data"))
                }
            }
        }
    })
}

/// `GET /health`: liveness (the database answers) and the version, nothing a stranger
/// may not know: no counts, no addresses, no configuration.
fn health(state: &AppState) -> Result<Reply, ApiError> {
    match state.intake.store.ping() {
        Ok(()) => Ok(json_reply(
            StatusCode::OK,
            serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": crate::COMMIT}),
        )),
        Err(error) => {
            tracing::error!(%error, "health check cannot read the database");
            Err(ApiError::DatabaseUnavailable)
        }
    }
}
