//! Finds rows about people in every table of the gateway's database, discovered from its catalogue (SQLite: `sqlite_master` of both files; PostgreSQL: `information_schema`), so a table added later is checked too.

use uwlr_gateway::store::db::Db;

/// Every (schema, table, column) of the database; the schema is the SQLite file's name
/// (`main` or `xapi`) on either engine, so tests name tables one way.
pub fn columns(connection: &Db) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    if connection.is_postgres() {
        let mut statement = connection
            .prepare(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
            )
            .unwrap();
        let rows = statement
            .query_map(rusqlite::params![], |row| {
                let table: String = row.get(0)?;
                Ok((sqlite_file_of(&table).to_string(), table, row.get(1)?))
            })
            .unwrap();
        found.extend(rows.map(Result::unwrap));
    } else {
        for schema in ["main", "xapi"] {
            let mut statement = connection
                .prepare(&format!(
                    "SELECT m.name, p.name FROM {schema}.sqlite_master m, pragma_table_info(m.name, '{schema}') p
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
                ))
                .unwrap();
            let rows = statement
                .query_map(rusqlite::params![], |row| {
                    Ok((schema.to_string(), row.get(0)?, row.get(1)?))
                })
                .unwrap();
            found.extend(rows.map(Result::unwrap));
        }
    }
    assert!(
        found.iter().any(|(_, table, _)| table == "xapi_statements"),
        "the bridge's tables are read"
    );
    found
}

/// The SQLite file a PostgreSQL table's rows live in on SQLite: the bridge's tables in
/// `xapi`, the rest in `main`.
fn sqlite_file_of(table: &str) -> &'static str {
    if table.starts_with("xapi_") || table == "read_audit" || table == "statement_counter" {
        "xapi"
    } else {
        "main"
    }
}

/// The table as SQL names it: schema-qualified on SQLite (two files), bare on PostgreSQL.
fn qualified(connection: &Db, schema: &str, table: &str) -> String {
    if connection.is_postgres() {
        format!("\"{table}\"")
    } else {
        format!("{schema}.\"{table}\"")
    }
}

/// `schema.table.column` for each column holding any of `needles` (as text anywhere in the value).
pub fn mentions(connection: &Db, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let position = connection.pick("instr", "strpos");
    for (schema, table, column) in columns(connection) {
        let from = qualified(connection, &schema, &table);
        for needle in needles {
            let hits: i64 = connection
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {from} WHERE {position}(CAST(\"{column}\" AS TEXT), ?1) > 0"
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
pub fn school_rows(connection: &Db, school_id: i64, school: &str) -> Vec<(String, i64)> {
    let mut found = Vec::new();
    for (schema, table, column) in columns(connection) {
        let value: rusqlite::types::Value = match column.as_str() {
            "school_id" => school_id.into(),
            "school" => school.to_string().into(),
            _ => continue,
        };
        let from = qualified(connection, &schema, &table);
        let rows: i64 = connection
            .query_row(
                &format!("SELECT count(*) FROM {from} WHERE \"{column}\" = ?1"),
                [value],
                |row| row.get(0),
            )
            .unwrap();
        found.push((format!("{schema}.{table}"), rows));
    }
    found
}
