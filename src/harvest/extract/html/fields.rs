//! One field's value from one element: select, take text / attribute / HTML, regex,
//! whitespace, convert.

use scraper::ElementRef;
use serde_json::Value;
use url::Url;

use crate::harvest::convert::convert;
use crate::harvest::limits::MAX_FIELD_BYTES;
use crate::harvest::source::{FieldSpec, Whitespace};

/// Most values collected by a `many` field.
const MAX_MANY: usize = 1000;

/// The outcome for one field.
pub(crate) enum FieldValue {
    /// Nothing matched, or the match was empty.
    Missing,
    Value(Value),
    /// Text was found but could not be converted; the message says why.
    Bad(String),
}

pub(crate) fn field_value(root: ElementRef<'_>, spec: &FieldSpec, base: &Url) -> FieldValue {
    let mut raws = Vec::new();
    match &spec.selector {
        Some(sel) => {
            for el in root.select(sel.get()) {
                if let Some(raw) = raw_value(el, spec) {
                    raws.push(raw);
                    if !spec.many || raws.len() >= MAX_MANY {
                        break;
                    }
                }
            }
        }
        None => raws.extend(raw_value(root, spec)),
    }
    if spec.many {
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            match convert(&raw, spec.opts(), base) {
                Ok(v) => out.push(v),
                Err(e) => return FieldValue::Bad(e),
            }
        }
        if out.is_empty() {
            return FieldValue::Missing;
        }
        return FieldValue::Value(Value::Array(out));
    }
    match raws.into_iter().next() {
        None => FieldValue::Missing,
        Some(raw) => match convert(&raw, spec.opts(), base) {
            Ok(v) => FieldValue::Value(v),
            Err(e) => FieldValue::Bad(e),
        },
    }
}

/// The text an element yields for `spec`, after regex and whitespace; `None` when absent or
/// empty (an empty cell is a missing value, not an empty string to store).
fn raw_value(el: ElementRef<'_>, spec: &FieldSpec) -> Option<String> {
    let mut s = match (&spec.attr, spec.html) {
        (Some(a), _) => el.value().attr(a)?.to_owned(),
        (None, true) => el.inner_html(),
        (None, false) => text_of(el),
    };
    if let Some(re) = &spec.regex {
        s = re.capture(&s)?.to_owned();
    }
    let s = match spec.whitespace {
        Whitespace::Collapse => collapse(&s),
        Whitespace::Trim => s.trim().to_owned(),
        Whitespace::Keep => s,
    };
    if s.is_empty() {
        return None;
    }
    Some(cap(s))
}

/// The element's text with `<br>` and block boundaries as spaces, so `a<br>b` is not `ab`.
fn text_of(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    for node in el.descendants() {
        match node.value() {
            scraper::Node::Text(t) => {
                out.push_str(t);
                if out.len() > MAX_FIELD_BYTES {
                    break;
                }
            }
            scraper::Node::Element(e)
                if matches!(e.name(), "br" | "p" | "div" | "li" | "td" | "th" | "tr") =>
            {
                out.push(' ')
            }
            _ => {}
        }
    }
    out
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Cuts a value to [`MAX_FIELD_BYTES`] at a character boundary.
fn cap(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
