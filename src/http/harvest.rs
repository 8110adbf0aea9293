//! Harvest endpoints: sources, runs, pushes and tenant secrets.
//!
//! ```text
//! GET    /v1/tenants/{tenant}/sources                     list (after, limit)        reader
//! PUT    /v1/tenants/{tenant}/sources/{source}            create or replace          editor
//! GET    /v1/tenants/{tenant}/sources/{source}            definition + schedule      reader
//! DELETE /v1/tenants/{tenant}/sources/{source}                                       editor
//! POST   /v1/tenants/{tenant}/sources/{source}/runs       start a run (202)          editor
//! GET    /v1/tenants/{tenant}/sources/{source}/runs       newest first (before, limit) reader
//! GET    /v1/tenants/{tenant}/sources/{source}/runs/{run}                            reader
//! GET    /v1/tenants/{tenant}/sources/{source}/cursor     (source_cursors.rs)        reader
//! DELETE /v1/tenants/{tenant}/sources/{source}/cursor     reset it                   editor
//! POST   /v1/tenants/{tenant}/sources/{source}/push       records (JSON / NDJSON), or
//!        ?action=fetch-now with {"source","resource"}     editor, or a valid signature
//! GET    /v1/tenants/{tenant}/secrets                     names only                 tenant-admin
//! PUT    /v1/tenants/{tenant}/secrets/{name}              {"value": "..."}           tenant-admin
//! DELETE /v1/tenants/{tenant}/secrets/{name}                                         tenant-admin
//! ```
//!
//! The routes and their permissions are in the one route table (`routes.rs`); handlers
//! reach the tenant through the [`Tenant`] extractor like every other tenant endpoint. The
//! push route is the exception the table cannot express alone: a push to a source that
//! requires a signature is authenticated by the signature (webhook senders hold no API
//! key). Any push that carries an `Authorization` header is checked as `records:write`
//! first; a push without one is accepted only by a signed source with a valid signature,
//! and is refused with 401 otherwise — the same answer whether or not the source exists,
//! so anonymous callers learn nothing. The harvester reaches handlers as an `Extension`,
//! so this file is the only HTTP code that knows about it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::request::Parts;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{
    authenticate_and_authorize, failure_entry, ApiBytes, ApiJson, ApiPath, ApiQuery, Remote,
    TenantPath,
};
use super::extract::{ManageSecrets, ReadSources, Tenant, WriteSources};
use super::{audit_entry, AppState};
use crate::auth::Permission;
use crate::error::ErrorKind;
use crate::harvest::runtime::{HarvestError, Harvester};
use crate::harvest::source::{DefinitionError, SourceDef, SourceId, SourceSpec};
use crate::store::{MAX_RUN_LIST, MAX_SOURCE_LIST};
use crate::telemetry::metrics as m;

pub(super) type H = Option<Extension<Arc<Harvester>>>;

pub(super) fn harvester(h: H) -> Result<Arc<Harvester>, ApiError> {
    h.map(|Extension(h)| h).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "the harvester is not running on this node",
        )
    })
}

impl From<HarvestError> for ApiError {
    fn from(e: HarvestError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

/// A definition error as JSON 400 with every field named.
pub(super) fn definition_error(e: DefinitionError) -> Response {
    let fields: Vec<Value> = e
        .fields()
        .iter()
        .map(|f| json!({"field": f.field, "message": f.message}))
        .collect();
    let body =
        json!({"error": {"code": e.kind().code(), "message": e.to_string(), "fields": fields}});
    (e.kind().http_status(), Json(body)).into_response()
}

fn source_id(raw: &str) -> Result<SourceId, ApiError> {
    SourceId::parse(raw).map_err(|e| ApiError::invalid(format!("path: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    after: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

fn source_view(h: &Harvester, row: &crate::store::SourceRow, def: Option<Value>) -> Value {
    let now = crate::store::now_ms();
    let stale = row
        .freshness_secs
        .map(|f| row.last_success_ms.unwrap_or(row.created_ms) + f * 1000 < now);
    let mut v = json!({
        "id": row.id,
        "kind": row.kind,
        "schedule": row.schedule,
        "freshness_secs": row.freshness_secs,
        "next_run_ms": row.next_run_ms,
        "last_run_id": row.last_run_id,
        "last_status": row.last_status,
        "last_success_ms": row.last_success_ms,
        "stale": stale,
        "running": h.is_running(&row.tenant, &row.id),
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
    });
    if let Some(d) = def {
        v["definition"] = d;
    }
    v
}

/// The `{source}` path segment (validated; the tenant is validated by [`Tenant`]).
pub(super) fn source_in(
    parts: &std::collections::HashMap<String, String>,
) -> Result<SourceId, ApiError> {
    source_id(parts.get("source").map_or("", String::as_str))
}

/// The `{run}` of a run path.
pub(super) fn run_in(p: &std::collections::HashMap<String, String>) -> Result<i64, ApiError> {
    p.get("run")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| ApiError::invalid("path: the run id must be an integer"))
}

pub(super) fn run_not_found(id: &SourceId, run: i64) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("source {id} has no run {run}"))
}

pub(super) type PathMap = ApiPath<std::collections::HashMap<String, String>>;

/// Records a source or secret change in the tenant's audit chain.
pub(super) async fn audit<P>(
    st: &AppState,
    t: &Tenant<P>,
    action: &str,
    target: &str,
    detail: Value,
) -> Result<(), ApiError> {
    st.store
        .append_audit(
            st.auth.audit_key(),
            audit_entry(
                &t.principal,
                &t.remote,
                t.id.as_str(),
                action,
                target,
                detail,
            ),
        )
        .await?;
    Ok(())
}

pub(super) async fn list_sources(
    t: Tenant<ReadSources>,
    State(st): State<AppState>,
    h: H,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_SOURCE_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_SOURCE_LIST}"
        )));
    }
    let rows = st
        .store
        .list_sources(t.id.as_str(), q.after.as_deref(), limit)
        .await?;
    let next = super::cursor::next_key(&rows, limit, |r| r.id.clone());
    let items: Vec<Value> = rows.iter().map(|r| source_view(&h, r, None)).collect();
    Ok(Json(json!({"sources": items, "next": next})))
}

pub(super) async fn get_source(
    t: Tenant<ReadSources>,
    h: H,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let id = source_in(&p)?;
    let (row, def) = h.source(&t.id, id.as_str()).await?;
    Ok(Json(source_view(&h, &row, Some(def.to_value()))))
}

pub(super) async fn put_source(
    t: Tenant<WriteSources>,
    State(st): State<AppState>,
    h: H,
    ApiPath(p): PathMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let h = harvester(h)?;
    let id = source_in(&p)?;
    let mut v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Err(ApiError::invalid(format!("invalid JSON body: {e}"))),
    };
    if let Value::Object(m) = &mut v {
        match m.get("id") {
            None => {
                m.insert("id".into(), Value::String(id.to_string()));
            }
            Some(Value::String(x)) if x == id.as_str() => {}
            Some(_) => {
                return Ok(definition_error(DefinitionError::Invalid(vec![
                    crate::harvest::source::FieldError {
                        field: "id".into(),
                        message: format!("must equal the source id in the path ({id})"),
                    },
                ])))
            }
        }
    }
    let text = serde_json::to_vec(&v).unwrap_or_default();
    let def = match SourceDef::parse_json(&text).and_then(|d| d.validate_untrusted().map(|_| d)) {
        Ok(d) => d,
        Err(e) => return Ok(definition_error(e)),
    };
    let created = match h.put_source(&t.id, &def).await {
        Ok(c) => c,
        Err(HarvestError::Definition(e)) => return Ok(definition_error(e)),
        Err(e) => return Err(e.into()),
    };
    let (row, def) = h.source(&t.id, id.as_str()).await?;
    let action = if created {
        "source.created"
    } else {
        "source.replaced"
    };
    audit(&st, &t, action, id.as_str(), json!({"kind": row.kind})).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(source_view(&h, &row, Some(def.to_value())))).into_response())
}

pub(super) async fn delete_source(
    t: Tenant<WriteSources>,
    State(st): State<AppState>,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = source_in(&p)?;
    if st.store.delete_source(t.id.as_str(), id.as_str()).await? {
        // A source created again under this id starts without the old one's cursor.
        t.db.delete_source_cursor(id.as_str()).await?;
        audit(&st, &t, "source.deleted", id.as_str(), json!({})).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant {} has no source {id}", t.id),
        ))
    }
}

pub(super) async fn trigger(
    t: Tenant<WriteSources>,
    h: H,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let id = source_in(&p)?;
    let handle = h.start_run(&t.id, id.as_str(), "api").await?;
    let loc = format!("/v1/tenants/{}/sources/{id}/runs/{}", t.id, handle.run_id);
    Ok((
        StatusCode::ACCEPTED,
        [(http::header::LOCATION, loc.clone())],
        Json(json!({"run_id": handle.run_id, "resumed": handle.resumed, "url": loc})),
    ))
}

pub(super) async fn list_runs(
    t: Tenant<ReadSources>,
    ApiPath(p): PathMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = source_in(&p)?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_RUN_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_RUN_LIST}"
        )));
    }
    let runs = t.db.list_runs(id.as_str(), q.before, limit).await?;
    let next = super::cursor::next_key(&runs, limit, |r| r.id);
    Ok(Json(json!({"runs": runs, "next_before": next})))
}

pub(super) async fn get_run(
    t: Tenant<ReadSources>,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = source_in(&p)?;
    let run = run_in(&p)?;
    match t.db.get_run(id.as_str(), run).await? {
        Some(r) => Ok(Json(r)),
        None => Err(run_not_found(&id, run)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushQuery {
    action: Option<String>,
}

pub(super) async fn push(
    State(st): State<AppState>,
    h: H,
    parts: Parts,
    TenantPath(t): TenantPath,
    ApiPath(p): PathMap,
    ApiQuery(q): ApiQuery<PushQuery>,
    ApiBytes(body): ApiBytes,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let headers = &parts.headers;
    let id = source_in(&p)?;
    if headers.contains_key(http::header::AUTHORIZATION) {
        // A credential is checked like any tenant endpoint's, before the tenant or the
        // source is looked at.
        authenticate_and_authorize(&parts, &st, Permission::WriteRecords, Some(&t)).await?;
        st.auth
            .tenant(&t)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("tenant {t} does not exist")))?;
    } else {
        let signed = match st.auth.tenant(&t).await? {
            Some(_) => match h.source(&t, id.as_str()).await {
                Ok((_, def)) => matches!(&def.spec, SourceSpec::Push(p) if p.signature.is_some()),
                Err(HarvestError::SourceNotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            },
            None => false,
        };
        if !signed {
            return Err(ApiError::new(
                ErrorKind::Unauthenticated,
                "this push needs `Authorization: Bearer <key>` (only push sources with a \
                 signature accept signed requests without a key)",
            ));
        }
    }
    let hv: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let out = match q.action.as_deref() {
        None => h.push(&t, id.as_str(), &hv, body).await,
        Some("fetch-now") => h.fetch_now(&t, id.as_str(), &hv, body).await,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown action {other:?}; use action=fetch-now or no action"
            )))
        }
    };
    let out = match out {
        Ok(o) => o,
        Err(HarvestError::Signature(e)) => {
            // Counted and audited (throttled per address), nothing of it stored.
            metrics::counter!(m::PUSH_REFUSED_TOTAL, "reason" => e.reason()).increment(1);
            let remote = Remote::of(&parts);
            st.auth.audit_failure(
                failure_entry(
                    t.as_str(),
                    "push.refused",
                    "anonymous",
                    &parts,
                    &remote,
                    &e.to_string(),
                ),
                remote.0.map(|a| a.ip()),
            );
            return Err(HarvestError::Signature(e).into());
        }
        Err(e) => return Err(e.into()),
    };
    st.auth.meter.request(t.as_str(), crate::auth::now_ms());
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretBody {
    value: String,
}

fn secret_name(p: &std::collections::HashMap<String, String>) -> Result<String, ApiError> {
    let raw = p.get("name").map_or("", String::as_str);
    match crate::harvest::source::SecretRef::parse(&format!("secret:{raw}")) {
        Ok(_) => Ok(raw.to_owned()),
        Err(e) => Err(ApiError::invalid(format!("path: {e}"))),
    }
}

pub(super) async fn list_secrets(t: Tenant<ManageSecrets>) -> Result<impl IntoResponse, ApiError> {
    let names = t.db.secret_names().await?;
    Ok(Json(json!({"secrets": names})))
}

pub(super) async fn put_secret(
    t: Tenant<ManageSecrets>,
    State(st): State<AppState>,
    ApiPath(p): PathMap,
    ApiJson(b): ApiJson<SecretBody>,
) -> Result<impl IntoResponse, ApiError> {
    let name = secret_name(&p)?;
    if b.value.is_empty() || b.value.len() > 16 * 1024 {
        return Err(ApiError::invalid("field `value`: 1 to 16384 bytes"));
    }
    t.db.put_secret(&name, &b.value).await?;
    audit(&st, &t, "secret.set", &name, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_secret(
    t: Tenant<ManageSecrets>,
    State(st): State<AppState>,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let name = secret_name(&p)?;
    if t.db.delete_secret(&name).await? {
        audit(&st, &t, "secret.deleted", &name, json!({})).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant {} has no secret {name}", t.id),
        ))
    }
}
