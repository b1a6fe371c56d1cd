//! Reads behind the xAPI Statement Resource: published statements of given schools, filtered as xAPI 1.0.3 asks.
//!
//! Statement JSON stays opaque text here except for the few paths a filter needs
//! (the StatementRef target and context activities), read with SQLite's JSON functions.

use super::db::Db;
use super::StoreError;
use rusqlite::types::Value;
use rusqlite::OptionalExtension;

/// The reserved verb of voiding statements.
const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// Newest first (the xAPI default) or oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatementOrder {
    Descending,
    Ascending,
}

/// The filters of a statement query; `None` leaves a property free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatementFilter {
    /// Canonical JSON of the agent's inverse functional identifier.
    pub(crate) agent: Option<String>,
    pub(crate) verb: Option<String>,
    pub(crate) activity: Option<String>,
    pub(crate) registration: Option<String>,
    /// Also match the activity among context activities.
    pub(crate) related_activities: bool,
    /// Also match instructor, team and authority; the gateway's statements have none, so only the actor matches.
    pub(crate) related_agents: bool,
    /// Stored strictly after, as stored (RFC 3339 UTC, milliseconds).
    pub(crate) since: Option<String>,
    /// Stored at or before.
    pub(crate) until: Option<String>,
    pub(crate) order: StatementOrder,
}

/// A published statement as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatementRow {
    pub(crate) id: String,
    pub(crate) seq: i64,
    pub(crate) school_id: i64,
    pub(crate) leerlingid: Option<String>,
    pub(crate) stored_at: String,
    pub(crate) statement: String,
}

const COLUMNS: &str = "s.id, s.seq, s.school_id, s.leerlingid, s.stored_at, s.statement";

fn row(row: &super::db::Row<'_, '_>) -> rusqlite::Result<StatementRow> {
    Ok(StatementRow {
        id: row.get(0)?,
        seq: row.get(1)?,
        school_id: row.get(2)?,
        leerlingid: row.get(3)?,
        stored_at: row.get(4)?,
        statement: row.get(5)?,
    })
}

fn school_list(school_ids: &[i64]) -> String {
    serde_json::to_string(school_ids).unwrap_or_else(|_| "[]".into())
}

/// `X-Experience-API-Consistent-Through`: the instant before which every statement that
/// has or will have a `stored` stamp is visible (Communication 2.1.3).
///
/// `stored_at` is stamped on the xAPI writer thread when the publisher writes a
/// change's statements, so a statement still to come is stamped after the moment it is
/// written. When the publisher's cursor has caught up with the core's change counter,
/// nothing is waiting and nothing is being written, so `now` (taken by the caller
/// before this read) is the answer. Otherwise a round may be in its transaction with
/// stamps from before `now`, but never before the newest committed stamp; the newest
/// committed stamp of the reader's own schools is no later than that, so it is a true
/// answer too, and says nothing about other schools' activity (issue 16). The epoch when
/// those schools have no statement at all.
pub(crate) fn consistent_through(
    connection: &Db,
    school_ids: &[i64],
    now: &str,
) -> Result<String, StoreError> {
    let (cursor, counter): (i64, i64) = connection
        .prepare_cached(connection.pick(
            "SELECT (SELECT COALESCE(MAX(cursor_seq), 0) FROM xapi_publisher),
                    (SELECT COALESCE(MAX(seq), 0) FROM change_counter)",
            // A round in its transaction holds positions above the cursor; committed changes
            // not yet ordered count as waiting too, as SQLite's counter counts them.
            "SELECT (SELECT COALESCE(MAX(cursor_seq), 0) FROM xapi_publisher),
                    (SELECT COALESCE(MAX(position), 0) FROM change_order)
                    + (SELECT count(*) FROM toetsafname_changes
                       WHERE xid >= (SELECT cursor_xid FROM xapi_publisher WHERE id = 1))",
        ))?
        .query_row(rusqlite::params![], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if cursor >= counter {
        return Ok(now.to_string());
    }
    // `stored_at` grows with `seq` (both are assigned on the writer thread), so the newest
    // seq of each school, found through the index, carries its newest stamp.
    let mut statement = connection.prepare_cached(
        "SELECT stored_at FROM xapi_statements WHERE school_id = ?1 ORDER BY seq DESC LIMIT 1",
    )?;
    let mut newest: Option<String> = None;
    for school_id in school_ids {
        let stored_at: Option<String> = statement
            .query_row([school_id], |row| row.get(0))
            .optional()?;
        newest = newest.max(stored_at);
    }
    Ok(newest.unwrap_or_else(|| "1970-01-01T00:00:00.000Z".into()))
}

/// The newest statement of these schools in this snapshot (`seq`, id): the bound that keeps
/// the pages of one query consistent. Only these schools' statements count, so the bound
/// (which a `more` link carries) says nothing about other schools.
pub(crate) fn newest_statement(
    connection: &Db,
    school_ids: &[i64],
) -> Result<Option<(i64, String)>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, id FROM xapi_statements WHERE school_id = ?1 ORDER BY seq DESC LIMIT 1",
    )?;
    let mut newest: Option<(i64, String)> = None;
    for school_id in school_ids {
        let found: Option<(i64, String)> = statement
            .query_row([school_id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        newest = newest.max(found);
    }
    Ok(newest)
}

/// The storage order of a statement, by id; `None` when there is no such statement.
pub(crate) fn seq_of(connection: &Db, id: &str) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT seq FROM xapi_statements WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?)
}

/// One statement by id among these schools: a statement that is not voided, or with `voided` one that is.
pub(crate) fn read_statement(
    connection: &Db,
    school_ids: &[i64],
    id: &str,
    voided: bool,
) -> Result<Option<StatementRow>, StoreError> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM xapi_statements s
             WHERE s.id = ?1 AND s.school_id IN ({schools}) AND (s.voided_by IS NOT NULL) = ?3",
            schools = connection.pick(
                "SELECT value FROM json_each(?2)",
                "SELECT json_array_elements_text(?2::json)::bigint",
            ),
        ))?
        .query_row(rusqlite::params![id, school_list(school_ids), voided], row)
        .optional()?)
}

/// Statements of these schools matching `filter`, never voided ones, in `filter.order`,
/// with `seq <= through` and beyond `after` in that order; at most `limit`.
/// A statement that targets another (a voiding statement) matches when its target does (Communication 2.1.3).
pub(crate) fn read_statements(
    connection: &Db,
    school_ids: &[i64],
    filter: &StatementFilter,
    after: Option<i64>,
    through: i64,
    limit: u32,
) -> Result<Vec<StatementRow>, StoreError> {
    // ?1 is one school at a time: the (school_id, seq) index then yields rows in
    // seq order, so a page reads about `limit` rows instead of sorting the school.
    let mut values: Vec<Value> = vec![Value::Integer(0), Value::Integer(through)];
    let mut bind = |value: &str| {
        values.push(Value::Text(value.to_string()));
        format!("?{}", values.len())
    };
    // The non-time filters, bound once and written out for any table alias.
    let agent = filter.agent.as_deref().map(&mut bind);
    let verb = filter.verb.as_deref().map(&mut bind);
    let activity = filter.activity.as_deref().map(&mut bind);
    let registration = filter.registration.as_deref().map(&mut bind);
    let postgres = connection.is_postgres();
    let matches = |alias: &str| -> Vec<String> {
        let mut conditions = Vec::new();
        if let Some(parameter) = &agent {
            conditions.push(format!("{alias}.agent = {parameter}"));
        }
        if let Some(parameter) = &verb {
            conditions.push(format!("{alias}.verb_id = {parameter}"));
        }
        match (&activity, filter.related_activities) {
            (Some(parameter), true) if postgres => conditions.push(format!(
                "({alias}.activity_id = {parameter} OR EXISTS (SELECT 1 FROM json_each({alias}.statement::json #> '{{context,contextActivities}}') AS kind,
                   json_array_elements(kind.value) AS item WHERE item.value->>'id' = {parameter}))"
            )),
            (Some(parameter), true) => conditions.push(format!(
                "({alias}.activity_id = {parameter} OR EXISTS (SELECT 1 FROM json_each({alias}.statement, '$.context.contextActivities') AS kind,
                   json_each(kind.value) AS item WHERE json_extract(item.value, '$.id') = {parameter}))"
            )),
            (Some(parameter), false) => conditions.push(format!("{alias}.activity_id = {parameter}")),
            (None, _) => {}
        }
        if let Some(parameter) = &registration {
            conditions.push(format!("{alias}.registration = {parameter}"));
        }
        conditions
    };
    let mut sql = format!(
        "SELECT {COLUMNS} FROM xapi_statements s
         WHERE s.school_id = ?1 AND s.voided_by IS NULL AND s.seq <= ?2"
    );
    if !matches("s").is_empty() {
        let voided = bind(VERB_VOIDED);
        sql.push_str(&format!(
            " AND (({own}) OR (s.verb_id = {voided} AND EXISTS (SELECT 1 FROM xapi_statements t
                 WHERE t.id = {object_id} AND t.school_id = s.school_id AND {target})))",
            object_id = connection.pick(
                "json_extract(s.statement, '$.object.id')",
                "(s.statement::json #>> '{object,id}')",
            ),
            own = matches("s").join(" AND "),
            target = matches("t").join(" AND "),
        ));
    }
    if let Some(since) = &filter.since {
        sql.push_str(&format!(" AND s.stored_at > {}", bind(since)));
    }
    if let Some(until) = &filter.until {
        sql.push_str(&format!(" AND s.stored_at <= {}", bind(until)));
    }
    let ascending = filter.order == StatementOrder::Ascending;
    if let Some(after) = after {
        values.push(Value::Integer(after));
        sql.push_str(&format!(
            " AND s.seq {} ?{}",
            if ascending { ">" } else { "<" },
            values.len()
        ));
    }
    values.push(Value::Integer(i64::from(limit)));
    sql.push_str(&format!(
        " ORDER BY s.seq {} LIMIT ?{}",
        if ascending { "ASC" } else { "DESC" },
        values.len()
    ));
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = Vec::new();
    for school_id in school_ids {
        values[0] = Value::Integer(*school_id);
        for found in statement.query_map(&values, row)? {
            rows.push(found?);
        }
    }
    // Merge the schools' pages into one.
    if ascending {
        rows.sort_by_key(|row| row.seq);
    } else {
        rows.sort_by_key(|row| std::cmp::Reverse(row.seq));
    }
    rows.truncate(limit as usize);
    Ok(rows)
}

/// How many statements the gateway holds (live and voiding), for `outbox status`.
pub(crate) fn count_statements(connection: &Db) -> Result<i64, StoreError> {
    Ok(connection.query_row(
        "SELECT count(*) FROM xapi_statements",
        rusqlite::params![],
        |row| row.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    const SCORED: &str = "http://adlnet.gov/expapi/verbs/scored";

    fn filter() -> StatementFilter {
        StatementFilter {
            agent: None,
            verb: None,
            activity: None,
            registration: None,
            related_activities: false,
            related_agents: false,
            since: None,
            until: None,
            order: StatementOrder::Descending,
        }
    }

    /// Statements: 1 and 2 of learner A at school 1 (1 voided by 3), 4 of learner B at school 2.
    fn database() -> Result<crate::store::db::Db<'static>, StoreError> {
        let connection = crate::store::testing::database()?;
        for code in ["99XX01", "99YY"] {
            crate::store::admin::ensure_school(
                &connection,
                &crate::domain::SchoolCode::parse(code).unwrap(),
            )?;
        }
        let agent_a = r#"{"account":{"homePage":"https://h","name":"A"}}"#;
        let agent_b = r#"{"account":{"homePage":"https://h","name":"B"}}"#;
        let gateway = r#"{"account":{"homePage":"https://g","name":"uwlr-gateway"}}"#;
        let rows = [
            (
                "s1",
                1,
                1,
                SCORED,
                Some("https://t/1"),
                Some(agent_a),
                Some("A"),
                r#"{"context":{"contextActivities":{"grouping":[{"id":"https://school/1"}]}}}"#,
                "2026-10-01T08:00:00.000Z",
            ),
            (
                "s2",
                2,
                1,
                SCORED,
                Some("https://t/2"),
                Some(agent_a),
                Some("A"),
                r#"{"context":{"contextActivities":{"grouping":[{"id":"https://school/1"}]}}}"#,
                "2026-10-01T08:00:01.000Z",
            ),
            (
                "s3",
                3,
                1,
                VERB_VOIDED,
                None,
                Some(gateway),
                None,
                r#"{"object":{"objectType":"StatementRef","id":"s1"}}"#,
                "2026-10-01T08:00:02.000Z",
            ),
            (
                "s4",
                4,
                2,
                SCORED,
                Some("https://t/1"),
                Some(agent_b),
                Some("B"),
                r#"{}"#,
                "2026-10-01T08:00:03.000Z",
            ),
        ];
        for (id, seq, school_id, verb, activity, agent, leerlingid, statement, stored_at) in rows {
            connection.execute(
                "INSERT INTO xapi_statements (id, seq, school_id, toetscode, stored_at, verb_id, activity_id, agent, leerlingid, statement)
                 VALUES (?1, ?2, ?3, 'T', ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, seq, school_id, stored_at, verb, activity, agent, leerlingid, statement],
            )?;
        }
        connection.execute(
            "UPDATE xapi_statements SET voided_by = 's3' WHERE id = 's1'",
            rusqlite::params![],
        )?;
        Ok(connection)
    }

    fn ids(
        connection: &Db,
        schools: &[i64],
        filter: &StatementFilter,
        after: Option<i64>,
        limit: u32,
    ) -> Vec<String> {
        read_statements(connection, schools, filter, after, i64::MAX, limit)
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect()
    }

    #[test]
    fn scope_voiding_and_the_statement_ref_rule() -> Result<(), StoreError> {
        let connection = database()?;
        assert_eq!(ids(&connection, &[1], &filter(), None, 10), ["s3", "s2"]);
        assert_eq!(ids(&connection, &[2], &filter(), None, 10), ["s4"]);
        assert_eq!(
            ids(&connection, &[], &filter(), None, 10),
            Vec::<String>::new()
        );
        // The voiding statement comes with a query its (voided) target matches.
        let agent_a = StatementFilter {
            agent: Some(r#"{"account":{"homePage":"https://h","name":"A"}}"#.into()),
            ..filter()
        };
        assert_eq!(ids(&connection, &[1, 2], &agent_a, None, 10), ["s3", "s2"]);
        let activity = StatementFilter {
            activity: Some("https://t/1".into()),
            ..filter()
        };
        assert_eq!(ids(&connection, &[1], &activity, None, 10), ["s3"]);
        assert_eq!(ids(&connection, &[1, 2], &activity, None, 10), ["s4", "s3"]);
        let school = StatementFilter {
            activity: Some("https://school/1".into()),
            ..filter()
        };
        assert!(ids(&connection, &[1], &school, None, 10).is_empty());
        let related = StatementFilter {
            related_activities: true,
            ..school
        };
        assert_eq!(ids(&connection, &[1], &related, None, 10), ["s3", "s2"]);
        // Single statements: voided ones only as voided, never across schools.
        assert!(read_statement(&connection, &[1], "s1", false)?.is_none());
        assert_eq!(
            read_statement(&connection, &[1], "s1", true)?.map(|row| row.id),
            Some("s1".into())
        );
        assert!(read_statement(&connection, &[2], "s1", true)?.is_none());
        assert!(read_statement(&connection, &[1], "s4", false)?.is_none());
        Ok(())
    }

    #[test]
    fn time_order_and_paging() -> Result<(), StoreError> {
        let connection = database()?;
        let since = StatementFilter {
            since: Some("2026-10-01T08:00:01.000Z".into()),
            ..filter()
        };
        assert_eq!(ids(&connection, &[1, 2], &since, None, 10), ["s4", "s3"]);
        let until = StatementFilter {
            until: Some("2026-10-01T08:00:01.000Z".into()),
            ..filter()
        };
        assert_eq!(ids(&connection, &[1, 2], &until, None, 10), ["s2"]);
        let ascending = StatementFilter {
            order: StatementOrder::Ascending,
            ..filter()
        };
        assert_eq!(ids(&connection, &[1, 2], &ascending, None, 2), ["s2", "s3"]);
        assert_eq!(ids(&connection, &[1, 2], &ascending, Some(3), 2), ["s4"]);
        assert_eq!(
            ids(&connection, &[1, 2], &filter(), Some(4), 2),
            ["s3", "s2"]
        );
        // The snapshot bound keeps later statements out of a query's pages.
        let bounded: Vec<String> = read_statements(&connection, &[1, 2], &filter(), None, 3, 10)?
            .into_iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(bounded, ["s3", "s2"]);
        assert_eq!(newest_statement(&connection, &[1])?, Some((3, "s3".into())));
        assert_eq!(
            newest_statement(&connection, &[1, 2])?,
            Some((4, "s4".into()))
        );
        assert_eq!(newest_statement(&connection, &[])?, None);
        assert_eq!(seq_of(&connection, "s2")?, Some(2));
        assert_eq!(seq_of(&connection, "nope")?, None);
        // Caught up: the moment the caller took; changes waiting: the newest stamp of the
        // reader's schools (school 2's newer statement says nothing to a reader of school 1).
        let now = "2026-12-02T06:00:00.000Z";
        connection.execute("UPDATE change_counter SET seq = 7", rusqlite::params![])?;
        connection.execute(
            "UPDATE xapi_publisher SET cursor_seq = 7",
            rusqlite::params![],
        )?;
        assert_eq!(consistent_through(&connection, &[1], now)?, now);
        connection.execute("UPDATE change_counter SET seq = 8", rusqlite::params![])?;
        assert_eq!(
            consistent_through(&connection, &[1, 2], now)?,
            "2026-10-01T08:00:03.000Z"
        );
        assert_eq!(
            consistent_through(&connection, &[1], now)?,
            "2026-10-01T08:00:02.000Z"
        );
        connection.execute("DELETE FROM xapi_statements", rusqlite::params![])?;
        assert_eq!(
            consistent_through(&connection, &[1], now)?,
            "1970-01-01T00:00:00.000Z"
        );
        Ok(())
    }
}
