//! The `csv` source kind: one delimited text file with a header row.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::record_spec::{check_field_name, Conversion, KeySpec};
use super::values::HttpUrl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSource {
    pub url: HttpUrl,
    /// Field delimiter, one ASCII character: ',' (default), ';', '\t', '|'.
    #[serde(default = "comma")]
    pub delimiter: char,
    /// Quote character, one ASCII character.
    #[serde(default = "double_quote")]
    pub quote: char,
    /// Character encoding label (`iso-8859-1`, `windows-1252`, `utf-8`, ...). When absent:
    /// a byte order mark, then the Content-Type charset, then UTF-8.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Lines skipped before the header row (titles, notes).
    #[serde(default)]
    pub skip_lines: u32,
    /// Column names when the file has no header row; when empty the first row is the header.
    #[serde(default)]
    pub columns: Vec<String>,
    pub key: KeySpec,
    /// Conversions per column name, e.g. `capital = { type = "number", decimal = "," }`.
    #[serde(default)]
    pub types: BTreeMap<String, Conversion>,
    /// Trim whitespace around every value.
    #[serde(default = "yes")]
    pub trim: bool,
    /// Keep empty values as "" instead of leaving the field out.
    #[serde(default)]
    pub keep_empty: bool,
}

fn comma() -> char {
    ','
}
fn double_quote() -> char {
    '"'
}
fn yes() -> bool {
    true
}

impl CsvSource {
    /// The configured encoding, if any (labels per the WHATWG Encoding Standard, so
    /// `iso-8859-1` decodes as windows-1252, as browsers do).
    pub fn encoding(&self) -> Option<&'static encoding_rs::Encoding> {
        self.encoding
            .as_deref()
            .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        let single = |ch: char| ch.is_ascii() && !matches!(ch, '\n' | '\r');
        c.check(
            single(self.delimiter),
            "delimiter",
            "one ASCII character other than a line break",
        );
        c.check(
            single(self.quote),
            "quote",
            "one ASCII character other than a line break",
        );
        c.check(
            self.delimiter != self.quote,
            "quote",
            "must differ from the delimiter",
        );
        if let Some(l) = &self.encoding {
            c.check(
                self.encoding().is_some(),
                "encoding",
                format!(
                    "unknown encoding {l:?}; use a label such as utf-8, iso-8859-1, windows-1252"
                ),
            );
        }
        c.check(self.skip_lines <= 1000, "skip_lines", "use 0 to 1000");
        c.at("columns", |c| {
            for (i, n) in self.columns.iter().enumerate() {
                c.at(format!("[{i}]"), |c| check_field_name(c, n));
            }
        });
        let known = |n: &str| self.columns.is_empty() || self.columns.iter().any(|c| c == n);
        self.key.check(c, Some(&known), false);
        c.at("types", |c| {
            for (name, conv) in &self.types {
                c.check(known(name), name, "not one of the listed columns");
                c.at(name.clone(), |c| conv.check(c));
            }
        });
    }
}
