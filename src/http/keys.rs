//! API key endpoints: a tenant's keys (tenant-admin of that tenant, or admin) and global
//! admin keys (admin). The secret is in the create and rotate answers only; lists and gets
//! never show it. Every change is audited in the same write and invalidates the
//! authentication cache before the answer is sent, so a revoked key fails from the very
//! next request.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{
    ApiJson, ApiPath, ApiQuery, Global, ManageAdminKeys, ManageKeys, Remote, Tenant,
};
use super::{audit_entry, AppState};
use crate::auth::keys::valid_id;
use crate::auth::{now_ms, Principal, Role};
use crate::error::ErrorKind;
use crate::store::{NewApiKey, GLOBAL_CHAIN, MAX_KEY_LIST};

const MAX_NAME: usize = 200;
const MAX_EXPIRY_SECS: u64 = 10 * 365 * 86400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    role: Option<Role>,
    expires_in_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateQuery {
    grace_secs: Option<u64>,
}

/// Whose keys: one tenant's, or the global admin keys.
struct Scope<'a> {
    tenant: Option<&'a str>,
    principal: &'a Principal,
    remote: &'a Remote,
}

impl Scope<'_> {
    fn chain(&self) -> &str {
        self.tenant.unwrap_or(GLOBAL_CHAIN)
    }
}

fn key_id(raw: &str) -> Result<&str, ApiError> {
    if valid_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::invalid(
            "key id must be 16 lowercase hex characters",
        ))
    }
}

async fn create(st: &AppState, s: Scope<'_>, body: CreateKey) -> Result<Response, ApiError> {
    if body.name.is_empty()
        || body.name.chars().count() > MAX_NAME
        || body.name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "field `name`: 1 to {MAX_NAME} characters, no control characters"
        )));
    }
    let role =
        match (s.tenant, body.role) {
            (None, None | Some(Role::Admin)) => Role::Admin,
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "field `role`: global keys are `admin` keys",
                ))
            }
            (Some(_), None) => {
                return Err(ApiError::invalid(
                    "field `role`: one of tenant-admin, editor, reader",
                ))
            }
            (Some(_), Some(Role::Admin)) => return Err(ApiError::invalid(
                "field `role`: a tenant key cannot be `admin`; use tenant-admin, editor or reader",
            )),
            (Some(_), Some(r)) => r,
        };
    if role > s.principal.role {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("a `{}` cannot create a `{role}` key", s.principal.role),
        ));
    }
    let now = now_ms();
    let expires_ms = match body.expires_in_secs {
        Some(0) => return Err(ApiError::invalid("field `expires_in_secs`: at least 1")),
        Some(n) if n > MAX_EXPIRY_SECS => {
            return Err(ApiError::invalid(format!(
                "field `expires_in_secs`: at most {MAX_EXPIRY_SECS}"
            )))
        }
        Some(n) => Some(now + n as i64 * 1000),
        None => None,
    };
    let token = st
        .auth
        .hasher()
        .generate()
        .map_err(|_| ApiError::new(ErrorKind::Unavailable, "no randomness available"))?;
    let audit = audit_entry(
        s.principal,
        s.remote,
        s.chain(),
        "key.created",
        &token.id,
        json!({"role": role.as_str(), "name": body.name, "expires_ms": expires_ms}),
    );
    let row = st
        .store
        .insert_api_key(
            NewApiKey {
                id: token.id.clone(),
                tenant: s.tenant.map(str::to_owned),
                role: role.as_str().to_owned(),
                name: body.name,
                secret_hash: token.secret_hash,
                created_ms: now,
                created_by: s.principal.actor.clone(),
                expires_ms,
            },
            st.auth.audit_key(),
            audit,
        )
        .await?;
    // A lookup of this id before it existed may have been cached as "no such key".
    st.auth.invalidate_key(&row.id);
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": row, "token": token.token})),
    )
        .into_response())
}

async fn list(st: &AppState, s: Scope<'_>, q: ListQuery) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_KEY_LIST {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to {MAX_KEY_LIST}"
        )));
    }
    if let Some(a) = &q.after {
        key_id(a)?;
    }
    let rows = st
        .store
        .list_api_keys(s.tenant, q.after.as_deref(), limit)
        .await?;
    let next = super::cursor::next_key(&rows, limit, |r| r.id.clone());
    Ok(Json(json!({"keys": rows, "next": next})).into_response())
}

async fn get(st: &AppState, s: Scope<'_>, id: &str) -> Result<Response, ApiError> {
    Ok(Json(st.store.get_api_key(s.tenant, key_id(id)?).await?).into_response())
}

async fn rotate(
    st: &AppState,
    s: Scope<'_>,
    id: &str,
    q: RotateQuery,
) -> Result<Response, ApiError> {
    let id = key_id(id)?;
    let max = st.api.auth.max_key_rotation_grace_secs;
    let grace = q.grace_secs.unwrap_or(st.api.auth.key_rotation_grace_secs);
    if grace > max {
        return Err(ApiError::invalid(format!(
            "`grace_secs` must be 0 to {max}"
        )));
    }
    let token = st
        .auth
        .hasher()
        .generate()
        .map_err(|_| ApiError::new(ErrorKind::Unavailable, "no randomness available"))?;
    let now = now_ms();
    let until = now + grace as i64 * 1000;
    let audit = audit_entry(
        s.principal,
        s.remote,
        s.chain(),
        "key.rotated",
        id,
        json!({"grace_secs": grace}),
    );
    // The new token keeps the key's id: only the secret part changes.
    let secret = crate::auth::keys::parse(&token.token)
        .map(|(_, s)| s.to_owned())
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "generated token does not parse"))?;
    let new_hash = st.auth.hasher().hash(&secret);
    let row = st
        .store
        .rotate_api_key(
            s.tenant,
            id,
            new_hash,
            now,
            until,
            st.auth.audit_key(),
            audit,
        )
        .await?;
    st.auth.invalidate_key(id);
    let token = format!("{}{}_{}", crate::auth::keys::PREFIX, id, secret);
    Ok(Json(json!({"key": row, "token": token})).into_response())
}

async fn revoke(st: &AppState, s: Scope<'_>, id: &str) -> Result<Response, ApiError> {
    let id = key_id(id)?;
    let audit = audit_entry(
        s.principal,
        s.remote,
        s.chain(),
        "key.revoked",
        id,
        json!({}),
    );
    let row = st
        .store
        .revoke_api_key(s.tenant, id, now_ms(), st.auth.audit_key(), audit)
        .await;
    // Invalidate even on error: it costs one read and can never be wrong.
    st.auth.invalidate_key(id);
    Ok(Json(row?).into_response())
}

fn tscope<P>(t: &Tenant<P>) -> Scope<'_> {
    Scope {
        tenant: Some(t.id.as_str()),
        principal: &t.principal,
        remote: &t.remote,
    }
}

fn gscope<P>(g: &Global<P>) -> Scope<'_> {
    Scope {
        tenant: None,
        principal: &g.principal,
        remote: &g.remote,
    }
}

pub async fn tenant_create(
    t: Tenant<ManageKeys>,
    State(st): State<AppState>,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    create(&st, tscope(&t), b).await
}

pub async fn tenant_list(
    t: Tenant<ManageKeys>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&st, tscope(&t), q).await
}

pub async fn tenant_get(
    t: Tenant<ManageKeys>,
    State(st): State<AppState>,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    get(&st, tscope(&t), &id).await
}

pub async fn tenant_rotate(
    t: Tenant<ManageKeys>,
    State(st): State<AppState>,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RotateQuery>,
) -> Result<Response, ApiError> {
    rotate(&st, tscope(&t), &id, q).await
}

pub async fn tenant_revoke(
    t: Tenant<ManageKeys>,
    State(st): State<AppState>,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    revoke(&st, tscope(&t), &id).await
}

pub async fn admin_create(
    g: Global<ManageAdminKeys>,
    State(st): State<AppState>,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    create(&st, gscope(&g), b).await
}

pub async fn admin_list(
    g: Global<ManageAdminKeys>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&st, gscope(&g), q).await
}

pub async fn admin_get(
    g: Global<ManageAdminKeys>,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    get(&st, gscope(&g), &id).await
}

pub async fn admin_rotate(
    g: Global<ManageAdminKeys>,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RotateQuery>,
) -> Result<Response, ApiError> {
    rotate(&st, gscope(&g), &id, q).await
}

pub async fn admin_revoke(
    g: Global<ManageAdminKeys>,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    revoke(&st, gscope(&g), &id).await
}
