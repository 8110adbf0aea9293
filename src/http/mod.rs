//! The HTTP API server: routing, middleware, and the connection loop.
//!
//! Route handlers live in their own files; [`routes`] is the one table of every route with
//! its method and declared permission, from which both the router and the OpenAPI document's
//! consistency test are built. This module adds the layers (request id, tracing span,
//! metrics, timeout, body cap, compression, security headers, CORS, rate-limit headers,
//! panic catching); [`server`] runs the accept loop (plain or TLS): a semaphore caps open
//! connections, hyper enforces a header-read timeout, and shutdown stops accepting, lets
//! in-flight requests finish within a bound, then returns so the caller can flush the store.
//! [`head_errors`] gives the requests hyper refuses before routing the same JSON error.

mod audit;
mod changes;
mod connections;
mod cursor;
mod error;
mod extract;
mod harvest;
mod head_errors;
mod health;
mod keys;
mod middleware;
pub mod openapi;
mod record_json;
mod records;
mod routes;
mod run_review;
mod server;
mod source_cursors;
mod tenants;
mod tls;
mod usage;

pub use error::ApiError;
pub use routes::{route_table, RouteInfo};
pub use server::{serve, Drained};
pub use tls::{TlsError, TlsReloader};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{now_ms, Auth, Principal};
use crate::config::{AuthConfig, HttpConfig, LimitsConfig};
use crate::cpu::CpuPool;
use crate::store::{AuditEntry, ReplicaEraser, Store};
use extract::Remote;

/// Settings the handlers read.
pub struct ApiSettings {
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    /// A deleted tenant's id may be reused after this long (its database must have been
    /// closed by the idle sweeper first).
    pub reuse_after_ms: i64,
    /// Default of an export's `neutralize_formulas` (`http.csv_neutralize_formulas`).
    pub csv_neutralize_formulas: bool,
}

/// What every handler can reach, behind one `Arc`: axum clones the state into every
/// request's handler service and extractors, and cloning and dropping a struct of many
/// `Arc`s cost two contended atomic operations per field each time (its drop alone was
/// 1.5% of a record list request's CPU on 2 cores).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub store: Arc<Store>,
    pub prometheus: PrometheusHandle,
    pub auth: Arc<Auth>,
    pub cpu: CpuPool,
    pub api: Arc<ApiSettings>,
    pub eraser: Arc<dyn ReplicaEraser>,
    pub shutting_down: Arc<AtomicBool>,
    /// The replicator, when replication is on (its lag and WAL bounds gate readiness).
    pub replication: Option<crate::replicate::runtime::Replicator>,
}

/// An audit entry for an action taken by `p` from `remote`.
pub(crate) fn audit_entry(
    p: &Principal,
    remote: &Remote,
    chain: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        tenant: chain.to_owned(),
        at_ms: now_ms(),
        actor: p.actor.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        remote: remote.text(),
        outcome: "success".into(),
        detail,
    }
}

/// The complete router with all layers.
pub fn router(state: AppState, cfg: &HttpConfig) -> Router {
    let api = routes::routes().into_router().with_state(state);
    middleware::layers(api, cfg, Duration::from_millis(cfg.request_timeout_ms))
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes as usize))
}
