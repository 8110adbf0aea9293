//! Schema migrations for the control database and for tenant databases.
//!
//! Each database kind has an ordered list of migrations; `schema_migrations` records which
//! have run. Migrations run inside one transaction each, at open, on the writer connection.
//! A database with a version newer than this build knows is refused rather than guessed at.

use std::path::Path;

use rusqlite::Connection;

use super::error::StoreError;

/// Which list of migrations applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Control,
    Tenant,
}

impl DbKind {
    pub fn label(self) -> &'static str {
        match self {
            DbKind::Control => "control",
            DbKind::Tenant => "tenant",
        }
    }

    pub(crate) fn migrations(self) -> &'static [(&'static str, &'static str)] {
        match self {
            DbKind::Control => CONTROL,
            DbKind::Tenant => TENANT,
        }
    }
}

const CONTROL: &[(&str, &str)] = &[
    (
        "tenants",
        "CREATE TABLE tenants (
        id TEXT PRIMARY KEY NOT NULL,
        display_name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) STRICT;",
    ),
    (
        "tenant_quotas_settings_deletions",
        // Quotas are NULL when unlimited. A deleted tenant leaves a row in
        // `tenant_deletions` (who asked, whether replica erasure was requested and where it
        // stands) so the request survives restarts and can be audited.
        "ALTER TABLE tenants ADD COLUMN quota_storage_bytes INTEGER;
    ALTER TABLE tenants ADD COLUMN quota_records INTEGER;
    ALTER TABLE tenants ADD COLUMN quota_sources INTEGER;
    ALTER TABLE tenants ADD COLUMN quota_runs_per_day INTEGER;
    ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE tenant_deletions (
        tenant TEXT NOT NULL,
        deleted_ms INTEGER NOT NULL,
        erase INTEGER NOT NULL,
        erase_status TEXT NOT NULL,
        PRIMARY KEY (tenant, deleted_ms)
    ) STRICT;",
    ),
    (
        "api_keys",
        // `secret_hash` is HMAC-SHA256(server secret, key secret); the secret itself is never
        // stored. After a rotation the old hash stays valid until `prev_valid_until_ms`.
        // `tenant` is NULL for global admin keys.
        "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY NOT NULL,
        tenant TEXT,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        prev_secret_hash BLOB,
        prev_valid_until_ms INTEGER,
        created_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        rotated_ms INTEGER,
        expires_ms INTEGER,
        revoked_ms INTEGER,
        last_used_ms INTEGER
    ) STRICT;
    CREATE INDEX api_keys_tenant ON api_keys (tenant, id);",
    ),
    (
        "audit_log",
        // One keyed hash chain per tenant ('' is the chain of events tied to no tenant).
        // Triggers make the table append-only for every connection, ours included.
        "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        remote TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    ) STRICT;
    CREATE INDEX audit_log_tenant_seq ON audit_log (tenant, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
    ),
    (
        "usage_daily",
        "CREATE TABLE usage_daily (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        api_requests INTEGER NOT NULL DEFAULT 0,
        runs INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, day)
    ) STRICT, WITHOUT ROWID;",
    ),
    (
        "harvest_sources",
        // Source definitions live here, not in tenant databases, so the scheduler finds due
        // sources with one indexed query instead of opening every tenant's file.
        "CREATE TABLE harvest_sources (
        tenant TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        kind TEXT NOT NULL,
        definition TEXT NOT NULL,
        schedule TEXT,
        freshness_secs INTEGER,
        next_run_ms INTEGER,
        last_run_id INTEGER,
        last_status TEXT,
        last_success_ms INTEGER,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, id)
    ) STRICT;
    CREATE INDEX harvest_sources_due ON harvest_sources (next_run_ms)
        WHERE next_run_ms IS NOT NULL;",
    ),
    (
        "audit_anchor",
        // The audit chains' signed heads (see `super::audit`): one anchor per chain and one
        // checkpoint over all of them, both keyed-MAC'd and written in the same transaction
        // as each entry. This migration has no key, so a log written before it gets a
        // checkpoint with an empty MAC, the marker for "sign what is there on first use";
        // an empty log gets no row and its first append creates one.
        "CREATE TABLE audit_anchor (
        tenant TEXT PRIMARY KEY NOT NULL,
        head_seq INTEGER NOT NULL,
        head_hash BLOB NOT NULL,
        length INTEGER NOT NULL,
        mac BLOB NOT NULL
    ) STRICT;
    CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        chains INTEGER NOT NULL,
        mac BLOB NOT NULL
    ) STRICT;
    INSERT INTO audit_checkpoint (id, last_seq, entries, chains, mac)
        SELECT 1, max(seq), count(*), count(DISTINCT tenant), X'' FROM audit_log
        HAVING count(*) > 0;",
    ),
];

const TENANT: &[(&str, &str)] = &[
    (
        "records",
        // `id` is the stable cursor for pagination; (source, key) is the record's identity.
        // The current version lives in `records`; superseded versions move to
        // `record_versions` so reads of the latest state never scan history.
        "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash BLOB NOT NULL,
        payload BLOB NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        version_since_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        removed_run INTEGER,
        UNIQUE (source, key)
    ) STRICT;
    CREATE TABLE record_versions (
        record_id INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        hash BLOB NOT NULL,
        payload BLOB NOT NULL,
        since_ms INTEGER NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (record_id, version)
    ) STRICT, WITHOUT ROWID;",
    ),
    (
        "records_fts_stats_source_index",
        // Full-text index over the text extracted from each record's payload, kept by
        // triggers so every write path (API push, harvest) updates it inside the same
        // savepoint as the record (insert/update triggers replaced by explicit writes in
        // `records_fts_text_from_encoder`). `gleaner_record_text` is registered on the
        // connection by `migrate` (see `super::fts`). `record_stats` keeps an exact record count for quota
        // checks without a count(*) scan. (source, id) serves source-filtered keyset pages.
        "CREATE INDEX records_source_id ON records (source, id);
    CREATE VIRTUAL TABLE records_fts USING fts5(
        text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
    INSERT INTO records_fts (rowid, text) SELECT id, gleaner_record_text(payload) FROM records;
    CREATE TRIGGER records_fts_ai AFTER INSERT ON records BEGIN
        INSERT INTO records_fts (rowid, text) VALUES (new.id, gleaner_record_text(new.payload));
    END;
    CREATE TRIGGER records_fts_au AFTER UPDATE OF payload ON records BEGIN
        DELETE FROM records_fts WHERE rowid = old.id;
        INSERT INTO records_fts (rowid, text) VALUES (new.id, gleaner_record_text(new.payload));
    END;
    CREATE TRIGGER records_fts_ad AFTER DELETE ON records BEGIN
        DELETE FROM records_fts WHERE rowid = old.id;
    END;
    CREATE TABLE record_stats (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        records INTEGER NOT NULL
    ) STRICT;
    INSERT INTO record_stats (id, records) VALUES (1, (SELECT count(*) FROM records));
    CREATE TRIGGER record_stats_ai AFTER INSERT ON records BEGIN
        UPDATE record_stats SET records = records + 1 WHERE id = 1;
    END;
    CREATE TRIGGER record_stats_ad AFTER DELETE ON records BEGIN
        UPDATE record_stats SET records = records - 1 WHERE id = 1;
    END;",
    ),
    (
        "harvest_runtime",
        // Runs, the durable crawl frontier, conditional-GET state, OAuth tokens and secrets.
        // `frontier.state`: 0 pending, 1 claimed (in flight), 2 done, 3 failed. A killed run
        // leaves claimed rows, which the resumed run sets back to pending.
        "CREATE TABLE harvest_runs (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        complete INTEGER NOT NULL DEFAULT 0,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]',
        message TEXT,
        cookies TEXT
    ) STRICT;
    CREATE INDEX harvest_runs_source ON harvest_runs (source, id);
    CREATE TABLE frontier (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        depth INTEGER NOT NULL,
        state INTEGER NOT NULL DEFAULT 0,
        data TEXT,
        UNIQUE (source, url)
    ) STRICT;
    CREATE INDEX frontier_pending ON frontier (source, state, id);
    CREATE TABLE fetch_state (
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body_hash BLOB,
        yield TEXT,
        fetched_ms INTEGER NOT NULL,
        PRIMARY KEY (source, url)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE oauth_tokens (
        source TEXT PRIMARY KEY NOT NULL,
        seed_hash BLOB NOT NULL,
        refresh_token TEXT,
        access_token TEXT,
        expires_ms INTEGER,
        updated_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX records_source_seen ON records (source, last_seen_ms);
    CREATE TABLE zstd_dictionaries (
        id INTEGER PRIMARY KEY NOT NULL,
        source TEXT NOT NULL,
        version INTEGER NOT NULL,
        dict BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (source, version)
    ) STRICT;",
    ),
    (
        "records_fts_text_from_encoder",
        // The insert and update triggers decoded and parsed every payload on the writer
        // thread. The index text is now computed when a record is encoded (CPU pool),
        // staged by `records::put` (the only code that inserts records or changes their
        // payload) in the same savepoint, and folded into the index before the COMMIT of
        // the same transaction (see `super::fts`). The delete trigger stays: it reads no
        // payload. The rows already indexed are unchanged (same text function).
        "DROP TRIGGER records_fts_ai;
    DROP TRIGGER records_fts_au;",
    ),
    (
        "harvest_runs_budget_day",
        // A run stopped by its source's `requests_per_day` budget is resumed by a later run,
        // possibly days after it started: `budget_day` (days since the Unix epoch, UTC) is
        // the day its requests count against, `budget_day_base` its request count when
        // that day began for it. NULL (older rows): the day it started, from 0.
        "ALTER TABLE harvest_runs ADD COLUMN budget_day INTEGER;
    ALTER TABLE harvest_runs ADD COLUMN budget_day_base INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        "source_cursors",
        // The incremental cursor of a json source: written only when a run succeeded
        // completely, so a partial or failed run never skips data. `basis` says what the
        // value means (`max_field:updated_at:rfc3339`, `token:$.next`); a definition that
        // changes it starts from no cursor. `run_id` is the run that stored it.
        "CREATE TABLE source_cursors (
        source TEXT PRIMARY KEY NOT NULL,
        basis TEXT NOT NULL,
        value TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) STRICT;",
    ),
    (
        "run_changes",
        // What each harvest run changed (see `super::changes`): one row per run and record,
        // `change` 1 added, 2 changed, 3 removed, `version` the record's version after it.
        // Written in the savepoint of the record write (or of the removal mark) it describes,
        // and pruned by run: only the newest runs of each source keep theirs.
        "CREATE TABLE run_changes (
        run_id INTEGER NOT NULL,
        record_id INTEGER NOT NULL,
        change INTEGER NOT NULL CHECK (change IN (1, 2, 3)),
        version INTEGER NOT NULL,
        PRIMARY KEY (run_id, record_id)
    ) STRICT, WITHOUT ROWID;",
    ),
    (
        "connections",
        // Named credentials many sources use (`connection = "NAME"`): the definition as
        // JSON with secret references only. Its token chain is the `oauth_tokens` row
        // keyed `connection:NAME` (source ids cannot contain ':').
        "CREATE TABLE connections (
        name TEXT PRIMARY KEY NOT NULL,
        definition TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    ) STRICT;",
    ),
];

/// What a database's write connection needs beyond its schema, handed in by the layer that
/// owns it so that this file and `db` never call up into it: for tenant databases, full-text
/// indexing (`fts::TENANT_WRITER`).
#[derive(Clone, Copy)]
pub(crate) struct WriterHooks {
    /// Runs on the write connection before its migrations (a migration may call the SQL
    /// functions it registers).
    pub(crate) prepare: fn(&Connection) -> rusqlite::Result<()>,
    /// Runs after a batch's operations, before COMMIT (see `writer`).
    pub(crate) before_commit: fn(&Connection) -> rusqlite::Result<()>,
}

/// Brings `conn` up to the newest schema of `kind`, after running `hooks`' `prepare`.
pub(crate) fn migrate(
    conn: &mut Connection,
    kind: DbKind,
    path: &Path,
    hooks: Option<WriterHooks>,
) -> Result<(), StoreError> {
    migrate_to(conn, kind, path, hooks, kind.migrations().len())
}

/// Runs the migrations of `kind` up to number `upto` (tests stop early to build an old
/// database).
pub(crate) fn migrate_to(
    conn: &mut Connection,
    kind: DbKind,
    path: &Path,
    hooks: Option<WriterHooks>,
    upto: usize,
) -> Result<(), StoreError> {
    if let Some(h) = hooks {
        (h.prepare)(conn).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            applied_ms INTEGER NOT NULL
        ) STRICT;",
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let current: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(StoreError::from_sqlite)?;
    let list = kind.migrations();
    let known = list.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            known,
        });
    }
    for (i, (name, sql)) in list.iter().enumerate().take(upto).skip(current as usize) {
        let version = i as i64 + 1;
        let wrap = |source| StoreError::Migration {
            path: path.to_path_buf(),
            version,
            source,
        };
        let tx = conn.transaction().map_err(wrap)?;
        tx.execute_batch(sql).map_err(wrap)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, super::base::now_ms()],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
    }
    Ok(())
}
