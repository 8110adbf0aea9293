//! The document's `paths`, one function per group of routes, in the groups (and order) of
//! the route table in `routes.rs`.

use serde_json::{json, Value};

use super::parts::{
    err, key_param, merge, ok_json, op, page_params, public, q, r, source_param, tenant_param,
    text, with_body, PATH, PATHS,
};
use crate::auth::Permission as P;

/// Every path of the document.
pub(super) fn paths() -> Value {
    merge([
        public_paths(),
        tenant_paths(),
        record_paths(),
        tenant_admin_paths(),
        source_paths(),
        connection_paths(),
        admin_paths(),
    ])
}

/// Health, metrics and this document (no credential).
fn public_paths() -> Value {
    json!({
        "/healthz": {"get": public("The process is alive", ok_json("Alive", r("Status")), json!({}))},
        "/readyz": {"get": public("The node can serve: store writable, not shutting down", ok_json("Ready", r("Ready")), json!({"503": err("503")}))},
        "/metrics": {"get": public("Prometheus metrics", json!({"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}), json!({}))},
        "/openapi.json": {"get": public("This document", ok_json("OpenAPI 3.1 document", json!({"type": "object"})), json!({}))},
    })
}

/// Tenants (admin).
fn tenant_paths() -> Value {
    json!({
        "/v1/tenants": {
            "post": with_body(op("Create a tenant", P::ManageTenants, vec![], ("201", ok_json("Created", r("Tenant"))), &["409"]), r("CreateTenant")),
            "get": op("List tenants (keyset pages)", P::ManageTenants, page_params(json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"})), ("200", ok_json("A page", r("TenantPage"))), &[]),
        },
        "/v1/tenants/{tenant}": {
            "get": op("Get a tenant", P::ManageTenants, vec![tenant_param()], ("200", ok_json("The tenant", r("Tenant"))), &[]),
            "patch": with_body(op("Update display name, quotas (replaced whole) or settings", P::ManageTenants, vec![tenant_param()], ("200", ok_json("Updated", r("Tenant"))), &[]), r("UpdateTenant")),
            "delete": op("Delete a tenant and its database; erase=true also requests erasure of its replica objects", P::ManageTenants, vec![tenant_param(), q("erase", json!({"type": "boolean"}), "Also erase its replica objects at every destination (status done or failed; pending when replication is off on this node).")], ("200", ok_json("Deleted", r("Deleted"))), &[]),
        },
    })
}

/// The filters a record list and an export share.
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

fn list_params() -> Vec<Value> {
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
    list_params
}

fn export_params() -> Vec<Value> {
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
    export_params
}

/// Records: list, push, one record, export; what changed.
fn record_paths() -> Value {
    json!({
        "/v1/tenants/{tenant}/records": {
            "get": op("List records (filters, projection, keyset cursor). A page may be short or empty with a `next` when filters are selective: follow `next` until it is null.", P::ReadRecords, list_params(), ("200", ok_json("A page", r("RecordPage"))), &[]),
            "post": with_body(op("Push records (upsert-if-changed), all or none, within the tenant's quotas", P::WriteRecords, vec![tenant_param()], ("200", ok_json("Outcome per record", r("PushResult"))), &["409"]), r("PushBody")),
        },
        "/v1/tenants/{tenant}/records/{id}": {
            "get": op("One record with its newest superseded versions", P::ReadRecords, vec![tenant_param(), json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}), q("versions", json!({"type": "integer", "minimum": 0, "maximum": 100}), "Most versions to return (default 20).")], ("200", ok_json("The record", r("RecordDetail"))), &[]),
        },
        "/v1/tenants/{tenant}/records/{id}/diff": {
            "get": op("The difference between two versions of a record as an RFC 6902 JSON Patch", P::ReadChanges, vec![tenant_param(), json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}),
                json!({"name": "from", "in": "query", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}, "description": "The version to diff from."}),
                q("to", json!({"type": "integer", "format": "int64", "minimum": 1}), "The version to diff to (default the current one).")], ("200", ok_json("The patch from `from` to `to`", r("RecordDiff"))), &[]),
        },
        "/v1/tenants/{tenant}/runs/{run}/changes": {
            "get": op("The records a harvest run added, changed and removed, in record id order (keyset cursor). Kept for the newest 20 runs of each source.", P::ReadChanges, vec![tenant_param(), json!({"name": "run", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}),
                q("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Page size (default limits.default_page_size, at most limits.max_page_size)."),
                q("cursor", json!({"type": "string", "maxLength": 64}), "The `next` of the previous page, unchanged.")], ("200", ok_json("A page", r("RunChanges"))), &[]),
        },
        "/v1/tenants/{tenant}/export": {
            "get": op("Export every matching record as NDJSON or CSV, streamed", P::ReadRecords, export_params(), ("200", json!({"description": "The records, one per line", "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}})), &[]),
        },
    })
}

/// The `after` of a key list: a key id.
fn key_after() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{16}$"})
}

/// The `after` of an audit page: a sequence number.
fn audit_after() -> Value {
    json!({"type": "integer", "minimum": 0})
}

/// A rotation's grace period.
fn grace() -> Value {
    q(
        "grace_secs",
        json!({"type": "integer", "minimum": 0, "maximum": 31536000}),
        "How long the old secret stays valid (default auth.key_rotation_grace_secs, at most auth.max_key_rotation_grace_secs).",
    )
}

/// A tenant's keys, audit and usage (tenant-admin).
fn tenant_admin_paths() -> Value {
    let key_list_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(key_after()));
        v
    };
    let audit_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(audit_after()));
        v
    };
    json!({
        "/v1/tenants/{tenant}/keys": {
            "get": op("List the tenant's API keys (never secrets)", P::ManageKeys, key_list_params, ("200", ok_json("A page", r("KeyPage"))), &[]),
            "post": with_body(op("Create an API key; the token is shown only in this answer", P::ManageKeys, vec![tenant_param()], ("201", ok_json("Created", r("KeyWithToken"))), &[]), r("CreateKey")),
        },
        "/v1/tenants/{tenant}/keys/{key_id}": {
            "get": op("Get an API key", P::ManageKeys, vec![tenant_param(), key_param()], ("200", ok_json("The key", r("ApiKey"))), &[]),
            "delete": op("Revoke an API key (refused from the next request on)", P::ManageKeys, vec![tenant_param(), key_param()], ("200", ok_json("Revoked", r("ApiKey"))), &[]),
        },
        "/v1/tenants/{tenant}/keys/{key_id}/rotate": {
            "post": op("Give the key a new secret; the old one stays valid for the grace period", P::ManageKeys, vec![tenant_param(), key_param(), grace()], ("200", ok_json("Rotated", r("KeyWithToken"))), &["409"]),
        },
        "/v1/tenants/{tenant}/audit": {
            "get": op("The tenant's audit log, oldest first", P::ReadAudit, audit_params, ("200", ok_json("A page", r("AuditPage"))), &[]),
        },
        "/v1/tenants/{tenant}/audit/verify": {
            "get": op("Verify the tenant's audit hash chain", P::ReadAudit, vec![tenant_param()], ("200", ok_json("Report", r("VerifyReport"))), &[]),
        },
        "/v1/tenants/{tenant}/usage": {
            "get": op("Storage, records, and API requests and runs per day", P::ReadUsage, vec![tenant_param(), q("days", json!({"type": "integer", "minimum": 1, "maximum": 366}), "Days back from today (default 30).")], ("200", ok_json("Usage", r("Usage"))), &[]),
        },
    })
}

fn put_source() -> Value {
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
}

fn push() -> Value {
    let mut o = op(
        "Push records to a push source (JSON array or NDJSON), or with action=fetch-now ask a json source to fetch one resource now; a body that is one of the source's `events` fetches the record it names into that record's source. A refused signature or stale timestamp answers 401; a delivery already taken (same signed content or event id) answers 200 with `duplicate: true` and stores nothing. Needs records:write, or no credential and a valid signature header when the source requires one.",
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
}

/// Sources and runs (reader reads, editor changes and runs) and the secrets source
/// definitions refer to (tenant-admin).
fn source_paths() -> Value {
    let source_list_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(json!({"type": "string", "maxLength": 64})));
        v
    };
    json!({
        "/v1/tenants/{tenant}/sources": {
            "get": op("List source definitions with their schedule state (keyset pages)", P::ReadSources, source_list_params, ("200", ok_json("A page", r("SourcePage"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}": {
            "get": op("A source: definition and schedule state", P::ReadSources, vec![tenant_param(), source_param()], ("200", ok_json("The source", r("Source"))), &[]),
            "put": put_source(),
            "delete": op("Delete a source definition (its records stay)", P::WriteSources, vec![tenant_param(), source_param()], ("204", json!({"description": "Deleted"})), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs": {
            "post": op("Start a run now (resumes an interrupted one)", P::WriteSources, vec![tenant_param(), source_param()], ("202", json!({"description": "Started", "headers": {"Location": {"schema": {"type": "string"}}}, "content": {"application/json": {"schema": r("RunStarted")}}})), &["409"]),
            "get": op("Runs of a source, newest first", P::ReadSources, vec![tenant_param(), source_param(), q("before", json!({"type": "integer"}), "Keyset: runs with a smaller id."), q("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Page size (default 50).")], ("200", ok_json("A page", r("RunPage"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}": {
            "get": op("One run with its counts and errors", P::ReadSources, vec![tenant_param(), source_param(), json!({"name": "run", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})], ("200", ok_json("The run", r("Run"))), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}/accept": {
            "post": op("Accept a run held as anomalous: apply the removals it held back (records not seen since it started, not removed since) and mark it accepted", P::WriteSources, vec![tenant_param(), source_param(), json!({"name": "run", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})], ("200", ok_json("The accepted run", r("Run"))), &["409"]),
        },
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}/dismiss": {
            "post": op("Dismiss a run held as anomalous: its removals are never applied and it stays out of the baseline", P::WriteSources, vec![tenant_param(), source_param(), json!({"name": "run", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})], ("200", ok_json("The dismissed run", r("Run"))), &["409"]),
        },
        "/v1/tenants/{tenant}/sources/{source}/cursor": {
            "get": op("The source's incremental cursor (null before its first complete run or after a reset)", P::ReadSources, vec![tenant_param(), source_param()], ("200", ok_json("The cursor", r("SourceCursor"))), &[]),
            "delete": op("Reset the incremental cursor: the next run starts over (also when there is none; a run in progress does not store its cursor)", P::WriteSources, vec![tenant_param(), source_param()], ("204", json!({"description": "Reset"})), &[]),
        },
        "/v1/tenants/{tenant}/sources/{source}/push": {
            "post": push(),
        },
        "/v1/tenants/{tenant}/secrets": {
            "get": op("Names of the tenant's secrets (values are never returned)", P::ManageSecrets, vec![tenant_param()], ("200", ok_json("Names", r("SecretNames"))), &[]),
        },
        "/v1/tenants/{tenant}/secrets/{name}": {
            "put": with_body(op("Set a secret that source definitions refer to as secret:NAME", P::ManageSecrets, vec![tenant_param(), json!({"$ref": "#/components/parameters/secret_name"})], ("204", json!({"description": "Stored"})), &[]), r("SecretBody")),
            "delete": op("Delete a secret", P::ManageSecrets, vec![tenant_param(), json!({"$ref": "#/components/parameters/secret_name"})], ("204", json!({"description": "Deleted"})), &[]),
        },
    })
}

/// Connections: named credentials sources use (reader reads, tenant-admin changes).
fn connection_paths() -> Value {
    let name = || json!({"$ref": "#/components/parameters/connection_name"});
    let list_params = {
        let mut v = vec![tenant_param()];
        v.extend(page_params(json!({"type": "string", "maxLength": 64})));
        v
    };
    let mut put = with_body(
        op("Create or replace a connection: {\"auth\": <an inline auth object>} with secret:NAME references only", P::ManageConnections, vec![tenant_param(), name()], ("200", ok_json("Replaced", r("Connection"))), &[]),
        r("ConnectionDefinition"),
    );
    put["responses"]["201"] = ok_json("Created", r("Connection"));
    json!({
        "/v1/tenants/{tenant}/connections": {
            "get": op("List connections (keyset pages by name)", P::ReadConnections, list_params, ("200", ok_json("A page", r("ConnectionPage"))), &[]),
        },
        "/v1/tenants/{tenant}/connections/{name}": {
            "get": op("A connection's definition (secret references, never values or tokens)", P::ReadConnections, vec![tenant_param(), name()], ("200", ok_json("The connection", r("Connection"))), &[]),
            "put": put,
            "delete": op("Delete a connection and its token state; 409 (with `error.sources`) while sources use it", P::ManageConnections, vec![tenant_param(), name()], ("204", json!({"description": "Deleted"})), &["409"]),
        },
    })
}

/// Global admin keys and audit (admin).
fn admin_paths() -> Value {
    json!({
        "/v1/admin/keys": {
            "get": op("List global admin keys", P::ManageAdminKeys, page_params(key_after()), ("200", ok_json("A page", r("KeyPage"))), &[]),
            "post": with_body(op("Create a global admin key", P::ManageAdminKeys, vec![], ("201", ok_json("Created", r("KeyWithToken"))), &[]), r("CreateKey")),
        },
        "/v1/admin/keys/{key_id}": {
            "get": op("Get a global admin key", P::ManageAdminKeys, vec![key_param()], ("200", ok_json("The key", r("ApiKey"))), &[]),
            "delete": op("Revoke a global admin key", P::ManageAdminKeys, vec![key_param()], ("200", ok_json("Revoked", r("ApiKey"))), &[]),
        },
        "/v1/admin/keys/{key_id}/rotate": {
            "post": op("Rotate a global admin key", P::ManageAdminKeys, vec![key_param(), grace()], ("200", ok_json("Rotated", r("KeyWithToken"))), &["409"]),
        },
        "/v1/admin/audit": {
            "get": op("The global audit log (events tied to no tenant)", P::ReadGlobalAudit, page_params(audit_after()), ("200", ok_json("A page", r("AuditPage"))), &[]),
        },
        "/v1/admin/audit/verify": {
            "get": op("Verify the global audit hash chain", P::ReadGlobalAudit, vec![], ("200", ok_json("Report", r("VerifyReport"))), &[]),
        },
    })
}
