//! The CSV extractor with the companies fixture's definition (`;`, ISO-8859-1, typed
//! columns) and with a plain comma file keyed by a composite key. Properties: bounded
//! output, clean unique keys, fields named by columns, cells within the field cap.
#![no_main]

use std::sync::LazyLock;

use gleaner::harvest::extract::csv::extract_csv;
use gleaner::harvest::limits::MAX_FIELD_BYTES;
use gleaner::harvest::source::CsvSource;
use gleaner::harvest::SourceSpec;
use gleaner_fuzz::{
    check_records, check_unique_keys, check_warnings, content_type, def_json, def_toml, split,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use url::Url;

fn csv(spec: SourceSpec) -> CsvSource {
    match spec {
        SourceSpec::Csv(s) => s,
        other => panic!("CSV fixture is {}", other.kind()),
    }
}

static COMPANIES: LazyLock<CsvSource> = LazyLock::new(|| {
    csv(def_toml(include_str!(
        "../../tests/fixtures/harvest/sources/companies-csv.toml"
    )))
});
static PLAIN: LazyLock<CsvSource> = LazyLock::new(|| {
    csv(def_json(
        r#"{"id": "plain-csv", "kind": "csv", "url": "https://data.example/x.csv",
            "skip_lines": 1, "keep_empty": true, "trim": false,
            "key": {"fields": ["id", "name"]},
            "types": {"n": {"type": "integer"}, "when": {"type": "datetime"}}}"#,
    ))
});
static URL: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://opendata.example/companies.csv").expect("literal URL"));

fuzz_target!(|data: &[u8]| {
    let Some((opt, body)) = split(data) else {
        return;
    };
    let src = if opt & 4 == 0 { &*COMPANIES } else { &*PLAIN };
    let ct = content_type(opt, "text/csv");
    let Ok(page) = extract_csv(&URL, body, ct.as_deref(), src) else {
        return;
    };
    check_records(&page.records);
    check_unique_keys(&page.records);
    check_warnings(&page.warnings);
    for r in &page.records {
        for (name, v) in &r.fields {
            assert!(page.columns.contains(name), "field {name:?} is no column");
            if let Value::String(s) = v {
                assert!(s.len() <= MAX_FIELD_BYTES, "cell of {} bytes", s.len());
            }
        }
    }
});
