//! What changed (tenant `reader`, `changes:read`): the records a harvest run added, changed
//! and removed, in signed-cursor pages like the record list; and the difference between two
//! versions of one record as an RFC 6902 JSON Patch (computed by the `json-patch` crate on
//! the CPU pool, from payloads the store reads with its hard size cap).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::cursor;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, ReadChanges, Tenant};
use super::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Cursors of one run's pages are bound to the tenant and the run.
fn fingerprint(tenant: &str, run: i64) -> Vec<u8> {
    serde_json::to_vec(&json!(["run-changes", tenant, run])).unwrap_or_default()
}

pub async fn run_changes(
    t: Tenant<ReadChanges>,
    State(st): State<AppState>,
    ApiPath((_, run)): ApiPath<(String, i64)>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Result<Response, ApiError> {
    if run < 1 {
        return Err(ApiError::invalid("run id must be a positive integer"));
    }
    let max = st.api.limits.max_page_size;
    let limit = q.limit.unwrap_or(st.api.limits.default_page_size);
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(format!("`limit` must be 1 to {max}")));
    }
    let key = &st.auth.derived.cursor;
    let fp = fingerprint(t.id.as_str(), run);
    let after = match &q.cursor {
        Some(c) => cursor::decode(key, c, &fp)?,
        None => 0,
    };
    let page = t.db.run_changes(run, after, limit).await?;
    let next = page.next_after.map(|id| cursor::encode(key, id, &fp));
    Ok(Json(json!({
        "run": page.run_id,
        "source": page.source,
        "retained": page.retained,
        "changes": page.changes,
        "next": next,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

pub async fn diff(
    t: Tenant<ReadChanges>,
    State(st): State<AppState>,
    ApiPath((_, id)): ApiPath<(String, i64)>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Response, ApiError> {
    if id < 1 {
        return Err(ApiError::invalid("record id must be a positive integer"));
    }
    let Some(from) = q.from else {
        return Err(ApiError::invalid(
            "`from` is required: the version to diff from (1 or more; `to` defaults to the current version)",
        ));
    };
    if from < 1 || q.to.is_some_and(|v| v < 1) {
        return Err(ApiError::invalid(
            "`from` and `to` are record versions: integers of 1 or more",
        ));
    }
    let pair = t.db.record_versions_pair(id, from, q.to).await?;
    let (from, to) = (pair.from, pair.to);
    let patch = st
        .cpu
        .run(move || json_patch::diff(&pair.old, &pair.new))
        .await?;
    Ok(Json(json!({"record_id": id, "from": from, "to": to, "patch": patch})).into_response())
}
