//! The `push` source kind: records sent to Gleaner, optionally signed.

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::patterns::JsonPathExpr;
use super::record_spec::KeySpec;
use super::webhook::{check_events, EventSpec, SignatureSpec};
use crate::harvest::limits::MAX_PUSH_BYTES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSource {
    #[serde(default)]
    pub format: PushFormat,
    /// For a JSON object body: JSONPath of the records in it (e.g. `$.items[*]`).
    #[serde(default)]
    pub records: Option<JsonPathExpr>,
    /// The record key; a name starting with '/' is a JSON Pointer.
    pub key: KeySpec,
    /// Largest body accepted (at most 64 MiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Most records in one body.
    #[serde(default = "default_max_records")]
    pub max_records: u32,
    /// HMAC signature required on every push.
    #[serde(default)]
    pub signature: Option<SignatureSpec>,
    /// Events that fetch the record they name into another source instead of being stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventSpec>,
}

fn default_max_body() -> u64 {
    1 << 20
}
fn default_max_records() -> u32 {
    10_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    /// NDJSON when the Content-Type says so or the body is several JSON values, else JSON.
    #[default]
    Auto,
    /// One JSON array of records, or one object (a single record, or `records` inside it).
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl PushSource {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            (1..=MAX_PUSH_BYTES as u64).contains(&self.max_body_bytes),
            "max_body_bytes",
            format!("use 1 to {MAX_PUSH_BYTES}"),
        );
        c.check(
            (1..=1_000_000).contains(&self.max_records),
            "max_records",
            "use 1 to 1000000",
        );
        c.check(
            self.records.is_none() || self.format != PushFormat::Ndjson,
            "records",
            "records applies to JSON object bodies, not NDJSON",
        );
        self.key.check(c, None, false);
        if let Some(s) = &self.signature {
            c.at("signature", |c| s.check(c));
        }
        check_events(&self.events, c);
    }
}
