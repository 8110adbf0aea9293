//! The record every extractor produces, the per-page warnings, and record keys.
//!
//! A record is a key plus a JSON object of fields. Fields hold only JSON values (no NaN, no
//! infinities), so `crate::store::codec::canonical_json` always accepts them and equal
//! content always hashes equal.

use serde::Serialize;
use serde_json::{Map, Value};

use super::limits::{MAX_KEY_BYTES, MAX_WARNINGS};
use super::source::KeySpec;

/// One record out of extraction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtractedRecord {
    /// Stable identity of the record within its source (a field value or a URL).
    pub key: String,
    /// The extracted fields, in key order.
    pub fields: Map<String, Value>,
}

impl ExtractedRecord {
    /// The fields as one JSON object, the form the record codec encodes.
    pub fn fields_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// Joins the fields taken from this record's detail page. Listing fields win on a name
    /// clash; validation already refuses definitions where names clash.
    pub fn join_detail(&mut self, detail: Map<String, Value>) {
        for (k, v) in detail {
            self.fields.entry(k).or_insert(v);
        }
    }
}

/// Something that went wrong with one record or link while the page as a whole was fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Index of the record on the page (in document order), when the warning is about one.
    pub record: Option<usize>,
    pub message: String,
}

/// A capped list of warnings: the first [`MAX_WARNINGS`] are kept, the rest counted.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: Vec<Warning>,
    dropped: usize,
}

impl Warnings {
    pub(crate) fn push(&mut self, record: Option<usize>, message: impl Into<String>) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(Warning {
                record,
                message: message.into(),
            });
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Warning> {
        if self.dropped > 0 {
            self.list.push(Warning {
                record: None,
                message: format!("{} further warnings were not kept", self.dropped),
            });
        }
        self.list
    }
}

/// Checks and trims a candidate key: non-empty, at most [`MAX_KEY_BYTES`], no control
/// characters (keys appear in API paths and logs).
pub(crate) fn clean_key(raw: &str) -> Result<String, String> {
    let k = raw.trim();
    if k.is_empty() {
        return Err("the key is empty".into());
    }
    if k.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes long; the limit is {MAX_KEY_BYTES}",
            k.len()
        ));
    }
    if k.chars().any(char::is_control) {
        return Err("the key contains control characters".into());
    }
    Ok(k.to_owned())
}

/// A scalar JSON value as key text; objects, arrays and null have none.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Looks a field up by name; a name starting with '/' is a JSON Pointer into the record
/// (`/meta/id`), so keys can come from nested API objects.
pub(crate) fn lookup<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match name.strip_prefix('/') {
        Some(ptr) => {
            let (first, rest) = match ptr.find('/') {
                Some(i) => (&ptr[..i], &ptr[i..]),
                None => (ptr, ""),
            };
            let v = fields.get(&first.replace("~1", "/").replace("~0", "~"))?;
            if rest.is_empty() {
                Some(v)
            } else {
                v.pointer(rest)
            }
        }
        None => fields.get(name),
    }
}

/// Separator between the parts of a composite key (`key = { fields = [...] }`).
pub const COMPOSITE_KEY_SEPARATOR: &str = "|";

/// The key of a record whose fields are `fields`, for key specs that name fields.
/// `KeySpec::Url` needs a URL and is handled by the HTML extractor, never here.
pub(crate) fn key_from_fields(
    fields: &Map<String, Value>,
    spec: &KeySpec,
) -> Result<String, String> {
    let one = |name: &str| -> Result<String, String> {
        let v = lookup(fields, name).ok_or_else(|| format!("key field {name:?} is missing"))?;
        scalar_text(v)
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| format!("key field {name:?} is not a string, number or bool"))
    };
    let raw = match spec {
        KeySpec::Field(name) => one(name)?,
        KeySpec::Fields(names) => names
            .iter()
            .map(|n| one(n))
            .collect::<Result<Vec<_>, _>>()?
            .join(COMPOSITE_KEY_SEPARATOR),
        KeySpec::Url => return Err("this source kind has no page URL to key records by".into()),
    };
    clean_key(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn keys_from_fields_pointers_and_composites() {
        let f = map(json!({"id": 7, "meta": {"a/b": "x"}, "name": " Acme ", "n": null}));
        assert_eq!(
            key_from_fields(&f, &KeySpec::Field("id".into())).unwrap(),
            "7"
        );
        assert_eq!(
            key_from_fields(&f, &KeySpec::Field("/meta/a~1b".into())).unwrap(),
            "x"
        );
        assert_eq!(
            key_from_fields(&f, &KeySpec::Fields(vec!["id".into(), "name".into()])).unwrap(),
            "7|Acme"
        );
        assert!(key_from_fields(&f, &KeySpec::Field("n".into()))
            .unwrap_err()
            .contains("not a string"));
        assert!(key_from_fields(&f, &KeySpec::Field("zz".into()))
            .unwrap_err()
            .contains("missing"));
        assert!(clean_key("  ").is_err());
        assert!(clean_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(clean_key("a\u{0}b").is_err());
    }

    #[test]
    fn warnings_are_capped() {
        let mut w = Warnings::default();
        for i in 0..MAX_WARNINGS + 5 {
            w.push(Some(i), "bad");
        }
        let out = w.finish();
        assert_eq!(out.len(), MAX_WARNINGS + 1);
        assert!(out.last().unwrap().message.starts_with("5 further"));
    }

    #[test]
    fn detail_join_keeps_listing_values() {
        let mut r = ExtractedRecord {
            key: "k".into(),
            fields: map(json!({"a": 1})),
        };
        r.join_detail(map(json!({"a": 2, "b": 3})));
        assert_eq!(r.fields_value(), json!({"a": 1, "b": 3}));
    }
}
