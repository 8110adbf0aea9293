//! The audit log in control.db: append-only, one keyed hash chain per tenant, anchored by
//! signed heads so that removing entries from the end is as visible as editing one.
//!
//! Each entry's `hash` is `blake3::keyed_hash(chain key, prev_hash ‖ canonical entry)`, where
//! the canonical entry is the JSON array of every stored field including `seq`, and
//! `prev_hash` is the hash of the previous entry of the same chain (32 zero bytes for the
//! first). Editing, reordering or removing an entry inside a chain breaks the link after it,
//! and without the chain key (derived from the server secret, which is not in the database)
//! nobody can recompute a valid chain. Triggers refuse UPDATE and DELETE on the table for
//! every connection.
//!
//! A chain alone cannot show that its newest entries, or all of them, are gone: what is
//! left still links. So every append also writes, in the same transaction:
//! - the chain's **anchor** (`audit_anchor`): its head seq, head hash and length, and
//! - the log's **checkpoint** (`audit_checkpoint`, one row): the newest seq, the number of
//!   entries and the number of chains,
//!
//! each with a keyed BLAKE3 MAC under a key derived from the chain key (so from the server
//! secret). Someone who can edit the database but does not hold the secret cannot sign an
//! anchor for a shortened chain: truncation shows as an anchor whose head is missing or
//! whose length exceeds the chain's, and removing a whole chain with its anchor shows as a
//! checkpoint that counts more chains and entries than the anchors hold. An anchor or
//! checkpoint that does not verify is never built upon (an append leaves it as found), so
//! the next append cannot launder an edit into a valid signature. Lengths and counts grow
//! from the previous signed values, never from a recount of the table, for the same reason.
//! Keyed BLAKE3 rather than HMAC-SHA256: it is a MAC by design (no length extension), and
//! it is the primitive the chain already uses, so the store needs no second one.
//!
//! What a signature cannot catch is a rollback of the whole file to an older copy, whose
//! anchors and checkpoint were valid then. For that the checkpoint is also published outside
//! the database: the `gleaner_audit_checkpoint_seq` and `…_entries` gauges (which never go
//! down in a healthy log) and an `audit checkpoint` log line at start-up and shutdown with
//! its MAC; compare these with what a monitoring system or log store kept.
//!
//! A log written before anchoring existed carries a checkpoint with an empty MAC (see the
//! `audit_anchor` migration); [`Store::audit_checkpoint`] (at `gleaner serve` start-up)
//! signs what is there once, trust on first use, and says so in the log.
//!
//! [`append`] works on a connection so callers append inside the same write operation as
//! the change they audit: both commit or neither does.

use rusqlite::{params, Connection, OptionalExtension};

use super::audit_anchor::{
    anchor_legacy, checkpoint_report, read_anchor, read_checkpoint, AnchorRow,
};
use super::audit_types::{
    hex, AnchorView, AuditEntry, AuditKey, AuditRecord, BrokenLink, ChainHead, CheckpointReport,
    VerifyReport, GLOBAL_CHAIN,
};
use super::error::StoreError;
use super::Store;
use crate::telemetry::metrics as m;

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
    super::audit_anchor::advance(c, key, &e.tenant, seq, &hash)?;
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

/// How a walked chain disagrees with its signed anchor, if it does: a signature that does
/// not verify, or a head the walk did not reach (`at_anchor`: entries up to the anchored head
/// and its recomputed hash), reached with another hash, or after another number of entries.
fn anchor_break(
    a: &AnchorRow,
    key: &AuditKey,
    chain: &str,
    at_anchor: Option<(u64, [u8; 32])>,
    entries: u64,
    head: Option<&ChainHead>,
) -> Option<BrokenLink> {
    if !a.valid(key, chain) {
        return Some(BrokenLink {
            seq: a.seq,
            reason:
                "the chain's anchor does not carry a valid signature: it was edited or replaced"
                    .into(),
        });
    }
    match at_anchor {
        None => Some(BrokenLink {
            seq: a.seq,
            reason: format!(
                "truncated: the signed anchor records {} entries up to seq {}, but seq {} is not in the chain, which holds {entries} entries up to {}",
                a.length,
                a.seq,
                a.seq,
                head.map_or("none".to_owned(), |h| format!("seq {}", h.seq)),
            ),
        }),
        Some((_, h)) if h[..] != a.hash[..] => Some(BrokenLink {
            seq: a.seq,
            reason: "the entry at the anchored head does not have the anchored hash".into(),
        }),
        Some((n, _)) if n as i64 != a.length => Some(BrokenLink {
            seq: a.seq,
            reason: format!(
                "truncated: the signed anchor records {} entries up to seq {}, the chain holds {n}: entries were removed",
                a.length, a.seq
            ),
        }),
        Some(_) => None,
    }
}

/// What only the checkpoint can tell about a chain whose links and anchor hold: a chain
/// with entries but no anchor (its signed head removed, or a log not signed yet), a chain
/// with neither (perhaps removed with its anchor), and, for the global chain, a checkpoint
/// over all chains that does not hold.
fn checkpoint_break(
    chain: &str,
    unanchored: bool,
    entries: u64,
    head: Option<&ChainHead>,
    cp: Option<&CheckpointReport>,
) -> Option<BrokenLink> {
    if unanchored {
        if entries > 0 {
            let pending = cp.is_some_and(|c| !c.ok && c.mac.is_empty() && c.entries > 0);
            return Some(BrokenLink {
                seq: head.map_or(0, |h| h.seq),
                reason: if pending {
                    "not anchored yet: the log predates anchoring; `gleaner serve` signs it at start-up".into()
                } else {
                    "the chain has no anchor: its signed head was removed".into()
                },
            });
        } else if let Some(cp) = cp.filter(|c| !c.ok) {
            return Some(BrokenLink {
                seq: 0,
                reason: format!(
                    "this chain has no entries and no anchor, and the checkpoint does not hold, so it may have been removed with its anchor: {}",
                    cp.reason.as_deref().unwrap_or("")
                ),
            });
        }
    }
    if chain == GLOBAL_CHAIN {
        if let Some(cp) = cp.filter(|c| !c.ok) {
            return Some(BrokenLink {
                seq: 0,
                reason: format!(
                    "the checkpoint over all chains does not hold: {}",
                    cp.reason.as_deref().unwrap_or("")
                ),
            });
        }
    }
    None
}

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

    /// Recomputes one chain, reports the first entry whose link does not hold, and checks
    /// the chain against its signed anchor (and, where only it can tell, the checkpoint).
    pub async fn verify_audit(
        &self,
        key: &AuditKey,
        chain: &str,
    ) -> Result<VerifyReport, StoreError> {
        // The anchor is read first: entries appended during the walk lie beyond it, and the
        // walk judges the anchor only at its head.
        let chain_a = chain.to_owned();
        let anchor = self.control.read(move |c| read_anchor(c, &chain_a)).await?;
        let anchor_view = anchor.as_ref().map(|a| AnchorView {
            seq: a.seq,
            hash: hex(&a.hash),
            entries: a.length.max(0) as u64,
        });
        let mut prev = vec![0u8; 32];
        let mut after = 0i64;
        let mut entries = 0u64;
        let mut head = None;
        // (entries up to the anchored head, its recomputed hash) once the walk reaches it.
        let mut at_anchor: Option<(u64, [u8; 32])> = None;
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
                    anchor: anchor_view.clone(),
                    checkpoint: None,
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
                if anchor.as_ref().is_some_and(|a| a.seq == seq) {
                    at_anchor = Some((entries, h));
                }
                prev = h.to_vec();
                after = seq;
                head = Some(ChainHead { seq, hash: hex(&h) });
            }
            if done {
                break;
            }
        }
        let mut first_broken = anchor
            .as_ref()
            .and_then(|a| anchor_break(a, key, chain, at_anchor, entries, head.as_ref()));
        let checkpoint = if chain == GLOBAL_CHAIN || anchor.is_none() {
            Some(self.audit_checkpoint_report(key).await?)
        } else {
            None
        };
        if first_broken.is_none() {
            first_broken = checkpoint_break(
                chain,
                anchor.is_none(),
                entries,
                head.as_ref(),
                checkpoint.as_ref(),
            );
        }
        Ok(VerifyReport {
            ok: first_broken.is_none(),
            entries,
            first_broken,
            head,
            anchor: anchor_view,
            checkpoint,
        })
    }

    /// Checks the signed checkpoint against every anchor and the table, in one snapshot
    /// (appends write all three in one transaction, so a snapshot always agrees).
    pub async fn audit_checkpoint_report(
        &self,
        key: &AuditKey,
    ) -> Result<CheckpointReport, StoreError> {
        let key = key.clone();
        self.control.read(move |c| checkpoint_report(c, &key)).await
    }

    /// Signs a log written before anchoring (once; see the module header), then reports the
    /// checkpoint and publishes it in the gauges. `gleaner serve` runs this at start-up.
    pub async fn anchor_audit(&self, key: &AuditKey) -> Result<CheckpointReport, StoreError> {
        let k = key.clone();
        self.control
            .write(move |c| match read_checkpoint(c)? {
                Some(cp) if cp.pending() => anchor_legacy(c, &k),
                _ => Ok(()),
            })
            .await?;
        let r = self.audit_checkpoint_report(key).await?;
        if r.ok {
            metrics::gauge!(m::AUDIT_CHECKPOINT_SEQ).set(r.last_seq as f64);
            metrics::gauge!(m::AUDIT_CHECKPOINT_ENTRIES).set(r.entries as f64);
        }
        Ok(r)
    }

    /// Every chain name the log or the anchors know, ordered (the global chain first).
    pub async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        self.control
            .read(|c| {
                let e = StoreError::from_sqlite;
                c.prepare(
                    "SELECT DISTINCT tenant FROM audit_log
                     UNION SELECT tenant FROM audit_anchor ORDER BY 1",
                )
                .map_err(e)?
                .query_map([], |r| r.get(0))
                .map_err(e)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(e)
            })
            .await
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

    async fn open(dir: &std::path::Path) -> Store {
        let cfg = StoreConfig {
            data_dir: dir.to_path_buf(),
            ..StoreConfig::default()
        };
        Store::open(&cfg, CheckpointPolicy::External).await.unwrap()
    }

    async fn raw(store: &Store, sql: &'static str) {
        store
            .control()
            .write(move |c| c.execute_batch(sql).map_err(StoreError::from_sqlite))
            .await
            .unwrap();
    }

    /// Chains "a" (seqs 1, 3, 5, 7, 9), "b" (2, 4, 6, 8, 10) and the global one (11).
    async fn two_chains(store: &Store, key: &AuditKey) {
        for i in 0..5 {
            store
                .append_audit(key, entry("a", &format!("x{i}")))
                .await
                .unwrap();
            store.append_audit(key, entry("b", "y")).await.unwrap();
        }
        store
            .append_audit(key, entry(GLOBAL_CHAIN, "g"))
            .await
            .unwrap();
    }

    fn reason(r: &VerifyReport) -> &str {
        &r.first_broken.as_ref().unwrap().reason
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_untouched_log_verifies_with_anchors_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let key = AuditKey([7; 32]);
        let empty = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(
            empty.ok && empty.entries == 0 && empty.anchor.is_none(),
            "{empty:?}"
        );
        two_chains(&store, &key).await;
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(a.ok, "{a:?}");
        let anchor = a.anchor.as_ref().unwrap();
        assert_eq!((anchor.seq, anchor.entries), (9, 5));
        assert_eq!(anchor.hash, a.head.as_ref().unwrap().hash);
        let g = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(g.ok, "{g:?}");
        let cp = g.checkpoint.unwrap();
        assert!(cp.ok, "{cp:?}");
        assert_eq!((cp.last_seq, cp.entries, cp.chains), (11, 11, 3));
        assert_eq!(cp.mac.len(), 64);
        assert_eq!(store.audit_chains().await.unwrap(), ["", "a", "b"]);
        // A tenant that never had an entry is fine while the checkpoint holds.
        let none = store.verify_audit(&key, "nobody").await.unwrap();
        assert!(none.ok && none.entries == 0, "{none:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_the_newest_entries_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let key = AuditKey([7; 32]);
        two_chains(&store, &key).await;
        // The newest two of chain "a" (seqs 7 and 9): what is left still links.
        raw(
            &store,
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq IN (7, 9);",
        )
        .await;
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(!a.ok, "{a:?}");
        assert_eq!(a.entries, 3);
        assert_eq!(a.first_broken.as_ref().unwrap().seq, 9);
        assert!(reason(&a).starts_with("truncated"), "{a:?}");
        assert!(store.verify_audit(&key, "b").await.unwrap().ok);
        let g = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(!g.ok, "{g:?}");
        assert!(reason(&g).contains("entries were removed"), "{g:?}");
        // The next append builds on the signed anchor, not on a recount: still broken.
        store.append_audit(&key, entry("a", "later")).await.unwrap();
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(!a.ok, "{a:?}");
        assert!(
            reason(&a).contains("the signed anchor records 6 entries"),
            "{a:?}"
        );
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_whole_chain_is_detected_with_or_without_its_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let key = AuditKey([7; 32]);
        two_chains(&store, &key).await;
        raw(
            &store,
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE tenant = 'b';",
        )
        .await;
        let b = store.verify_audit(&key, "b").await.unwrap();
        assert!(!b.ok && b.entries == 0, "{b:?}");
        assert_eq!(b.first_broken.as_ref().unwrap().seq, 10);
        // And with its anchor: only the checkpoint still knows the chain existed.
        raw(&store, "DELETE FROM audit_anchor WHERE tenant = 'b';").await;
        let b = store.verify_audit(&key, "b").await.unwrap();
        assert!(!b.ok && b.entries == 0, "{b:?}");
        assert!(
            reason(&b).contains("counts 3 chains but 2 anchors"),
            "{b:?}"
        );
        assert!(store.verify_audit(&key, "a").await.unwrap().ok);
        let g = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(!g.ok, "{g:?}");
        // Removing the checkpoint as well leaves a log with no signed checkpoint.
        raw(&store, "DELETE FROM audit_checkpoint;").await;
        let g = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(reason(&g).contains("checkpoint is missing"), "{g:?}");
        // An append does not create a fresh checkpoint over the remains.
        store.append_audit(&key, entry("a", "later")).await.unwrap();
        let g = store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap();
        assert!(!g.ok, "{g:?}");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_edited_anchor_is_refused_and_never_re_signed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let key = AuditKey([7; 32]);
        two_chains(&store, &key).await;
        // Truncate "a" and rewrite its anchor and the checkpoint to match, without the key.
        raw(
            &store,
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 9;
             UPDATE audit_anchor SET head_seq = 7, length = 4,
               head_hash = (SELECT hash FROM audit_log WHERE seq = 7) WHERE tenant = 'a';
             UPDATE audit_checkpoint SET entries = 10;",
        )
        .await;
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(!a.ok, "{a:?}");
        assert!(reason(&a).contains("valid signature"), "{a:?}");
        store.append_audit(&key, entry("a", "later")).await.unwrap();
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(reason(&a).contains("valid signature"), "{a:?}");
        let cp = store.audit_checkpoint_report(&key).await.unwrap();
        assert!(!cp.ok, "{cp:?}");
        // A wrong key sees every signature as forged.
        let other = store
            .audit_checkpoint_report(&AuditKey([8; 32]))
            .await
            .unwrap();
        assert!(!other.ok);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_from_before_anchoring_is_signed_once_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let key = AuditKey([7; 32]);
        two_chains(&store, &key).await;
        // What the migration leaves over an existing log: no anchors, an unsigned checkpoint.
        raw(
            &store,
            "DELETE FROM audit_anchor; UPDATE audit_checkpoint SET mac = X'';",
        )
        .await;
        let a = store.verify_audit(&key, "a").await.unwrap();
        assert!(!a.ok && reason(&a).contains("not anchored yet"), "{a:?}");
        let cp = store.anchor_audit(&key).await.unwrap();
        assert!(cp.ok, "{cp:?}");
        assert_eq!((cp.last_seq, cp.entries, cp.chains), (11, 11, 3));
        assert!(store.verify_audit(&key, "a").await.unwrap().ok);
        assert!(store.verify_audit(&key, GLOBAL_CHAIN).await.unwrap().ok);
        store.append_audit(&key, entry("b", "later")).await.unwrap();
        let g = store.audit_checkpoint_report(&key).await.unwrap();
        assert!(g.ok && g.entries == 12, "{g:?}");
        store.close().await;
    }
}
