//! What the audit log stores and reports: its key, entry and report types, and the hex
//! form hashes and MACs are shown in. A leaf: `audit` (the chains) and `audit_anchor` (their
//! signed heads) both use it, so neither needs the other's types. What the log guarantees
//! is in [`super::audit`]'s header.

use serde::Serialize;

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

/// A chain's signed head as stored in `audit_anchor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnchorView {
    pub seq: i64,
    pub hash: String,
    /// Entries of the chain up to and including `seq`.
    pub entries: u64,
}

/// The signed checkpoint over every chain, and whether the anchors and the table agree
/// with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointReport {
    pub ok: bool,
    /// Why not, when not ok.
    pub reason: Option<String>,
    pub last_seq: i64,
    pub entries: u64,
    pub chains: u64,
    /// Hex of the checkpoint's MAC (empty when there is no signed checkpoint): publish it
    /// with `last_seq` to anchor the log outside the database.
    pub mac: String,
}

/// Result of checking one chain from its first entry to its last, and against its anchor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: u64,
    /// The first problem: a broken link, or (seq of the anchored head, or 0 for a chain
    /// gone entirely) a truncation.
    pub first_broken: Option<BrokenLink>,
    pub head: Option<ChainHead>,
    /// The chain's signed head, when it has one.
    pub anchor: Option<AnchorView>,
    /// The checkpoint, for the global chain and for a chain with no entries and no anchor
    /// (which only the checkpoint can tell apart from a chain removed with its anchor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointReport>,
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
