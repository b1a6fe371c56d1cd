//! Demo data that `serve --demo` seeds, matching what `samples/` sends.

use crate::domain::SchoolCode;
use crate::store::admin::{self, LeerlingRow};
use crate::store::{Store, StoreError};

pub(crate) const KLANTCODE: &str = "DEMO-EA";
pub(crate) const KLANTNAAM: &str = "Demo Uitgever";
pub(crate) const AUTORISATIESLEUTEL: &str = "demo-autorisatiesleutel-2026";
/// The school the demo client may send for.
pub(crate) const SCHOOL: &str = "99XX01";
/// A known school the demo client is not activated for.
pub(crate) const OTHER_SCHOOL: &str = "99YY";
pub(crate) const MANDATE: &str = "DEMO-VERWERKERSOVEREENKOMST-2026";

/// Seeds the demo client, schools, activation and learners; running it again changes nothing.
pub(crate) fn seed(store: &Store) -> Result<(), StoreError> {
    store.on_side_transaction(|connection| {
        let school = SchoolCode::parse(SCHOOL)
            .map_err(|error| StoreError::invalid_input("school", error))?;
        let other = SchoolCode::parse(OTHER_SCHOOL)
            .map_err(|error| StoreError::invalid_input("school", error))?;
        if !crate::store::clients::client_known(connection, KLANTCODE)? {
            admin::add_client(connection, KLANTCODE, KLANTNAAM, AUTORISATIESLEUTEL)?;
            admin::activate(
                connection,
                KLANTCODE,
                &school,
                MANDATE,
                "2020-01-01",
                Some("2099-12-31"),
            )?;
        }
        admin::ensure_school(connection, &other)?;
        let mut rows: Vec<LeerlingRow> = (1..=20)
            .map(|number| {
                let leerlingid = format!("LL{number:04}");
                LeerlingRow {
                    school: school.clone(),
                    eckid: (number <= 5)
                        .then(|| format!("https://ketenid.nl/201703/demo-{leerlingid}")),
                    naam: Some(format!("Demoleerling {number}")),
                    leerlingid,
                }
            })
            .collect();
        rows.push(LeerlingRow {
            school: other,
            leerlingid: "YY0001".into(),
            eckid: None,
            naam: None,
        });
        admin::import_leerlingen(connection, &rows, "demo")?;
        Ok(())
    })
}
