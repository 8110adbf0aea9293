//! The document's `components`: the shared path parameters, the error responses, and the
//! schemas, one function per group (the same groups as the paths).

use serde_json::{json, Map, Value};

use super::parts::{int, merge, nullable, opt_int, r, str_, text};

pub(super) fn parameters() -> Value {
    json!({
        "tenant": {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}},
        "key_id": {"name": "key_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
        "source": {"name": "source", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}},
        "secret_name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}},
        "connection_name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}}
    })
}

/// The error responses operations refer to by status code.
pub(super) fn responses() -> Value {
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
    Value::Object(responses)
}

/// Every schema of the document.
pub(super) fn schemas() -> Value {
    merge([
        common_schemas(),
        tenant_schemas(),
        record_schemas(),
        key_schemas(),
        audit_schemas(),
        harvest_schemas(),
    ])
}

/// The error body and the health answers.
fn common_schemas() -> Value {
    let str_ = str_();
    json!({
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
    })
}

/// Tenants and their usage.
fn tenant_schemas() -> Value {
    let (int, str_) = (int(), str_());
    let quotas = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "storage_bytes": {"type": ["integer", "null"], "minimum": 0},
            "records": {"type": ["integer", "null"], "minimum": 0},
            "sources": {"type": ["integer", "null"], "minimum": 0},
            "runs_per_day": {"type": ["integer", "null"], "minimum": 0}
        }
    });
    json!({
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
        "Usage": {
            "type": "object", "required": ["tenant", "storage_bytes", "records", "quotas", "days"],
            "properties": {"tenant": str_, "storage_bytes": int, "records": int, "quotas": r("Quotas"),
                "days": {"type": "array", "items": {"type": "object", "required": ["day", "api_requests", "runs"],
                    "properties": {"day": {"type": "string", "format": "date"}, "api_requests": int, "runs": int}}}}
        },
    })
}

/// Records, their versions, and pushes.
fn record_schemas() -> Value {
    let (int, opt_int, str_) = (int(), opt_int(), str_());
    let record_props = json!({
        "id": int, "source": str_, "key": str_, "version": int, "first_seen_ms": int,
        "version_since_ms": int, "last_seen_ms": int, "removed": {"type": "boolean"},
        "removed_run": {"type": ["integer", "null"], "description": "The harvest run that marked the record removed; null while it is present."},
        "fields": {"type": "object"}
    });
    json!({
        "Record": {"type": "object", "required": ["id", "source", "key", "version", "first_seen_ms", "version_since_ms", "last_seen_ms", "removed", "removed_run", "fields"], "properties": record_props},
        "RecordPage": {"type": "object", "required": ["records", "next"], "properties": {"records": {"type": "array", "items": r("Record")}, "next": nullable("string")}},
        "Version": {"type": "object", "required": ["version", "since_ms", "until_ms", "fields"], "properties": {"version": int, "since_ms": int, "until_ms": int, "fields": {"type": "object"}}},
        "RecordDetail": {"type": "object", "required": ["record", "versions", "versions_total"], "properties": {"record": r("Record"), "versions": {"type": "array", "items": r("Version")}, "versions_total": int}},
        "RunChanges": {"type": "object", "required": ["run", "source", "retained", "changes", "next"], "properties": {
            "run": int, "source": str_,
            "retained": {"type": "boolean", "description": "false once the run is older than the newest 20 runs of its source: its changes are no longer kept"},
            "changes": {"type": "array", "items": {"type": "object", "required": ["record_id", "key", "change", "version"], "properties": {
                "record_id": int, "key": str_, "change": {"type": "string", "enum": ["added", "changed", "removed"]},
                "version": {"type": "integer", "description": "The record's version after the change (removed: the version it had)"}}}},
            "next": nullable("string")}},
        "RecordDiff": {"type": "object", "required": ["record_id", "from", "to", "patch"], "properties": {
            "record_id": int, "from": int, "to": int,
            "patch": {"type": "array", "description": "RFC 6902 JSON Patch: applied to version `from`'s fields it gives version `to`'s", "items": {
                "type": "object", "required": ["op", "path"], "properties": {
                    "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
                    "path": str_, "from": str_, "value": {}}}}}},
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
    })
}

/// API keys.
fn key_schemas() -> Value {
    let (int, opt_int, str_) = (int(), opt_int(), str_());
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
    json!({
        "ApiKey": api_key,
        "KeyWithToken": {"type": "object", "required": ["key", "token"], "properties": {"key": r("ApiKey"), "token": {"type": "string", "pattern": "^glk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$"}}},
        "KeyPage": {"type": "object", "required": ["keys", "next"], "properties": {"keys": {"type": "array", "items": r("ApiKey")}, "next": nullable("string")}},
        "CreateKey": {
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": text(1, 200),
                "role": {"type": "string", "enum": ["admin", "tenant-admin", "editor", "reader"], "description": "Required for tenant keys (not admin); global keys are admin."},
                "expires_in_secs": {"type": "integer", "minimum": 1, "maximum": 315360000}}
        },
    })
}

/// The audit log and its verification.
fn audit_schemas() -> Value {
    let (int, opt_int, str_) = (int(), opt_int(), str_());
    let audit_entry = json!({
        "type": "object",
        "required": ["seq", "tenant", "at_ms", "actor", "action", "target", "remote", "outcome", "detail", "hash"],
        "properties": {
            "seq": int, "tenant": str_, "at_ms": int, "actor": str_, "action": str_, "target": str_,
            "remote": str_, "outcome": {"type": "string", "enum": ["success", "denied", "failure"]},
            "detail": {}, "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}
        }
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
    json!({
        "AuditEntry": audit_entry,
        "AuditPage": {"type": "object", "required": ["entries", "next"], "properties": {"entries": {"type": "array", "items": r("AuditEntry")}, "next": opt_int}},
        "VerifyReport": verify_report,
    })
}

/// Source definitions, runs, pushes to a source, and secrets.
fn harvest_schemas() -> Value {
    let (int, opt_int, str_) = (int(), opt_int(), str_());
    json!({
        "SourceDefinition": {"type": "object", "required": ["kind"], "description": "A source definition (see docs/harvest.md): `kind` is html, json, sitemap, feed, csv or push; `id` may be omitted (taken from the path).", "properties": {"kind": {"type": "string", "enum": ["html", "json", "sitemap", "feed", "csv", "push"]}, "id": str_}},
        "Source": {"type": "object", "required": ["id", "kind", "stale", "running", "created_ms", "updated_ms"], "properties": {
            "id": str_, "kind": str_, "schedule": nullable("string"), "freshness_secs": opt_int,
            "next_run_ms": opt_int, "last_run_id": opt_int, "last_status": nullable("string"),
            "last_success_ms": opt_int, "stale": {"type": ["boolean", "null"]}, "running": {"type": "boolean"},
            "created_ms": int, "updated_ms": int, "definition": {"type": "object"}}},
        "SourcePage": {"type": "object", "required": ["sources", "next"], "properties": {"sources": {"type": "array", "items": r("Source")}, "next": nullable("string")}},
        "RunStarted": {"type": "object", "required": ["run_id", "resumed", "url"], "properties": {"run_id": int, "resumed": {"type": "boolean"}, "url": str_}},
        "Run": {"type": "object", "required": ["id", "source", "trigger", "status", "started_ms", "complete"], "properties": {
            "id": int, "source": str_, "trigger": str_, "status": {"type": "string", "enum": ["running", "succeeded", "partial", "failed", "interrupted", "paused", "anomalous", "accepted", "dismissed"]}, "started_ms": int, "ended_ms": opt_int,
            "complete": {"type": "boolean"}, "counts": {}, "errors": {}, "message": nullable("string")}},
        "RunPage": {"type": "object", "required": ["runs", "next_before"], "properties": {"runs": {"type": "array", "items": r("Run")}, "next_before": opt_int}},
        "SourceCursor": {"type": "object", "required": ["source", "incremental", "cursor"], "properties": {"source": str_, "incremental": {"type": "boolean"}, "cursor": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["basis", "value", "run_id", "updated_ms"], "properties": {"basis": str_, "value": str_, "run_id": int, "updated_ms": int}}]}}},
        "PushOutcome": {"type": "object", "required": ["source", "records", "new", "changed", "unchanged", "duplicate"], "properties": {"source": str_, "records": int, "new": int, "changed": int, "unchanged": int, "duplicate": {"type": "boolean", "description": "A signed delivery already taken (a retry or a replay): nothing stored, answered 200 so the provider stops retrying."}}},
        "SecretNames": {"type": "object", "required": ["secrets"], "properties": {"secrets": {"type": "array", "items": str_}}},
        "SecretBody": {"type": "object", "additionalProperties": false, "required": ["value"], "properties": {"value": {"type": "string", "minLength": 1, "maxLength": 16384}}},
        "ConnectionDefinition": {"type": "object", "additionalProperties": false, "required": ["auth"], "description": "A connection (see docs/sources.md, Connections): `auth` is an inline auth object, `type` one of headers, bearer, basic, oauth2_client_credentials, oauth2_refresh_token.", "properties": {"auth": r("ConnectionAuth")}},
        "ConnectionAuth": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["headers", "bearer", "basic", "oauth2_client_credentials", "oauth2_refresh_token"]}}},
        "Connection": {"type": "object", "required": ["name", "auth", "created_ms", "updated_ms"], "properties": {"name": str_, "auth": r("ConnectionAuth"), "created_ms": int, "updated_ms": int}},
        "ConnectionPage": {"type": "object", "required": ["connections", "next"], "properties": {"connections": {"type": "array", "items": r("Connection")}, "next": nullable("string")}},
    })
}
