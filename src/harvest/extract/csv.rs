//! CSV files into records, one per row, with the header row naming the fields.
//!
//! Decoding: a BOM, else the source's `encoding`, else the Content-Type charset, else
//! UTF-8 (spreadsheet exports are commonly windows-1252 sent as `text/csv` with no
//! charset, hence the override). Rows with too few cells leave fields out, rows with too
//! many are reported; a row that cannot be read is not stored, and makes the file an error
//! for the run (its other rows are stored) so its record is not taken for removed.

use std::collections::HashSet;

use serde_json::{Map, Value};
use url::Url;

use crate::error::ErrorKind;
use crate::harvest::charset::decode_text;
use crate::harvest::convert::convert;
use crate::harvest::limits::{MAX_CSV_BYTES, MAX_FIELD_BYTES, MAX_RECORDS_PER_PAGE};
use crate::harvest::record::{key_from_fields, ExtractedRecord, Warning, Warnings};
use crate::harvest::source::CsvSource;

#[derive(Debug, Clone, PartialEq)]
pub struct CsvPage {
    /// The column names used (from the header row or the definition).
    pub columns: Vec<String>,
    pub records: Vec<ExtractedRecord>,
    pub warnings: Vec<Warning>,
    /// Why some rows were not read (unreadable, or past the per-page cap): the file is an
    /// error, so a complete run cannot take those rows' records for removed.
    pub incomplete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("{url}: file is {size} bytes; the limit is {limit}")]
    TooLarge {
        url: String,
        size: usize,
        limit: usize,
    },
    #[error("{url}: the file has no header row")]
    NoHeader { url: String },
    #[error("{url}: key column {column:?} is not in the header ({columns})")]
    MissingKeyColumn {
        url: String,
        column: String,
        columns: String,
    },
}

impl CsvError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CsvError::TooLarge { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::InvalidInput,
        }
    }
}

pub fn extract_csv(
    url: &Url,
    body: &[u8],
    content_type: Option<&str>,
    src: &CsvSource,
) -> Result<CsvPage, CsvError> {
    if body.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge {
            url: url.to_string(),
            size: body.len(),
            limit: MAX_CSV_BYTES,
        });
    }
    let text = decode_text(body, content_type, src.encoding()).text;
    // skip_lines counts physical lines before the header (titles, notes).
    let mut rest: &str = &text;
    for _ in 0..src.skip_lines {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(src.delimiter as u8)
        .quote(src.quote as u8)
        .has_headers(false)
        .flexible(true)
        .from_reader(rest.as_bytes());
    let mut rows = reader.records();
    let mut warnings = Warnings::default();

    let columns = if src.columns.is_empty() {
        let header = loop {
            match rows.next() {
                None => {
                    return Err(CsvError::NoHeader {
                        url: url.to_string(),
                    })
                }
                Some(Ok(h)) if h.iter().all(|c| c.trim().is_empty()) => continue,
                Some(Ok(h)) => break h,
                Some(Err(e)) => {
                    warnings.push(None, format!("header row unreadable: {e}"));
                    return Err(CsvError::NoHeader {
                        url: url.to_string(),
                    });
                }
            }
        };
        header_names(&header, &mut warnings)
    } else {
        src.columns.clone()
    };
    for name in src.key.field_names() {
        if !columns.iter().any(|c| c == name) {
            return Err(CsvError::MissingKeyColumn {
                url: url.to_string(),
                column: name.to_owned(),
                columns: columns.join(", "),
            });
        }
    }

    let mut records = Vec::new();
    let mut keys = HashSet::new();
    let mut unreadable: Vec<String> = Vec::new();
    let mut capped = false;
    for (i, row) in rows.enumerate() {
        if records.len() >= MAX_RECORDS_PER_PAGE {
            capped = true;
            break;
        }
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                if unreadable.len() < 3 {
                    unreadable.push(format!("row {}: {e}", i + 1));
                } else if unreadable.len() == 3 {
                    unreadable.push("...".into());
                }
                continue;
            }
        };
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if row.len() > columns.len() {
            warnings.push(
                Some(i),
                format!(
                    "row has {} cells, the header {}; extra cells ignored",
                    row.len(),
                    columns.len()
                ),
            );
        }
        let mut fields = Map::new();
        for (name, cell) in columns.iter().zip(row.iter()) {
            let cell = if src.trim { cell.trim() } else { cell };
            if cell.is_empty() {
                if src.keep_empty {
                    fields.insert(name.clone(), Value::String(String::new()));
                }
                continue;
            }
            let cell = &cell[..floor_boundary(cell, MAX_FIELD_BYTES)];
            let v = match src.types.get(name) {
                None => Value::String(cell.to_owned()),
                Some(conv) => match convert(cell, conv.opts(), url) {
                    Ok(v) => v,
                    Err(why) => {
                        warnings.push(Some(i), format!("column {name:?}: {why}"));
                        Value::Null
                    }
                },
            };
            fields.insert(name.clone(), v);
        }
        match key_from_fields(&fields, &src.key) {
            Ok(key) if keys.insert(key.clone()) => records.push(ExtractedRecord { key, fields }),
            Ok(key) => warnings.push(
                Some(i),
                format!("key {key:?} appears more than once; later rows skipped"),
            ),
            Err(why) => warnings.push(Some(i), format!("{why}; row skipped")),
        }
    }
    let incomplete = match (unreadable.is_empty(), capped) {
        (true, false) => None,
        (true, true) => Some(format!(
            "more than {MAX_RECORDS_PER_PAGE} rows; the rest were not read"
        )),
        (false, _) => Some(format!(
            "rows that cannot be read were not stored ({}){}",
            unreadable.join("; "),
            if capped {
                format!("; and more than {MAX_RECORDS_PER_PAGE} rows")
            } else {
                String::new()
            }
        )),
    };
    Ok(CsvPage {
        incomplete,
        columns,
        records,
        warnings: warnings.finish(),
    })
}

/// Header names, trimmed; blank ones become `column_N` and repeats get `_2`, `_3`, so
/// every cell has a distinct field name.
fn header_names(header: &::csv::StringRecord, warnings: &mut Warnings) -> Vec<String> {
    let mut seen = HashSet::new();
    header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let base = match h.trim() {
                "" => format!("column_{}", i + 1),
                t => t.to_owned(),
            };
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            if name != base {
                warnings.push(
                    None,
                    format!(
                        "header {base:?} repeats; column {} is named {name:?}",
                        i + 1
                    ),
                );
            }
            name
        })
        .collect()
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::{SourceDef, SourceSpec};
    use proptest::prelude::*;
    use serde_json::json;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

    fn source() -> CsvSource {
        let t = std::fs::read_to_string(format!("{DIR}/sources/companies-csv.toml")).unwrap();
        match SourceDef::parse_toml(&t).unwrap().spec {
            SourceSpec::Csv(c) => c,
            _ => unreachable!(),
        }
    }

    fn url() -> Url {
        Url::parse("https://opendata.example/companies.csv").unwrap()
    }

    #[test]
    fn semicolons_in_iso_8859_1() {
        let body = std::fs::read(format!("{DIR}/csv/companies.csv")).unwrap();
        // The server says nothing about the charset; the definition says iso-8859-1.
        let p = extract_csv(&url(), &body, Some("text/csv"), &source()).unwrap();
        assert_eq!(
            p.columns,
            ["siren", "nom", "ville", "capital", "created", "note"]
        );
        let keys: Vec<_> = p.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["552100554", "775670417", "130005481"]);
        assert_eq!(
            p.records[0].fields_value(),
            json!({"siren": "552100554", "nom": "Société Générale", "ville": "Paris",
                   "capital": 1_066_714_367.5, "created": "1864-05-04", "note": "banque; « historique »"})
        );
        assert_eq!(p.records[1].fields["nom"], json!("Café de la Gare"));
        assert!(
            !p.records[1].fields.contains_key("note"),
            "empty cells are left out"
        );
        assert_eq!(p.records[2].fields["capital"], json!(null));
        let msgs: Vec<_> = p.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("column \"capital\""));
        assert!(msgs[1].contains("key field \"siren\" is missing"));
        assert!(msgs[2].contains("appears more than once"));
    }

    #[test]
    fn header_problems() {
        let mut src = source();
        src.types.clear();
        let e = extract_csv(&url(), b"id;nom\n1;a\n", None, &src).unwrap_err();
        assert!(
            matches!(e, CsvError::MissingKeyColumn { .. }) && e.to_string().contains("(id, nom)"),
            "{e}"
        );
        assert!(matches!(
            extract_csv(&url(), b"\n\n", None, &src),
            Err(CsvError::NoHeader { .. })
        ));
        let p = extract_csv(&url(), b"siren;x;x;\n1;a;b;c;d\n", None, &src).unwrap();
        assert_eq!(p.columns, ["siren", "x", "x_2", "column_4"]);
        assert_eq!(p.records[0].fields["x_2"], json!("b"));
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        // Given column names, skipped title lines, a BOM overriding the configured encoding.
        src.columns = vec!["siren".into(), "nom".into()];
        src.skip_lines = 1;
        let p = extract_csv(
            &url(),
            "\u{feff}Export du 01/03\n7;Zoë\n".as_bytes(),
            None,
            &src,
        )
        .unwrap();
        assert_eq!(p.records[0].fields["nom"], json!("Zoë"));
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = extract_csv(&url(), &body, None, &source());
        }

        #[test]
        fn random_text_with_the_header_never_panics(rows in "[a-z0-9;\"\n ,é]{0,300}") {
            let body = format!("siren;nom;capital\n{rows}");
            if let Ok(p) = extract_csv(&url(), body.as_bytes(), None, &source()) {
                for r in p.records {
                    prop_assert!(!r.key.is_empty());
                }
            }
        }
    }
}
