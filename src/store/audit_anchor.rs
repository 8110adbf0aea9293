//! The audit chains' signed heads: each chain's anchor (`audit_anchor`) and the checkpoint
//! over all chains (`audit_checkpoint`), their MACs, how an append advances them, and the
//! check of the checkpoint against the anchors and the table. Why they exist and what they
//! catch is in [`super::audit`]'s header; this file keeps one rule throughout: a signed value
//! that does not verify is never built upon, and counts grow from signed values, never from
//! a recount of the table.

use rusqlite::{params, Connection, OptionalExtension};

use super::audit_types::{hex, AuditKey, CheckpointReport};
use super::error::StoreError;
use crate::telemetry::metrics as m;

/// The anchor MAC key: derived from the chain key so one server secret keys both, and
/// distinct so a chain hash can never pass as an anchor MAC or the reverse.
fn anchor_key(key: &AuditKey) -> [u8; 32] {
    blake3::derive_key("gleaner 2026 audit anchor mac", &key.0)
}

fn anchor_mac(key: &AuditKey, tenant: &str, seq: i64, hash: &[u8], length: i64) -> [u8; 32] {
    let msg = serde_json::to_vec(&serde_json::json!([
        "anchor",
        tenant,
        seq,
        hex(hash),
        length
    ]))
    .unwrap_or_default();
    *blake3::keyed_hash(&anchor_key(key), &msg).as_bytes()
}

fn checkpoint_mac(key: &AuditKey, last_seq: i64, entries: i64, chains: i64) -> [u8; 32] {
    let msg = serde_json::to_vec(&serde_json::json!([
        "checkpoint",
        last_seq,
        entries,
        chains
    ]))
    .unwrap_or_default();
    *blake3::keyed_hash(&anchor_key(key), &msg).as_bytes()
}

/// Constant-time comparison of a stored MAC with the expected one.
fn mac_ok(stored: &[u8], expected: [u8; 32]) -> bool {
    <[u8; 32]>::try_from(stored)
        .is_ok_and(|s| blake3::Hash::from(s) == blake3::Hash::from(expected))
}

pub(super) struct AnchorRow {
    pub(super) seq: i64,
    pub(super) hash: Vec<u8>,
    pub(super) length: i64,
    mac: Vec<u8>,
}

impl AnchorRow {
    pub(super) fn valid(&self, key: &AuditKey, tenant: &str) -> bool {
        mac_ok(
            &self.mac,
            anchor_mac(key, tenant, self.seq, &self.hash, self.length),
        )
    }
}

pub(super) struct CheckpointRow {
    last_seq: i64,
    entries: i64,
    chains: i64,
    mac: Vec<u8>,
}

impl CheckpointRow {
    /// Written by the migration over a log that predates anchoring: sign on first use.
    pub(super) fn pending(&self) -> bool {
        self.mac.is_empty()
    }

    fn valid(&self, key: &AuditKey) -> bool {
        mac_ok(
            &self.mac,
            checkpoint_mac(key, self.last_seq, self.entries, self.chains),
        )
    }
}

pub(super) fn read_anchor(c: &Connection, tenant: &str) -> Result<Option<AnchorRow>, StoreError> {
    c.prepare_cached("SELECT head_seq, head_hash, length, mac FROM audit_anchor WHERE tenant = ?1")
        .map_err(StoreError::from_sqlite)?
        .query_row(params![tenant], |r| {
            Ok(AnchorRow {
                seq: r.get(0)?,
                hash: r.get(1)?,
                length: r.get(2)?,
                mac: r.get(3)?,
            })
        })
        .optional()
        .map_err(StoreError::from_sqlite)
}

pub(super) fn read_checkpoint(c: &Connection) -> Result<Option<CheckpointRow>, StoreError> {
    c.prepare_cached("SELECT last_seq, entries, chains, mac FROM audit_checkpoint WHERE id = 1")
        .map_err(StoreError::from_sqlite)?
        .query_row([], |r| {
            Ok(CheckpointRow {
                last_seq: r.get(0)?,
                entries: r.get(1)?,
                chains: r.get(2)?,
                mac: r.get(3)?,
            })
        })
        .optional()
        .map_err(StoreError::from_sqlite)
}

fn write_anchor(
    c: &Connection,
    key: &AuditKey,
    tenant: &str,
    seq: i64,
    hash: &[u8],
    length: i64,
) -> Result<(), StoreError> {
    let mac = anchor_mac(key, tenant, seq, hash, length);
    c.prepare_cached(
        "INSERT INTO audit_anchor (tenant, head_seq, head_hash, length, mac)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (tenant) DO UPDATE SET head_seq = excluded.head_seq,
           head_hash = excluded.head_hash, length = excluded.length, mac = excluded.mac",
    )
    .map_err(StoreError::from_sqlite)?
    .execute(params![tenant, seq, hash, length, &mac[..]])
    .map_err(StoreError::from_sqlite)?;
    Ok(())
}

fn write_checkpoint(
    c: &Connection,
    key: &AuditKey,
    last_seq: i64,
    entries: i64,
    chains: i64,
) -> Result<(), StoreError> {
    let mac = checkpoint_mac(key, last_seq, entries, chains);
    c.prepare_cached(
        "INSERT INTO audit_checkpoint (id, last_seq, entries, chains, mac)
         VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq,
           entries = excluded.entries, chains = excluded.chains, mac = excluded.mac",
    )
    .map_err(StoreError::from_sqlite)?
    .execute(params![last_seq, entries, chains, &mac[..]])
    .map_err(StoreError::from_sqlite)?;
    metrics::gauge!(m::AUDIT_CHECKPOINT_SEQ).set(last_seq as f64);
    metrics::gauge!(m::AUDIT_CHECKPOINT_ENTRIES).set(entries as f64);
    Ok(())
}

/// Signs the heads of a log written before anchoring (trust on first use): every chain's
/// newest entry and length as the table holds them, then the checkpoint.
pub(super) fn anchor_legacy(c: &Connection, key: &AuditKey) -> Result<(), StoreError> {
    let err = StoreError::from_sqlite;
    let heads: Vec<(String, i64, Vec<u8>, i64)> = c
        .prepare(
            "SELECT a.tenant, a.seq, a.hash, g.n FROM audit_log a
             JOIN (SELECT tenant, max(seq) AS top, count(*) AS n FROM audit_log GROUP BY tenant) g
               ON a.seq = g.top",
        )
        .map_err(err)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(err)?
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let (mut last, mut entries) = (0i64, 0i64);
    for (tenant, seq, hash, n) in &heads {
        write_anchor(c, key, tenant, *seq, hash, *n)?;
        last = last.max(*seq);
        entries += n;
    }
    write_checkpoint(c, key, last, entries, heads.len() as i64)?;
    tracing::warn!(
        last_seq = last,
        entries,
        chains = heads.len(),
        "signed the anchors of an audit log written before anchoring (trust on first use): \
         verify the log now, and treat this message at any later start as tampering"
    );
    Ok(())
}

/// Advances the anchor of `tenant` and the checkpoint past the entry just inserted
/// (`seq`, `hash`), inside the append's transaction.
pub(super) fn advance(
    c: &Connection,
    key: &AuditKey,
    tenant: &str,
    seq: i64,
    hash: &[u8],
) -> Result<(), StoreError> {
    let err = StoreError::from_sqlite;
    let checkpoint = match read_checkpoint(c)? {
        Some(cp) if cp.pending() => {
            // The new entry is already in the table, so the first-use signature covers it.
            return anchor_legacy(c, key);
        }
        cp => cp,
    };
    // A signed value that does not verify is left as found: building on it would sign
    // whatever an editor put there.
    let anchor = read_anchor(c, tenant)?;
    let new_chain = match &anchor {
        Some(a) if a.valid(key, tenant) => {
            write_anchor(c, key, tenant, seq, hash, a.length + 1)?;
            false
        }
        Some(_) => false,
        None => {
            // A chain seen for the first time, or one whose anchor was removed: then the
            // checkpoint's chain count keeps the removal visible.
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM audit_log WHERE tenant = ?1")
                .map_err(err)?
                .query_row(params![tenant], |r| r.get(0))
                .map_err(err)?;
            write_anchor(c, key, tenant, seq, hash, n)?;
            true
        }
    };
    match checkpoint {
        Some(cp) if cp.valid(key) => write_checkpoint(
            c,
            key,
            seq,
            cp.entries + 1,
            cp.chains + i64::from(new_chain),
        )?,
        Some(_) => {}
        None => {
            // No checkpoint: a new log, unless entries older than this one exist (then the
            // checkpoint was removed, and it stays missing so verify says so).
            let older: bool = c
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM audit_log WHERE seq < ?1)",
                    params![seq],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if !older {
                write_checkpoint(c, key, seq, 1, 1)?;
            }
        }
    }
    Ok(())
}

pub(super) fn checkpoint_report(
    c: &Connection,
    key: &AuditKey,
) -> Result<CheckpointReport, StoreError> {
    let err = StoreError::from_sqlite;
    let cp = read_checkpoint(c)?;
    let (rows, max_seq): (i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(max(seq), 0) FROM audit_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    let (mut anchors, mut anchored, mut anchor_max) = (0i64, 0i64, 0i64);
    let mut forged: Option<String> = None;
    {
        let mut st = c
            .prepare("SELECT tenant, head_seq, head_hash, length, mac FROM audit_anchor")
            .map_err(err)?;
        let mut it = st.query([]).map_err(err)?;
        while let Some(r) = it.next().map_err(err)? {
            let tenant: String = r.get(0).map_err(err)?;
            let a = AnchorRow {
                seq: r.get(1).map_err(err)?,
                hash: r.get(2).map_err(err)?,
                length: r.get(3).map_err(err)?,
                mac: r.get(4).map_err(err)?,
            };
            if forged.is_none() && !a.valid(key, &tenant) {
                forged = Some(tenant.clone());
            }
            anchors += 1;
            anchored += a.length;
            anchor_max = anchor_max.max(a.seq);
        }
    }
    let report = |reason: Option<String>, cp: Option<&CheckpointRow>| CheckpointReport {
        ok: reason.is_none(),
        reason,
        last_seq: cp.map_or(0, |c| c.last_seq),
        entries: cp.map_or(0, |c| c.entries.max(0) as u64),
        chains: cp.map_or(0, |c| c.chains.max(0) as u64),
        mac: cp.map_or(String::new(), |c| hex(&c.mac)),
    };
    let Some(cp) = cp else {
        return Ok(report(
            (rows > 0 || anchors > 0).then(|| {
                format!("the signed checkpoint is missing while the log holds {rows} entries and {anchors} anchors")
            }),
            None,
        ));
    };
    let reason = if cp.pending() {
        Some(
            "not anchored yet: the log predates anchoring; `gleaner serve` signs it at start-up"
                .to_owned(),
        )
    } else if !cp.valid(key) {
        Some("the checkpoint's signature does not verify: it was edited or replaced".to_owned())
    } else if let Some(t) = forged {
        Some(format!(
            "the anchor of chain {t:?} does not carry a valid signature: it was edited or replaced"
        ))
    } else if cp.chains != anchors {
        Some(format!(
            "the checkpoint counts {} chains but {anchors} anchors remain: a chain was removed with its anchor",
            cp.chains
        ))
    } else if cp.entries != anchored
        || cp.entries != rows
        || cp.last_seq != max_seq
        || cp.last_seq != anchor_max
    {
        Some(format!(
            "the checkpoint counts {} entries up to seq {}, the anchors hold {anchored} up to seq {anchor_max}, the log {rows} up to seq {max_seq}: entries were removed",
            cp.entries, cp.last_seq
        ))
    } else {
        None
    };
    Ok(report(reason, Some(&cp)))
}
