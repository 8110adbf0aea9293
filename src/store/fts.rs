//! Full-text indexing of records: the text a record contributes to `records_fts`.
//!
//! The index is maintained by triggers (migration `records_fts_stats_source_index`) that call
//! the SQL function `gleaner_record_text(payload)`, registered here on every tenant writer
//! connection. Running inside the trigger means the index changes in the same savepoint as
//! the record, whichever code path wrote it, so the two can never disagree after a crash or
//! a rolled-back write. The function decodes the payload (capped) and joins every string
//! value of the JSON document, in document order, up to [`MAX_TEXT_BYTES`].
//!
//! Queries never pass user text to FTS5's query parser as is: [`match_expression`] turns
//! words into quoted terms, so no input can be an FTS5 syntax error.

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

use super::records::MAX_RECORD_BYTES;

/// Most bytes of text one record contributes to the index.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// Registers `gleaner_record_text` on `conn`. Any connection that writes `records` of a
/// tenant database outside the store (tools, benchmarks) must call this first, or the
/// full-text triggers fail with "no such function".
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "gleaner_record_text",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            let payload: Vec<u8> = ctx.get(0)?;
            // SAFETY: the connection is only queried (the payload's dictionary, which
            // harvested records may use), never closed or reconfigured, while the function
            // runs; SQLite allows a function to query its own connection.
            let conn = unsafe { ctx.get_connection()? };
            let bytes = super::dict::decode_stored(&conn, &payload, MAX_RECORD_BYTES)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(record_text(&v))
        },
    )
}

/// The searchable text of a record: its string values, newline-separated, capped.
pub fn record_text(v: &serde_json::Value) -> String {
    let mut out = String::new();
    collect(v, &mut out);
    out
}

fn collect(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    if out.len() >= MAX_TEXT_BYTES {
        return;
    }
    match v {
        Value::String(s) => {
            let room = MAX_TEXT_BYTES - out.len();
            if !out.is_empty() {
                out.push('\n');
            }
            if s.len() <= room {
                out.push_str(s);
            } else {
                let mut end = room;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&s[..end]);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect(x, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Most words one full-text query may hold.
pub const MAX_QUERY_TERMS: usize = 16;

/// Builds an FTS5 MATCH expression from user words: each word becomes a quoted term (an
/// implicit AND between them); a trailing `*` on a word is kept as a prefix query. Returns
/// `None` when no word remains.
pub fn match_expression(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split_whitespace()
        .take(MAX_QUERY_TERMS)
        .filter_map(|w| {
            let (word, prefix) = match w.strip_suffix('*') {
                Some(w) => (w, true),
                None => (w, false),
            };
            let word: String = word.chars().filter(|c| !c.is_control()).collect();
            if word.is_empty() {
                return None;
            }
            let quoted = format!("\"{}\"", word.replace('"', "\"\""));
            Some(if prefix { format!("{quoted}*") } else { quoted })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_every_string_value_capped() {
        let v = json!({"a": "hello", "b": [1, "world", {"c": "deep"}], "n": 3, "t": true});
        let t = record_text(&v);
        assert!(t.contains("hello") && t.contains("world") && t.contains("deep"));
        assert!(!t.contains('3'));
        let big = json!({"x": "é".repeat(MAX_TEXT_BYTES)});
        let t = record_text(&big);
        assert!(t.len() <= MAX_TEXT_BYTES && t.len() > MAX_TEXT_BYTES - 4);
    }

    #[test]
    fn match_expressions_are_always_quoted() {
        assert_eq!(match_expression("  "), None);
        assert_eq!(match_expression("a b*").unwrap(), "\"a\" \"b\"*");
        assert_eq!(match_expression("x\"y OR").unwrap(), "\"x\"\"y\" \"OR\"");
        assert_eq!(match_expression("*"), None);
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(text); INSERT INTO f VALUES ('the quick fox');",
        )
        .unwrap();
        for q in ["\"", "NEAR(", "a AND", "(", "fo*", "-x", "text:fox", "^q"] {
            let e = match_expression(q).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM f WHERE f MATCH ?1", [&e], |r| {
                    r.get(0)
                })
                .unwrap_or_else(|err| panic!("{q:?} → {e:?}: {err}"));
            assert!(n <= 1);
        }
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM f WHERE f MATCH ?1",
                [match_expression("qui*").unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}
