//! docs/sources.md against the source definition types: every key each kind accepts has a
//! row, every row names a key that exists, and every example parses and validates.
//!
//! The keys are not listed by hand. Every part of a definition is `deny_unknown_fields`, so
//! the parser's "unknown field `…`, expected one of `…`" error for a probe key names every
//! key of that table, optional ones included. A probe answered with "missing field `type`"
//! is a table tagged by `type` (`auth`, `pagination`): a probe variant then lists the
//! variants, and each variant is probed like a table. A probe answered with "invalid type:
//! integer" was taken as an entry of a table of the user's choosing (`extract.fields`),
//! whose entries are probed under `<name>`; one answered with "expected a sequence" is an
//! array, whose element is probed under `[]` (`events[].type`). Anything else is a value. The format of the page
//! is documented at its top; `problems` is the comparison, and the second test checks that
//! it does report an undocumented key and a key that does not exist. Defaults are checked
//! against the serialized form of small definitions (`MINIMAL`) that leave them out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gleaner::harvest::source::{Common, DefinitionError, SourceDef, KINDS};
use serde_json::{json, Map, Value};

const PROBE: &str = "__gleaner_reference_probe__";

#[derive(Debug, Clone)]
enum Seg {
    Field(String),
    /// An entry of a table with user-chosen names.
    Entry,
    /// The variant of a `type`-tagged table.
    Variant(String),
    /// An element of an array of tables (`events[]`).
    Item,
}

fn spelled(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Field(f) if out.is_empty() => out.push_str(f),
            Seg::Field(f) => out.push_str(&format!(".{f}")),
            Seg::Entry => out.push_str(".<name>"),
            Seg::Variant(v) => out.push_str(&format!("[type={v}]")),
            Seg::Item => out.push_str("[]"),
        }
    }
    out
}

/// The value with `leaf` at `path` (a variant adds its `type` to the table it is in).
fn nest(path: &[Seg], leaf: Value) -> Value {
    match path.split_first() {
        None => leaf,
        Some((Seg::Field(f), rest)) => json!({ f.as_str(): nest(rest, leaf) }),
        Some((Seg::Entry, rest)) => json!({ "entry": nest(rest, leaf) }),
        Some((Seg::Item, rest)) => json!([nest(rest, leaf)]),
        Some((Seg::Variant(v), rest)) => {
            let mut inner = match nest(rest, leaf) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            inner.insert("type".into(), Value::String(v.clone()));
            Value::Object(inner)
        }
    }
}

/// The parser's first complaint about `leaf` at `path` in a definition of `kind`.
fn complaint(kind: &str, path: &[Seg], leaf: Value) -> Option<String> {
    if path.is_empty() && kind == "common" {
        return serde_json::from_value::<Common>(leaf)
            .err()
            .map(|e| e.to_string());
    }
    let Value::Object(mut def) = nest(path, leaf) else {
        unreachable!()
    };
    def.insert(
        "kind".into(),
        json!(if kind == "common" { "push" } else { kind }),
    );
    def.insert("id".into(), json!("probe"));
    let errors = match SourceDef::from_value(Value::Object(def)) {
        Ok(_) => return None,
        Err(DefinitionError::Invalid(errors)) => errors,
        Err(e) => panic!("probe of {kind} {}: {e}", spelled(path)),
    };
    // The error about the probed part: at its first key (common parts, and kind parts whose
    // required keys are missing, complain at the top), or naming the probe.
    let top = match path.first() {
        Some(Seg::Field(f)) => f.clone(),
        _ => String::new(),
    };
    errors
        .into_iter()
        .find(|e| {
            if top.is_empty() {
                e.message.contains(PROBE)
            } else {
                e.field == top
                    || e.field.starts_with(&format!("{top}."))
                    || e.field.starts_with(&format!("{top}["))
            }
        })
        .map(|e| e.message)
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

enum Shape {
    Table(Vec<String>),
    Tagged(Vec<String>),
    Entries,
    /// An array whose elements are tables.
    Items(Vec<String>),
    Value,
}

fn shape(kind: &str, path: &[Seg]) -> Shape {
    let Some(msg) = complaint(kind, path, json!({ PROBE: 1 })) else {
        return Shape::Value;
    };
    if let Some(tail) = msg.strip_prefix(&format!("unknown field `{PROBE}`, ")) {
        if tail.contains("there are no fields") {
            return Shape::Table(Vec::new());
        }
        return Shape::Table(backticked(tail));
    }
    if msg.contains("missing field `type`") {
        let msg = complaint(kind, path, json!({"type": PROBE})).unwrap_or_default();
        let tail = msg
            .split_once(&format!("unknown variant `{PROBE}`, "))
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{kind} {}: cannot read the variants: {msg}", spelled(path)));
        return Shape::Tagged(backticked(tail));
    }
    if msg.contains("invalid type: integer `1`") {
        return Shape::Entries;
    }
    if msg.contains("expected a sequence") {
        let mut item = path.to_vec();
        item.push(Seg::Item);
        if let Shape::Table(sub) = shape(kind, &item) {
            return Shape::Items(sub);
        }
    }
    Shape::Value
}

/// Every key of `kind` (or of the common part), spelled as the reference spells them.
fn kind_keys(kind: &str) -> BTreeSet<String> {
    fn walk(kind: &str, path: Vec<Seg>, fields: Vec<String>, out: &mut BTreeSet<String>) {
        // A variant's table may list its tag among its fields; the tag has its own row.
        let in_variant = matches!(path.last(), Some(Seg::Variant(_)));
        for f in fields.into_iter().filter(|f| !(in_variant && f == "type")) {
            let mut p = path.clone();
            p.push(Seg::Field(f));
            visit(kind, p, out);
        }
    }
    fn visit(kind: &str, p: Vec<Seg>, out: &mut BTreeSet<String>) {
        match shape(kind, &p) {
            Shape::Table(sub) => walk(kind, p, sub, out),
            Shape::Tagged(variants) => {
                out.insert(format!("{}.type", spelled(&p)));
                for v in variants {
                    let mut pv = p.clone();
                    pv.push(Seg::Variant(v));
                    if let Shape::Table(sub) = shape(kind, &pv) {
                        walk(kind, pv, sub, out);
                    }
                }
            }
            Shape::Entries => {
                out.insert(spelled(&p));
                let mut pe = p.clone();
                pe.push(Seg::Entry);
                if let Shape::Table(sub) = shape(kind, &pe) {
                    walk(kind, pe, sub, out);
                }
            }
            Shape::Items(sub) => {
                out.insert(spelled(&p));
                let mut pi = p.clone();
                pi.push(Seg::Item);
                walk(kind, pi, sub, out);
            }
            Shape::Value => {
                out.insert(spelled(&p));
            }
        }
    }
    let mut out = BTreeSet::new();
    let Shape::Table(top) = shape(kind, &[]) else {
        panic!("{kind}: the top of a definition is no table")
    };
    walk(kind, Vec::new(), top, &mut out);
    out
}

/// Each kind's keys, the common ones (and `kind`) included.
fn type_keys() -> BTreeMap<String, BTreeSet<String>> {
    let mut common = kind_keys("common");
    common.insert("kind".into());
    KINDS
        .iter()
        .map(|k| {
            let mut keys = kind_keys(k);
            keys.extend(common.iter().cloned());
            (k.to_string(), keys)
        })
        .collect()
}

/// One documented row and the kind its section is about (`None`: any kind).
#[derive(Debug)]
struct Row {
    scope: Option<String>,
    key: String,
    cells: Vec<String>,
}

const HEADER: &str = "| key | type | default | meaning |";

fn rows(text: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let mut scope: Option<String> = None;
    let mut in_table = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            scope = h.strip_prefix("Kind: ").map(|k| k.trim().to_owned());
            in_table = false;
            continue;
        }
        if line.trim() == HEADER {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect();
        let key = backticked(&cells[0]).into_iter().next().unwrap_or_default();
        out.push(Row {
            scope: scope.clone(),
            key,
            cells,
        });
    }
    out
}

/// What is wrong with `text` as the reference of `keys`.
fn problems(text: &str, keys: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    let rows = rows(text);
    let any: BTreeSet<&String> = keys.values().flatten().collect();
    let mut seen = BTreeSet::new();
    for r in &rows {
        let scope = r.scope.as_deref().unwrap_or("any kind");
        if !seen.insert((r.scope.clone(), r.key.clone())) {
            out.push(format!("`{}` is documented twice for {scope}", r.key));
        }
        if r.cells.len() != 4 {
            out.push(format!("`{}`: {} cells, not 4", r.key, r.cells.len()));
            continue;
        }
        let exists = match &r.scope {
            Some(k) => match keys.get(k) {
                Some(set) => set.contains(&r.key),
                None => {
                    out.push(format!("section `## Kind: {k}` names no kind"));
                    true
                }
            },
            None => any.contains(&r.key),
        };
        if !exists {
            out.push(format!(
                "`{}` is documented for {scope} but no such key exists",
                r.key
            ));
        }
        if r.cells[1].is_empty() || r.cells[2].is_empty() || r.cells[3].len() < 10 {
            out.push(format!(
                "`{}`: a type, a default and a meaning are needed",
                r.key
            ));
        }
    }
    for (kind, set) in keys {
        for key in set {
            let documented = rows
                .iter()
                .any(|r| &r.key == key && r.scope.as_deref().is_none_or(|s| s == kind));
            if !documented {
                out.push(format!("{kind} key `{key}` has no row in docs/sources.md"));
            }
        }
    }
    out
}

fn reference_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sources.md")).unwrap()
}

#[test]
fn every_key_of_every_kind_is_documented_and_every_documented_key_exists() {
    let keys = type_keys();
    // The probe must have found the corners of every shape.
    for (kind, key) in [
        ("html", "extract.fields.<name>.required"),
        ("html", "extract.detail.fields.<name>.selector"),
        ("html", "scope.max_depth"),
        ("sitemap", "session.retries"),
        ("json", "pagination.type"),
        ("json", "pagination[type=cursor].param"),
        ("json", "window.initial_lookback"),
        ("json", "params"),
        ("csv", "types.<name>.decimal"),
        ("push", "signature.secret"),
        ("feed", "auth[type=oauth2_refresh_token].refresh_token"),
        ("feed", "auth[type=headers].secret_headers"),
        ("feed", "politeness.min_delay"),
        ("feed", "kind"),
    ] {
        assert!(
            keys[kind].contains(key),
            "probe missed {kind} {key}: {:?}",
            keys[kind]
        );
    }
    let p = problems(&reference_text(), &keys);
    assert!(p.is_empty(), "docs/sources.md:\n{}", p.join("\n"));
}

#[test]
fn the_comparison_reports_a_missing_row_and_a_key_that_does_not_exist() {
    let keys = type_keys();
    let text = reference_text();
    let row = text
        .lines()
        .find(|l| l.starts_with("| `scope.max_depth` |"))
        .unwrap();
    let without = text.replace(&format!("{row}\n"), "");
    assert_eq!(
        problems(&without, &keys),
        ["html key `scope.max_depth` has no row in docs/sources.md"]
    );
    let bogus = row.replace("scope.max_depth", "scope.max_dept");
    let misspelt = text.replace(row, &bogus);
    assert_eq!(
        problems(&misspelt, &keys),
        [
            "`scope.max_dept` is documented for html but no such key exists",
            "html key `scope.max_depth` has no row in docs/sources.md"
        ]
    );
    // A kind's key documented only under another kind is missing for its own.
    let moved = text.replace("| `feeds` |", "| `sitemaps_x` |");
    assert!(problems(&moved, &keys)
        .iter()
        .any(|p| p.contains("feed key `feeds`")));
}

#[test]
fn every_example_parses_and_validates_and_every_kind_has_one() {
    let text = reference_text();
    let mut kinds = BTreeSet::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```toml") => block = Some(String::new()),
            (Some(b), "```") => {
                let def = SourceDef::parse_toml(b)
                    .unwrap_or_else(|e| panic!("example does not validate: {e}\n{b}"));
                // What the API stores reads back the same.
                let back = SourceDef::from_value(def.to_value()).unwrap();
                assert_eq!(back, def);
                kinds.insert(def.kind().to_owned());
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    let want: BTreeSet<String> = KINDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(kinds, want, "kinds with an example");
}

/// Definitions with only the keys they need (and a variant of each tagged table), whose
/// serialized form shows the defaults the code fills in.
const MINIMAL: &[&str] = &[
    r#"id = "m"
kind = "html"
start_urls = ["https://site.example/"]
next = { rel_next = true }
session = { retries = 3 }
[auth]
type = "bearer"
token = "secret:t"
[extract]
record = "tr"
key = "url"
fields.code = {}
detail = { link = "a", fields.more = {} }"#,
    r#"id = "m"
kind = "json"
url = "https://api.example/"
records = "$.data[*]"
key = { field = "id" }
params = { since = "{start}" }
window = {}
pagination = { type = "page", param = "p" }
[auth]
type = "oauth2_client_credentials"
token_url = "https://auth.example/token"
client_id = "c"
client_secret = "secret:s""#,
    r#"id = "m"
kind = "json"
url = "https://api.example/"
records = "$.data[*]"
key = { field = "id" }
pagination = { type = "offset", param = "o", limit = 10 }"#,
    r#"id = "m"
kind = "sitemap"
sitemaps = ["https://site.example/sitemap.xml"]
[extract]
record = "main"
key = "url"
fields.title = {}"#,
    r#"id = "m"
kind = "feed"
feeds = ["https://site.example/feed.xml"]
[auth]
type = "oauth2_refresh_token"
token_url = "https://auth.example/token"
client_id = "c"
refresh_token = "secret:r""#,
    r#"id = "m"
kind = "csv"
url = "https://site.example/data.csv"
key = { field = "id" }
types.n = { decimal = "," , type = "number" }
[auth]
type = "headers"
headers = { Accept = "text/csv" }"#,
    r#"id = "m"
kind = "push"
key = { field = "id" }
signature = { secret = "secret:s" }"#,
];

/// The documented leaves of a serialized definition, by reference path.
fn documented_leaves(
    v: &Value,
    prefix: &str,
    rows: &BTreeSet<String>,
    out: &mut BTreeMap<String, Value>,
) {
    let Value::Object(m) = v else { return };
    let entries = rows
        .iter()
        .any(|r| r.starts_with(&format!("{prefix}.<name>.")) || r == &format!("{prefix}.<name>"));
    let variant = match m.get("type") {
        Some(Value::String(t)) if rows.contains(&format!("{prefix}.type")) => {
            out.insert(format!("{prefix}.type"), json!(t));
            Some(t.clone())
        }
        _ => None,
    };
    for (k, sub) in m {
        if variant.is_some() && k == "type" {
            continue;
        }
        let key = match (&variant, entries) {
            (_, true) => "<name>".to_owned(),
            (Some(t), _) => format!("[type={t}].{k}"),
            _ => k.clone(),
        };
        let path = if prefix.is_empty() {
            key.clone()
        } else if key.starts_with('[') {
            format!("{prefix}{key}")
        } else {
            format!("{prefix}.{key}")
        };
        if rows.contains(&path) {
            out.insert(path.clone(), sub.clone());
        }
        documented_leaves(sub, &path, rows, out);
    }
}

/// A default as the reference writes it (a TOML value).
fn spelled_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

#[test]
fn documented_defaults_equal_the_defaults_in_code() {
    let text = reference_text();
    let rows = rows(&text);
    let names: BTreeSet<String> = rows.iter().map(|r| r.key.clone()).collect();
    let in_scope = |r: &Row, kind: &str| r.scope.as_deref().is_none_or(|s| s == kind);
    let default_of = |key: &str, kind: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.key == key && in_scope(r, kind))
            .map(|r| r.cells[2].clone())
            .collect()
    };
    let mut checked = BTreeSet::new();
    for m in MINIMAL {
        let def = SourceDef::parse_toml(m).unwrap_or_else(|e| panic!("{e}\n{m}"));
        let given: Value = toml::from_str(m).unwrap();
        let mut set = BTreeMap::new();
        documented_leaves(&given, "", &names, &mut set);
        let mut code = BTreeMap::new();
        documented_leaves(&def.to_value(), "", &names, &mut code);
        for (key, v) in &code {
            if set.contains_key(key) {
                continue;
            }
            for doc in default_of(key, def.kind()) {
                let want = spelled_value(v);
                let literal = backticked(&doc).into_iter().next();
                // A string default may be written without its quotes (`1d`).
                let same = literal
                    .as_deref()
                    .is_some_and(|l| l == want || format!("\"{l}\"") == want);
                assert!(
                    doc.starts_with('`') && same,
                    "{} {key}: the code's default is {want}, docs/sources.md says {doc:?}",
                    def.kind()
                );
            }
            checked.insert(key.clone());
        }
        // Keys left unset by the code are documented as unset (or required).
        for r in rows
            .iter()
            .filter(|r| r.cells.len() == 4 && in_scope(r, def.kind()))
        {
            let d = &r.cells[2];
            if (d.starts_with("unset") || d.starts_with("required"))
                && code.contains_key(&r.key)
                && !set.contains_key(&r.key)
            {
                panic!(
                    "{}: documented as {d:?}, but the code sets {}",
                    r.key, code[&r.key]
                );
            }
        }
    }
    assert!(checked.len() >= 30, "too few defaults checked: {checked:?}");
}
