//! `GET /api/v1/receipts/{id}`: a sender asks what became of its message.

use super::routes::json_reply;
use super::AppState;
use crate::auth_limit::{Api, Attempt};
use crate::query::problem::ApiError;
use crate::soap::fault::Reply;
use crate::store::receipts::{receipt_of_client, ReceiptLookup};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use std::net::SocketAddr;

/// `GET /api/v1/receipts/{id}`: the sender (HTTP Basic klantcode:autorisatiesleutel) asks what happened.
pub(super) async fn receipt(
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
    // Parsed at the edge, after the credentials: an id that is no receipt id names no
    // receipt (404), and the key is checked (and counted) whatever the id.
    let id = uuid::Uuid::try_parse(id).ok();
    let lookup = state
        .intake
        .store
        .read(|connection| receipt_of_client(connection, &klantcode, &key, id.as_ref()))?;
    // A receipt is shown only once the group that wrote it is durable.
    state.intake.store.synced().await?;
    match lookup {
        ReceiptLookup::Found(json) => Ok(json_reply(StatusCode::OK, json)),
        ReceiptLookup::BadCredentials => {
            limiter.record_failure(&attempt);
            Err(ApiError::BadCredentials)
        }
        ReceiptLookup::NotFound => Err(ApiError::NoReceipt),
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
