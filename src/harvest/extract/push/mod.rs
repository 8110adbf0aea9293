//! Pushed records: a JSON array (or object) or NDJSON body into records, all or nothing.
//!
//! Unlike fetched pages, a push comes from the tenant's own system, which can fix and
//! resend: one bad record refuses the whole body with its position, so a batch is never
//! half stored. Within a body a later record with the same key replaces an earlier one,
//! as applying the records in order would.

mod events;
mod fetch_now;
pub mod replay;
mod signature;

pub use events::{match_event, EventFetch};
pub use fetch_now::{FetchNow, FetchNowError};
pub use signature::{sign, verify_push, verify_scheme, verify_signature, SignatureError, Verified};

use serde_json::Value;

use crate::error::ErrorKind;
use crate::harvest::limits::MAX_PUSH_BYTES;
use crate::harvest::record::{key_from_fields, ExtractedRecord};
use crate::harvest::source::{PushFormat, PushSource};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("body is {size} bytes; this source accepts at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body holds {count} records; this source accepts at most {limit} per push")]
    TooManyRecords { count: usize, limit: usize },
    #[error("body is not valid JSON: {reason}")]
    Json { reason: String },
    #[error("line {line} is not valid JSON: {reason}")]
    Ndjson { line: usize, reason: String },
    #[error("body must be a JSON array of objects, an object, or NDJSON; got {0}")]
    NotRecords(&'static str),
    #[error("record {index}: {reason}")]
    BadRecord { index: usize, reason: String },
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PushError::TooLarge { .. } | PushError::TooManyRecords { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// Parses a pushed body into records (keys unique, last one wins).
pub fn parse_payload(
    body: &[u8],
    content_type: Option<&str>,
    src: &PushSource,
) -> Result<Vec<ExtractedRecord>, PushError> {
    let limit = usize::try_from(src.max_body_bytes)
        .unwrap_or(usize::MAX)
        .min(MAX_PUSH_BYTES);
    if body.len() > limit {
        return Err(PushError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let ndjson_type = content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-seq")
    });
    let values = match src.format {
        PushFormat::Ndjson => ndjson(body)?,
        PushFormat::Auto if ndjson_type => ndjson(body)?,
        PushFormat::Json => vec![single(body)?],
        PushFormat::Auto => {
            // One JSON value is JSON; several in a row are NDJSON (whatever the whitespace).
            let values = ndjson(body)?;
            if values.is_empty() {
                return Err(PushError::Json {
                    reason: "the body is empty".into(),
                });
            }
            values
        }
    };
    let items: Vec<Value> = if values.len() == 1 {
        let Some(v) = values.into_iter().next() else {
            unreachable!()
        };
        match v {
            Value::Array(a) => a,
            Value::Object(_) => match &src.records {
                Some(p) => p.get().query(&v).all().into_iter().cloned().collect(),
                None => vec![v],
            },
            other => return Err(PushError::NotRecords(type_name(&other))),
        }
    } else {
        values
    };
    if items.len() > src.max_records as usize {
        return Err(PushError::TooManyRecords {
            count: items.len(),
            limit: src.max_records as usize,
        });
    }
    let mut out: Vec<ExtractedRecord> = Vec::with_capacity(items.len());
    let mut at = std::collections::HashMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(PushError::BadRecord {
                index,
                reason: format!("is {}, not an object", type_name(&item)),
            });
        };
        let key = key_from_fields(&fields, &src.key)
            .map_err(|reason| PushError::BadRecord { index, reason })?;
        let rec = ExtractedRecord {
            key: key.clone(),
            fields,
        };
        match at.get(&key) {
            Some(&i) => out[i] = rec,
            None => {
                at.insert(key, out.len());
                out.push(rec);
            }
        }
    }
    Ok(out)
}

fn single(body: &[u8]) -> Result<Value, PushError> {
    serde_json::from_slice(body).map_err(|e| PushError::Json {
        reason: e.to_string(),
    })
}

/// Every JSON value in the body, in order (NDJSON, or values separated by any whitespace).
fn ndjson(body: &[u8]) -> Result<Vec<Value>, PushError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    loop {
        match stream.next() {
            None => return Ok(out),
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                return Err(PushError::Ndjson {
                    line: e.line(),
                    reason: e.to_string(),
                });
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
