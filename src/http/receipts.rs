//! `GET /api/v1/receipts/{id}`: a sender asks what became of its message.

use super::routes::json_reply;
use super::AppState;
use crate::auth_limit::{Api, Attempt};
use crate::query::problem::ApiError;
use crate::soap::fault::Reply;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use std::net::SocketAddr;

/// `GET /api/v1/receipts/{id}`: the sender (HTTP Basic klantcode:autorisatiesleutel) asks what happened.
pub(super) fn receipt(
    state: &AppState,
    request: &Request<Incoming>,
    id: &str,
    peer: SocketAddr,
) -> Result<Reply, ApiError> {
    let Some((klantcode, key)) = basic_credentials(request) else {
        return Err(ApiError::NoCredentials);
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Receipts,
        klantcode: Some(&klantcode),
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return Err(ApiError::BadCredentials);
    }
    let result = state.intake.store.read(|connection| {
        let Some(client_id) =
            crate::store::admin::authenticate_client(connection, &klantcode, &key)?
        else {
            return Ok(Err(StatusCode::UNAUTHORIZED));
        };
        match crate::store::intake::load_receipt(connection, id)? {
            Some((owner, json)) if owner == client_id => Ok(Ok(json)),
            _ => Ok(Err(StatusCode::NOT_FOUND)),
        }
    });
    match result {
        Ok(Ok(json)) => Ok(json_reply(StatusCode::OK, json)),
        Ok(Err(StatusCode::UNAUTHORIZED)) => {
            limiter.record_failure(&attempt);
            Err(ApiError::BadCredentials)
        }
        Ok(Err(_)) => Err(ApiError::NoReceipt),
        Err(error) => {
            tracing::error!(%error, "cannot read a receipt");
            Err(ApiError::Internal("quote the request id to the operator"))
        }
    }
}

fn basic_credentials(request: &Request<Incoming>) -> Option<(String, String)> {
    use base64::Engine;
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
