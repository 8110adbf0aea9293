//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written by hand next to the routes it describes; a test checks that every route of the
//! router is in the document with its method and vice versa, and that each operation's
//! `x-permission` is the permission the route declares. Schemathesis checks the responses
//! of a running server against it (tests/it/api_schemathesis.rs).

mod components;
mod parts;
mod paths;

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::routes::route_table;

/// The whole document: its header, paths and components.
fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gleaner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant records API of Gleaner. Errors are {\"error\":{\"code\",\"message\"}}. Authenticate with `Authorization: Bearer <API key | OIDC JWT | admin token>`. `x-permission` names what each operation needs: admin for tenants:*, admin-keys:*, global-audit:*; tenant-admin for keys:manage, audit:read, usage:read, secrets:manage, connections:manage; editor for records:write, sources:write; reader for records:read, sources:read, changes:read, connections:read (within the credential's tenant)."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths::paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API key (glk_…), OIDC JWT, or the admin token"}},
            "parameters": components::parameters(),
            "responses": components::responses(),
            "schemas": components::schemas(),
        }
    })
}

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn serve() -> Response {
    axum::Json(document().clone()).into_response()
}

/// Differences between the router and the document: (method, path, problem).
pub fn mismatches() -> Vec<String> {
    let doc = document();
    let mut out = Vec::new();
    let mut documented = std::collections::BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for (method, o) in item.as_object().into_iter().flatten() {
                documented.insert((
                    method.to_uppercase(),
                    path.clone(),
                    o["x-permission"].as_str().map(str::to_owned),
                ));
            }
        }
    }
    let served: std::collections::BTreeSet<_> = route_table()
        .into_iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_owned(),
                r.permission.map(|p| p.as_str().to_owned()),
            )
        })
        .collect();
    for s in served.difference(&documented) {
        out.push(format!(
            "served but not documented (or permission differs): {s:?}"
        ));
    }
    for d in documented.difference(&served) {
        out.push(format!(
            "documented but not served (or permission differs): {d:?}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let m = mismatches();
        assert!(m.is_empty(), "{m:#?}");
        assert_eq!(document()["openapi"], "3.1.0");
    }

    /// The description's prose list of who holds what is written by hand too.
    #[test]
    fn the_description_names_each_permission_under_its_least_role() {
        use crate::auth::Permission;
        let d = document()["info"]["description"].as_str().unwrap();
        let (_, list) = d.split_once("needs: ").unwrap();
        let by_role: Vec<(&str, Vec<&str>)> = list
            .split("; ")
            .map(|seg| {
                let (role, perms) = seg.split_once(" for ").unwrap();
                let names = perms.split(", ").map(|p| p.split(' ').next().unwrap());
                (role, names.collect())
            })
            .collect();
        let covers = |listed: &str, p: Permission| {
            let (resource, _) = p.as_str().split_once(':').unwrap();
            listed == p.as_str() || listed == format!("{resource}:*")
        };
        for p in Permission::ALL {
            let roles: Vec<&str> = by_role
                .iter()
                .filter(|(_, listed)| listed.iter().any(|l| covers(l, *p)))
                .map(|(role, _)| *role)
                .collect();
            assert_eq!(roles, [p.min_role().as_str()], "{}", p.as_str());
        }
        for (role, listed) in &by_role {
            for l in listed {
                assert!(
                    Permission::ALL.iter().any(|p| covers(l, *p)),
                    "{role}: {l} is no permission"
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let ptr = r.trim_start_matches('#');
                        if doc.pointer(ptr).is_none() {
                            bad.push(r.clone());
                        }
                    }
                    o.values().for_each(|x| walk(x, doc, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
                _ => {}
            }
        }
        let mut bad = Vec::new();
        walk(document(), document(), &mut bad);
        assert!(bad.is_empty(), "{bad:?}");
    }
}
