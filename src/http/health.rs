//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::error::ErrorKind;

/// The process is alive and serving HTTP. Nothing else is checked, so an orchestrator
/// restarts the process only when it is really stuck.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The node can do its job: not shutting down, control.db accepts the write lock, and (with
/// replication on) no database's replication lag or WAL is past its configured bound.
///
/// Scheduled replica verification is reported under `checks.replica_verify` (oldest age,
/// failed databases, up to ten named) but never makes the node unready: a replica that does
/// not verify is an operator's alert, and taking the node out of service neither repairs
/// it nor protects new data — shipping goes on either way.
pub async fn readyz(State(st): State<AppState>) -> Result<Response, ApiError> {
    if st.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::new(ErrorKind::ShuttingDown, "shutting down"));
    }
    if let Some(r) = &st.replication {
        if let Some(problem) = r.health().problem {
            return Err(ApiError::new(ErrorKind::Unavailable, problem));
        }
    }
    match tokio::time::timeout(Duration::from_secs(2), st.store.ready()).await {
        Ok(Ok(())) => {
            let mut checks = json!({"store": "ok"});
            if let Some(r) = &st.replication {
                checks["replica_verify"] = json!(r.verify_board().summary());
            }
            Ok(Json(json!({"status": "ready", "checks": checks})).into_response())
        }
        Ok(Err(e)) => Err(ApiError::new(
            ErrorKind::Unavailable,
            format!("store not writable: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorKind::Unavailable,
            "store did not answer within 2s",
        )),
    }
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.prometheus.render(),
    )
        .into_response()
}
