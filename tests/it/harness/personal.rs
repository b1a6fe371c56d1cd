//! Finds rows about people in every table of both database files, discovered from `sqlite_master`, so a table added later is checked too.

use rusqlite::Connection;

/// Every (schema, table, column) of both files, from the catalogue.
pub fn columns(connection: &Connection) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for schema in ["main", "xapi"] {
        let mut statement = connection
            .prepare(&format!(
                "SELECT m.name, p.name FROM {schema}.sqlite_master m, pragma_table_info(m.name, '{schema}') p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
            ))
            .unwrap();
        let rows = statement
            .query_map([], |row| Ok((schema.to_string(), row.get(0)?, row.get(1)?)))
            .unwrap();
        found.extend(rows.map(Result::unwrap));
    }
    assert!(
        found.iter().any(|(_, table, _)| table == "xapi_statements"),
        "both files are read"
    );
    found
}

/// `schema.table.column` for each column holding any of `needles` (as text anywhere in the value).
pub fn mentions(connection: &Connection, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (schema, table, column) in columns(connection) {
        for needle in needles {
            let hits: i64 = connection
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {schema}.\"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), ?1) > 0"
                    ),
                    [needle],
                    |row| row.get(0),
                )
                .unwrap();
            if hits > 0 {
                found.push(format!(
                    "{schema}.{table}.{column} holds {needle:?} ({hits} rows)"
                ));
            }
        }
    }
    found
}

/// `schema.table` with its count of rows whose school column (`school_id`, or `school` by code) is this school's.
pub fn school_rows(connection: &Connection, school_id: i64, school: &str) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    for (schema, table, column) in columns(connection) {
        let value: rusqlite::types::Value = match column.as_str() {
            "school_id" => school_id.into(),
            "school" => school.to_string().into(),
            _ => continue,
        };
        let rows: i64 = connection
            .query_row(
                &format!("SELECT count(*) FROM {schema}.\"{table}\" WHERE \"{column}\" = ?1"),
                [value],
                |row| row.get(0),
            )
            .unwrap();
        found.push((format!("{schema}.{table}"), rows));
    }
    found
}
