//! Per-source zstd dictionaries for small records.
//!
//! Small JSON records compress poorly alone (zstd has little to learn from 300 bytes);
//! a dictionary trained on a source's own records gives it the shared vocabulary (field
//! names, recurring values) up front. Dictionaries are stored in the tenant database
//! (`zstd_dictionaries`), never changed or deleted, and each compressed frame names its
//! dictionary's id in the zstd frame header — so a record written with any past dictionary
//! stays readable, and records written without one (id 0) decode as before. A record the
//! dictionary cannot shrink by an eighth is encoded without it (id 0, see
//! [`super::codec`]).
//!
//! Decoding looks the id up in a small process-wide cache (ids are derived from the
//! dictionary's content by zstd's trainer, so equal ids mean equal dictionaries), falling
//! back to the database the record came from. Output is capped like every decode.

use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex};

use lru::LruCache;
use rusqlite::{params, Connection, OptionalExtension};

use super::base::MAX_RECORD_BYTES;
use super::codec::{EncodedPayload, LEVEL};
use super::db::TenantDb;
use super::error::StoreError;

/// Largest dictionary trained (zstd's recommended ~100 KiB is for larger records).
pub const MAX_DICT_BYTES: usize = 32 * 1024;
/// Most records sampled for training.
pub const MAX_SAMPLES: usize = 5000;
/// Dictionaries kept decoded in memory, process-wide.
const CACHE: usize = 256;

static DICTS: LazyLock<Mutex<LruCache<u32, Arc<Vec<u8>>>>> = LazyLock::new(|| {
    Mutex::new(LruCache::new(
        NonZeroUsize::new(CACHE).unwrap_or(NonZeroUsize::MIN),
    ))
});

/// A trained dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dictionary {
    pub id: u32,
    pub bytes: Arc<Vec<u8>>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Trains a dictionary from sample records (canonical JSON bytes).
pub fn train(samples: &[Vec<u8>]) -> Result<Dictionary, StoreError> {
    let samples = &samples[..samples.len().min(MAX_SAMPLES)];
    let total: usize = samples.iter().map(Vec::len).sum();
    let size = (total / 10).clamp(1024, MAX_DICT_BYTES);
    let bytes = zstd::dict::from_samples(samples, size).map_err(corrupt)?;
    let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes)
        .map(|n| n.get())
        .ok_or_else(|| corrupt("trained dictionary has no id"))?;
    Ok(Dictionary {
        id,
        bytes: Arc::new(bytes),
    })
}

/// Hashes and compresses canonical JSON bytes with a dictionary (parsed once more for the
/// index text; callers holding the value use [`encode_value_with`]).
pub fn encode_with(canonical: &[u8], dict: &Dictionary) -> Result<EncodedPayload, StoreError> {
    compress_with(canonical, super::codec::text_of_canonical(canonical)?, dict)
}

/// Encodes a record value with a dictionary.
pub fn encode_value_with(
    fields: &serde_json::Value,
    dict: &Dictionary,
) -> Result<EncodedPayload, StoreError> {
    let canonical = super::codec::canonical_json(fields);
    compress_with(&canonical, super::text::record_text(fields), dict)
}

fn compress_with(
    canonical: &[u8],
    text: String,
    dict: &Dictionary,
) -> Result<EncodedPayload, StoreError> {
    thread_local! {
        /// The last dictionary's compression context on this thread (loading a dictionary
        /// into a context costs far more than compressing one small record).
        static LAST: std::cell::RefCell<Option<(u32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let hash = *blake3::hash(canonical).as_bytes();
    let compressed = LAST.with(|cell| -> Result<Vec<u8>, StoreError> {
        let mut slot = cell.try_borrow_mut().map_err(corrupt)?;
        if slot.as_ref().is_none_or(|(id, _)| *id != dict.id) {
            let mut c =
                zstd::bulk::Compressor::with_dictionary(LEVEL, &dict.bytes).map_err(corrupt)?;
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .map_err(corrupt)?;
            *slot = Some((dict.id, c));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(canonical).map_err(corrupt),
            None => Err(corrupt("no compression context")),
        }
    })?;
    // A dictionary can fit a record worse than the record's own tables would (text unlike
    // the source's samples): then the record is encoded as if there were no dictionary.
    let compressed = if super::codec::worth_it(canonical.len(), compressed.len()) {
        compressed
    } else {
        super::codec::compress_or_store(canonical)?
    };
    Ok(EncodedPayload {
        hash,
        compressed,
        text,
    })
}

/// The dictionary id a payload was compressed with (0: none).
pub fn dict_id_of(compressed: &[u8]) -> u32 {
    zstd::zstd_safe::get_dict_id_from_frame(compressed).map_or(0, |n| n.get())
}

/// Decompresses with `dict`, refusing output larger than `cap` bytes.
pub fn decode_with(compressed: &[u8], cap: usize, dict: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    decode_with_into(compressed, cap, dict, &mut out)?;
    Ok(out)
}

fn decode_with_into(
    compressed: &[u8],
    cap: usize,
    dict: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    thread_local! {
        /// The last dictionary's decompression context on this thread (loading a
        /// dictionary costs far more than decoding one small record).
        static LAST: std::cell::RefCell<Option<(u32, zstd::bulk::Decompressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let id = zstd::zstd_safe::get_dict_id_from_dict(dict).map_or(0, |n| n.get());
    LAST.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(corrupt)?;
        if id == 0 || slot.as_ref().is_none_or(|(have, _)| *have != id) {
            let d = zstd::bulk::Decompressor::with_dictionary(dict).map_err(corrupt)?;
            *slot = Some((id, d));
        }
        let Some((_, d)) = slot.as_mut() else {
            return Err(corrupt("no decompression context"));
        };
        super::codec::decompress_into(d, compressed, cap, out)
    })
}

/// Registers a dictionary in the process-wide cache.
pub fn remember(d: &Dictionary) {
    if let Ok(mut c) = DICTS.lock() {
        c.put(d.id, Arc::clone(&d.bytes));
    }
}

/// Decodes a stored payload, finding its dictionary (if any) in the cache or in `c`'s
/// database. Use this instead of [`super::codec::decode`] for records read from a tenant
/// database.
pub fn decode_stored(c: &Connection, compressed: &[u8], cap: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    decode_stored_into(c, compressed, cap, &mut out)?;
    Ok(out)
}

/// [`decode_stored`] into `out` (replacing its contents), so a reader can reuse one buffer.
pub fn decode_stored_into(
    c: &Connection,
    compressed: &[u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let id = dict_id_of(compressed);
    if id == 0 {
        return super::codec::decode_into(compressed, cap, out);
    }
    let cached = DICTS.lock().ok().and_then(|mut m| m.get(&id).cloned());
    let bytes = match cached {
        Some(b) => b,
        None => {
            let b: Vec<u8> = c
                .prepare_cached("SELECT dict FROM zstd_dictionaries WHERE id = ?1")
                .map_err(StoreError::from_sqlite)?
                .query_row([i64::from(id)], |r| r.get(0))
                .optional()
                .map_err(StoreError::from_sqlite)?
                .ok_or_else(|| {
                    corrupt(format!(
                        "record needs zstd dictionary {id}, which is missing"
                    ))
                })?;
            let b = Arc::new(b);
            if let Ok(mut m) = DICTS.lock() {
                m.put(id, Arc::clone(&b));
            }
            b
        }
    };
    decode_with_into(compressed, cap, &bytes, out)
}

impl TenantDb {
    /// The newest dictionary of `source`, if one was trained.
    pub async fn source_dictionary(&self, source: &str) -> Result<Option<Dictionary>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                let row: Option<(i64, Vec<u8>)> = c
                    .query_row(
                        "SELECT id, dict FROM zstd_dictionaries WHERE source = ?1
                         ORDER BY version DESC LIMIT 1",
                        [source],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(StoreError::from_sqlite)?;
                Ok(row.map(|(id, b)| {
                    let d = Dictionary {
                        id: id as u32,
                        bytes: Arc::new(b),
                    };
                    remember(&d);
                    d
                }))
            })
            .await
    }

    /// Up to `n` current records of `source`, decoded (canonical JSON), for training.
    pub async fn training_samples(
        &self,
        source: &str,
        n: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let mut st = c
                    .prepare(
                        "SELECT payload FROM records WHERE source = ?1 ORDER BY id DESC LIMIT ?2",
                    )
                    .map_err(e)?;
                let rows = st
                    .query_map(params![source, n as i64], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(e)?;
                let mut out = Vec::new();
                for r in rows {
                    let p = r.map_err(e)?;
                    out.push(decode_stored(c, &p, MAX_RECORD_BYTES)?);
                }
                Ok(out)
            })
            .await
    }

    /// Stores a new dictionary version for `source` (existing ones stay, for old records).
    pub async fn put_source_dictionary(
        &self,
        source: &str,
        d: &Dictionary,
    ) -> Result<i64, StoreError> {
        let (source, id, bytes) = (source.to_owned(), d.id, Arc::clone(&d.bytes));
        remember(d);
        self.0
            .write(move |c| {
                let version: i64 = c
                    .query_row(
                        "SELECT coalesce(max(version), 0) + 1 FROM zstd_dictionaries WHERE source = ?1",
                        [&source],
                        |r| r.get(0),
                    )
                    .map_err(StoreError::from_sqlite)?;
                c.execute(
                    "INSERT INTO zstd_dictionaries (id, source, version, dict, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                    params![i64::from(id), source, version, &bytes[..], super::base::now_ms()],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(version)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize) -> Vec<u8> {
        super::super::canonical_json(&serde_json::json!({
            "code": format!("ICT{i:05}"), "title": format!("Operate {} equipment", ["lifting", "cutting", "welding"][i % 3]),
            "status": if i.is_multiple_of(5) { "Superseded" } else { "Current" }, "sector": "Manufacturing",
            "released": format!("20{:02}-0{}-1{}", 10 + i % 15, 1 + i % 9, i % 10), "fee_eur": 100 + i % 900,
        }))
    }

    #[test]
    fn dictionary_shrinks_small_records_and_round_trips() {
        let samples: Vec<Vec<u8>> = (0..2000).map(sample).collect();
        let d = train(&samples).unwrap();
        assert_ne!(d.id, 0);
        let rec = sample(4242);
        let with = encode_with(&rec, &d).unwrap();
        let without = super::super::codec::encode_canonical(&rec).unwrap();
        assert_eq!(
            with.hash, without.hash,
            "the hash is of the content, not the encoding"
        );
        assert!(
            with.compressed.len() < without.compressed.len(),
            "{} vs {}",
            with.compressed.len(),
            without.compressed.len()
        );
        assert_eq!(with.text(), without.text());
        let value: serde_json::Value = serde_json::from_slice(&rec).unwrap();
        assert_eq!(encode_value_with(&value, &d).unwrap(), with);
        assert_eq!(dict_id_of(&with.compressed), d.id);
        assert_eq!(dict_id_of(&without.compressed), 0);
        assert_eq!(
            decode_with(&with.compressed, 1 << 20, &d.bytes).unwrap(),
            rec
        );
        assert!(matches!(
            decode_with(&with.compressed, 10, &d.bytes),
            Err(StoreError::PayloadTooLarge(10))
        ));
        // Without its dictionary the frame does not decode.
        assert!(super::super::codec::decode(&with.compressed, 1 << 20).is_err());
    }

    #[test]
    fn a_record_the_dictionary_cannot_shrink_is_encoded_without_it() {
        let samples: Vec<Vec<u8>> = (0..2000).map(sample).collect();
        let d = train(&samples).unwrap();
        // Hex digests: nothing like the samples, so the dictionary's tables fit them worse
        // than their own (with it zstd saves 10%, without it 38%).
        let digests: Vec<String> = (0..8u8)
            .map(|i| blake3::hash(&[i]).to_hex().to_string())
            .collect();
        let rec = super::super::canonical_json(&serde_json::json!({ "digests": digests }));
        let e = encode_with(&rec, &d).unwrap();
        let plain = super::super::codec::encode_canonical(&rec).unwrap();
        assert_eq!(e.compressed, plain.compressed);
        assert_eq!(
            dict_id_of(&e.compressed),
            0,
            "encoded without the dictionary"
        );
        assert!(super::super::codec::worth_it(rec.len(), e.compressed.len()));
        assert_eq!(
            super::super::codec::decode(&e.compressed, 1 << 20).unwrap(),
            rec
        );
        // Printable noise shrinks by an eighth neither way: it is stored.
        let noise: String = (0..40u8)
            .flat_map(|i| blake3::hash(&[i]).as_bytes()[..8].to_vec())
            .map(|b| char::from(33 + b % 94))
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        let rec = super::super::canonical_json(&serde_json::json!({ "noise": noise }));
        let e = encode_with(&rec, &d).unwrap();
        assert_eq!(e.compressed, super::super::stored_frame::encode(&rec));
        assert_eq!(
            super::super::codec::decode(&e.compressed, 1 << 20).unwrap(),
            rec
        );
    }
}
