//! The incremental cursor of a source: read it, or reset it so the next run starts over.
//!
//! ```text
//! GET    /v1/tenants/{tenant}/sources/{source}/cursor   {"source", "cursor": {...}|null}  reader
//! DELETE /v1/tenants/{tenant}/sources/{source}/cursor   reset (204, also when none)       editor
//! ```
//!
//! A reset during a run wins: that run does not store the cursor it was moving (see
//! `harvest::runtime::incremental`). Resets are audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ReadSources, Tenant, WriteSources};
use super::harvest::{audit, harvester, source_in, PathMap, H};
use super::AppState;
use crate::harvest::source::SourceSpec;

pub(super) async fn get_cursor(
    t: Tenant<ReadSources>,
    h: H,
    super::extract::ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let id = source_in(&p)?;
    let (_, def) = h.source(&t.id, id.as_str()).await?;
    let incremental = matches!(&def.spec, SourceSpec::Json(s) if s.incremental.is_some());
    let cursor = t.db.source_cursor(id.as_str()).await?;
    Ok(Json(json!({
        "source": id.as_str(),
        "incremental": incremental,
        "cursor": cursor.map(|c| json!({
            "basis": c.basis, "value": c.value, "run_id": c.run_id, "updated_ms": c.updated_ms,
        })),
    })))
}

pub(super) async fn delete_cursor(
    t: Tenant<WriteSources>,
    State(st): State<AppState>,
    h: H,
    super::extract::ApiPath(p): PathMap,
) -> Result<impl IntoResponse, ApiError> {
    let h = harvester(h)?;
    let id = source_in(&p)?;
    h.source(&t.id, id.as_str()).await?;
    let had = t.db.delete_source_cursor(id.as_str()).await?;
    audit(
        &st,
        &t,
        "source.cursor_reset",
        id.as_str(),
        json!({"had_cursor": had}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
