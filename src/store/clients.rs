//! The sending clients (EAs): lookups besides those in `admin`, which registers and authenticates them.

use super::db::Db;
use super::StoreError;

/// Whether a client with this klantcode is registered (revoked or not).
pub(crate) fn client_known(connection: &Db, klantcode: &str) -> Result<bool, StoreError> {
    let count: i64 = connection.query_row(
        "SELECT count(*) FROM clients WHERE klantcode = ?1",
        [klantcode],
        |row| row.get(0),
    )?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use super::client_known;

    #[test]
    fn a_registered_client_is_known_and_another_is_not() -> Result<(), crate::store::StoreError> {
        let connection = crate::store::testing::database()?;
        assert!(!client_known(&connection, "EA-1")?);
        crate::store::admin::add_client(&connection, "EA-1", "Uitgever", "sleutel-ea-1")?;
        assert!(client_known(&connection, "EA-1")?);
        assert!(!client_known(&connection, "EA-2")?);
        Ok(())
    }
}
