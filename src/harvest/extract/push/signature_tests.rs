use super::*;
use base64::engine::general_purpose::STANDARD as B64;
use proptest::prelude::*;

const SECRET: &[u8] = b"whsec_0123456789abcdef";
const NOW: i64 = 1_709_280_000;
const NOW_MS: i64 = NOW * 1000;

fn hmac(parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(SECRET).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn spec(json: &str) -> SignatureSpec {
    serde_json::from_str(json).unwrap()
}

fn preset(p: &str) -> SignatureSpec {
    spec(&format!(r#"{{"secret": "secret:s", "preset": "{p}"}}"#))
}

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
    let malformed = Err(SignatureError::Malformed("sha256=<64 hex digits>".into()));
    assert_eq!(
        verify_signature(SECRET, &ts, "sha256=zz", body, NOW, 300),
        malformed
    );
    assert_eq!(verify_signature(SECRET, &ts, "", body, NOW, 300), malformed);
    assert!(matches!(
        verify_signature(SECRET, "yesterday", &sig, body, NOW, 300),
        Err(SignatureError::BadTimestamp { .. })
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
fn gleaner_scheme_from_the_source_spec() {
    // The definition shape from before presets still means the same scheme.
    let spec = spec(
        r#"{"secret": "secret:s", "header": "x-gleaner-signature",
            "timestamp_header": "x-gleaner-timestamp", "tolerance": "5m"}"#,
    );
    assert_eq!(spec.scheme(), preset("gleaner").scheme());
    let body = b"[]";
    let sig = sign(SECRET, NOW, body);
    let ts = NOW.to_string();
    let headers = [
        ("X-Gleaner-Timestamp", ts.as_str()),
        ("X-Gleaner-Signature", sig.as_str()),
    ];
    let v = verify_push(&spec, SECRET, &headers, body, NOW_MS).unwrap();
    assert_eq!(v.event_id, None);
    assert_eq!(hex::encode(v.mac), sig.trim_start_matches("sha256="));
    assert_eq!(
        verify_push(&spec, SECRET, &headers[..1], body, NOW_MS),
        Err(SignatureError::Missing("x-gleaner-signature".into()))
    );
}

/// WHOOP: base64(HMAC-SHA256(timestamp + body)), X-WHOOP-Signature and
/// X-WHOOP-Signature-Timestamp in milliseconds.
#[test]
fn whoop_preset() {
    let s = preset("whoop");
    let body = br#"{"user_id":10129,"id":10235,"type":"recovery.updated","trace_id":"d3709ee7"}"#;
    let ts = (NOW_MS - 1234).to_string();
    let sig = B64.encode(hmac(&[ts.as_bytes(), body]));
    let h = [
        ("X-WHOOP-Signature", sig.as_str()),
        ("X-WHOOP-Signature-Timestamp", ts.as_str()),
    ];
    let v = verify_push(&s, SECRET, &h, body, NOW_MS).unwrap();
    assert_eq!(v.event_id.as_deref(), Some("d3709ee7"));
    let wrong = B64.encode(hmac(&[ts.as_bytes(), b".", body]));
    let h2 = [h[1], ("x-whoop-signature", wrong.as_str())];
    assert_eq!(
        verify_push(&s, SECRET, &h2, body, NOW_MS),
        Err(SignatureError::Mismatch)
    );
    // Seconds where milliseconds are expected read as 1970: stale.
    let secs = (NOW - 1).to_string();
    let sig_s = B64.encode(hmac(&[secs.as_bytes(), body]));
    let h3 = [
        ("x-whoop-signature", sig_s.as_str()),
        ("x-whoop-signature-timestamp", secs.as_str()),
    ];
    assert!(matches!(
        verify_push(&s, SECRET, &h3, body, NOW_MS),
        Err(SignatureError::Stale { .. })
    ));
}

/// Stripe: Stripe-Signature: t=<s>,v1=<hex HMAC(t + "." + body)>, possibly several v1.
#[test]
fn stripe_preset() {
    let s = preset("stripe");
    let body = br#"{"id":"evt_1","type":"customer.updated"}"#;
    let t = (NOW - 5).to_string();
    let good = hex::encode(hmac(&[t.as_bytes(), b".", body]));
    let header = format!("t={t},v1={},v1={good},v0=ignored", "ab".repeat(32));
    let v = verify_push(
        &s,
        SECRET,
        &[("Stripe-Signature", header.as_str())],
        body,
        NOW_MS,
    )
    .unwrap();
    assert_eq!(v.event_id.as_deref(), Some("evt_1"));
    let only_bad = format!("t={t},v1={}", "ab".repeat(32));
    assert_eq!(
        verify_push(
            &s,
            SECRET,
            &[("stripe-signature", only_bad.as_str())],
            body,
            NOW_MS
        ),
        Err(SignatureError::Mismatch)
    );
    // Without t= there is nothing to check the clock against.
    let no_t = format!("v1={good}");
    assert!(matches!(
        verify_push(
            &s,
            SECRET,
            &[("stripe-signature", no_t.as_str())],
            body,
            NOW_MS
        ),
        Err(SignatureError::Malformed(_))
    ));
    let old = (NOW - 301).to_string();
    let sig = hex::encode(hmac(&[old.as_bytes(), b".", body]));
    let stale = format!("t={old},v1={sig}");
    assert!(matches!(
        verify_push(
            &s,
            SECRET,
            &[("stripe-signature", stale.as_str())],
            body,
            NOW_MS
        ),
        Err(SignatureError::Stale { .. })
    ));
}

/// GitHub: X-Hub-Signature-256: sha256=<hex HMAC(body)>, no timestamp, X-GitHub-Delivery.
#[test]
fn github_preset() {
    let s = preset("github");
    assert_eq!(s.scheme().timestamp, TimestampAt::None);
    let body = br#"{"action":"opened","number":7}"#;
    let sig = format!("sha256={}", hex::encode(hmac(&[body])));
    let h = [
        ("X-Hub-Signature-256", sig.as_str()),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let v = verify_push(&s, SECRET, &h, body, NOW_MS).unwrap();
    assert_eq!(
        v.event_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let h2 = [(
        "X-Hub-Signature-256",
        "sha256=".to_owned() + &"0".repeat(64),
    )];
    let h2: Vec<(&str, &str)> = h2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        verify_push(&s, SECRET, &h2, body, NOW_MS),
        Err(SignatureError::Mismatch)
    );
}

/// Slack: X-Slack-Signature: v0=<hex HMAC("v0:" + ts + ":" + body)>, ts in seconds.
#[test]
fn slack_preset() {
    let s = preset("slack");
    let body = b"token=x&team_id=T1&event_id=Ev1";
    let ts = NOW.to_string();
    let sig = format!(
        "v0={}",
        hex::encode(hmac(&[b"v0:", ts.as_bytes(), b":", body]))
    );
    let h = [
        ("X-Slack-Signature", sig.as_str()),
        ("X-Slack-Request-Timestamp", ts.as_str()),
    ];
    let v = verify_push(&s, SECRET, &h, body, NOW_MS).unwrap();
    // Not JSON: no event id, the digest alone guards against replays.
    assert_eq!(v.event_id, None);
    let plain = format!("v0={}", hex::encode(hmac(&[ts.as_bytes(), b".", body])));
    let h2 = [h[1], ("x-slack-signature", plain.as_str())];
    assert_eq!(
        verify_push(&s, SECRET, &h2, body, NOW_MS),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify_push(&s, SECRET, &h, body, NOW_MS + 301_000),
        Err(SignatureError::Stale { .. })
    ));
}

#[test]
fn keys_override_presets_and_bad_layouts_are_refused() {
    let s = spec(
        r#"{"secret": "secret:s", "preset": "github", "header": "X-Sig",
            "encoding": "base64", "prefix": ""}"#,
    );
    let sc = s.scheme();
    assert_eq!(
        (sc.header.as_str(), sc.encoding, sc.prefix),
        ("x-sig", Encoding::Base64, None)
    );
    assert_eq!(sc.event_id_header.as_deref(), Some("x-github-delivery"));
    let check = |j: &str| {
        let def =
            format!(r#"{{"id": "h", "kind": "push", "key": {{"field": "id"}}, "signature": {j}}}"#);
        match crate::harvest::source::SourceDef::parse_json(def.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .fields()
                .iter()
                .map(|f| f.field.trim_start_matches("signature.").to_owned())
                .collect(),
        }
    };
    assert!(check(r#"{"secret": "secret:s", "preset": "stripe"}"#).is_empty());
    assert_eq!(
        check(r#"{"secret": "secret:s", "signed": "body", "timestamp_header": "x-t"}"#),
        ["timestamp_header"]
    );
    assert_eq!(
        check(r#"{"secret": "secret:s", "preset": "github", "signed": "slack_v0"}"#),
        ["signed"]
    );
    assert_eq!(
        check(r#"{"secret": "secret:s", "preset": "slack", "replay_window": "1h"}"#),
        ["replay_window"]
    );
    assert_eq!(
        check(r#"{"secret": "secret:s", "replay_capacity": 0, "header": "bad header"}"#),
        ["header", "replay_capacity"]
    );
    assert!(
        serde_json::from_str::<SignatureSpec>(r#"{"secret": "secret:s", "preset": "paypal"}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<SignatureSpec>(r#"{"secret": "secret:s", "tolerence": "1m"}"#)
            .is_err()
    );
}

proptest! {
    #[test]
    fn garbage_never_verifies(ts in "\\PC{0,20}", sig in "\\PC{0,100}", body in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert!(verify_signature(SECRET, &ts, &sig, &body, NOW, 300).is_err());
        for p in ["whoop", "stripe", "github", "slack"] {
            let h = [("x-whoop-signature", sig.as_str()), ("x-whoop-signature-timestamp", ts.as_str()),
                     ("stripe-signature", sig.as_str()), ("x-hub-signature-256", sig.as_str()),
                     ("x-slack-signature", sig.as_str()), ("x-slack-request-timestamp", ts.as_str())];
            prop_assert!(verify_push(&preset(p), SECRET, &h, &body, NOW_MS).is_err());
        }
    }
}
