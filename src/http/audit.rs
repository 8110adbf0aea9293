//! Audit endpoints: a tenant's chain (tenant-admin) and the global chain (admin), listed in
//! order and verified link by link.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiQuery, Global, ReadAudit, ReadGlobalAudit, Tenant};
use super::AppState;
use crate::store::GLOBAL_CHAIN;

const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

async fn list(st: &AppState, chain: &str, q: ListQuery) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_LIMIT}"
        )));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid(
            "`after` must be a sequence number, 0 or more",
        ));
    }
    let entries = st.store.list_audit(chain, after, limit).await?;
    let next = super::cursor::next_key(&entries, limit, |e| e.seq);
    Ok(Json(json!({"entries": entries, "next": next})).into_response())
}

pub async fn tenant_list(
    t: Tenant<ReadAudit>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&st, t.id.as_str(), q).await
}

pub async fn tenant_verify(
    t: Tenant<ReadAudit>,
    State(st): State<AppState>,
) -> Result<Response, ApiError> {
    Ok(Json(
        st.store
            .verify_audit(st.auth.audit_key(), t.id.as_str())
            .await?,
    )
    .into_response())
}

pub async fn global_list(
    _: Global<ReadGlobalAudit>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&st, GLOBAL_CHAIN, q).await
}

pub async fn global_verify(
    _: Global<ReadGlobalAudit>,
    State(st): State<AppState>,
) -> Result<Response, ApiError> {
    Ok(Json(
        st.store
            .verify_audit(st.auth.audit_key(), GLOBAL_CHAIN)
            .await?,
    )
    .into_response())
}
