//! HMAC-SHA256 signatures on pushed bodies.
//!
//! The sender computes `hex(HMAC-SHA256(secret, timestamp + "." + body))` and sends it as
//! `sha256=<hex>` (or bare hex) with the Unix timestamp in a second header. Signing the
//! timestamp with the body and refusing old timestamps stops replays; comparing in constant
//! time (hmac's `verify_slice`) stops timing attacks. Several comma-separated signatures
//! are accepted so a sender can sign with old and new secrets while rotating.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ErrorKind;
use crate::harvest::source::SignatureSpec;

type HmacSha256 = Hmac<Sha256>;

/// Most signatures accepted in one header.
const MAX_SIGNATURES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("header {0} is missing")]
    Missing(String),
    #[error("timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    #[error("timestamp is {skew_secs} s away from the server clock; the limit is {tolerance_secs} s (replayed or the sender's clock is off)")]
    Stale { skew_secs: i64, tolerance_secs: u64 },
    #[error("signature is not sha256=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body (wrong secret, or the body was changed)")]
    Mismatch,
}

impl SignatureError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Unauthenticated
    }
}

/// `sha256=<hex>` for `body` sent at `timestamp` (what senders compute; used by tests and
/// by the CLI's push helper).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long keys are hashed), so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Checks `signature` over `timestamp + "." + body`, and that `timestamp` is within
/// `tolerance_secs` of `now_unix` either way.
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let ts_text = timestamp.trim();
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(ts_text.chars().take(32).collect()))?;
    let skew = now_unix.saturating_sub(ts);
    if skew.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            skew_secs: skew,
            tolerance_secs,
        });
    }
    let mut any = false;
    for sig in signature.split(',').take(MAX_SIGNATURES) {
        let sig = sig.trim();
        let hex_part = sig.strip_prefix("sha256=").unwrap_or(sig);
        let Ok(bytes) = hex::decode(hex_part) else {
            continue;
        };
        if bytes.len() != 32 {
            continue;
        }
        any = true;
        let mut m = mac(secret);
        // The timestamp is signed as the sender sent it, not as we re-print it.
        m.update(ts_text.as_bytes());
        m.update(b".");
        m.update(body);
        if m.verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err(if any {
        SignatureError::Mismatch
    } else {
        SignatureError::Malformed
    })
}

/// [`verify_signature`] with the header names and tolerance of a push source.
pub fn verify_push(
    spec: &SignatureSpec,
    secret: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .ok_or_else(|| SignatureError::Missing(name.to_owned()))
    };
    let ts = get(&spec.timestamp_header)?;
    let sig = get(&spec.header)?;
    verify_signature(secret, ts, sig, body, now_unix, spec.tolerance.secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::{HumanDuration, SecretRef};
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_0123456789abcdef";
    const NOW: i64 = 1_709_280_000;

    #[test]
    fn good_signature_verifies() {
        let body = br#"[{"sku":"A-1"}]"#;
        let sig = sign(SECRET, NOW - 10, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(
            verify_signature(SECRET, &(NOW - 10).to_string(), &sig, body, NOW, 300),
            Ok(())
        );
        // Bare hex, rotation lists, upper-case hex.
        let bare = sig.trim_start_matches("sha256=").to_uppercase();
        assert_eq!(
            verify_signature(SECRET, &(NOW - 10).to_string(), &bare, body, NOW, 300),
            Ok(())
        );
        let rotating = format!("sha256={}, {sig}", "00".repeat(32));
        assert_eq!(
            verify_signature(SECRET, &(NOW - 10).to_string(), &rotating, body, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn bad_signatures_are_refused() {
        let body = br#"[{"sku":"A-1"}]"#;
        let ts = NOW.to_string();
        let sig = sign(SECRET, NOW, body);
        let e = verify_signature(SECRET, &ts, &sig, br#"[{"sku":"A-2"}]"#, NOW, 300).unwrap_err();
        assert_eq!(e, SignatureError::Mismatch);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert_eq!(
            verify_signature(b"other", &ts, &sig, body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is part of what is signed.
        assert_eq!(
            verify_signature(SECRET, &(NOW - 1).to_string(), &sig, body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, &ts, "sha256=zz", body, NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(SECRET, &ts, "", body, NOW, 300),
            Err(SignatureError::Malformed)
        );
        assert!(matches!(
            verify_signature(SECRET, "yesterday", &sig, body, NOW, 300),
            Err(SignatureError::BadTimestamp(_))
        ));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let body = b"{}";
        let old = NOW - 301;
        let e = verify_signature(
            SECRET,
            &old.to_string(),
            &sign(SECRET, old, body),
            body,
            NOW,
            300,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SignatureError::Stale {
                skew_secs: 301,
                tolerance_secs: 300
            }
        );
        assert!(e.to_string().contains("replayed"));
        let future = NOW + 400;
        assert!(matches!(
            verify_signature(
                SECRET,
                &future.to_string(),
                &sign(SECRET, future, body),
                body,
                NOW,
                300
            ),
            Err(SignatureError::Stale {
                skew_secs: -400,
                ..
            })
        ));
        assert!(verify_signature(SECRET, &i64::MIN.to_string(), "x", body, NOW, 300).is_err());
    }

    #[test]
    fn headers_from_the_source_spec() {
        let spec = SignatureSpec {
            secret: SecretRef::parse("secret:s").unwrap(),
            header: "x-gleaner-signature".into(),
            timestamp_header: "x-gleaner-timestamp".into(),
            tolerance: HumanDuration::parse("5m").unwrap(),
        };
        let body = b"[]";
        let sig = sign(SECRET, NOW, body);
        let ts = NOW.to_string();
        let headers = [
            ("X-Gleaner-Timestamp", ts.as_str()),
            ("X-Gleaner-Signature", sig.as_str()),
        ];
        assert_eq!(verify_push(&spec, SECRET, &headers, body, NOW), Ok(()));
        assert_eq!(
            verify_push(&spec, SECRET, &headers[..1], body, NOW),
            Err(SignatureError::Missing("x-gleaner-signature".into()))
        );
    }

    proptest! {
        #[test]
        fn garbage_never_verifies(ts in "\\PC{0,20}", sig in "\\PC{0,100}", body in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert!(verify_signature(SECRET, &ts, &sig, &body, NOW, 300).is_err());
        }
    }
}
