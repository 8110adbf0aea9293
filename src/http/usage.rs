//! Usage of a tenant (tenant-admin): storage, records, and API requests and harvest runs
//! per day. Requests counted since the last flush are included.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::{ApiQuery, ReadUsage, Tenant};
use super::AppState;
use crate::auth::meter::day_of;
use crate::auth::now_ms;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    days: Option<u32>,
}

pub async fn get(
    t: Tenant<ReadUsage>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::invalid("`days` must be 1 to 366"));
    }
    let now = now_ms();
    let from = day_of(now - i64::from(days - 1) * 86_400_000);
    let mut rows = st.store.usage_days(t.id.as_str(), &from).await?;
    let today = day_of(now);
    let pending = st.auth.meter.pending_requests(t.id.as_str(), &today);
    if pending > 0 {
        match rows.iter_mut().find(|r| r.day == today) {
            Some(r) => r.api_requests += pending,
            None => rows.push(crate::store::UsageDay {
                day: today,
                api_requests: pending,
                runs: 0,
            }),
        }
    }
    let size = t.db.size().await?;
    Ok(Json(json!({
        "tenant": t.id,
        "storage_bytes": size.storage_bytes,
        "records": size.records,
        "quotas": t.details.quotas,
        "days": rows,
    }))
    .into_response())
}
