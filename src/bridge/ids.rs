//! What statement ids depend on besides the data: the base IRI pinned in `xapi.sqlite`, and the gateway's secret id key.

use super::xapi::{IdKey, Mapping};
use super::BridgeError;
use crate::secret::Keyring;
use crate::store::outbox::{
    pin_base_iri, sealed_id_key, store_first_id_key, store_id_key, ID_KEY_PLACE,
};
use crate::store::Store;

/// Bytes of the gateway's id key (HMAC-SHA256).
const ID_KEY_BYTES: usize = 32;

/// Pins the configured base IRI on first use and refuses another one later (every id and
/// IRI of the published statements depends on it, so a changed IRI would publish every
/// result again under new ids), then opens the gateway's id key, made and sealed with
/// `keyring` on first start. The key lives in the core (`gateway.sqlite`), not in
/// `xapi.sqlite`: statements are derived data and a rebuilt `xapi.sqlite` must give the ids
/// the LRSs already hold. A key that does not open (a replaced secrets key) does not stop
/// the intake: keyed statements wait until the right key is configured, as delivery to an
/// LRS whose secrets do not open waits.
pub(crate) fn prepare(
    store: &Store,
    keyring: &Keyring,
    mapping: Mapping,
) -> Result<Mapping, BridgeError> {
    store.on_side_connection(|connection| {
    let pinned = pin_base_iri(connection, mapping.base_iri())?;
    if pinned != mapping.base_iri() {
        return Err(BridgeError::BaseIriChanged {
            pinned,
            configured: mapping.base_iri().to_string(),
        });
    }
    if sealed_id_key(connection)?.is_none() {
        // First start: make a key, unless another instance starting beside this one made
        // one first (then both read that one).
        let mut key = vec![0u8; ID_KEY_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        store_first_id_key(connection, keyring.seal(ID_KEY_PLACE, &key).as_bytes())?;
    }
    let key = match sealed_id_key(connection)? {
        Some(sealed) => match keyring.reveal(ID_KEY_PLACE, sealed.bytes()) {
            Ok(key) => {
                if !keyring.is_current(sealed.bytes()) {
                    store_id_key(connection, keyring.seal(ID_KEY_PLACE, &key).as_bytes())?;
                }
                key
            }
            Err(error) => {
                tracing::error!(%error, "the gateway's xAPI id key does not open with the configured secrets key; no statement is published until it does");
                return Ok(mapping.with_unopened_id_key(error.to_string()));
            }
        },
        None => {
            return Err(BridgeError::Unreadable(
                "the xAPI id key vanished while it was made".into(),
            ))
        }
    };
    Ok(mapping.with_id_key(IdKey::new(key)))
    })
}
