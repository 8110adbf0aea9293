//! Tenant endpoints (global admin): create, list, get, update, delete.
//!
//! Delete removes the tenant's row, keys and database files; `erase=true` also records a
//! request to erase its replica objects and hands it to the replicator's [`ReplicaEraser`]
//! (pending until replication implements it). Every change is audited.
//!
//! [`ReplicaEraser`]: crate::store::ReplicaEraser

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Global, ManageTenants, TenantPath};
use super::{audit_entry, AppState};
use crate::store::{EraseStatus, Quotas, TenantPatch, GLOBAL_CHAIN, MAX_TENANT_LIST};
use crate::tenant::TenantId;

const MAX_DISPLAY_NAME: usize = 200;
const MAX_SETTINGS_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    quotas: Option<Quotas>,
    #[serde(default)]
    settings: Option<Value>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.chars().count() > MAX_DISPLAY_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "field `display_name`: 1 to {MAX_DISPLAY_NAME} characters, no control characters"
        )));
    }
    Ok(())
}

fn check_quotas(q: &Quotas) -> Result<(), ApiError> {
    for (name, v) in [
        ("storage_bytes", q.storage_bytes),
        ("records", q.records),
        ("sources", q.sources),
        ("runs_per_day", q.runs_per_day),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(ApiError::invalid(format!(
                "field `quotas.{name}`: a count of 0 or more, or null for unlimited"
            )));
        }
    }
    Ok(())
}

fn check_settings(s: &Value) -> Result<(), ApiError> {
    if !s.is_object() || s.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::invalid(format!(
            "field `settings`: a JSON object of at most {MAX_SETTINGS_BYTES} bytes"
        )));
    }
    Ok(())
}

pub async fn create(
    g: Global<ManageTenants>,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, ApiError> {
    let id =
        TenantId::parse(&body.id).map_err(|e| ApiError::invalid(format!("field `id`: {e}")))?;
    let name = body.display_name.unwrap_or_else(|| id.to_string());
    check_name(&name)?;
    let quotas = body.quotas.unwrap_or_default();
    check_quotas(&quotas)?;
    let settings = body.settings.unwrap_or_else(|| json!({}));
    check_settings(&settings)?;
    let audit = audit_entry(
        &g.principal,
        &g.remote,
        GLOBAL_CHAIN,
        "tenant.created",
        id.as_str(),
        json!({"display_name": name, "quotas": quotas}),
    );
    let row = st
        .store
        .create_tenant_audited(
            &id,
            &name,
            quotas,
            settings,
            st.api.reuse_after_ms,
            st.auth.audit_key(),
            audit,
        )
        .await?;
    st.auth.invalidate_tenant(&id);
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_TENANT_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_TENANT_LIST}"
        )));
    }
    if let Some(a) = &q.after {
        TenantId::parse(a).map_err(|e| ApiError::invalid(format!("`after`: {e}")))?;
    }
    let rows = st
        .store
        .list_tenant_details(q.after.as_deref(), limit)
        .await?;
    let next = super::cursor::next_key(&rows, limit, |r| r.id.clone());
    Ok(Json(json!({"tenants": rows, "next": next})).into_response())
}

pub async fn get(
    _: Global<ManageTenants>,
    State(st): State<AppState>,
    TenantPath(id): TenantPath,
) -> Result<Response, ApiError> {
    Ok(Json(st.store.get_tenant_details(&id).await?).into_response())
}

/// `Some(None)` for an explicit null is not needed here: quotas are replaced whole.
fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default, deserialize_with = "some")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    quotas: Option<Quotas>,
    #[serde(default, deserialize_with = "some")]
    settings: Option<Value>,
}

pub async fn update(
    g: Global<ManageTenants>,
    State(st): State<AppState>,
    TenantPath(id): TenantPath,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Response, ApiError> {
    if body.display_name.is_none() && body.quotas.is_none() && body.settings.is_none() {
        return Err(ApiError::invalid(
            "give at least one of `display_name`, `quotas`, `settings`",
        ));
    }
    if let Some(n) = &body.display_name {
        check_name(n)?;
    }
    if let Some(q) = &body.quotas {
        check_quotas(q)?;
    }
    if let Some(s) = &body.settings {
        check_settings(s)?;
    }
    let detail = json!({
        "display_name": body.display_name, "quotas": body.quotas,
        "settings_changed": body.settings.is_some(),
    });
    let audit = audit_entry(
        &g.principal,
        &g.remote,
        id.as_str(),
        "tenant.updated",
        id.as_str(),
        detail,
    );
    let row = st
        .store
        .update_tenant(
            &id,
            TenantPatch {
                display_name: body.display_name,
                quotas: body.quotas,
                settings: body.settings,
            },
            st.auth.audit_key(),
            audit,
        )
        .await;
    st.auth.invalidate_tenant(&id);
    Ok(Json(row?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    erase: Option<bool>,
}

pub async fn delete(
    g: Global<ManageTenants>,
    State(st): State<AppState>,
    TenantPath(id): TenantPath,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let erase = q.erase.unwrap_or(false);
    let mut audits = Vec::new();
    for chain in [GLOBAL_CHAIN, id.as_str()] {
        audits.push(audit_entry(
            &g.principal,
            &g.remote,
            chain,
            "tenant.deleted",
            id.as_str(),
            json!({"erase": erase}),
        ));
        if erase {
            audits.push(audit_entry(
                &g.principal,
                &g.remote,
                chain,
                "erasure.requested",
                id.as_str(),
                json!({"status": "pending"}),
            ));
        }
    }
    let r = st
        .store
        .delete_tenant(&id, erase, st.auth.audit_key(), audits)
        .await;
    st.auth.invalidate_tenant(&id);
    r?;
    let mut status = if erase {
        EraseStatus::Pending
    } else {
        EraseStatus::NotRequested
    };
    if erase {
        match st.eraser.erase(&id).await {
            Ok(s) => status = s,
            Err(e) => {
                tracing::warn!(tenant = %id, error = %e, "replica erasure failed");
                status = EraseStatus::Failed;
            }
        }
        if status != EraseStatus::Pending {
            st.store.set_erase_status(id.as_str(), status).await?;
            st.store
                .append_audit(
                    st.auth.audit_key(),
                    audit_entry(
                        &g.principal,
                        &g.remote,
                        GLOBAL_CHAIN,
                        "erasure.finished",
                        id.as_str(),
                        json!({"status": status.as_str()}),
                    ),
                )
                .await?;
        }
    }
    Ok(Json(json!({
        "deleted": id,
        "erase": {
            "requested": erase,
            "status": status.as_str(),
        },
    }))
    .into_response())
}
