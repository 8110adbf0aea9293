//! Harvest endpoints: sources, runs, pushes and tenant secrets.
//!
//! ```text
//! GET    /v1/tenants/{tenant}/sources                     list (after, limit)
//! PUT    /v1/tenants/{tenant}/sources/{source}            create or replace (validated)
//! GET    /v1/tenants/{tenant}/sources/{source}            definition + schedule state
//! DELETE /v1/tenants/{tenant}/sources/{source}
//! POST   /v1/tenants/{tenant}/sources/{source}/runs       start a run (202)
//! GET    /v1/tenants/{tenant}/sources/{source}/runs       runs, newest first (before, limit)
//! GET    /v1/tenants/{tenant}/sources/{source}/runs/{id}
//! POST   /v1/tenants/{tenant}/sources/{source}/push       records (JSON / NDJSON), or
//!        ?action=fetch-now with {"source","resource"}: fetch one resource of a json source
//! GET    /v1/tenants/{tenant}/secrets                     names only
//! PUT    /v1/tenants/{tenant}/secrets/{name}              {"value": "..."}
//! DELETE /v1/tenants/{tenant}/secrets/{name}
//! ```
//!
//! The permission each route needs is in [`PERMISSIONS`]; for now every one of them is
//! granted to the global admin only (`Global<ManageTenants>`), except pushes to a source
//! with a signature, which the signature authenticates (webhook senders hold no API key).
//! The harvester reaches handlers as an `Extension`, so this file is the only HTTP code
//! that knows about it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery};
use super::extract::{Global, ManageTenants};
use super::AppState;
use crate::error::ErrorKind;
use crate::harvest::runtime::{HarvestError, Harvester};
use crate::harvest::source::{DefinitionError, SourceDef, SourceId, SourceSpec};
use crate::store::{MAX_RUN_LIST, MAX_SOURCE_LIST};
use crate::tenant::TenantId;

/// The permission each route needs (for role-based gating).
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    ("GET", "/v1/tenants/{tenant}/sources", "sources:read"),
    (
        "GET",
        "/v1/tenants/{tenant}/sources/{source}",
        "sources:read",
    ),
    (
        "PUT",
        "/v1/tenants/{tenant}/sources/{source}",
        "sources:write",
    ),
    (
        "DELETE",
        "/v1/tenants/{tenant}/sources/{source}",
        "sources:write",
    ),
    (
        "POST",
        "/v1/tenants/{tenant}/sources/{source}/runs",
        "runs:trigger",
    ),
    (
        "GET",
        "/v1/tenants/{tenant}/sources/{source}/runs",
        "runs:read",
    ),
    (
        "GET",
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}",
        "runs:read",
    ),
    (
        "POST",
        "/v1/tenants/{tenant}/sources/{source}/push",
        "records:push (or a valid signature)",
    ),
    ("GET", "/v1/tenants/{tenant}/secrets", "secrets:write"),
    (
        "PUT",
        "/v1/tenants/{tenant}/secrets/{name}",
        "secrets:write",
    ),
    (
        "DELETE",
        "/v1/tenants/{tenant}/secrets/{name}",
        "secrets:write",
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/sources", get(list_sources))
        .route(
            "/v1/tenants/{tenant}/sources/{source}",
            get(get_source).put(put_source).delete(delete_source),
        )
        .route(
            "/v1/tenants/{tenant}/sources/{source}/runs",
            post(trigger).get(list_runs),
        )
        .route(
            "/v1/tenants/{tenant}/sources/{source}/runs/{run}",
            get(get_run),
        )
        .route("/v1/tenants/{tenant}/sources/{source}/push", post(push))
        .route("/v1/tenants/{tenant}/secrets", get(list_secrets))
        .route(
            "/v1/tenants/{tenant}/secrets/{name}",
            axum::routing::put(put_secret).delete(delete_secret),
        )
}

type H = Option<Extension<Arc<Harvester>>>;

fn harvester(h: H) -> Result<Arc<Harvester>, ApiError> {
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
fn definition_error(e: DefinitionError) -> Response {
    let fields: Vec<Value> = e
        .fields()
        .iter()
        .map(|f| json!({"field": f.field, "message": f.message}))
        .collect();
    let body =
        json!({"error": {"code": e.kind().code(), "message": e.to_string(), "fields": fields}});
    (e.kind().http_status(), Json(body)).into_response()
}

fn tenant(raw: &str) -> Result<TenantId, ApiError> {
    Ok(TenantId::parse(raw)?)
}

fn source_id(raw: &str) -> Result<SourceId, ApiError> {
    SourceId::parse(raw).map_err(|e| ApiError::invalid(format!("path: {e}")))
}

/// The tenant must exist (404 otherwise).
async fn existing_tenant(st: &AppState, raw: &str) -> Result<TenantId, ApiError> {
    let t = tenant(raw)?;
    st.store.get_tenant(&t).await?;
    Ok(t)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
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

async fn list_sources(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    h: H,
    Path(t): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let t = existing_tenant(&st, &t).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_SOURCE_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_SOURCE_LIST}"
        )));
    }
    let rows = st
        .store
        .list_sources(t.as_str(), q.after.as_deref(), limit)
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let items: Vec<Value> = rows.iter().map(|r| source_view(&h, r, None)).collect();
    Ok(Json(json!({"sources": items, "next": next})))
}

async fn get_source(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    h: H,
    Path((t, s)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    let (row, def) = h.source(&t, id.as_str()).await?;
    Ok(Json(source_view(&h, &row, Some(def.to_value()))))
}

async fn put_source(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    h: H,
    Path((t, s)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let h = harvester(h)?;
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
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
    let created = h.put_source(&t, &def).await?;
    let (row, def) = h.source(&t, id.as_str()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(source_view(&h, &row, Some(def.to_value()))).into_response(),
    )
        .into_response())
}

async fn delete_source(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path((t, s)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    if st.store.delete_source(t.as_str(), id.as_str()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant {t} has no source {id}"),
        ))
    }
}

async fn trigger(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    h: H,
    Path((t, s)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    let handle = h.start_run(&t, id.as_str(), "api").await?;
    let loc = format!("/v1/tenants/{t}/sources/{id}/runs/{}", handle.run_id);
    Ok((
        StatusCode::ACCEPTED,
        [(http::header::LOCATION, loc.clone())],
        Json(json!({"run_id": handle.run_id, "resumed": handle.resumed, "url": loc})),
    ))
}

async fn list_runs(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path((t, s)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_RUN_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_RUN_LIST}"
        )));
    }
    let db = st.store.tenant_db(&t).await?;
    let runs = db.list_runs(id.as_str(), q.before, limit).await?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({"runs": runs, "next_before": next})))
}

async fn get_run(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path((t, s, run)): Path<(String, String, i64)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    let db = st.store.tenant_db(&t).await?;
    match db.get_run(id.as_str(), run).await? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("source {id} has no run {run}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    action: Option<String>,
}

async fn push(
    State(st): State<AppState>,
    h: H,
    Path((t, s)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PushQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let t = existing_tenant(&st, &t).await?;
    let id = source_id(&s)?;
    let (_, def) = h.source(&t, id.as_str()).await?;
    let signed = matches!(&def.spec, SourceSpec::Push(p) if p.signature.is_some());
    if !signed {
        // Unsigned push sources take records from API clients only.
        let header = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        st.auth
            .authenticate(header)
            .await
            .map_err(|e| ApiError::new(e.kind(), e.to_string()))?;
    }
    let hv: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let out = match q.action.as_deref() {
        None => h.push(&t, id.as_str(), &hv, body).await?,
        Some("fetch-now") => h.fetch_now(&t, id.as_str(), &hv, body).await?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown action {other:?}; use action=fetch-now or no action"
            )))
        }
    };
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

fn secret_name(raw: &str) -> Result<String, ApiError> {
    match crate::harvest::source::SecretRef::parse(&format!("secret:{raw}")) {
        Ok(_) => Ok(raw.to_owned()),
        Err(e) => Err(ApiError::invalid(format!("path: {e}"))),
    }
}

async fn list_secrets(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path(t): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let names = st.store.tenant_db(&t).await?.secret_names().await?;
    Ok(Json(json!({"secrets": names})))
}

async fn put_secret(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path((t, name)): Path<(String, String)>,
    ApiJson(b): ApiJson<SecretBody>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let name = secret_name(&name)?;
    if b.value.is_empty() || b.value.len() > 16 * 1024 {
        return Err(ApiError::invalid("field `value`: 1 to 16384 bytes"));
    }
    st.store
        .tenant_db(&t)
        .await?
        .put_secret(&name, &b.value)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_secret(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    Path((t, name)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let t = existing_tenant(&st, &t).await?;
    let name = secret_name(&name)?;
    if st.store.tenant_db(&t).await?.delete_secret(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("tenant {t} has no secret {name}"),
        ))
    }
}
