//! The record codec: canonical JSON, content hash, zstd compression with a decode cap.
//!
//! Pure: no database types. Canonical JSON is serde_json's compact form of a `Value`, whose
//! objects keep keys sorted, so equal content always hashes equal. Payloads carry zstd's
//! frame checksum, so a flipped bit on disk is caught at decode instead of returned as data.
//! A record that compression does not shrink by an eighth is kept in a stored frame (zstd's
//! raw blocks, [`super::stored_frame`]): still one frame format and one decoder. Frames
//! written before that rule (raw literals, Huffman-coded literals) decode as ever.
//! Decoding refuses to produce more than a caller-given number of bytes, so a corrupt or
//! hostile payload cannot balloon memory.
//!
//! Encoding also extracts the record's full-text index text (see [`super::text`]), so the
//! writer thread only inserts index rows and never decodes or parses a payload.

use super::error::StoreError;

/// zstd level: 3 is zstd's default, a good speed/ratio point for small JSON.
pub(super) const LEVEL: i32 = 3;

/// A record ready for the writer: hash of the canonical JSON, its compressed form and the
/// text it contributes to the full-text index. Built only by this module's and
/// [`super::dict`]'s encoders, so the text always matches the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPayload {
    pub hash: [u8; 32],
    pub compressed: Vec<u8>,
    pub(crate) text: String,
}

impl EncodedPayload {
    /// The record's full-text index text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The index text of canonical JSON bytes, for encoders handed bytes rather than a value.
pub(super) fn text_of_canonical(canonical: &[u8]) -> Result<String, StoreError> {
    let v: serde_json::Value = serde_json::from_slice(canonical)
        .map_err(|e| StoreError::Corrupt(format!("record is not JSON: {e}")))?;
    Ok(super::text::record_text(&v))
}

/// Canonical bytes of a JSON value (sorted keys, no insignificant whitespace).
pub fn canonical_json(v: &serde_json::Value) -> Vec<u8> {
    // Serializing a Value cannot fail: its keys are strings and it holds no foreign types.
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn encode(fields: &serde_json::Value) -> Result<EncodedPayload, StoreError> {
    let canonical = canonical_json(fields);
    compress_plain(&canonical, super::text::record_text(fields))
}

thread_local! {
    /// One compression context per thread: creating a zstd context costs more than
    /// compressing a small record with it.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn new_compressor() -> Result<zstd::bulk::Compressor<'static>, StoreError> {
    let err = |e: std::io::Error| StoreError::Corrupt(e.to_string());
    let mut c = zstd::bulk::Compressor::new(LEVEL).map_err(err)?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .map_err(err)?;
    Ok(c)
}

fn compress(canonical: &[u8]) -> Result<Vec<u8>, StoreError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if slot.is_none() {
            *slot = Some(new_compressor()?);
        }
        match slot.as_mut() {
            Some(c) => c.compress(canonical),
            None => new_compressor()?.compress(canonical),
        }
        .map_err(|e| StoreError::Corrupt(e.to_string()))
    })
}

/// Whether compression earned its decode cost: it saved at least an eighth (RocksDB's
/// rule for keeping a compressed block).
pub(super) fn worth_it(raw: usize, compressed: usize) -> bool {
    compressed <= raw - raw / 8
}

/// A payload without a dictionary: zstd's frame if it earned its decode cost, else
/// `canonical` in a stored frame.
pub(super) fn compress_or_store(canonical: &[u8]) -> Result<Vec<u8>, StoreError> {
    let compressed = compress(canonical)?;
    Ok(if worth_it(canonical.len(), compressed.len()) {
        compressed
    } else {
        super::stored_frame::encode(canonical)
    })
}

/// Encodes canonical JSON bytes (parsed once more for the index text; callers holding the
/// value use [`encode`]).
pub fn encode_canonical(canonical: &[u8]) -> Result<EncodedPayload, StoreError> {
    compress_plain(canonical, text_of_canonical(canonical)?)
}

/// Compresses without a dictionary. zstd saves little on a small record alone (6% on the
/// API benchmark's 110-byte records), and decoding the frame costs the reader far more
/// than copying it: 1.8 µs with Huffman-coded literals, 0.28 µs with raw literals, 0.16 µs
/// for a stored frame (`cargo bench --bench codec -- codec_small`). So a frame that saves
/// less than an eighth is replaced by a stored frame.
fn compress_plain(canonical: &[u8], text: String) -> Result<EncodedPayload, StoreError> {
    let hash = *blake3::hash(canonical).as_bytes();
    let compressed = compress_or_store(canonical)?;
    Ok(EncodedPayload {
        hash,
        compressed,
        text,
    })
}

thread_local! {
    // A decompression context is ~100 KiB to set up; reuse one per thread.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a payload, refusing output larger than `cap` bytes.
pub fn decode(compressed: &[u8], cap: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    decode_into(compressed, cap, &mut out)?;
    Ok(out)
}

/// [`decode`] into `out` (replacing its contents), so a reader can reuse one buffer.
pub fn decode_into(compressed: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), StoreError> {
    DCTX.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok();
        match slot.as_deref_mut() {
            Some(Some(d)) => decompress_into(d, compressed, cap, out),
            Some(empty) => {
                let mut d = zstd::bulk::Decompressor::new()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let r = decompress_into(&mut d, compressed, cap, out);
                *empty = Some(d);
                r
            }
            // Re-entered on this thread (cannot happen today): use a fresh context.
            None => {
                let mut d = zstd::bulk::Decompressor::new()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                decompress_into(&mut d, compressed, cap, out)
            }
        }
    })
}

/// One frame into `out` with `d`, never producing more than `cap` bytes.
pub(super) fn decompress_into(
    d: &mut zstd::bulk::Decompressor<'_>,
    compressed: &[u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    // The frame header may declare the content size (zstd checks the output against it);
    // refuse early when it is over the cap, and otherwise make room for exactly that much
    // (not `cap`, which may be megabytes).
    let out_cap = match zstd::zstd_safe::get_frame_content_size(compressed) {
        Ok(Some(n)) if n > cap as u64 => return Err(StoreError::PayloadTooLarge(cap)),
        Ok(Some(n)) => n as usize,
        _ => cap,
    };
    out.clear();
    out.reserve_exact(out_cap);
    match d.decompress_to_buffer(compressed, out) {
        // A reused buffer may be larger than `cap`, so the cap is checked on the result too.
        Ok(n) if n > cap => Err(StoreError::PayloadTooLarge(cap)),
        Ok(_) => Ok(()),
        Err(e)
            if out.capacity() >= cap
                && e.to_string().contains("Destination buffer is too small") =>
        {
            Err(StoreError::PayloadTooLarge(cap))
        }
        Err(e) => Err(StoreError::Corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn compression_is_kept_only_where_it_saves_an_eighth() {
        // Short, varied text: zstd saves a few percent, so the record is stored as it is.
        let small = json!({"body": "alpha bravo text of record 12345", "n": 12345, "t": "r 1 a"});
        let c = canonical_json(&small);
        let e = encode(&small).unwrap();
        assert!(!worth_it(c.len(), compress(&c).unwrap().len()));
        assert_eq!(e.compressed, super::super::stored_frame::encode(&c));
        assert_eq!(decode(&e.compressed, 1 << 20).unwrap(), c);
        // Long text with a skewed alphabet: the compressed frame is kept.
        let long =
            json!({"text": (0..400).map(|i| format!("w{} ", i * 7919 % 1000)).collect::<String>()});
        let c = canonical_json(&long);
        let e = encode(&long).unwrap();
        assert_eq!(e.compressed, compress(&c).unwrap());
        assert!(worth_it(c.len(), e.compressed.len()));
        assert_eq!(decode(&e.compressed, 1 << 20).unwrap(), c);
    }

    #[test]
    fn equal_content_hashes_equal_regardless_of_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "a": [1,2], "b": 1 }"#).unwrap();
        assert_eq!(encode(&a).unwrap().hash, encode(&b).unwrap().hash);
        assert_ne!(
            encode(&a).unwrap().hash,
            encode(&json!({"a":[1,2],"b":2})).unwrap().hash
        );
    }

    #[test]
    fn decode_caps_output_and_detects_corruption() {
        let v = json!({"text": "x".repeat(10_000)});
        let e = encode(&v).unwrap();
        assert_eq!(decode(&e.compressed, 20_000).unwrap(), canonical_json(&v));
        assert!(matches!(
            decode(&e.compressed, 100),
            Err(StoreError::PayloadTooLarge(100))
        ));
        let mut bad = e.compressed.clone();
        let n = bad.len();
        bad[n - 2] ^= 0xff; // inside the checksum
        assert!(decode(&bad, 20_000).is_err());
        assert!(decode(b"not zstd", 100).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(s in "\\PC{0,200}", n in any::<i64>()) {
            let v = json!({"s": s, "n": n});
            let e = encode(&v).unwrap();
            prop_assert_eq!(decode(&e.compressed, 1 << 20).unwrap(), canonical_json(&v));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes, 4096);
        }
    }
}
