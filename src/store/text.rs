//! The text a record contributes to the full-text index: every string value of its JSON
//! document, in document order, newline-separated, capped at [`MAX_TEXT_BYTES`].
//!
//! Pure: computed on the CPU pool when a record is encoded (see [`super::codec`]), never on
//! a writer thread.

/// Most bytes of text one record contributes to the index.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

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
}
