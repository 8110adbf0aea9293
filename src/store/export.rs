//! The shape of a records export, shared by the API's export endpoint and `gleaner export`:
//! field paths and projections (validated once, for both), NDJSON lines and RFC 4180 CSV
//! rows of [`RecordRow`]s, and [`ExportCursor`], which reads a filtered export one keyset
//! chunk at a time (each chunk its own short read, so a long export never pins the WAL)
//! and hands back its text. Where the text goes (a response body, stdout, a file) is the
//! caller's business. It sits in store rather than http (whose rows it writes) because
//! the CLI's `gleaner export` must write the same bytes and nothing may depend on http.

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::Value;

use super::db::TenantDb;
use super::error::StoreError;
use super::query::{lookup, RecordFilter, RecordRow, ScanBudget};

/// Most fields a projection may name.
pub const MAX_PROJECTED: usize = 32;
/// Most names in one dotted field path.
pub const MAX_PATH_SEGMENTS: usize = 8;

/// Output name and dotted path of each projected field; `None` exports every field.
pub type Projection = Option<Vec<(String, Vec<String>)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

/// A dotted field path (`a.b.0`); `name` is the parameter or flag it came from, for the
/// message.
pub fn field_path(name: &str, s: &str) -> Result<Vec<String>, String> {
    let segs: Vec<String> = s.split('.').map(str::to_owned).collect();
    if s.is_empty()
        || segs.len() > MAX_PATH_SEGMENTS
        || segs.iter().any(|p| p.is_empty() || p.chars().count() > 64)
    {
        return Err(format!(
            "`{name}`: a dotted field path of 1 to {MAX_PATH_SEGMENTS} non-empty names of at most 64 characters"
        ));
    }
    Ok(segs)
}

/// A comma-separated list of field paths (`title,address.city`).
pub fn projection(name: &str, list: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let names: Vec<&str> = list.split(',').collect();
    if names.len() > MAX_PROJECTED {
        return Err(format!("`{name}`: at most {MAX_PROJECTED} names"));
    }
    names
        .into_iter()
        .map(|n| Ok((n.to_owned(), field_path(name, n)?)))
        .collect()
}

fn parse(raw: &RawValue) -> Value {
    // Stored payloads are checked JSON; a failure here would be a bug, shown as null.
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The projected fields, or the stored JSON passed through untouched.
pub fn project(fields: Box<RawValue>, projection: &Projection) -> Box<RawValue> {
    match projection {
        None => fields,
        Some(p) => {
            let all = parse(&fields);
            let mut out = serde_json::Map::new();
            for (name, path) in p {
                if let Some(v) = lookup(&all, path) {
                    out.insert(name.clone(), v.clone());
                }
            }
            serde_json::value::to_raw_value(&Value::Object(out)).unwrap_or(fields)
        }
    }
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
pub fn csv_field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// A text cell from stored data: with `neutralize`, one a spreadsheet would run as a
/// formula (OWASP CSV injection: leading `=`, `+`, `-`, `@`, tab, CR) gets a leading `'`,
/// which spreadsheets show as text and do not display.
pub fn csv_text(s: &str, neutralize: bool, out: &mut String) {
    if neutralize && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{s}"), out);
    } else {
        csv_field(s, out);
    }
}

/// The columns every CSV export starts with; then `fields` (the JSON object) or one column
/// per projected field.
pub const CSV_FIXED: [&str; 9] = [
    "id",
    "source",
    "key",
    "version",
    "first_seen_ms",
    "version_since_ms",
    "last_seen_ms",
    "removed",
    "removed_run",
];

/// The CSV header line.
pub fn csv_header(projection: &Projection, neutralize: bool) -> String {
    let mut head = CSV_FIXED.join(",");
    match projection {
        None => head.push_str(",fields"),
        Some(p) => {
            for (name, _) in p {
                head.push(',');
                csv_text(name, neutralize, &mut head);
            }
        }
    }
    head.push_str("\r\n");
    head
}

/// One CSV row; a projected field that is absent or null is an empty cell. Numbers,
/// booleans and the fixed columns other than `source` and `key` are written as they are:
/// none can start a formula (a JSON number's leading `-` is its sign).
pub fn csv_row(r: &RecordRow, projection: &Projection, neutralize: bool, out: &mut String) {
    let fixed = [
        r.id.to_string(),
        r.source.clone(),
        r.key.clone(),
        r.version.to_string(),
        r.first_seen_ms.to_string(),
        r.version_since_ms.to_string(),
        r.last_seen_ms.to_string(),
        r.removed.to_string(),
        r.removed_run.map(|n| n.to_string()).unwrap_or_default(),
    ];
    for (i, v) in fixed.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // `source` and `key` come from harvested or pushed data.
        if i == 1 || i == 2 {
            csv_text(v, neutralize, out);
        } else {
            csv_field(v, out);
        }
    }
    match projection {
        None => {
            out.push(',');
            csv_text(r.fields.get(), neutralize, out);
        }
        Some(p) => {
            let all = parse(&r.fields);
            for (_, path) in p {
                out.push(',');
                match lookup(&all, path) {
                    Some(Value::String(s)) => csv_text(s, neutralize, out),
                    Some(Value::Null) | None => {}
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => csv_field(&v.to_string(), out),
                    Some(v) => csv_text(&v.to_string(), neutralize, out),
                }
            }
        }
    }
    out.push_str("\r\n");
}

/// One NDJSON line: the record as the API's JSON (the OpenAPI `Record`), projected.
pub fn ndjson_line(r: RecordRow, projection: &Projection, out: &mut String) {
    let r = RecordRow {
        fields: project(r.fields, projection),
        ..r
    };
    out.push_str(&serde_json::to_string(&r).unwrap_or_default());
    out.push('\n');
}

/// Bounds of each chunk's read.
#[derive(Debug, Clone, Copy)]
pub struct ExportLimits {
    /// Records per chunk.
    pub chunk_rows: usize,
    /// Each chunk's statement limit.
    pub timeout_ms: u64,
    /// Most record ids one chunk may walk past when filters are selective.
    pub max_scan: i64,
}

/// Reads a filtered export chunk by chunk: the CSV header first, then each chunk's text.
pub struct ExportCursor {
    db: TenantDb,
    filter: RecordFilter,
    format: ExportFormat,
    projection: Projection,
    limits: ExportLimits,
    after: i64,
    header_sent: bool,
    done: bool,
    neutralize_formulas: bool,
}

impl ExportCursor {
    pub fn new(
        db: TenantDb,
        filter: RecordFilter,
        format: ExportFormat,
        projection: Projection,
        limits: ExportLimits,
    ) -> ExportCursor {
        ExportCursor {
            db,
            filter,
            format,
            projection,
            limits,
            after: 0,
            header_sent: format != ExportFormat::Csv,
            done: false,
            neutralize_formulas: true,
        }
    }

    /// Whether CSV text cells that would start a spreadsheet formula get a leading `'`
    /// (on unless turned off).
    pub fn neutralize_formulas(mut self, on: bool) -> ExportCursor {
        self.neutralize_formulas = on;
        self
    }

    /// The next piece of output (possibly empty: a chunk whose scan matched nothing), or
    /// `None` at the end. Records in the output so far are counted by the caller.
    pub async fn next(&mut self) -> Result<Option<(String, usize)>, StoreError> {
        if !self.header_sent {
            self.header_sent = true;
            return Ok(Some((
                csv_header(&self.projection, self.neutralize_formulas),
                0,
            )));
        }
        if self.done {
            return Ok(None);
        }
        let b = ScanBudget {
            deadline: Instant::now() + Duration::from_millis(self.limits.timeout_ms),
            max_scan: self.limits.max_scan,
            timeout_ms: self.limits.timeout_ms,
        };
        let page = self
            .db
            .list_records(self.filter.clone(), self.after, self.limits.chunk_rows, b)
            .await?;
        let n = page.rows.len();
        let mut buf = String::with_capacity(n * 256);
        for r in page.rows {
            match self.format {
                ExportFormat::Ndjson => ndjson_line(r, &self.projection, &mut buf),
                ExportFormat::Csv => {
                    csv_row(&r, &self.projection, self.neutralize_formulas, &mut buf)
                }
            }
        }
        match page.next_after {
            Some(a) => self.after = a,
            None => self.done = true,
        }
        Ok(Some((buf, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let mut s = String::new();
        for v in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
            csv_field(v, &mut s);
            s.push('|');
        }
        assert_eq!(s, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|");
    }

    #[test]
    fn csv_formula_cells_are_neutralised_only_when_asked() {
        let mut s = String::new();
        for v in ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "a=b", "", "=a,b"] {
            csv_text(v, true, &mut s);
            s.push('|');
        }
        assert_eq!(s, "'=1+1|'+1|'-1|'@A1|'\tx|\"'\rx\"|a=b||\"'=a,b\"|");
        let mut raw = String::new();
        csv_text("=1+1", false, &mut raw);
        assert_eq!(raw, "=1+1");
    }

    #[test]
    fn paths_and_projections_are_checked() {
        assert_eq!(field_path("f", "a.b").unwrap(), ["a", "b"]);
        assert!(field_path("f", "a..b").unwrap_err().starts_with("`f`:"));
        assert!(field_path("f", "").is_err());
        assert!(field_path("f", &["x"; 9].join(".")).is_err());
        let p = projection("fields", "title,a.b").unwrap();
        assert_eq!(
            p[1],
            ("a.b".to_owned(), vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(projection("fields", &vec!["x"; 33].join(",")).is_err());
    }

    #[test]
    fn rows_carry_the_removing_run() {
        let r = RecordRow {
            id: 4,
            source: "s".into(),
            key: "k,1".into(),
            version: 2,
            first_seen_ms: 1,
            version_since_ms: 2,
            last_seen_ms: 3,
            removed: true,
            removed_run: Some(17),
            fields: RawValue::from_string(r#"{"t":"x","n":null}"#.into()).unwrap(),
        };
        let p: Projection = Some(projection("fields", "t,n").unwrap());
        assert_eq!(
            csv_header(&p, true),
            "id,source,key,version,first_seen_ms,version_since_ms,last_seen_ms,removed,removed_run,t,n\r\n"
        );
        let mut out = String::new();
        csv_row(&r, &p, true, &mut out);
        assert_eq!(out, "4,s,\"k,1\",2,1,2,3,true,17,x,\r\n");
        let mut out = String::new();
        ndjson_line(r, &None, &mut out);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["removed"].clone(), v["removed_run"].clone()),
            (Value::Bool(true), 17.into())
        );
    }
}
