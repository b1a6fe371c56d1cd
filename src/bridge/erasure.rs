//! Voiding statements for an erased learner: one per live statement, written like any other so delivery stays exactly-once.

use super::{BridgeError, Mapping};
use crate::store::connection::Connection;
use crate::store::erasure::LearnerStatement;
use crate::store::outbox::{self, StatementRow};

/// Writes a voiding statement for every live statement in `statements` (in the caller's
/// transaction on `xapi.sqlite`) and returns how many. The voiding statement names the voided
/// statement's id and the gateway as actor, nothing of the learner: its row keeps the school
/// and toetscode for the LRS filters, and no learner or afname, so it outlives the erasure.
pub(crate) fn write_voiding_statements(
    connection: &Connection,
    mapping: &Mapping,
    school_id: i64,
    statements: &[LearnerStatement],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, BridgeError> {
    let mut written = 0;
    for target in statements.iter().filter(|statement| statement.live) {
        // An erasure happens now: the voiding statement says when the gateway withdrew them.
        let voiding = mapping.voiding_statement(
            &target.id,
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        if outbox::statement_exists(connection, &voiding.id)? {
            continue;
        }
        let json = serde_json::to_string(&voiding)
            .map_err(|error| BridgeError::Unreadable(error.to_string()))?;
        outbox::insert_statement(
            connection,
            &StatementRow {
                id: voiding.id.clone(),
                school_id,
                afname_id: None,
                toetscode: target.toetscode.clone(),
                verb_id: voiding.verb.id.clone(),
                activity_id: None,
                registration: None,
                agent: Some(voiding.actor.ifi_json()),
                leerlingid: None,
                eckid: None,
                statement: json,
                keyed: target.keyed,
            },
        )?;
        written += 1;
    }
    Ok(written)
}
