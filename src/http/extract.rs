//! Extractors: JSON rejections for malformed input, and the one place a request gets its
//! principal and a tenant's database handle.
//!
//! axum's own extractors answer malformed input with plain-text bodies; [`ApiJson`],
//! [`ApiQuery`] and [`ApiPath`] wrap them so every 4xx has the same JSON shape. Unknown
//! fields are rejected by the target types (`deny_unknown_fields`), and the body cap comes
//! from `DefaultBodyLimit`.
//!
//! [`Tenant<P>`] is the only way a handler reaches a tenant's database: it authenticates,
//! checks permission `P` for the tenant in the path, applies the rate limits, checks the
//! tenant exists, and only then asks the store for the handle. [`Global<P>`] does the same
//! for endpoints not tied to a tenant. Failures are audited (throttled).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::{now_ms, Permission, Principal, RateInfo};
use crate::error::ErrorKind;
use crate::store::{AuditEntry, TenantDb, TenantDetails, GLOBAL_CHAIN};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn body_too_large() -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        "request body is larger than http.max_body_bytes allows",
    )
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    if status == http::StatusCode::PAYLOAD_TOO_LARGE {
        return body_too_large();
    }
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("expected a JSON body with `content-type: application/json`")
        }
        other => ApiError::invalid(format!("invalid JSON body: {}", other.body_text())),
    }
}

/// A raw body (pushes, source definitions), capped like every body.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(ApiBytes(b)),
            Err(r) if r.status() == http::StatusCode::PAYLOAD_TOO_LARGE => Err(body_too_large()),
            Err(r) => Err(ApiError::invalid(format!(
                "cannot read the request body: {}",
                r.body_text()
            ))),
        }
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| {
                ApiError::invalid(format!("invalid query: {}", r.body_text()))
            })
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| {
                ApiError::invalid(format!("invalid path: {}", r.body_text()))
            })
    }
}

/// The `{tenant}` path parameter, validated before anything else sees it.
pub struct TenantPath(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(map) =
            ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let raw = map
            .get("tenant")
            .ok_or_else(|| ApiError::new(ErrorKind::Internal, "route has no {tenant}"))?;
        Ok(TenantPath(TenantId::parse(raw)?))
    }
}

/// The client's address as the audit log records it.
#[derive(Debug, Clone)]
pub struct Remote(pub Option<SocketAddr>);

impl Remote {
    pub(super) fn of(parts: &Parts) -> Remote {
        Remote(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        )
    }

    pub fn text(&self) -> String {
        self.0
            .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
    }
}

/// Where the extractor leaves the rate-limit state for the response headers (inserted by
/// the `rate_limit_headers` middleware).
#[derive(Clone, Default)]
pub struct RateSlot(pub Arc<Mutex<Option<RateInfo>>>);

/// A permission an endpoint declares, as a type.
pub trait Perm: Send + Sync + 'static {
    const PERM: Permission;
}

/// One marker type per permission, from the list in `auth::roles`.
macro_rules! perms {
    ($($(#[$doc:meta])* $name:ident = $text:literal, $role:ident;)*) => {$(
        #[doc = concat!("Marker for [`Permission::", stringify!($name), "`].")]
        pub struct $name;
        impl Perm for $name {
            const PERM: Permission = Permission::$name;
        }
    )*};
}

crate::auth::roles::permissions!(perms);

/// An authenticated, authorized request on a global endpoint.
pub struct Global<P> {
    pub principal: Principal,
    pub remote: Remote,
    _p: PhantomData<P>,
}

/// An authenticated, authorized request on one existing tenant, with its database.
pub struct Tenant<P> {
    pub id: TenantId,
    pub details: Arc<TenantDetails>,
    pub db: TenantDb,
    pub principal: Principal,
    pub remote: Remote,
    _p: PhantomData<P>,
}

pub(super) fn failure_entry(
    chain: &str,
    action: &str,
    actor: &str,
    parts: &Parts,
    remote: &Remote,
    reason: &str,
) -> AuditEntry {
    AuditEntry {
        tenant: chain.to_owned(),
        at_ms: now_ms(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: format!("{} {}", parts.method, parts.uri.path()),
        remote: remote.text(),
        outcome: "denied".into(),
        detail: serde_json::json!({"reason": reason}),
    }
}

/// The tenant's audit chain if the path names an existing tenant, else the global chain.
async fn chain_for(st: &AppState, tenant: Option<&TenantId>) -> String {
    match tenant {
        Some(t) => match st.auth.tenant(t).await {
            Ok(Some(_)) => t.to_string(),
            _ => GLOBAL_CHAIN.to_owned(),
        },
        None => GLOBAL_CHAIN.to_owned(),
    }
}

/// Authenticates the request and checks `perm` on `tenant`, auditing failures and applying
/// the rate limits. The extractors below call it; so does the one handler whose credential
/// is optional (pushes to a signed source, which the signature authenticates).
pub(super) async fn authenticate_and_authorize(
    parts: &Parts,
    st: &AppState,
    perm: Permission,
    tenant: Option<&TenantId>,
) -> Result<(Principal, Remote), ApiError> {
    let remote = Remote::of(parts);
    let ip = remote.0.map(|a| a.ip());
    if let Some(ip) = ip {
        st.auth.limits.check_address(ip).inspect_err(|l| {
            metrics::counter!(m::RATE_LIMITED_TOTAL, "scope" => l.scope).increment(1);
        })?;
    }
    let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let header = values.next().map(|v| v.as_bytes());
    if values.next().is_some() {
        // Proxies and frameworks disagree on which of several to use; refuse rather
        // than pick one.
        return Err(ApiError::invalid(
            "send one `Authorization` header, not several",
        ));
    }
    let principal = match st.auth.authenticate(header).await {
        Ok(p) => p,
        Err(e) => {
            let err = ApiError::from(e);
            if err.kind == ErrorKind::Unauthenticated {
                metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "unauthenticated")
                    .increment(1);
                let chain = chain_for(st, tenant).await;
                st.auth.audit_failure(
                    failure_entry(
                        &chain,
                        "auth.failed",
                        "anonymous",
                        parts,
                        &remote,
                        &err.message,
                    ),
                    ip,
                );
                if let Some(ip) = ip {
                    st.auth.limits.authentication_failed(ip).inspect_err(|l| {
                        metrics::counter!(m::RATE_LIMITED_TOTAL, "scope" => l.scope).increment(1);
                    })?;
                }
            }
            return Err(err);
        }
    };
    if let Err(d) = principal.authorize(perm, tenant) {
        metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "forbidden").increment(1);
        // Denials are recorded in the chain of the principal's own tenant (the one whose
        // admins can act on it), or the global chain.
        let chain = chain_for(st, principal.tenant.as_ref()).await;
        let reason = format!("{d} (needs {})", perm.as_str());
        st.auth.audit_failure(
            failure_entry(
                &chain,
                "permission.denied",
                &principal.actor,
                parts,
                &remote,
                &reason,
            ),
            remote.0.map(|a| a.ip()),
        );
        return Err(d.into());
    }
    let info = st
        .auth
        .limits
        .check(&principal.actor, tenant.map(TenantId::as_str))
        .inspect_err(|l| {
            metrics::counter!(m::RATE_LIMITED_TOTAL, "scope" => l.scope).increment(1);
        })?;
    if let (Some(info), Some(slot)) = (info, parts.extensions.get::<RateSlot>()) {
        if let Ok(mut s) = slot.0.lock() {
            *s = Some(info);
        }
    }
    Ok((principal, remote))
}

impl<P: Perm> FromRequestParts<AppState> for Global<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let (principal, remote) = authenticate_and_authorize(parts, st, P::PERM, None).await?;
        Ok(Global {
            principal,
            remote,
            _p: PhantomData,
        })
    }
}

impl<P: Perm> FromRequestParts<AppState> for Tenant<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let TenantPath(id) = TenantPath::from_request_parts(parts, st).await?;
        let (principal, remote) = authenticate_and_authorize(parts, st, P::PERM, Some(&id)).await?;
        let details = st
            .auth
            .tenant(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("tenant {id} does not exist")))?;
        let db = st.store.tenant_db(&id).await?;
        st.auth.meter.request(id.as_str(), now_ms());
        Ok(Tenant {
            id,
            details,
            db,
            principal,
            remote,
            _p: PhantomData,
        })
    }
}
