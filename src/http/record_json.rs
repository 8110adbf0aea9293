//! One record's API JSON, written by hand into a page buffer.
//!
//! A list page is written on the reader thread record by record (see `records::PageWriter`).
//! Through serde every record cost nine escaped key names, two escaped strings and serde's
//! per-field dispatch: profiled at a seventh of a list request's server CPU. Here the
//! key names are constants and a string goes through serde's escaper only when it holds a
//! byte that needs escaping. The bytes are exactly serde's: a test compares both on
//! arbitrary rows, so the OpenAPI schema and every client see no difference.

use crate::store::RowRef;

/// Appends `r` as `{"id":…,"source":…,…,"fields":…}`, the same bytes as
/// `serde_json::to_writer(buf, r)`.
pub(super) fn write_row(buf: &mut Vec<u8>, r: &RowRef<'_>) {
    let mut ints = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"id\":");
    buf.extend_from_slice(ints.format(r.id).as_bytes());
    buf.extend_from_slice(b",\"source\":");
    write_str(buf, r.source);
    buf.extend_from_slice(b",\"key\":");
    write_str(buf, r.key);
    buf.extend_from_slice(b",\"version\":");
    buf.extend_from_slice(ints.format(r.version).as_bytes());
    buf.extend_from_slice(b",\"first_seen_ms\":");
    buf.extend_from_slice(ints.format(r.first_seen_ms).as_bytes());
    buf.extend_from_slice(b",\"version_since_ms\":");
    buf.extend_from_slice(ints.format(r.version_since_ms).as_bytes());
    buf.extend_from_slice(b",\"last_seen_ms\":");
    buf.extend_from_slice(ints.format(r.last_seen_ms).as_bytes());
    buf.extend_from_slice(if r.removed {
        b",\"removed\":true,\"removed_run\":"
    } else {
        b",\"removed\":false,\"removed_run\":"
    });
    match r.removed_run {
        Some(run) => buf.extend_from_slice(ints.format(run).as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"fields\":");
    // Checked JSON text from the store, passed through as serde passes a RawValue.
    buf.extend_from_slice(r.fields.get().as_bytes());
    buf.push(b'}');
}

/// A JSON string. serde_json escapes `"`, `\` and bytes below 0x20, nothing else; text
/// without them (nearly every source name and key) is copied as it is.
fn write_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn check(r: &RowRef<'_>) {
        let mut mine = Vec::new();
        write_row(&mut mine, r);
        let serde = serde_json::to_vec(r).unwrap();
        assert_eq!(
            String::from_utf8(mine).unwrap(),
            String::from_utf8(serde).unwrap()
        );
    }

    #[test]
    fn escapes_and_extremes_match_serde() {
        let fields = RawValue::from_string(r#"{"a":[1,"x\"y"],"b":null}"#.into()).unwrap();
        for (source, key) in [
            ("plain", "k/ü€😀"),
            ("q\"uote", "back\\slash"),
            ("ctl\u{0}\u{1f}\n\t\r\u{8}\u{c}", "del\u{7f}"),
            ("", ""),
        ] {
            for (id, removed, removed_run) in [
                (i64::MIN, true, Some(i64::MIN)),
                (0, false, None),
                (i64::MAX, true, Some(i64::MAX)),
            ] {
                check(&RowRef {
                    id,
                    source,
                    key,
                    version: -1,
                    first_seen_ms: i64::MAX,
                    version_since_ms: 0,
                    last_seen_ms: i64::MIN,
                    removed,
                    removed_run,
                    fields: &fields,
                });
            }
        }
    }

    proptest! {
        #[test]
        fn any_row_is_written_as_serde_writes_it(
            id in any::<i64>(), version in any::<i64>(), t in any::<(i64, i64, i64)>(),
            removed_run in any::<Option<i64>>(), source in ".{0,40}", key in "[\\x00-\\x7f]{0,40}",
            value in ".{0,40}",
        ) {
            let fields = serde_json::value::to_raw_value(&serde_json::json!({"v": value}))
                .unwrap();
            check(&RowRef {
                id,
                source: &source,
                key: &key,
                version,
                first_seen_ms: t.0,
                version_since_ms: t.1,
                last_seen_ms: t.2,
                removed: removed_run.is_some(),
                removed_run,
                fields: &fields,
            });
        }
    }
}
