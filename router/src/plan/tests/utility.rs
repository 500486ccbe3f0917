//! Session statements, DDL, EXPLAIN and COPY.

use super::*;

#[test]
fn session_and_transaction_statements_run_on_any_shard() {
    let p = planner(2);
    for sql in [
        "BEGIN",
        "START TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "ROLLBACK TO SAVEPOINT a",
        "SET search_path = app",
        "SET LOCAL statement_timeout = '1s'",
        "RESET ALL",
        "SHOW search_path",
        "DISCARD ALL",
        "DEALLOCATE p",
        "LISTEN chan",
        "UNLISTEN *",
        "NOTIFY chan",
        // Grammar forms the SQL parser does not read.
        "RESET TIME ZONE",
        "SET SCHEMA 's1'",
        "SET NAMES 'LATIN1'",
        "SET XML OPTION DOCUMENT",
        "SET SESSION TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE",
    ] {
        assert_eq!(plan(&p, sql), Ok(any()), "{sql}");
    }
}

#[test]
fn ddl_runs_everywhere() {
    let p = planner(2);
    for sql in [
        "CREATE TABLE audit (id bigint)",
        "ALTER TABLE users ADD COLUMN email text",
        "DROP TABLE IF EXISTS audit",
        "CREATE INDEX ON users (name)",
        "CREATE VIEW v AS SELECT * FROM users",
        "CREATE SCHEMA app",
        "CREATE EXTENSION pgcrypto",
        "CREATE SEQUENCE s",
        "TRUNCATE users",
        "COMMENT ON TABLE users IS 'people'",
        "GRANT SELECT ON users TO app",
        "VACUUM users",
        "ANALYZE users",
        "CREATE TABLE c2 AS SELECT * FROM countries",
    ] {
        assert_eq!(plan(&p, sql), Ok(everywhere(ResultMerge::Same)), "{sql}");
    }
    refused(&p, "CREATE TABLE u2 AS SELECT * FROM users");
    refused(&p, "PREPARE q AS SELECT 1");
    refused(&p, "EXECUTE q");
    refused(&p, "DECLARE c CURSOR FOR SELECT * FROM users");
    refused(&p, "CALL proc()");
    refused(
        &p,
        "MERGE INTO users u USING countries c ON c.id = u.id WHEN MATCHED THEN DELETE",
    );
}

#[test]
fn setval_sets_every_shards_copy_of_the_sequence() {
    let p = planner(2);
    for sql in [
        "SELECT pg_catalog.setval('public.users_seq_seq', 42, true)",
        "SELECT setval('s', 7)",
        "SELECT setval('s', $1, false)",
        "SELECT setval('s', max(id)) FROM countries",
    ] {
        assert_eq!(plan(&p, sql), Ok(everywhere(ResultMerge::Same)), "{sql}");
    }
    assert_eq!(plan(&p, "SELECT nextval('s')"), Ok(any()));
    let message = refused(&p, "SELECT setval('s', (SELECT max(id) FROM users))");
    assert!(message.contains("compute the value first"), "{message}");
    refused(&p, "SELECT setval('s', id) FROM users WHERE id = 5");
}

#[test]
fn large_objects_are_refused_but_on_one_named_shard() {
    let p = planner(2);
    for sql in [
        "SELECT pg_catalog.lo_create('16400')",
        "SELECT pg_catalog.lo_open('16400', 131072)",
        "SELECT lo_get(16400)",
        "INSERT INTO users (id, doc) VALUES (1, lo_import('/tmp/x'))",
        "UPDATE users SET doc = lo_from_bytea(0, 'x') WHERE id = 1",
    ] {
        let message = refused(&p, sql);
        assert!(message.contains("bytea column"), "{sql}: {message}");
    }
    assert_eq!(
        plan(&p, "/* pgshard: shard=1 */ SELECT lo_create(0)"),
        Ok(one(1))
    );
}

#[test]
fn explain_shows_one_servers_plan() {
    let p = planner(2);
    assert_eq!(
        plan(&p, "EXPLAIN SELECT * FROM users WHERE id = 5"),
        Ok(one(shard(5, 2)))
    );
    assert_eq!(plan(&p, "EXPLAIN SELECT * FROM countries"), Ok(any()));
    assert_eq!(plan(&p, "EXPLAIN CREATE TABLE x AS SELECT 1"), Ok(any()));
    assert_eq!(
        plan(&p, "EXPLAIN ANALYZE INSERT INTO countries (id) VALUES (1)"),
        Ok(everywhere(ResultMerge::Same))
    );
    assert_eq!(
        plan(&p, "EXPLAIN INSERT INTO users (id) VALUES (5)"),
        Ok(one(shard(5, 2)))
    );
    assert_eq!(
        plan_with(
            &p,
            "EXPLAIN ANALYZE SELECT * FROM users WHERE id = $1",
            &[Some("5")]
        ),
        Ok(one(shard(5, 2)))
    );
    let message = refused(&p, "EXPLAIN SELECT * FROM users");
    assert!(message.contains("shard=N"), "{message}");
    refused(&p, "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM users");
}

#[test]
fn copy_into_a_sharded_table_splits_rows() {
    let p = planner(2);
    let planned = plan(&p, "COPY users (name, id) FROM STDIN").unwrap();
    assert_eq!(planned.target, ShardTarget::All);
    assert_eq!(planned.statements, ShardStatements::Original);
    let ResultMerge::Copy(split) = planned.merge else {
        panic!("{:?}", planned.merge)
    };
    assert_eq!(
        split,
        CopySplit {
            key_field: 1,
            fields: 2,
            key_type: crate::sharding::KeyType::Int8,
            format: CopyFormat::Text,
            delimiter: b'\t',
            null: b"\\N".to_vec(),
            header: false,
            quote: b'"',
            escape: b'"',
            force_not_null: false,
            force_null: false,
        }
    );
    assert_eq!(
        p.schema().copy_row_shard(b"ann\t5\n", &split),
        Ok(shard(5, 2))
    );
    assert_eq!(p.schema().copy_row_shard(b"ann\t\\N\n", &split), Ok(0));
    assert_eq!(
        p.schema()
            .copy_row_shard(b"ann\tx\n", &split)
            .unwrap_err()
            .sqlstate(),
        "22P02"
    );
}

#[test]
fn copy_options() {
    let p = planner(2);
    let split = |sql: &str| match plan(&p, sql).unwrap().merge {
        ResultMerge::Copy(split) => split,
        other => panic!("{sql}: {other:?}"),
    };
    let csv = split("COPY events (tenant, body) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', FORCE_NULL (tenant))");
    assert_eq!(
        (
            csv.format,
            csv.delimiter,
            csv.quote,
            csv.escape,
            csv.header,
            csv.null.as_slice()
        ),
        (CopyFormat::Csv, b';', b'\'', b'\'', true, &b""[..])
    );
    assert!(csv.force_null && !csv.force_not_null);
    assert_eq!(csv.key_type, crate::sharding::KeyType::Text);
    assert_eq!(
        p.schema().copy_row_shard(b"'acme';x\n", &csv),
        Ok(hash_partition(&KeyValue::Text("acme".into()), 2))
    );
    let legacy = split("COPY users (id) FROM STDIN WITH DELIMITER '|' NULL 'none' CSV HEADER ESCAPE '\\' FORCE NOT NULL id");
    assert_eq!(
        (
            legacy.format,
            legacy.delimiter,
            legacy.escape,
            legacy.null.as_slice()
        ),
        (CopyFormat::Csv, b'|', b'\\', &b"none"[..])
    );
    assert!(legacy.header && legacy.force_not_null);
    refused(&p, "COPY users FROM STDIN");
    refused(&p, "COPY users (name) FROM STDIN");
    refused(&p, "COPY users (id) FROM STDIN (FORMAT binary)");
    refused(&p, "COPY users (id) FROM STDIN BINARY");
    refused(&p, "COPY users (id) FROM STDIN (ENCODING 'LATIN1')");
    refused(&p, "COPY users (id) FROM '/tmp/users.csv'");
}

#[test]
fn copy_of_replicated_tables_and_copy_to() {
    let p = planner(2);
    assert_eq!(
        plan(&p, "COPY countries FROM STDIN"),
        Ok(everywhere(ResultMerge::CopyEverywhere))
    );
    // The plan says what it is, whatever the spacing.
    assert_eq!(
        plan(&p, "COPY countries\nFROM STDIN"),
        Ok(everywhere(ResultMerge::CopyEverywhere))
    );
    assert_eq!(plan(&p, "COPY countries TO STDOUT"), Ok(any()));
    // As PostgreSQL: STDIN and STDOUT both name the client, whichever the direction.
    assert_eq!(plan(&p, "COPY countries TO STDIN"), Ok(any()));
    assert_eq!(
        plan(&p, "COPY countries FROM STDOUT"),
        Ok(everywhere(ResultMerge::CopyEverywhere))
    );
    assert_eq!(
        plan(
            &p,
            "COPY (SELECT * FROM users WHERE id = 5) TO STDOUT WITH (FORMAT csv)"
        ),
        Ok(one(shard(5, 2)))
    );
    assert_eq!(plan(&p, "COPY (SELECT 1) TO STDOUT"), Ok(any()));
    assert_eq!(
        plan(&p, "COPY users TO STDOUT"),
        Ok(everywhere(ResultMerge::CopyOut { header: false }))
    );
    assert_eq!(
        plan(
            &p,
            "COPY users (id, name) TO STDOUT WITH (FORMAT csv, HEADER)"
        ),
        Ok(everywhere(ResultMerge::CopyOut { header: true }))
    );
    assert_eq!(
        plan(&p, "COPY users TO STDOUT CSV HEADER"),
        Ok(everywhere(ResultMerge::CopyOut { header: true }))
    );
    refused(&p, "COPY users TO STDOUT WITH (FORMAT binary)");
    // Without a column list the key is found by position: the columns are asked for.
    assert!(matches!(
        plan(&p, "COPY users FROM STDIN"),
        Err(PlanError::ColumnsNeeded { .. })
    ));
    refused(&p, "COPY users TO STDOUT BINARY");
    refused(&p, "COPY (SELECT * FROM users) TO STDOUT");
    refused(&p, "COPY audit FROM STDIN");
    refused(&p, "COPY countries TO '/tmp/x'");
}
