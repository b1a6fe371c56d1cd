//! The xAPI bridge: accepted afnames become xAPI 1.0.3 statements, and a worker delivers them to subscribed LRSs.
//!
//! `xapi` holds the JSON types and the UWLR → xAPI mapping, `publish` follows the change
//! log and writes statements into the outbox (`xapi_statements`), voiding corrected ones,
//! `subscriptions` holds the LRS endpoints, their filters and learner identity, and
//! `delivery` is the worker that posts the outbox to them; `read` renders stored statements for the query side,
//! `trust` the certificates a delivery trusts, and `profile` is the xAPI Profile that
//! describes the statements.

pub mod compare;
pub(crate) mod delivery;
pub(crate) mod erasure;
pub(crate) mod ids;
pub(crate) mod profile;
pub(crate) mod publish;
pub(crate) mod read;
pub(crate) mod subscriptions;
pub(crate) mod trust;
pub mod xapi;

pub(crate) use publish::run_publisher;
pub(crate) use xapi::Mapping;

use crate::store::StoreError;

/// Why the bridge could not do its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BridgeError {
    /// The store failed (our side); the afnames' transaction is rolled back with it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured base IRI cannot be used for activity ids (no http/https scheme, query or fragment).
    #[error("xapi_base_iri {0:?} must be an absolute http(s) IRI without query or fragment")]
    BaseIri(String),
    /// `xapi_base_iri` differs from the one the stored statements were made under.
    #[error("xapi_base_iri is {configured:?}, but the statements in xapi.sqlite were made under {pinned:?}: every statement id depends on it, so the gateway will not publish under another; set xapi_base_iri back, or move xapi.sqlite away to publish everything again under the new IRI")]
    BaseIriChanged { pinned: String, configured: String },
    /// The gateway's id key does not open with the secrets key (a replaced key file), so a
    /// keyed statement cannot be built with the id the LRSs expect; carries why.
    #[error("the gateway's xAPI id key: {0}")]
    IdKey(String),
    /// A stored row could not be read back (a toets definition or statement JSON); carries the reason.
    #[error("stored data is unreadable: {0}")]
    Unreadable(String),
    /// A subscription setting is not valid (`lrs add`); carries the reason.
    #[error("{0}")]
    Subscription(String),
    /// CA certificates for an LRS (`lrs add --ca-file`, or as stored) cannot be used; carries the reason.
    #[error("{0}")]
    Certificates(String),
    /// A publisher round was read from another cursor than the stored one (a second
    /// gateway on the same data dir, or a stale read); nothing was written.
    #[error("the publisher cursor is at {stored}, the round started at {round}")]
    CursorMoved { stored: i64, round: i64 },
}

impl From<BridgeError> for StoreError {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::Store(error) => error,
            other => StoreError::corrupt("the bridge's state", other),
        }
    }
}

#[cfg(test)]
mod ids_proptests;
