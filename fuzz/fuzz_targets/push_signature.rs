//! The push signature check, under every preset. Input after the option byte: timestamp
//! header, a newline, signature header, a newline, then the body. Bits 1-3 of the option
//! pick the scheme (gleaner, whoop, stripe, github, slack). Properties: nothing verifies
//! under a different secret; the preset and the spelled-out scheme give the same answer;
//! with option bit 0 the signature is replaced by a correct one, which must verify, and
//! must stop verifying when the body changes.
#![no_main]

use base64::Engine as _;
use gleaner::harvest::extract::push::{sign, verify_push, verify_signature, SignatureError};
use gleaner::harvest::source::{SignatureSpec, TimestampAt};
use gleaner_fuzz::split;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"whsec_0123456789abcdef";
const NOW: i64 = 1_709_280_000;
const NOW_MS: i64 = NOW * 1000;
const TOLERANCE: u64 = 300;
const PRESETS: [&str; 5] = ["gleaner", "whoop", "stripe", "github", "slack"];

fn parts(rest: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut it = rest.splitn(3, |&b| b == b'\n');
    let ts = std::str::from_utf8(it.next()?).ok()?;
    let sig = std::str::from_utf8(it.next()?).ok()?;
    Some((ts, sig, it.next().unwrap_or_default()))
}

fn spec(preset: &str) -> SignatureSpec {
    serde_json::from_value(serde_json::json!({"secret": "secret:hook", "preset": preset}))
        .expect("literal spec")
}

/// Every header any preset reads, carrying the fuzzed values.
fn headers<'a>(ts: &'a str, sig: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("x-gleaner-timestamp", ts),
        ("x-gleaner-signature", sig),
        ("x-whoop-signature-timestamp", ts),
        ("x-whoop-signature", sig),
        ("stripe-signature", sig),
        ("x-hub-signature-256", sig),
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", sig),
    ]
}

/// What the provider sends for `body` at `t`: (timestamp header, signature header).
fn provider_sign(preset: &str, t_secs: i64, body: &[u8]) -> (String, String) {
    let mac = |parts: &[&[u8]]| {
        let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET).expect("any key");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes()
    };
    let t = t_secs.to_string();
    match preset {
        "whoop" => {
            let ms = (t_secs * 1000).to_string();
            let d = mac(&[ms.as_bytes(), body]);
            (ms, base64::engine::general_purpose::STANDARD.encode(d))
        }
        "stripe" => {
            let d = mac(&[t.as_bytes(), b".", body]);
            (t.clone(), format!("t={t},v1={}", hex::encode(d)))
        }
        "github" => (t, format!("sha256={}", hex::encode(mac(&[body])))),
        "slack" => {
            let d = mac(&[b"v0:", t.as_bytes(), b":", body]);
            (t, format!("v0={}", hex::encode(d)))
        }
        _ => (t.clone(), sign(SECRET, t_secs, body)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((opt, rest)) = split(data) else {
        return;
    };
    let Some((ts, sig, body)) = parts(rest) else {
        return;
    };
    let got = verify_signature(SECRET, ts, sig, body, NOW, TOLERANCE);
    if got.is_ok() {
        assert_eq!(
            verify_signature(b"another secret", ts, sig, body, NOW, TOLERANCE),
            Err(SignatureError::Mismatch),
            "verified under two secrets"
        );
    }
    let preset = PRESETS[usize::from(opt >> 1 & 7) % PRESETS.len()];
    let s = spec(preset);
    let h = headers(ts, sig);
    let by_preset = verify_push(&s, SECRET, &h, body, NOW_MS);
    // The same scheme spelled out key by key answers the same.
    let sc = s.scheme();
    let explicit = SignatureSpec {
        preset: None,
        header: Some(sc.header.clone()),
        header_format: Some(sc.header_format),
        signed: Some(sc.signed),
        encoding: Some(sc.encoding),
        prefix: Some(sc.prefix.clone().unwrap_or_default()),
        timestamp_unit: Some(sc.unit),
        timestamp_header: match &sc.timestamp {
            TimestampAt::Header(h) => Some(h.clone()),
            _ => None,
        },
        ..s.clone()
    };
    let e = verify_push(&explicit, SECRET, &h, body, NOW_MS);
    assert_eq!(
        e.as_ref().map(|v| v.mac),
        by_preset.as_ref().map(|v| v.mac),
        "preset and explicit keys disagree"
    );
    if preset == "gleaner" {
        assert_eq!(
            by_preset.clone().map(|_| ()),
            got,
            "the two entry points disagree"
        );
    }
    if by_preset.is_ok() {
        assert_eq!(
            verify_push(&s, b"another secret", &h, body, NOW_MS).map(|v| v.mac),
            Err(SignatureError::Mismatch),
            "verified under two secrets"
        );
    }

    if opt & 1 == 1 {
        // A correct signature within the tolerance, as the provider computes it.
        let t = NOW - i64::from(opt >> 4) + 8;
        let (t_text, good) = provider_sign(preset, t, body);
        let h = headers(&t_text, &good);
        assert!(
            verify_push(&s, SECRET, &h, body, NOW_MS).is_ok(),
            "{preset}: the provider's own signature is refused"
        );
        let mut changed = body.to_vec();
        changed.push(opt);
        assert_eq!(
            verify_push(&s, SECRET, &h, &changed, NOW_MS).map(|v| v.mac),
            Err(SignatureError::Mismatch)
        );
        if preset == "gleaner" {
            let listed = format!("{sig},{good}");
            // Rotation lists are read up to four entries; a good one among them verifies.
            if sig.split(',').count() < 4 {
                assert_eq!(
                    verify_signature(SECRET, &t_text, &listed, body, NOW, TOLERANCE),
                    Ok(())
                );
            }
        }
    }
});
