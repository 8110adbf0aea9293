//! The audit log in control.db: append-only, one keyed hash chain per tenant.
//!
//! Each entry's `hash` is `blake3::keyed_hash(chain key, prev_hash ‖ canonical entry)`, where
//! the canonical entry is the JSON array of every stored field including `seq`, and
//! `prev_hash` is the hash of the previous entry of the same chain (32 zero bytes for the
//! first). Editing, reordering or removing an entry inside a chain breaks the link after it,
//! and without the chain key (derived from the server secret, which is not in the database)
//! nobody can recompute a valid chain. Truncating the newest entries is not visible from the
//! chain alone: [`VerifyReport::head`] gives the newest link to anchor elsewhere. Triggers
//! refuse UPDATE and DELETE on the table for every connection.
//!
//! [`append`] works on a connection so callers append inside the same write operation as
//! the change they audit: both commit or neither does.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::error::StoreError;
use super::Store;

/// Key for the chain's keyed hash.
#[derive(Clone)]
pub struct AuditKey(pub [u8; 32]);

/// The chain of events tied to no tenant (global admin actions, unknown tenants).
pub const GLOBAL_CHAIN: &str = "";

/// One event to append.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Chain: a tenant id, or [`GLOBAL_CHAIN`].
    pub tenant: String,
    pub at_ms: i64,
    /// Who: `admin-token`, `key:<id>`, `jwt:<issuer>#<subject>`, `anonymous`, `cli`.
    pub actor: String,
    /// What, e.g. `key.created`, `auth.failed`, `tenant.deleted`.
    pub action: String,
    /// What it was done to (key id, tenant id, route).
    pub target: String,
    /// Remote address of the request, or `local` for the CLI.
    pub remote: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// Event-specific details (JSON object).
    pub detail: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// Hex of this entry's chain hash.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// Result of checking one chain from its first entry to its last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: u64,
    pub first_broken: Option<BrokenLink>,
    pub head: Option<ChainHead>,
}

fn canonical(seq: i64, e: &AuditEntry) -> Vec<u8> {
    // An array of scalars serializes the same way every time.
    serde_json::to_vec(&serde_json::json!([
        seq,
        e.tenant,
        e.at_ms,
        e.actor,
        e.action,
        e.target,
        e.remote,
        e.outcome,
        serde_json::to_string(&e.detail).unwrap_or_default(),
    ]))
    .unwrap_or_default()
}

fn link(key: &AuditKey, prev: &[u8], seq: i64, e: &AuditEntry) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(prev);
    h.update(&canonical(seq, e));
    *h.finalize().as_bytes()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appends `e` to its chain on `c` (inside the caller's write operation). Returns its seq.
pub(crate) fn append(c: &Connection, key: &AuditKey, e: &AuditEntry) -> Result<i64, StoreError> {
    let err = StoreError::from_sqlite;
    let prev: Vec<u8> = c
        .prepare_cached("SELECT hash FROM audit_log WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1")
        .map_err(err)?
        .query_row(params![e.tenant], |r| r.get(0))
        .optional()
        .map_err(err)?
        .unwrap_or_else(|| vec![0u8; 32]);
    let seq: i64 = c
        .query_row("SELECT coalesce(max(seq), 0) + 1 FROM audit_log", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    let hash = link(key, &prev, seq, e);
    let detail = serde_json::to_string(&e.detail).unwrap_or_else(|_| "{}".into());
    c.prepare_cached(
        "INSERT INTO audit_log (seq, tenant, at_ms, actor, action, target, remote, outcome,
                                detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .map_err(err)?
    .execute(params![
        seq,
        e.tenant,
        e.at_ms,
        e.actor,
        e.action,
        e.target,
        e.remote,
        e.outcome,
        detail,
        prev,
        &hash[..]
    ])
    .map_err(err)?;
    Ok(seq)
}

type Row = (i64, AuditEntry, Vec<u8>, Vec<u8>);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let detail: String = r.get(8)?;
    Ok((
        r.get(0)?,
        AuditEntry {
            tenant: r.get(1)?,
            at_ms: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            remote: r.get(6)?,
            outcome: r.get(7)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        },
        r.get(9)?,
        r.get(10)?,
    ))
}

const SELECT: &str = "SELECT seq, tenant, at_ms, actor, action, target, remote, outcome, detail,
                             prev_hash, hash FROM audit_log";

/// Rows checked per read while verifying (each read is its own short transaction).
const VERIFY_CHUNK: i64 = 5000;

impl Store {
    /// Appends one entry on its own (events not tied to another change).
    pub async fn append_audit(&self, key: &AuditKey, e: AuditEntry) -> Result<i64, StoreError> {
        let key = key.clone();
        self.control.write(move |c| append(c, &key, &e)).await
    }

    /// Entries of one chain after `after_seq`, oldest first, at most `limit`.
    pub async fn list_audit(
        &self,
        chain: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let chain = chain.to_owned();
        let limit = limit as i64;
        self.control
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "{SELECT} WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                    ))
                    .map_err(StoreError::from_sqlite)?;
                let rows = st
                    .query_map(params![chain, after_seq, limit], read_row)
                    .map_err(StoreError::from_sqlite)?;
                rows.map(|r| {
                    r.map(|(seq, entry, _, hash)| AuditRecord {
                        seq,
                        entry,
                        hash: hex(&hash),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Recomputes one chain and reports the first entry whose link does not hold.
    pub async fn verify_audit(
        &self,
        key: &AuditKey,
        chain: &str,
    ) -> Result<VerifyReport, StoreError> {
        let mut prev = vec![0u8; 32];
        let mut after = 0i64;
        let mut entries = 0u64;
        let mut head = None;
        loop {
            let (chain_s, key_c) = (chain.to_owned(), key.clone());
            let rows: Vec<Row> = self
                .control
                .read(move |c| {
                    let mut st = c
                        .prepare_cached(&format!(
                            "{SELECT} WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                        ))
                        .map_err(StoreError::from_sqlite)?;
                    let rows = st
                        .query_map(params![chain_s, after, VERIFY_CHUNK], read_row)
                        .map_err(StoreError::from_sqlite)?;
                    rows.collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::from_sqlite)
                })
                .await?;
            let done = (rows.len() as i64) < VERIFY_CHUNK;
            for (seq, e, stored_prev, stored_hash) in rows {
                entries += 1;
                let broken = |reason: &str| VerifyReport {
                    ok: false,
                    entries,
                    first_broken: Some(BrokenLink {
                        seq,
                        reason: reason.to_owned(),
                    }),
                    head: None,
                };
                if stored_prev != prev {
                    return Ok(broken(
                        "prev_hash does not match the previous entry's hash (an entry was removed, reordered or altered)",
                    ));
                }
                let h = link(&key_c, &prev, seq, &e);
                if stored_hash[..] != h[..] {
                    return Ok(broken("hash does not match the entry's content"));
                }
                prev = h.to_vec();
                after = seq;
                head = Some(ChainHead { seq, hash: hex(&h) });
            }
            if done {
                break;
            }
        }
        Ok(VerifyReport {
            ok: true,
            entries,
            first_broken: None,
            head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::store::CheckpointPolicy;

    fn entry(tenant: &str, action: &str) -> AuditEntry {
        AuditEntry {
            tenant: tenant.into(),
            at_ms: 1,
            actor: "cli".into(),
            action: action.into(),
            target: "t".into(),
            remote: "local".into(),
            outcome: "success".into(),
            detail: serde_json::json!({"n": 1}),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chains_verify_and_report_the_first_broken_link() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        };
        let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
        let key = AuditKey([7; 32]);
        for i in 0..5 {
            store
                .append_audit(&key, entry("a", &format!("x{i}")))
                .await
                .unwrap();
            store.append_audit(&key, entry("b", "y")).await.unwrap();
        }
        let r = store.verify_audit(&key, "a").await.unwrap();
        assert!(r.ok && r.entries == 5, "{r:?}");
        assert_eq!(r.head.as_ref().unwrap().seq, 9);
        // A wrong key does not verify.
        let bad = store.verify_audit(&AuditKey([8; 32]), "a").await.unwrap();
        assert_eq!(bad.first_broken.unwrap().seq, 1);
        // UPDATE and DELETE are refused.
        let e = store
            .control()
            .write(|c| {
                c.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 3", [])
                    .map_err(StoreError::from_sqlite)
            })
            .await;
        assert!(e.is_err());
        assert!(store
            .control()
            .write(|c| c
                .execute("DELETE FROM audit_log", [])
                .map_err(StoreError::from_sqlite))
            .await
            .is_err());
        // Someone with raw file access drops the trigger and edits entry 5 of chain "a".
        store
            .control()
            .write(|c| {
                c.execute_batch(
                    "DROP TRIGGER audit_log_no_update;
                     UPDATE audit_log SET action = 'forged' WHERE seq = 5;",
                )
                .map_err(StoreError::from_sqlite)
            })
            .await
            .unwrap();
        let r = store.verify_audit(&key, "a").await.unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_broken.as_ref().unwrap().seq, 5, "{r:?}");
        assert!(store.verify_audit(&key, "b").await.unwrap().ok);
        store.close().await;
    }
}
