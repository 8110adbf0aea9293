//! Shared parts of the fuzz targets: the fixed, realistic source definitions the extractor
//! targets run with (the repo's own fixtures), how the first input byte picks options,
//! and the output properties every extractor must keep (bounded, clean keys).
//!
//! A property that fails panics, which libFuzzer reports as a crash with the input saved.

use gleaner::harvest::limits::{MAX_KEY_BYTES, MAX_RECORDS_PER_PAGE};
use gleaner::harvest::{ExtractedRecord, SourceDef, SourceSpec, Warning};

/// Most warnings an extractor returns: the kept ones plus the "further warnings" line.
const MAX_WARNINGS_OUT: usize = gleaner::harvest::limits::MAX_WARNINGS + 1;

/// A fixture definition; these are known good, so failing to parse one is a bug.
pub fn def_toml(text: &str) -> SourceSpec {
    match SourceDef::parse_toml(text) {
        Ok(d) => d.spec,
        Err(e) => panic!("fixture definition does not parse: {e}"),
    }
}

pub fn def_json(text: &str) -> SourceSpec {
    match SourceDef::parse_json(text.as_bytes()) {
        Ok(d) => d.spec,
        Err(e) => panic!("fixture definition does not parse: {e}"),
    }
}

/// The Content-Type a response claims, chosen by two bits of the option byte: none, the
/// right type, a legacy charset (decoded first) or UTF-16 (a BOM or garbage then).
pub fn content_type(opt: u8, media: &'static str) -> Option<String> {
    match opt & 3 {
        0 => None,
        1 => Some(media.to_owned()),
        2 => Some(format!("{media}; charset=iso-8859-1")),
        _ => Some(format!("{media}; charset=utf-16")),
    }
}

/// Splits the option byte from the body.
pub fn split(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(o, rest)| (*o, rest))
}

/// Keys are what API paths and logs carry: non-empty, trimmed, bounded, no control
/// characters; pages are bounded in records and warnings.
pub fn check_records(records: &[ExtractedRecord]) {
    assert!(
        records.len() <= MAX_RECORDS_PER_PAGE,
        "{} records",
        records.len()
    );
    for r in records {
        check_key(&r.key);
    }
}

pub fn check_key(k: &str) {
    assert!(!k.is_empty(), "empty key");
    assert!(k.len() <= MAX_KEY_BYTES, "key of {} bytes", k.len());
    assert_eq!(k, k.trim(), "untrimmed key {k:?}");
    assert!(
        !k.chars().any(char::is_control),
        "control character in key {k:?}"
    );
}

pub fn check_warnings(w: &[Warning]) {
    assert!(w.len() <= MAX_WARNINGS_OUT, "{} warnings", w.len());
}

/// Extractors that drop repeated keys on a page (HTML, feed, CSV) return each key once.
pub fn check_unique_keys(records: &[ExtractedRecord]) {
    let mut seen = std::collections::HashSet::new();
    for r in records {
        assert!(seen.insert(&r.key), "key {:?} returned twice", r.key);
    }
}
