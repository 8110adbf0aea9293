//! HMAC-SHA256 signatures on pushed bodies, in the layouts providers use.
//!
//! A [`Scheme`] says where the signature and timestamp are, what was signed
//! (`ts.body`, `ts+body`, the body, Slack's `v0:ts:body`) and how the digest is written
//! (hex or base64, with a prefix such as `sha256=`). Signing the timestamp with the body
//! and refusing old timestamps stops replays of old requests; comparing in constant time
//! (`subtle`) stops timing attacks. Several signatures in one header are accepted (comma
//! lists, Stripe's repeated `v1=`) so a sender can sign with old and new secrets while
//! rotating. The verified digest and the event id come back so the caller can refuse a
//! replay inside the time window.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ErrorKind;
use crate::harvest::source::{
    Encoding, HeaderFormat, Scheme, SignatureSpec, Signed, TimeUnit, TimestampAt,
};

type HmacSha256 = Hmac<Sha256>;

/// Most signatures read from one header.
const MAX_SIGNATURES: usize = 4;
/// Most `key=value` entries read from a Stripe-style header.
const MAX_STRIPE_ENTRIES: usize = 16;
/// Longest event id kept (longer ones are cut; they are only compared).
const MAX_EVENT_ID: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("header {0} is missing")]
    Missing(String),
    #[error("timestamp {value:?} is not a Unix time in {unit}")]
    BadTimestamp { value: String, unit: &'static str },
    #[error("timestamp is {skew_secs} s away from the server clock; the limit is {tolerance_secs} s (replayed or the sender's clock is off)")]
    Stale { skew_secs: i64, tolerance_secs: u64 },
    #[error("signature is not {0}")]
    Malformed(String),
    #[error("signature does not match the body (wrong secret, or the body was changed)")]
    Mismatch,
    #[error("too many recent events to remember for this source; retry later")]
    ReplayFull,
}

impl SignatureError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignatureError::ReplayFull => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthenticated,
        }
    }

    /// A short, bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing",
            SignatureError::BadTimestamp { .. } | SignatureError::Malformed(_) => "malformed",
            SignatureError::Stale { .. } => "stale",
            SignatureError::Mismatch => "mismatch",
            SignatureError::ReplayFull => "replay_full",
        }
    }
}

/// What a verified request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The HMAC of the signed content: the same request sent twice has the same one.
    pub mac: [u8; 32],
    /// The provider's event id, when the scheme names one and the request carries it.
    pub event_id: Option<String>,
}

/// `sha256=<hex>` for `body` sent at `timestamp` under Gleaner's own scheme (what senders
/// compute; used by tests and by the CLI's push helper).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let d = digest(
        secret,
        Signed::TimestampDotBody,
        &timestamp.to_string(),
        body,
    );
    format!("sha256={}", hex::encode(d))
}

fn digest(secret: &[u8], signed: Signed, ts: &str, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (long keys are hashed), so this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    match signed {
        Signed::TimestampDotBody => {
            m.update(ts.as_bytes());
            m.update(b".");
        }
        Signed::TimestampBody => m.update(ts.as_bytes()),
        Signed::Body => {}
        Signed::SlackV0 => {
            m.update(b"v0:");
            m.update(ts.as_bytes());
            m.update(b":");
        }
    }
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Checks `signature` over `timestamp + "." + body` (Gleaner's scheme, hex, seconds), and
/// that `timestamp` is within `tolerance_secs` of `now_unix` either way.
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let tolerance_ms = i64::try_from(tolerance_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let ts = fresh(
        timestamp,
        TimeUnit::Seconds,
        now_unix.saturating_mul(1000),
        tolerance_ms,
    )?;
    let candidates: Vec<&str> = signature.split(',').take(MAX_SIGNATURES).collect();
    matching(
        secret,
        Signed::TimestampDotBody,
        ts,
        body,
        &candidates,
        Some("sha256="),
        Encoding::Hex,
    )
    .map(|_| ())
}

/// Parses the timestamp and checks it against the clock; returns it as sent, since the
/// sender signed its text, not our re-printing of it.
fn fresh(
    text: &str,
    unit: TimeUnit,
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<&str, SignatureError> {
    let t = text.trim();
    let (unit_name, scale) = match unit {
        TimeUnit::Seconds => ("seconds", 1000),
        TimeUnit::Millis => ("milliseconds", 1),
    };
    let n: i64 = t.parse().map_err(|_| SignatureError::BadTimestamp {
        value: t.chars().take(32).collect(),
        unit: unit_name,
    })?;
    let skew = now_ms.saturating_sub(n.saturating_mul(scale));
    if skew.unsigned_abs() > tolerance_ms.unsigned_abs() {
        return Err(SignatureError::Stale {
            skew_secs: skew / 1000,
            tolerance_secs: tolerance_ms.unsigned_abs() / 1000,
        });
    }
    Ok(t)
}

/// The digest when one of `candidates` is its correct encoding.
fn matching(
    secret: &[u8],
    signed: Signed,
    ts: &str,
    body: &[u8],
    candidates: &[&str],
    prefix: Option<&str>,
    encoding: Encoding,
) -> Result<[u8; 32], SignatureError> {
    let expected = digest(secret, signed, ts, body);
    let mut any = false;
    for c in candidates {
        let c = c.trim();
        let c = prefix.and_then(|p| c.strip_prefix(p)).unwrap_or(c);
        let decoded = match encoding {
            Encoding::Hex => hex::decode(c).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(c).ok(),
        };
        let Some(bytes) = decoded.filter(|b| b.len() == 32) else {
            continue;
        };
        any = true;
        if bool::from(bytes.as_slice().ct_eq(&expected[..])) {
            return Ok(expected);
        }
    }
    if any {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::Malformed(expected_form(prefix, encoding)))
    }
}

fn expected_form(prefix: Option<&str>, encoding: Encoding) -> String {
    let digits = match encoding {
        Encoding::Hex => "64 hex digits",
        Encoding::Base64 => "44 base64 characters",
    };
    format!("{}<{digits}>", prefix.unwrap_or(""))
}

/// [`verify_scheme`] with the scheme of a push source's `signature`.
pub fn verify_push(
    spec: &SignatureSpec,
    secret: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, SignatureError> {
    verify_scheme(&spec.scheme(), secret, headers, body, now_ms)
}

/// Verifies a request under `s`: signature, timestamp freshness; returns the digest and
/// the event id for the replay check.
pub fn verify_scheme(
    s: &Scheme,
    secret: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, SignatureError> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let need = |name: &str| get(name).ok_or_else(|| SignatureError::Missing(name.to_owned()));
    let sig = need(&s.header)?;
    let (ts_text, candidates): (Option<&str>, Vec<&str>) = match s.header_format {
        HeaderFormat::Plain => (None, sig.split(',').take(MAX_SIGNATURES).collect()),
        HeaderFormat::Stripe => {
            let mut t = None;
            let mut v1 = Vec::new();
            for entry in sig.split(',').take(MAX_STRIPE_ENTRIES) {
                match entry.trim().split_once('=') {
                    Some(("t", v)) if t.is_none() => t = Some(v),
                    Some(("v1", v)) if v1.len() < MAX_SIGNATURES => v1.push(v),
                    _ => {}
                }
            }
            let t = t.ok_or_else(|| {
                SignatureError::Malformed(format!(
                    "t=<timestamp>,v1=<64 hex digits> in {}",
                    s.header
                ))
            })?;
            (Some(t), v1)
        }
    };
    let ts_text = match &s.timestamp {
        TimestampAt::None => None,
        TimestampAt::Header(h) => Some(need(h)?),
        TimestampAt::SignatureHeader => ts_text,
    };
    let ts = match ts_text {
        Some(t) => fresh(t, s.unit, now_ms, s.tolerance_ms)?,
        None => "",
    };
    let mac = matching(
        secret,
        s.signed,
        ts,
        body,
        &candidates,
        s.prefix.as_deref(),
        s.encoding,
    )?;
    Ok(Verified {
        mac,
        event_id: event_id(s, get, body),
    })
}

/// The event id from its header, or from the body's JSON at `event_id_path`.
fn event_id<'a>(s: &Scheme, get: impl Fn(&str) -> Option<&'a str>, body: &[u8]) -> Option<String> {
    let id = if let Some(h) = &s.event_id_header {
        get(h).map(str::to_owned)
    } else {
        let p = s.event_id_path.as_ref()?;
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        match p.get().query(&v).first()? {
            serde_json::Value::String(x) => Some(x.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.chars().take(MAX_EVENT_ID).collect())
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
