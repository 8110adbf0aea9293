//! The OpenAPI 3.1 document served at `/openapi.json`.
//!
//! Written by hand next to the routes it describes; a test checks that every route of the
//! router is in the document with its method and vice versa, and that each operation's
//! `x-permission` is the permission the route declares. Schemathesis checks the responses
//! of a running server against it (tests/api_schemathesis.rs).

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::routes::route_table;
use crate::auth::Permission;

/// Text without control characters (which the API refuses).
const NO_CONTROL: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// A dotted field path: 1 to 8 names of 1 to 64 characters.
const PATH: &str = "^[^.]{1,64}(\\.[^.]{1,64}){0,7}$";
/// Comma-separated field paths (at most 32).
const PATHS: &str = "^[^.,]{1,64}(\\.[^.,]{1,64}){0,7}(,[^.,]{1,64}(\\.[^.,]{1,64}){0,7}){0,31}$";

fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": NO_CONTROL})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

fn ok_json(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn err(desc: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{desc}")})
}

fn q(name: &str, schema: Value, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": desc})
}

fn tenant_param() -> Value {
    json!({"$ref": "#/components/parameters/tenant"})
}

fn source_param() -> Value {
    json!({"$ref": "#/components/parameters/source"})
}

fn key_param() -> Value {
    json!({"$ref": "#/components/parameters/key_id"})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// An operation with the error responses every authenticated endpoint can give.
fn op(
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

fn with_body(mut o: Value, schema: Value) -> Value {
    o["requestBody"] = body(schema);
    if let Some(resp) = o["responses"].as_object_mut() {
        resp.insert("413".into(), err("413"));
        resp.insert("415".into(), err("415"));
    }
    o
}

fn filter_params() -> Vec<Value> {
    vec![
        q("source", text(0, 256), "Only records of this source."),
        q(
            "key_prefix",
            text(0, 1024),
            "Only keys starting with this text.",
        ),
        q(
            "changed_since",
            json!({"type": "integer", "minimum": 0}),
            "Only records whose current version started at or after this time (ms since 1970).",
        ),
        q(
            "removed",
            json!({"type": "boolean"}),
            "true: only removed records; false: only present ones.",
        ),
        q(
            "field",
            json!({"type": "string", "pattern": PATH}),
            "Dotted path of a field; with `equals`.",
        ),
        q(
            "equals",
            text(0, 1024),
            "Value the `field` must equal (strings as is, other values as JSON text).",
        ),
        q(
            "q",
            json!({"type": "string", "maxLength": 256, "pattern": "[^\\s*\\x00-\\x1f\\x7f-\\x9f]"}),
            "Full-text query: words (all must occur), `word*` for a prefix.",
        ),
        q(
            "fields",
            json!({"type": "string", "pattern": PATHS}),
            "Comma-separated dotted field paths to return instead of the whole record.",
        ),
    ]
}

fn build() -> Value {
    use Permission as P;
    let mut list_params = vec![tenant_param()];
    list_params.extend(filter_params());
    list_params.push(q(
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        "Page size (default limits.default_page_size, at most limits.max_page_size).",
    ));
    list_params.push(q(
        "cursor",
        json!({"type": "string", "maxLength": 64}),
        "The `next` of the previous page, unchanged; refused with other filters.",
    ));
    let mut export_params = vec![tenant_param()];
    export_params.extend(filter_params());
    export_params.push(q(
        "format",
        json!({"type": "string", "enum": ["ndjson", "csv"]}),
        "Output format (default ndjson).",
    ));
    export_params.push(q(
        "neutralize_formulas",
        json!({"type": "boolean"}),
        "CSV only: prefix text cells starting with =, +, -, @, tab or CR with ' so spreadsheets do not run them (default http.csv_neutralize_formulas, true).",
    ));
    let page_params = |after: Value| {
        vec![
            q("after", after, "Keyset: return items after this one."),
            q(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                "Page size (default 100).",
            ),
        ]
    };
    let key_list_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(
            json!({"type": "string", "pattern": "^[0-9a-f]{16}$"}),
        ));
        v
    };
    let audit_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(json!({"type": "integer", "minimum": 0})));
        v
    };
    let grace = q("grace_secs", json!({"type": "integer", "minimum": 0, "maximum": 31536000}), "How long the old secret stays valid (default auth.key_rotation_grace_secs, at most auth.max_key_rotation_grace_secs).");
    let public = |summary: &str, ok: Value, extra: Value| {
        let mut responses = json!({"200": ok});
        if let (Some(m), Some(x)) = (responses.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                m.insert(k.clone(), v.clone());
            }
        }
        json!({"summary": summary, "security": [], "responses": responses})
    };
    let source_list_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(json!({"type": "string", "maxLength": 64})));
        v
    };
    let put_source = {
        let mut o = with_body(
            op(
                "Create or replace a source definition (validated; errors name each field)",
                P::WriteSources,
                vec![tenant_param(), source_param()],
                ("200", ok_json("Replaced", r("Source"))),
                &["409"],
            ),
            r("SourceDefinition"),
        );
        o["responses"]["201"] = ok_json("Created", r("Source"));
        o
    };
    let push = {
        let mut o = op(
            "Push records to a push source (JSON array or NDJSON), or with action=fetch-now ask a json source to fetch one resource now. Needs records:write, or no credential and a valid signature header when the source requires one.",
            P::WriteRecords,
            vec![
                tenant_param(),
                source_param(),
                q(
                    "action",
                    json!({"type": "string", "enum": ["fetch-now"]}),
                    "fetch-now: the body is {\"source\", \"resource\"}.",
                ),
            ],
            ("200", ok_json("What was stored", r("PushOutcome"))),
            &["409", "413", "415"],
        );
        o["requestBody"] = json!({"required": true, "content": {
            "application/json": {"schema": {}},
            "application/x-ndjson": {"schema": {"type": "string"}}
        }});
        o
    };
    let paths = json!({
        "/healthz": {"get": public("The process is alive", ok_json("Alive", r("Status")), json!({}))},
        "/readyz": {"get": public("The node can serve: store writable, not shutting down", ok_json("Ready", r("Ready")), json!({"503": err("503")}))},
        "/metrics": {"get": public("Prometheus metrics", json!({"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}), json!({}))},
        "/openapi.json": {"get": public("This document", ok_json("OpenAPI 3.1 document", json!({"type": "object"})), json!({}))},
        "/v1/tenants": {
            "post": with_body(op("Create a tenant", P::ManageTenants, vec![], ("201", ok_json("Created", r("Tenant"))), &["409"]), r("CreateTenant")),
            "get": op("List tenants (keyset pages)", P::ManageTenants, page_params(json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"})), ("200", ok_json("A page", r("TenantPage"))), &[]),
        },
        "/v1/tenants/{tenant}": {
            "get": op("Get a tenant", P::ManageTenants, vec![tenant_param()], ("200", ok_json("The tenant", r("Tenant"))), &[]),
            "patch": with_body(op("Update display name, quotas (replaced whole) or settings", P::ManageTenants, vec![tenant_param()], ("200", ok_json("Updated", r("Tenant"))), &[]), r("UpdateTenant")),
            "delete": op("Delete a tenant and its database; erase=true also requests erasure of its replica objects", P::ManageTenants, vec![tenant_param(), q("erase", json!({"type": "boolean"}), "Also erase its replica objects at every destination (status done or failed; pending when replication is off on this node).")], ("200", ok_json("Deleted", r("Deleted"))), &[]),
        },
        "/v1/tenants/{tenant}/records": {
            "get": op("List records (filters, projection, keyset cursor). A page may be short or empty with a `next` when filters are selective: follow `next` until it is null.", P::ReadRecords, list_params, ("200", ok_json("A page", r("RecordPage"))), &[]),
            "post": with_body(op("Push records (upsert-if-changed), all or none, within the tenant's quotas", P::WriteRecords, vec![tenant_param()], ("200", ok_json("Outcome per record", r("PushResult"))), &["409"]), r("PushBody")),
        },
        "/v1/tenants/{tenant}/records/{id}": {
            "get": op("One record with its newest superseded versions", P::ReadRecords, vec![tenant_param(), json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}), q("versions", json!({"type": "integer", "minimum": 0, "maximum": 100}), "Most versions to return (default 20).")], ("200", ok_json("The record", r("RecordDetail"))), &[]),
        },
        "/v1/tenants/{tenant}/export": {
            "get": op("Export every matching record as NDJSON or CSV, streamed", P::ReadRecords, export_params, ("200", json!({"description": "The records, one per line", "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}})), &[]),
        },
        "/v1/tenants/{tenant}/keys": {
            "get": op("List the tenant's API keys (never secrets)", P::ManageKeys, key_list_params.clone(), ("200", ok_json("A page", r("KeyPage"))), &[]),
            "post": with_body(op("Create an API key; the token is shown only in this answer", P::ManageKeys, vec![tenant_param()], ("201", ok_json("Created", r("KeyWithToken"))), &[]), r("CreateKey")),
        },
        "/v1/tenants/{tenant}/keys/{key_id}": {
            "get": op("Get an API key", P::ManageKeys, vec![tenant_param(), key_param()], ("200", ok_json("The key", r("ApiKey"))), &[]),
            "delete": op("Revoke an API key (refused from the next request on)", P::ManageKeys, vec![tenant_param(), key_param()], ("200", ok_json("Revoked", r("ApiKey"))), &[]),
        },
        "/v1/tenants/{tenant}/keys/{key_id}/rotate": {
            "post": op("Give the key a new secret; the old one stays valid for the grace period", P::ManageKeys, vec![tenant_param(), key_param(), grace.clone()], ("200", ok_json("Rotated", r("KeyWithToken"))), &["409"]),
        },
        "/v1/tenants/{tenant}/audit": {
            "get": op("The tenant's audit log, oldest first", P::ReadAudit, audit_params.clone(), ("200", ok_json("A page", r("AuditPage"))), &[]),
        },
        "/v1/tenants/{tenant}/audit/verify": {
            "get": op("Verify the tenant's audit hash chain", P::ReadAudit, vec![tenant_param()], ("200", ok_json("Report", r("VerifyReport"))), &[]),
        },
        "/v1/tenants/{tenant}/usage": {
            "get": op("Storage, records, and API requests and runs per day", P::ReadUsage, vec![tenant_param(), q("days", json!({"type": "integer", "minimum": 1, "maximum": 366}), "Days back from today (default 30).")], ("200", ok_json("Usage", r("Usage"))), &[]),
        },
        "/v1/tenants/{tenant}/sources": {
            "get": op("List source definitions with their schedule state (keyset pages)", P::ReadSources, source_list_params, ("200", ok_json("A page", r("SourcePage"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}": {
            "get": op("A source: definition and schedule state", P::ReadSources, vec![tenant_param(), source_param()], ("200", ok_json("The source", r("Source"))), &[]),
            "put": put_source,
            "delete": op("Delete a source definition (its records stay)", P::WriteSources, vec![tenant_param(), source_param()], ("204", json!({"description": "Deleted"})), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs": {
            "post": op("Start a run now (resumes an interrupted one)", P::WriteSources, vec![tenant_param(), source_param()], ("202", json!({"description": "Started", "headers": {"Location": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": r("RunStarted")}}})), &["409"]),
            "get": op("Runs of a source, newest first", P::ReadSources, vec![tenant_param(), source_param(), q("before", json!({"type": "integer"}), "Keyset: runs with a smaller id."), q("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Page size (default 50).")], ("200", ok_json("A page", r("RunPage"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}": {
            "get": op("One run with its counts and errors", P::ReadSources, vec![tenant_param(), source_param(), json!({"name": "run", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})], ("200", ok_json("The run", r("Run"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/push": {
            "post": push,
        },
        "/v1/tenants/{tenant}/secrets": {
            "get": op("Names of the tenant's secrets (values are never returned)", P::ManageSecrets, vec![tenant_param()], ("200", ok_json("Names", r("SecretNames"))), &[]),
        },
        "/v1/tenants/{tenant}/secrets/{name}": {
            "put": with_body(op("Set a secret that source definitions refer to as secret:NAME", P::ManageSecrets, vec![tenant_param(), json!({"$ref": "#/components/parameters/secret_name"})], ("204", json!({"description": "Stored"})), &[]), r("SecretBody")),
            "delete": op("Delete a secret", P::ManageSecrets, vec![tenant_param(), json!({"$ref": "#/components/parameters/secret_name"})], ("204", json!({"description": "Deleted"})), &[]),
        },
        "/v1/admin/keys": {
            "get": op("List global admin keys", P::ManageAdminKeys, page_params(json!({"type": "string", "pattern": "^[0-9a-f]{16}$"})), ("200", ok_json("A page", r("KeyPage"))), &[]),
            "post": with_body(op("Create a global admin key", P::ManageAdminKeys, vec![], ("201", ok_json("Created", r("KeyWithToken"))), &[]), r("CreateKey")),
        },
        "/v1/admin/keys/{key_id}": {
            "get": op("Get a global admin key", P::ManageAdminKeys, vec![key_param()], ("200", ok_json("The key", r("ApiKey"))), &[]),
            "delete": op("Revoke a global admin key", P::ManageAdminKeys, vec![key_param()], ("200", ok_json("Revoked", r("ApiKey"))), &[]),
        },
        "/v1/admin/keys/{key_id}/rotate": {
            "post": op("Rotate a global admin key", P::ManageAdminKeys, vec![key_param(), grace], ("200", ok_json("Rotated", r("KeyWithToken"))), &["409"]),
        },
        "/v1/admin/audit": {
            "get": op("The global audit log (events tied to no tenant)", P::ReadGlobalAudit, page_params(json!({"type": "integer", "minimum": 0})), ("200", ok_json("A page", r("AuditPage"))), &[]),
        },
        "/v1/admin/audit/verify": {
            "get": op("Verify the global audit hash chain", P::ReadGlobalAudit, vec![], ("200", ok_json("Report", r("VerifyReport"))), &[]),
        },
    });
    let int = json!({"type": "integer"});
    let opt_int = nullable("integer");
    let str_ = json!({"type": "string"});
    let quotas = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "storage_bytes": {"type": ["integer", "null"], "minimum": 0},
            "records": {"type": ["integer", "null"], "minimum": 0},
            "sources": {"type": ["integer", "null"], "minimum": 0},
            "runs_per_day": {"type": ["integer", "null"], "minimum": 0}
        }
    });
    let record_props = json!({
        "id": int, "source": str_, "key": str_, "version": int, "first_seen_ms": int,
        "version_since_ms": int, "last_seen_ms": int, "removed": {"type": "boolean"},
        "removed_run": {"type": ["integer", "null"], "description": "The harvest run that marked the record removed; null while it is present."},
        "fields": {"type": "object"}
    });
    let api_key = json!({
        "type": "object",
        "required": ["id", "tenant", "role", "name", "created_ms", "created_by"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "tenant": nullable("string"),
            "role": {"type": "string", "enum": ["admin", "tenant-admin", "editor", "reader"]},
            "name": str_, "created_ms": int, "created_by": str_, "rotated_ms": opt_int,
            "previous_secret_valid_until_ms": opt_int, "expires_ms": opt_int,
            "revoked_ms": opt_int, "last_used_ms": opt_int
        }
    });
    let audit_entry = json!({
        "type": "object",
        "required": ["seq", "tenant", "at_ms", "actor", "action", "target", "remote", "outcome", "detail", "hash"],
        "properties": {
            "seq": int, "tenant": str_, "at_ms": int, "actor": str_, "action": str_, "target": str_,
            "remote": str_, "outcome": {"type": "string", "enum": ["success", "denied", "failure"]},
            "detail": {}, "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}
        }
    });
    let harvest_schemas = json!({
        "SourceDefinition": {"type": "object", "required": ["kind"], "description": "A source definition (see docs/harvest.md): `kind` is html, json, sitemap, feed, csv or push; `id` may be omitted (taken from the path).", "properties": {"kind": {"type": "string", "enum": ["html", "json", "sitemap", "feed", "csv", "push"]}, "id": str_}},
        "Source": {"type": "object", "required": ["id", "kind", "stale", "running", "created_ms", "updated_ms"], "properties": {
            "id": str_, "kind": str_, "schedule": nullable("string"), "freshness_secs": opt_int,
            "next_run_ms": opt_int, "last_run_id": opt_int, "last_status": nullable("string"),
            "last_success_ms": opt_int, "stale": {"type": ["boolean", "null"]}, "running": {"type": "boolean"},
            "created_ms": int, "updated_ms": int, "definition": {"type": "object"}}},
        "SourcePage": {"type": "object", "required": ["sources", "next"], "properties": {"sources": {"type": "array", "items": r("Source")}, "next": nullable("string")}},
        "RunStarted": {"type": "object", "required": ["run_id", "resumed", "url"], "properties": {"run_id": int, "resumed": {"type": "boolean"}, "url": str_}},
        "Run": {"type": "object", "required": ["id", "source", "trigger", "status", "started_ms", "complete"], "properties": {
            "id": int, "source": str_, "trigger": str_, "status": str_, "started_ms": int, "ended_ms": opt_int,
            "complete": {"type": "boolean"}, "counts": {}, "errors": {}, "message": nullable("string")}},
        "RunPage": {"type": "object", "required": ["runs", "next_before"], "properties": {"runs": {"type": "array", "items": r("Run")}, "next_before": opt_int}},
        "PushOutcome": {"type": "object", "required": ["source", "records", "new", "changed", "unchanged"], "properties": {"source": str_, "records": int, "new": int, "changed": int, "unchanged": int}},
        "SecretNames": {"type": "object", "required": ["secrets"], "properties": {"secrets": {"type": "array", "items": str_}}},
        "SecretBody": {"type": "object", "additionalProperties": false, "required": ["value"], "properties": {"value": {"type": "string", "minLength": 1, "maxLength": 16384}}},
    });
    let verify_report = json!({
        "type": "object", "required": ["ok", "entries", "first_broken", "head", "anchor"],
        "properties": {"ok": {"type": "boolean"}, "entries": int,
            "first_broken": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["seq", "reason"], "properties": {"seq": int, "reason": str_}}]},
            "head": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["seq", "hash"], "properties": {"seq": int, "hash": str_}}]},
            "anchor": {"description": "The chain's signed head (seq, hash, entries up to it); a chain shorter than its anchor was truncated.",
                "oneOf": [{"type": "null"}, {"type": "object", "required": ["seq", "hash", "entries"], "properties": {"seq": int, "hash": str_, "entries": int}}]},
            "checkpoint": {"description": "The signed checkpoint over all chains: in the global chain's report, and in that of a chain with no entries and no anchor.",
                "type": "object", "required": ["ok", "reason", "last_seq", "entries", "chains", "mac"],
                "properties": {"ok": {"type": "boolean"}, "reason": nullable("string"), "last_seq": int, "entries": int, "chains": int, "mac": str_}}}
    });
    let mut schemas = json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string", "enum": [
                    "invalid_input", "config", "not_found", "method_not_allowed", "conflict",
                    "unauthenticated", "forbidden", "too_large", "head_too_large", "quota_exceeded", "rate_limited",
                    "unavailable", "shutting_down", "environment", "internal"]},
                    "message": str_}}}
        },
        "Status": {"type": "object", "required": ["status"], "properties": {"status": str_}},
        "Ready": {"type": "object", "required": ["status", "checks"], "properties": {"status": str_, "checks": {"type": "object"}}},
        "Quotas": quotas,
        "Tenant": {
            "type": "object",
            "required": ["id", "display_name", "created_ms", "updated_ms", "quotas", "settings"],
            "properties": {"id": str_, "display_name": str_, "created_ms": int, "updated_ms": int,
                "quotas": r("Quotas"), "settings": {"type": "object"}}
        },
        "TenantPage": {"type": "object", "required": ["tenants", "next"], "properties": {"tenants": {"type": "array", "items": r("Tenant")}, "next": nullable("string")}},
        "CreateTenant": {
            "type": "object", "additionalProperties": false, "required": ["id"],
            "properties": {"id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                "display_name": text(1, 200),
                "quotas": r("Quotas"), "settings": {"type": "object"}}
        },
        "UpdateTenant": {
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {"display_name": text(1, 200),
                "quotas": r("Quotas"), "settings": {"type": "object"}}
        },
        "Deleted": {
            "type": "object", "required": ["deleted", "erase"],
            "properties": {"deleted": str_, "erase": {"type": "object", "required": ["requested", "status"],
                "properties": {"requested": {"type": "boolean"},
                    "status": {"type": "string", "enum": ["not_requested", "pending", "done", "failed"]}}}}
        },
        "Record": {"type": "object", "required": ["id", "source", "key", "version", "first_seen_ms", "version_since_ms", "last_seen_ms", "removed", "removed_run", "fields"], "properties": record_props},
        "RecordPage": {"type": "object", "required": ["records", "next"], "properties": {"records": {"type": "array", "items": r("Record")}, "next": nullable("string")}},
        "Version": {"type": "object", "required": ["version", "since_ms", "until_ms", "fields"], "properties": {"version": int, "since_ms": int, "until_ms": int, "fields": {"type": "object"}}},
        "RecordDetail": {"type": "object", "required": ["record", "versions", "versions_total"], "properties": {"record": r("Record"), "versions": {"type": "array", "items": r("Version")}, "versions_total": int}},
        "PushBody": {
            "type": "object", "additionalProperties": false, "required": ["records"],
            "properties": {"records": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
                "type": "object", "additionalProperties": false, "required": ["source", "key", "fields"],
                "properties": {"source": text(1, 256),
                    "key": text(1, 1024),
                    "fields": {"type": "object"}}}}}
        },
        "PushResult": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {
            "type": "object", "required": ["source", "key", "outcome", "version"],
            "properties": {"source": str_, "key": str_, "outcome": {"type": "string", "enum": ["new", "changed", "unchanged"]}, "version": opt_int}}}}},
        "ApiKey": api_key,
        "KeyWithToken": {"type": "object", "required": ["key", "token"], "properties": {"key": r("ApiKey"), "token": {"type": "string", "pattern": "^glk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$"}}},
        "KeyPage": {"type": "object", "required": ["keys", "next"], "properties": {"keys": {"type": "array", "items": r("ApiKey")}, "next": nullable("string")}},
        "CreateKey": {
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": text(1, 200),
                "role": {"type": "string", "enum": ["admin", "tenant-admin", "editor", "reader"], "description": "Required for tenant keys (not admin); global keys are admin."},
                "expires_in_secs": {"type": "integer", "minimum": 1, "maximum": 315360000}}
        },
        "AuditEntry": audit_entry,
        "AuditPage": {"type": "object", "required": ["entries", "next"], "properties": {"entries": {"type": "array", "items": r("AuditEntry")}, "next": opt_int}},
        "VerifyReport": verify_report,
        "Usage": {
            "type": "object", "required": ["tenant", "storage_bytes", "records", "quotas", "days"],
            "properties": {"tenant": str_, "storage_bytes": int, "records": int, "quotas": r("Quotas"),
                "days": {"type": "array", "items": {"type": "object", "required": ["day", "api_requests", "runs"],
                    "properties": {"day": {"type": "string", "format": "date"}, "api_requests": int, "runs": int}}}}
        },
    });
    if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), harvest_schemas) {
        all.extend(more);
    }
    let error_resp = |d: &str| json!({"description": d, "content": {"application/json": {"schema": r("Error")}}});
    let mut responses = Map::new();
    for (code, d) in [
        (
            "400",
            "Malformed input: the message names the field or parameter",
        ),
        (
            "401",
            "Missing, invalid, revoked, expired or rotated-out credentials",
        ),
        (
            "403",
            "The credential's role or tenant does not allow this, or a quota would be exceeded",
        ),
        ("404", "No such tenant, record, key or route"),
        ("405", "The route does not take this method"),
        (
            "409",
            "Conflicts with the current state (exists, revoked, recently deleted)",
        ),
        ("413", "Body larger than http.max_body_bytes"),
        (
            "431",
            "Request line and headers over 64 KiB (answered before routing, then the connection is closed)",
        ),
        ("415", "Body is not application/json"),
        (
            "503",
            "Temporarily unable to serve (store busy, query too long, shutting down)",
        ),
    ] {
        responses.insert(code.into(), error_resp(d));
    }
    let mut limited = error_resp("Rate limit exceeded; retry after Retry-After seconds");
    limited["headers"] = json!({
        "Retry-After": {"schema": {"type": "integer"}},
        "RateLimit-Limit": {"schema": {"type": "integer"}},
        "RateLimit-Remaining": {"schema": {"type": "integer"}},
        "RateLimit-Reset": {"schema": {"type": "integer"}},
    });
    responses.insert("429".into(), limited);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Gleaner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Multi-tenant records API of Gleaner. Errors are {\"error\":{\"code\",\"message\"}}. Authenticate with `Authorization: Bearer <API key | OIDC JWT | admin token>`. `x-permission` names what each operation needs: admin for tenants:*, admin-keys:*, global-audit:*; tenant-admin for keys:manage, audit:read, usage:read, secrets:manage; editor for records:write, sources:write; reader for records:read, sources:read (within the credential's tenant)."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API key (glk_…), OIDC JWT, or the admin token"}},
            "parameters": {
                "tenant": {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}},
                "key_id": {"name": "key_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
                "source": {"name": "source", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}},
                "secret_name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}}
            },
            "responses": responses,
            "schemas": schemas,
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
