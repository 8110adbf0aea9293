//! Accepting a run the anomaly guard held (`POST .../runs/{run}/accept`, `sources:write`),
//! or dismissing it (`POST .../runs/{run}/dismiss`).
//!
//! A held run (`anomalous`) marked nothing removed; accepting it applies the removals it
//! would have made (recomputed in the store, see `store::run_guard`) and makes it
//! `accepted`, so it joins the source's baseline. Audited as `run.accepted` with the number
//! of records marked. Dismissing makes it `dismissed`: its removals are never applied and it
//! never joins the baseline (audited as `run.dismissed`). Either on any other run is a 409
//! naming its status.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::extract::{Tenant, WriteSources};
use super::harvest::{audit, run_in, run_not_found, source_in, PathMap};
use super::AppState;
use crate::error::ErrorKind;
use crate::store::AcceptOutcome;

pub(super) async fn accept(
    t: Tenant<WriteSources>,
    State(st): State<AppState>,
    super::extract::ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = source_in(&p)?;
    let run = run_in(&p)?;
    let note = format!("accepted by {}", t.principal.actor);
    match t.db.accept_run(id.as_str(), run, note).await? {
        AcceptOutcome::Accepted { removed } => {
            audit(
                &st,
                &t,
                "run.accepted",
                id.as_str(),
                json!({"run": run, "records_removed": removed}),
            )
            .await?;
            tracing::info!(tenant = %t.id, source = %id, run, removed, "anomalous run accepted");
            match t.db.get_run(id.as_str(), run).await? {
                Some(r) => Ok(Json(r)),
                None => Err(run_not_found(&id, run)),
            }
        }
        AcceptOutcome::NotFound => Err(run_not_found(&id, run)),
        AcceptOutcome::NotAnomalous(status) => Err(not_held(&id, run, &status)),
    }
}

pub(super) async fn dismiss(
    t: Tenant<WriteSources>,
    State(st): State<AppState>,
    super::extract::ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = source_in(&p)?;
    let run = run_in(&p)?;
    let note = format!("dismissed by {}", t.principal.actor);
    match t.db.dismiss_run(id.as_str(), run, note).await? {
        AcceptOutcome::Accepted { .. } => {
            audit(&st, &t, "run.dismissed", id.as_str(), json!({"run": run})).await?;
            match t.db.get_run(id.as_str(), run).await? {
                Some(r) => Ok(Json(r)),
                None => Err(run_not_found(&id, run)),
            }
        }
        AcceptOutcome::NotFound => Err(run_not_found(&id, run)),
        AcceptOutcome::NotAnomalous(status) => Err(not_held(&id, run, &status)),
    }
}

fn not_held(id: &impl std::fmt::Display, run: i64, status: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Conflict,
        format!("run {run} of source {id} is {status}, not anomalous; only a held run can be accepted or dismissed"),
    )
}
