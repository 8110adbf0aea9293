//! Shorthands the path and component builders share: typed fragments (strings without
//! control characters, `$ref`s, nullable types), parameters, and operations with the error
//! responses every authenticated endpoint can give.

use serde_json::{json, Map, Value};

use crate::auth::Permission;

/// Text without control characters (which the API refuses).
pub(super) const NO_CONTROL: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// A dotted field path: 1 to 8 names of 1 to 64 characters.
pub(super) const PATH: &str = "^[^.]{1,64}(\\.[^.]{1,64}){0,7}$";
/// Comma-separated field paths (at most 32).
pub(super) const PATHS: &str =
    "^[^.,]{1,64}(\\.[^.,]{1,64}){0,7}(,[^.,]{1,64}(\\.[^.,]{1,64}){0,7}){0,31}$";

pub(super) fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": NO_CONTROL})
}

pub(super) fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(super) fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

pub(super) fn int() -> Value {
    json!({"type": "integer"})
}

pub(super) fn opt_int() -> Value {
    nullable("integer")
}

pub(super) fn str_() -> Value {
    json!({"type": "string"})
}

pub(super) fn ok_json(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

pub(super) fn err(desc: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{desc}")})
}

pub(super) fn q(name: &str, schema: Value, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": desc})
}

pub(super) fn tenant_param() -> Value {
    json!({"$ref": "#/components/parameters/tenant"})
}

pub(super) fn source_param() -> Value {
    json!({"$ref": "#/components/parameters/source"})
}

pub(super) fn key_param() -> Value {
    json!({"$ref": "#/components/parameters/key_id"})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// An operation with the error responses every authenticated endpoint can give.
pub(super) fn op(
    summary: &str,
    perm: Permission,
    params: Vec<Value>,
    ok: (&str, Value),
    extra: &[&str],
) -> Value {
    let mut responses = Map::new();
    responses.insert(ok.0.to_owned(), ok.1);
    for code in ["400", "401", "403", "404", "405", "429", "503"]
        .iter()
        .chain(extra)
    {
        responses.insert((*code).to_owned(), err(code));
    }
    json!({
        "summary": summary,
        "x-permission": perm.as_str(),
        "parameters": params,
        "responses": responses,
    })
}

pub(super) fn with_body(mut o: Value, schema: Value) -> Value {
    o["requestBody"] = body(schema);
    if let Some(resp) = o["responses"].as_object_mut() {
        resp.insert("413".into(), err("413"));
        resp.insert("415".into(), err("415"));
    }
    o
}

/// A public operation (no credential): its 200 answer and any other responses.
pub(super) fn public(summary: &str, ok: Value, extra: Value) -> Value {
    let mut responses = json!({"200": ok});
    if let (Some(m), Some(x)) = (responses.as_object_mut(), extra.as_object()) {
        for (k, v) in x {
            m.insert(k.clone(), v.clone());
        }
    }
    json!({"summary": summary, "security": [], "responses": responses})
}

/// The keyset page parameters of the simple lists: `after` (of the given schema), `limit`.
pub(super) fn page_params(after: Value) -> Vec<Value> {
    vec![
        q("after", after, "Keyset: return items after this one."),
        q(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            "Page size (default 100).",
        ),
    ]
}

/// One JSON object of the members of every group, which must not share a key (a path or a
/// schema name written in two groups would silently keep only the last).
pub(super) fn merge(groups: impl IntoIterator<Item = Value>) -> Value {
    let mut all = Map::new();
    for group in groups {
        if let Value::Object(members) = group {
            for (name, v) in members {
                let earlier = all.insert(name.clone(), v);
                debug_assert!(earlier.is_none(), "{name} is in two groups");
            }
        }
    }
    Value::Object(all)
}
