//! Receipts as the receipts API hands them out: to the client that sent the message only.

use super::db::Db;
use super::StoreError;

/// What a client asking for a receipt gets.
#[derive(Debug, PartialEq)]
pub(crate) enum ReceiptLookup {
    /// The klantcode and key do not authenticate a client.
    BadCredentials,
    /// No receipt with this id belongs to the client (another client's looks the same).
    NotFound,
    /// The receipt as JSON.
    Found(serde_json::Value),
}

/// Authenticates `klantcode` with `key` and looks up receipt `id` among its receipts;
/// `None` is an id that is no receipt id, which names no receipt once the key is checked.
pub(crate) fn receipt_of_client(
    connection: &Db,
    klantcode: &str,
    key: &str,
    id: Option<&uuid::Uuid>,
) -> Result<ReceiptLookup, StoreError> {
    let Some(client_id) = super::admin::authenticate_client(connection, klantcode, key)? else {
        return Ok(ReceiptLookup::BadCredentials);
    };
    let Some(id) = id else {
        return Ok(ReceiptLookup::NotFound);
    };
    Ok(
        match super::intake::load_receipt(connection, &id.to_string())? {
            Some((owner, json)) if owner == client_id => ReceiptLookup::Found(json),
            _ => ReceiptLookup::NotFound,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::database;

    #[test]
    fn only_the_right_key_learns_whether_a_receipt_exists() -> Result<(), StoreError> {
        let connection = database()?;
        crate::store::admin::add_client(&connection, "EA", "Uitgever", "sleutel-123")?;
        let id = uuid::Uuid::now_v7();
        let check = |key: &str, id: Option<&uuid::Uuid>, expected: ReceiptLookup| {
            assert_eq!(
                receipt_of_client(&connection, "EA", key, id).unwrap(),
                expected
            );
        };
        check("fout-sleutel", Some(&id), ReceiptLookup::BadCredentials);
        check("fout-sleutel", None, ReceiptLookup::BadCredentials);
        check("sleutel-123", Some(&id), ReceiptLookup::NotFound);
        check("sleutel-123", None, ReceiptLookup::NotFound);
        Ok(())
    }
}
