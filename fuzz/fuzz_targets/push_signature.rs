//! The push signature check. Input after the option byte: timestamp header, a newline,
//! signature header, a newline, then the body. Properties: nothing verifies under a
//! different secret; with option bit 0 the signature is replaced by a correct one, which
//! must verify, and must stop verifying when the body changes.
#![no_main]

use gleaner::harvest::extract::push::{sign, verify_push, verify_signature, SignatureError};
use gleaner::harvest::source::{HumanDuration, SecretRef, SignatureSpec};
use gleaner_fuzz::split;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"whsec_0123456789abcdef";
const NOW: i64 = 1_709_280_000;
const TOLERANCE: u64 = 300;

fn parts(rest: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut it = rest.splitn(3, |&b| b == b'\n');
    let ts = std::str::from_utf8(it.next()?).ok()?;
    let sig = std::str::from_utf8(it.next()?).ok()?;
    Some((ts, sig, it.next().unwrap_or_default()))
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
    let spec = SignatureSpec {
        secret: SecretRef::parse("secret:erp-hmac").expect("literal ref"),
        header: "x-gleaner-signature".into(),
        timestamp_header: "x-gleaner-timestamp".into(),
        tolerance: HumanDuration::parse("5m").expect("literal duration"),
    };
    let headers = [("X-Gleaner-Timestamp", ts), ("X-Gleaner-Signature", sig)];
    assert_eq!(
        verify_push(&spec, SECRET, &headers, body, NOW),
        got,
        "header lookup changes the answer"
    );

    if opt & 1 == 1 {
        // A correct signature within the tolerance, as a sender computes it.
        let t = NOW - i64::from(opt >> 1) + 64;
        let good = sign(SECRET, t, body);
        let listed = format!("{sig},{good}");
        let t = t.to_string();
        assert_eq!(
            verify_signature(SECRET, &t, &good, body, NOW, TOLERANCE),
            Ok(())
        );
        // Rotation lists are read up to four entries; a good one among them verifies.
        if sig.split(',').count() < 4 {
            assert_eq!(
                verify_signature(SECRET, &t, &listed, body, NOW, TOLERANCE),
                Ok(())
            );
        }
        let mut changed = body.to_vec();
        changed.push(opt);
        assert_eq!(
            verify_signature(SECRET, &t, &good, &changed, NOW, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }
});
