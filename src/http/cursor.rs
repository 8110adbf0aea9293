//! Opaque page cursors: the last id of a page, bound to the query that produced it; and
//! [`next_key`], the `next` of keyset-paged lists.
//!
//! A cursor is `base64url(version ‖ after_id ‖ mac)`, where the MAC is a keyed BLAKE3 hash
//! (key derived from the server secret) over the version, the id and a fingerprint of the
//! tenant and every filter. A cursor that was edited, truncated, or taken from another
//! query or tenant fails the MAC and is refused with 400 — so it can only ever point where
//! a real page ended.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::error::ApiError;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
const RAW_LEN: usize = 1 + 8 + MAC_LEN;
/// Longest cursor string accepted (checked before decoding).
pub const MAX_CURSOR_CHARS: usize = 64;

fn mac(key: &[u8; 32], id: i64, fingerprint: &[u8]) -> [u8; MAC_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&[VERSION]);
    h.update(&id.to_be_bytes());
    h.update(fingerprint);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..MAC_LEN]);
    out
}

pub fn encode(key: &[u8; 32], id: i64, fingerprint: &[u8]) -> String {
    let mut raw = Vec::with_capacity(RAW_LEN);
    raw.push(VERSION);
    raw.extend_from_slice(&id.to_be_bytes());
    raw.extend_from_slice(&mac(key, id, fingerprint));
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode(key: &[u8; 32], s: &str, fingerprint: &[u8]) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid(
            "`cursor` is not valid for this query: pass the `next` value of the previous page unchanged, with the same filters",
        )
    };
    if s.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    if raw.len() != RAW_LEN || raw[0] != VERSION {
        return Err(bad());
    }
    let mut idb = [0u8; 8];
    idb.copy_from_slice(&raw[1..9]);
    let id = i64::from_be_bytes(idb);
    let want = mac(key, id, fingerprint);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&raw[9..], &want[..])) || id < 0 {
        return Err(bad());
    }
    Ok(id)
}

/// The keyset `next` of a page: the last row's key when the page is full (there may be
/// more), else none.
pub fn next_key<T, K>(rows: &[T], limit: usize, key: impl FnOnce(&T) -> K) -> Option<K> {
    if rows.len() == limit {
        rows.last().map(key)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let k = [3u8; 32];
        let c = encode(&k, 12345, b"q1");
        assert_eq!(decode(&k, &c, b"q1").unwrap(), 12345);
        assert!(decode(&k, &c, b"q2").is_err());
        assert!(decode(&[4u8; 32], &c, b"q1").is_err());
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        raw[8] ^= 1;
        assert!(decode(&k, &URL_SAFE_NO_PAD.encode(&raw), b"q1").is_err());
        for junk in ["", "!!!", "AAAA", &"A".repeat(500)] {
            assert!(decode(&k, junk, b"q1").is_err());
        }
    }
}
