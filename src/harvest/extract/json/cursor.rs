//! Incremental cursors of JSON sources, pure: what one page shows of the cursor, how the
//! pages of a run fold into one observation, what is stored after a run that succeeded,
//! and the parameter value the next run sends.
//!
//! Stored text: a time as RFC 3339 (UTC, with its fraction), a number as printed by Rust,
//! a token as it came. Moving the cursor only ever loses nothing when every page up to it
//! was stored, so an observation that saw its page chain cut short ([`CursorSeen::cut`])
//! never produces a new cursor.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::harvest::convert::rfc3339_utc;
use crate::harvest::record::{lookup, ExtractedRecord, Warnings};
use crate::harvest::source::{CursorFormat, Incremental};

/// A `max_field` value, comparable within one format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Time(OffsetDateTime),
    Number(f64),
}

impl Point {
    fn read(v: &Value, format: CursorFormat) -> Option<Point> {
        let num = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if format != CursorFormat::Rfc3339 => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|n| n.is_finite());
        let from_nanos = |n: f64| {
            OffsetDateTime::from_unix_timestamp_nanos(n as i128)
                .ok()
                .map(Point::Time)
        };
        match format {
            CursorFormat::Rfc3339 => match v {
                Value::String(s) => OffsetDateTime::parse(s.trim(), &Rfc3339)
                    .ok()
                    .map(Point::Time),
                _ => None,
            },
            CursorFormat::Unix => from_nanos(num? * 1e9),
            CursorFormat::UnixMs => from_nanos(num? * 1e6),
            CursorFormat::Number => num.map(Point::Number),
        }
    }

    fn later(self, other: Point) -> Point {
        match (self, other) {
            (Point::Time(a), Point::Time(b)) => Point::Time(a.max(b)),
            (Point::Number(a), Point::Number(b)) => Point::Number(a.max(b)),
            (a, _) => a,
        }
    }

    fn to_text(self) -> String {
        match self {
            Point::Time(t) => rfc3339_utc(t),
            Point::Number(n) => n.to_string(),
        }
    }

    fn from_text(s: &str, format: CursorFormat) -> Option<Point> {
        if format.is_time() {
            OffsetDateTime::parse(s, &Rfc3339).ok().map(Point::Time)
        } else {
            s.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Point::Number)
        }
    }
}

/// What the pages of a run have shown of the cursor so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CursorSeen {
    /// The largest `max_field` value.
    pub max: Option<Point>,
    /// The token of the latest page (by page number) that had one.
    pub token: Option<(u32, String)>,
    /// Paging stopped before the API's last page (`max_pages`, a next link that left the
    /// origin): what lies after was never fetched, so the cursor must not move.
    pub cut: bool,
}

impl CursorSeen {
    pub fn merge(&mut self, other: CursorSeen) {
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.later(b)),
            (a, b) => a.or(b),
        };
        if let Some((page, t)) = other.token {
            if self.token.as_ref().is_none_or(|(p, _)| page >= *p) {
                self.token = Some((page, t));
            }
        }
        self.cut |= other.cut;
    }

    /// The cursor to store after a run that succeeded completely, given the stored one:
    /// `None` when it stays as it is (nothing seen, or the chain was cut). A `max_field`
    /// cursor never moves back.
    pub fn next_stored(&self, inc: &Incremental, previous: Option<&str>) -> Option<String> {
        if self.cut {
            return None;
        }
        match inc {
            Incremental::MaxField { format, .. } => {
                let seen = self.max?;
                let prev = previous.and_then(|p| Point::from_text(p, *format));
                let next = prev.map_or(seen, |p| p.later(seen));
                (prev != Some(next)).then(|| next.to_text())
            }
            Incremental::Token { .. } => {
                let (_, t) = self.token.as_ref()?;
                (previous != Some(t.as_str())).then(|| t.clone())
            }
        }
    }
}

/// What one page shows: the largest field value of its records, or its token.
pub(crate) fn observe_page(
    inc: &Incremental,
    doc: &Value,
    records: &[ExtractedRecord],
    page: u32,
    warnings: &mut Warnings,
) -> CursorSeen {
    let mut seen = CursorSeen::default();
    match inc {
        Incremental::MaxField { field, format, .. } => {
            let mut unreadable = 0usize;
            for r in records {
                match lookup(&r.fields, field).and_then(|v| Point::read(v, *format)) {
                    Some(p) => seen.max = Some(seen.max.map_or(p, |m| m.later(p))),
                    None => unreadable += 1,
                }
            }
            if unreadable > 0 {
                warnings.push(
                    None,
                    format!(
                        "{unreadable} records have no {format:?} value in incremental field {field:?}; the cursor ignores them"
                    ),
                );
            }
        }
        Incremental::Token { path, .. } => {
            let token = match path.get().query(doc).first() {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            seen.token = token.map(|t| (page, t));
        }
    }
    seen
}

/// The parameter value a run sends for the stored cursor (`max_field`: minus its
/// lookback, in its format); `None` for a cursor that does not parse in the format.
pub fn resume_value(inc: &Incremental, stored: &str) -> Option<String> {
    match inc {
        Incremental::Token { .. } => Some(stored.to_owned()),
        Incremental::MaxField {
            format, lookback, ..
        } => Some(match Point::from_text(stored, *format)? {
            Point::Number(n) => n.to_string(),
            Point::Time(t) => {
                let back = lookback
                    .and_then(|l| time::Duration::try_from(l.0).ok())
                    .unwrap_or(time::Duration::ZERO);
                let t = t.checked_sub(back).unwrap_or(t);
                match format {
                    CursorFormat::Unix => t.unix_timestamp().to_string(),
                    CursorFormat::UnixMs => (t.unix_timestamp_nanos() / 1_000_000).to_string(),
                    CursorFormat::Rfc3339 | CursorFormat::Number => rfc3339_utc(t),
                }
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inc(v: Value) -> Incremental {
        serde_json::from_value(v).unwrap()
    }

    fn rec(v: Value) -> ExtractedRecord {
        ExtractedRecord {
            key: "k".into(),
            fields: v.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn max_field_takes_the_largest_time_and_resumes_minus_lookback() {
        let i = inc(
            json!({"type": "max_field", "field": "/meta/updated", "param": "since", "lookback": "10m"}),
        );
        let mut w = Warnings::default();
        let recs = [
            rec(json!({"meta": {"updated": "2024-03-01T10:00:00+02:00"}})),
            rec(json!({"meta": {"updated": "2024-03-01T09:30:00Z"}})),
            rec(json!({"meta": {}})),
        ];
        let mut seen = observe_page(&i, &json!({}), &recs, 0, &mut w);
        assert_eq!(
            w.finish().len(),
            1,
            "the record without a value is reported"
        );
        seen.merge(CursorSeen::default());
        let stored = seen.next_stored(&i, None).unwrap();
        assert_eq!(stored, "2024-03-01T09:30:00Z");
        assert_eq!(
            seen.next_stored(&i, Some("2025-01-01T00:00:00Z")),
            None,
            "never back"
        );
        assert_eq!(resume_value(&i, &stored).unwrap(), "2024-03-01T09:20:00Z");
        seen.cut = true;
        assert_eq!(
            seen.next_stored(&i, None),
            None,
            "a cut chain moves nothing"
        );
    }

    #[test]
    fn numbers_and_unix_times() {
        let i =
            inc(json!({"type": "max_field", "field": "seq", "param": "after", "format": "number"}));
        let mut w = Warnings::default();
        let seen = observe_page(
            &i,
            &json!({}),
            &[rec(json!({"seq": 7})), rec(json!({"seq": "12"}))],
            0,
            &mut w,
        );
        assert_eq!(seen.next_stored(&i, Some("3")).as_deref(), Some("12"));
        let u = inc(
            json!({"type": "max_field", "field": "ts", "param": "since", "format": "unix_ms", "lookback": "1s"}),
        );
        let seen = observe_page(
            &u,
            &json!({}),
            &[rec(json!({"ts": 1_700_000_005_000_i64}))],
            0,
            &mut w,
        );
        let s = seen.next_stored(&u, None).unwrap();
        assert_eq!(resume_value(&u, &s).unwrap(), "1700000004000");
    }

    #[test]
    fn tokens_keep_the_latest_page() {
        let i = inc(json!({"type": "token", "path": "$.sync", "param": "sync"}));
        let mut w = Warnings::default();
        let mut all = observe_page(&i, &json!({"sync": "b"}), &[], 2, &mut w);
        all.merge(observe_page(&i, &json!({"sync": "a"}), &[], 1, &mut w));
        all.merge(observe_page(&i, &json!({}), &[], 3, &mut w));
        assert_eq!(all.next_stored(&i, Some("a")).as_deref(), Some("b"));
        assert_eq!(all.next_stored(&i, Some("b")), None);
    }
}
