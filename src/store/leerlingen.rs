//! Rosters of leerlingen as the admin API imports them, with the quarantine they release.

use super::admin::LeerlingRow;
use super::db::Db;
use super::StoreError;

/// Imports `rows` and releases the quarantined afnames of the leerlingen they make known,
/// in one savepoint: a roster is imported whole, with its releases, or not at all.
/// Returns how many rows were imported and how many afnames were released.
pub(crate) fn import_and_release(
    connection: &Db,
    rows: &[LeerlingRow],
    actor: &str,
) -> Result<(usize, usize), StoreError> {
    super::connection::in_savepoint(connection, |savepoint| {
        let imported = super::admin::import_leerlingen(savepoint, rows, actor)?;
        let released = super::intake::release_quarantine(savepoint)?;
        Ok((imported, released))
    })
}
