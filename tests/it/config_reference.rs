//! docs/configuration.md against the configuration type: every key the type accepts is
//! documented with its default and environment variable, and every documented key exists.
//!
//! The keys are not listed by hand. Every struct of the tree is `deny_unknown_fields`, so
//! serde's "unknown field `…`, expected one of `…`" message for a probe key names all the
//! fields of that struct, including optional ones that `Config::default()` leaves out of its
//! serialized form (secrets, TLS files, `second_url`). A field that accepts a table of its own
//! is a nested struct (`[replicate.s3]`), one that accepts an array of tables a list of
//! structs (`[[auth.oidc]]`, documented as `auth.oidc` and `auth.oidc[].<key>`). Adding a field to any config
//! struct without a row in the reference fails `every_key_is_documented`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gleaner::config::Config;

use crate::support;

const PROBE: &str = "__gleaner_reference_probe__";

/// One documented row: `| `key` | type | default | env var | meaning |`.
#[derive(Debug)]
struct Row {
    ty: String,
    default: String,
    env: String,
    meaning: String,
}

fn reference() -> BTreeMap<String, Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let key = rest.split('`').next().unwrap().to_owned();
        // Only rows of the key tables: a dotted key in the first cell and five cells.
        if !key.contains('.') || cells.len() != 5 {
            continue;
        }
        let unquote = |s: &str| s.trim_matches('`').to_owned();
        let row = Row {
            ty: cells[1].to_owned(),
            default: unquote(cells[2]),
            env: unquote(cells[3]),
            meaning: cells[4].to_owned(),
        };
        assert!(
            rows.insert(key.clone(), row).is_none(),
            "docs/configuration.md documents `{key}` twice"
        );
    }
    rows
}

/// The TOML that puts the probe key inside the table at `path` (`oidc[]` = array of tables).
fn probe_doc(path: &[String], as_array: bool) -> String {
    if path.is_empty() {
        return format!("{PROBE} = 1\n");
    }
    let header = path
        .iter()
        .map(|s| s.trim_end_matches("[]"))
        .collect::<Vec<_>>()
        .join(".");
    // Every array-of-tables segment above the last one needs its own header first.
    let mut doc = String::new();
    for i in 0..path.len() - 1 {
        if path[i].ends_with("[]") {
            let h: Vec<&str> = path[..=i]
                .iter()
                .map(|s| s.trim_end_matches("[]"))
                .collect();
            doc.push_str(&format!("[[{}]]\n", h.join(".")));
        }
    }
    if as_array || path.last().unwrap().ends_with("[]") {
        doc.push_str(&format!("[[{header}]]\n{PROBE} = 1\n"));
    } else {
        doc.push_str(&format!("[{header}]\n{PROBE} = 1\n"));
    }
    doc
}

/// The fields serde names for the struct at `path`, or `None` if it is no struct.
fn struct_fields(path: &[String], as_array: bool) -> Option<Vec<String>> {
    let doc = probe_doc(path, as_array);
    let err = match toml::from_str::<Config>(&doc) {
        Ok(_) => panic!("the probe key was accepted at {path:?}:\n{doc}"),
        Err(e) => e.message().to_owned(),
    };
    let tail = err.strip_prefix(&format!("unknown field `{PROBE}`, "))?;
    if tail.contains("there are no fields") {
        return Some(Vec::new());
    }
    let fields: Vec<String> = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!fields.is_empty(), "cannot read the fields from: {err}");
    Some(fields)
}

/// Every leaf key of the configuration type, dotted (`auth.oidc[].issuer`).
fn type_keys() -> BTreeSet<String> {
    fn walk(path: Vec<String>, out: &mut BTreeSet<String>) {
        let fields = struct_fields(&path, false).expect("the root is a struct");
        for f in fields {
            let mut p = path.clone();
            p.push(f.clone());
            if struct_fields(&p, false).is_some() {
                walk(p, out);
                continue;
            }
            let mut arr = path.clone();
            arr.push(format!("{f}[]"));
            if struct_fields(&arr, true).is_some() {
                // The list itself is a key too (`auth.oidc`, settable as one env variable).
                out.insert(p.join("."));
                walk(arr, out);
                continue;
            }
            out.insert(p.join("."));
        }
    }
    let mut out = BTreeSet::new();
    walk(Vec::new(), &mut out);
    out
}

/// Leaf values of a TOML table, dotted; arrays of tables as `key[].sub`.
fn flatten(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => flatten(&key, sub, out),
            toml::Value::Array(items)
                if !items.is_empty() && items.iter().all(toml::Value::is_table) =>
            {
                for item in items {
                    flatten(&format!("{key}[]"), item.as_table().unwrap(), out);
                }
            }
            _ => {
                out.insert(key, v.clone());
            }
        }
    }
}

/// How the reference spells a default: the TOML value, the version as `<version>`.
fn spelled(v: &toml::Value) -> String {
    v.to_string()
        .replace(env!("CARGO_PKG_VERSION"), "<version>")
}

fn env_var(key: &str) -> String {
    format!("GLEANER_{}", key.replace('.', "__").to_ascii_uppercase())
}

#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let keys = type_keys();
    let doc = reference();
    // The probe itself must have found the well-known corners of the tree.
    for k in [
        "http.admin_token",
        "replicate.second_url",
        "replicate.s3.secret_access_key_file",
        "auth.oidc[].issuer",
    ] {
        assert!(keys.contains(k), "probe missed {k}: {keys:?}");
    }
    let documented: BTreeSet<String> = doc.keys().cloned().collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty(),
        "keys of the config type without a row in docs/configuration.md: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/configuration.md documents keys the config type does not have: {unknown:?}"
    );
    for (key, row) in &doc {
        assert!(!row.ty.is_empty(), "{key}: no type");
        assert!(row.meaning.len() > 10, "{key}: no meaning");
        let want = if key.contains("[]") {
            "-".to_owned()
        } else {
            env_var(key)
        };
        assert_eq!(row.env, want, "{key}: environment variable");
    }
}

#[test]
fn documented_defaults_equal_the_defaults_in_code() {
    let doc = reference();
    let tree: toml::Table = toml::Value::try_from(Config::default())
        .unwrap()
        .try_into()
        .unwrap();
    let mut defaults = BTreeMap::new();
    flatten("", &tree, &mut defaults);
    // Defaults of list entries: an entry with only the keys documented as required.
    let mut required: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, row) in &doc {
        if let Some((list, field)) = key.split_once("[].") {
            if row.default == "required" {
                required
                    .entry(list.to_owned())
                    .or_default()
                    .push(field.to_owned());
            }
        }
    }
    for (list, fields) in &required {
        let mut entry = String::new();
        for f in fields {
            entry.push_str(&format!("{f} = \"https://issuer.example\"\n"));
        }
        let doc_text = format!("[[{list}]]\n{entry}");
        let c: Config = toml::from_str(&doc_text).unwrap_or_else(|e| {
            panic!("an entry of {list} with only the keys documented as required is refused: {e}")
        });
        let t: toml::Table = toml::Value::try_from(c).unwrap().try_into().unwrap();
        let mut all = BTreeMap::new();
        flatten("", &t, &mut all);
        for (k, v) in all {
            if k.starts_with(&format!("{list}[].")) && !fields.iter().any(|f| k.ends_with(f)) {
                defaults.insert(k, v);
            }
        }
    }
    for (key, row) in &doc {
        match defaults.get(key) {
            Some(v) => assert_eq!(
                row.default,
                spelled(v),
                "{key}: documented default differs from the default in code"
            ),
            None => assert!(
                row.default == "unset" || row.default == "required",
                "{key}: has no default in code, so the reference must say `unset` or `required`, not {:?}",
                row.default
            ),
        }
    }
}

#[test]
fn the_binary_prints_only_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = support::command()
        .arg("--config")
        .arg(&empty)
        .args(["config", "check", "--print"])
        .env("GLEANER_REPLICATE__SECOND_URL", "file:///tmp/second")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mut keys = BTreeMap::new();
    flatten("", &printed, &mut keys);
    assert!(keys.contains_key("replicate.second_url"));
    let doc = reference();
    let missing: Vec<_> = keys.keys().filter(|k| !doc.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "`gleaner config check --print` shows keys docs/configuration.md lacks: {missing:?}"
    );
}
