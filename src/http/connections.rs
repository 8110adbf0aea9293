//! Connection endpoints: a tenant's named credentials that sources use by name.
//!
//! ```text
//! GET    /v1/tenants/{tenant}/connections               list (after, limit)       reader
//! GET    /v1/tenants/{tenant}/connections/{name}        the definition            reader
//! PUT    /v1/tenants/{tenant}/connections/{name}        {"auth": {...}}           tenant-admin
//! DELETE /v1/tenants/{tenant}/connections/{name}        409 while sources use it  tenant-admin
//! ```
//!
//! A definition holds secret references (`secret:NAME`), never values, so reading one
//! shows no secret; the token state (refresh and access tokens) is never shown. Changes
//! are audited like source changes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiBytes, ApiPath, ApiQuery, ManageConnections, ReadConnections, Tenant};
use super::harvest::{audit, definition_error, harvester, PathMap, H};
use super::AppState;
use crate::harvest::runtime::HarvestError;
use crate::harvest::source::{ConnectionDef, ConnectionName};
use crate::store::{ConnectionRow, MAX_CONNECTIONS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

fn name_in(p: &std::collections::HashMap<String, String>) -> Result<ConnectionName, ApiError> {
    ConnectionName::parse(p.get("name").map_or("", String::as_str))
        .map_err(|e| ApiError::invalid(format!("path: {e}")))
}

fn view(row: &ConnectionRow, def: &ConnectionDef) -> Value {
    json!({
        "name": row.name,
        "auth": def.auth,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
    })
}

pub(super) async fn list(
    t: Tenant<ReadConnections>,
    h: H,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_CONNECTIONS {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_CONNECTIONS}"
        )));
    }
    let rows = h.list_connections(&t.id, q.after.as_deref(), limit).await?;
    let next = super::cursor::next_key(&rows, limit, |(r, _)| r.name.clone());
    let items: Vec<Value> = rows.iter().map(|(r, d)| view(r, d)).collect();
    Ok(Json(json!({"connections": items, "next": next})))
}

pub(super) async fn get(
    t: Tenant<ReadConnections>,
    h: H,
    ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let name = name_in(&p)?;
    let (row, def) = h.connection(&t.id, &name).await?;
    Ok(Json(view(&row, &def)))
}

pub(super) async fn put(
    t: Tenant<ManageConnections>,
    State(st): State<AppState>,
    h: H,
    ApiPath(p): PathMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let h = harvester(h)?;
    let name = name_in(&p)?;
    let def = match ConnectionDef::parse_untrusted(&body) {
        Ok(d) => d,
        Err(e) => return Ok(definition_error(e)),
    };
    let created = h.put_connection(&t.id, &name, &def).await?;
    let (row, def) = h.connection(&t.id, &name).await?;
    let (action, status) = if created {
        ("connection.created", StatusCode::CREATED)
    } else {
        ("connection.replaced", StatusCode::OK)
    };
    let kind = serde_json::to_value(&def.auth)
        .ok()
        .and_then(|v| v.get("type").cloned())
        .unwrap_or(Value::Null);
    audit(&st, &t, action, name.as_str(), json!({"type": kind})).await?;
    Ok((status, Json(view(&row, &def))).into_response())
}

pub(super) async fn delete(
    t: Tenant<ManageConnections>,
    State(st): State<AppState>,
    h: H,
    ApiPath(p): PathMap,
) -> Result<Response, ApiError> {
    let h = harvester(h)?;
    let name = name_in(&p)?;
    match h.delete_connection(&t.id, &name).await {
        Ok(()) => {
            audit(&st, &t, "connection.deleted", name.as_str(), json!({})).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(HarvestError::ConnectionInUse { name, sources }) => {
            let listed = sources.clone();
            let e = HarvestError::ConnectionInUse { name, sources };
            // The names are in the body too, for a client to act on without parsing text.
            let body = json!({"error": {"code": e.kind().code(), "message": e.to_string(), "sources": listed}});
            Ok((e.kind().http_status(), Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
