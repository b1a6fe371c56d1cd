//! Voiding statements for an erased learner: one per live statement, written like any other so delivery stays exactly-once.

use super::{BridgeError, Mapping};
use crate::store::erasure::LearnerStatement;
use crate::store::outbox::StatementRow;

/// The voiding statement of every live statement in `statements`, as rows for the caller to
/// write in its transaction on `xapi.sqlite` (`outbox::insert_new_statements`). A voiding
/// statement names the voided statement's id and the gateway as actor, nothing of the
/// learner: its row keeps the school and toetscode for the LRS filters, and no learner or
/// afname, so it outlives the erasure.
pub(crate) fn voiding_statements(
    mapping: &Mapping,
    school_id: i64,
    statements: &[LearnerStatement],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<StatementRow>, BridgeError> {
    let mut rows = Vec::new();
    for target in statements.iter().filter(|statement| statement.live) {
        // An erasure happens now: the voiding statement says when the gateway withdrew them.
        let voiding = mapping.voiding_statement(
            &target.id,
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        let json = serde_json::to_string(&voiding)
            .map_err(|error| BridgeError::Unreadable(error.to_string()))?;
        rows.push(StatementRow {
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
        });
    }
    Ok(rows)
}
