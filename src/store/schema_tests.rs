//! Tests of tenant-database migrations. They live here rather than in `schema`: a tenant
//! database migrates with the full-text hooks (`fts`) and is checked through `records`,
//! both of which sit above `schema`.

use rusqlite::Connection;

use super::error::StoreError;
use super::fts::TENANT_WRITER;
use super::records::{put, tests::assert_index_exact, PutOutcome, RecordWrite};
use super::schema::{migrate, migrate_to, DbKind, WriterHooks};

const HOOKS: Option<WriterHooks> = Some(TENANT_WRITER);

#[test]
fn migrations_are_idempotent_and_refuse_newer_schemas() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.db");
    let mut c = Connection::open(&p).unwrap();
    migrate(&mut c, DbKind::Tenant, &p, HOOKS).unwrap();
    migrate(&mut c, DbKind::Tenant, &p, HOOKS).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, DbKind::Tenant.migrations().len() as i64);
    c.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", [])
        .unwrap();
    let e = migrate(&mut c, DbKind::Tenant, &p, HOOKS).unwrap_err();
    assert!(
        matches!(e, StoreError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
}

#[test]
fn a_database_indexed_by_triggers_migrates_to_writer_side_indexing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.db");
    let mut c = Connection::open(&p).unwrap();
    // A database as the trigger-indexed schema left it, one record written then.
    let before = DbKind::Tenant
        .migrations()
        .iter()
        .position(|(n, _)| *n == "records_fts_text_from_encoder")
        .unwrap();
    migrate_to(&mut c, DbKind::Tenant, &p, HOOKS, before).unwrap();
    let rec = |key: &str, t: &str| RecordWrite {
        source: "s".into(),
        key: key.into(),
        payload: crate::store::encode_payload(&serde_json::json!({ "t": t })).unwrap(),
        seen_ms: 1,
    };
    let old = rec("a", "old words");
    c.execute(
        "INSERT INTO records (source, key, version, hash, payload, first_seen_ms,
                              version_since_ms, last_seen_ms)
         VALUES ('s', 'a', 1, ?1, ?2, 1, 1, 1)",
        rusqlite::params![&old.payload.hash[..], old.payload.compressed],
    )
    .unwrap();
    assert_index_exact(&c);
    migrate(&mut c, DbKind::Tenant, &p, HOOKS).unwrap();
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'records' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        triggers,
        ["record_stats_ad", "record_stats_ai", "records_fts_ad"]
    );
    // The row indexed by the old trigger is replaced, not duplicated, on change.
    assert_eq!(
        put(&c, &rec("a", "new words")).unwrap(),
        PutOutcome::Changed { version: 2 }
    );
    put(&c, &rec("b", "other words")).unwrap();
    assert_index_exact(&c);
}
