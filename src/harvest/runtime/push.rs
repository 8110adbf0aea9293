//! Records pushed to Gleaner (webhooks), and "fetch resource X of json source Y now".
//!
//! A push body is verified (HMAC-SHA256 over `timestamp.body` with the source's secret,
//! within its time window) before anything is parsed; parsing and encoding run on the CPU
//! pool; the records are written in one operation.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde::Serialize;

use super::auth::{resolve_secret, SourceAuth};
use super::fetch::Request;
use super::politeness::host_key;
use super::{HarvestError, Harvester};
use crate::harvest::extract::json::{extract_json_page, PageState};
use crate::harvest::extract::push::{parse_payload, verify_push, FetchNow};
use crate::harvest::source::SourceSpec;
use crate::store::{encode_payload, PutOutcome, RecordWrite};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

/// What a push (or a fetch-now) stored.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PushOutcome {
    pub source: String,
    pub records: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
}

fn tally(source: &str, outcomes: &[PutOutcome]) -> PushOutcome {
    let mut o = PushOutcome {
        source: source.to_owned(),
        records: outcomes.len() as u64,
        ..PushOutcome::default()
    };
    for x in outcomes {
        match x {
            PutOutcome::New => o.new += 1,
            PutOutcome::Changed { .. } => o.changed += 1,
            PutOutcome::Unchanged => o.unchanged += 1,
        }
    }
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "new").increment(o.new);
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "changed").increment(o.changed);
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "unchanged").increment(o.unchanged);
    o
}

impl Harvester {
    /// Verifies the signature of a body sent to push source `source` (when it requires
    /// one); returns the source's definition for the caller to go on with.
    async fn verified_push_source(
        &self,
        tenant: &TenantId,
        source: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<crate::harvest::source::PushSource, HarvestError> {
        let (_, def) = self.source(tenant, source).await?;
        let SourceSpec::Push(src) = def.spec else {
            return Err(HarvestError::WrongKind {
                source_id: source.to_owned(),
                expected: "push",
            });
        };
        if let Some(sig) = &src.signature {
            let db = self.store.tenant_db(tenant).await?;
            let secret = resolve_secret(&sig.secret, &db, tenant.as_str()).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            verify_push(sig, secret.as_bytes(), headers, body, now)?;
        }
        Ok(src)
    }

    /// Stores the records of a push body.
    pub async fn push(
        &self,
        tenant: &TenantId,
        source: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> Result<PushOutcome, HarvestError> {
        let src = self
            .verified_push_source(tenant, source, headers, &body)
            .await?;
        let ct = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| (*v).to_owned());
        let src_id = source.to_owned();
        let seen_ms = crate::store::now_ms();
        let recs = self
            .cpu
            .run(move || -> Result<Vec<RecordWrite>, HarvestError> {
                let records = parse_payload(&body, ct.as_deref(), &src)?;
                records
                    .into_iter()
                    .map(|r| {
                        Ok(RecordWrite {
                            source: src_id.clone(),
                            key: r.key,
                            payload: encode_payload(&serde_json::Value::Object(r.fields))?,
                            seen_ms,
                        })
                    })
                    .collect()
            })
            .await??;
        let db = self.store.tenant_db(tenant).await?;
        let outcomes = db.put_records(recs).await?;
        self.store
            .set_source_last_run(tenant.as_str(), source, 0, "pushed", Some(seen_ms))
            .await?;
        Ok(tally(source, &outcomes))
    }

    /// A push source's "fetch resource X of json source Y now" request: verified like a
    /// push, then one request to Y with Y's credentials, its records stored under Y.
    pub async fn fetch_now(
        self: &Arc<Self>,
        tenant: &TenantId,
        push_source: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> Result<PushOutcome, HarvestError> {
        self.verified_push_source(tenant, push_source, headers, &body)
            .await?;
        let req = FetchNow::parse_json(&body)?;
        let (_, def) = self.source(tenant, req.source.as_str()).await?;
        let SourceSpec::Json(src) = &def.spec else {
            return Err(HarvestError::WrongKind {
                source_id: req.source.to_string(),
                expected: "json",
            });
        };
        let url = req.resolve(src)?;
        let db = self.store.tenant_db(tenant).await?;
        let sid = req.source.to_string();
        let auth = SourceAuth::new(def.common.auth.as_ref(), &db, tenant.as_str(), &sid).await?;
        let fail = |reason: String| HarvestError::Auth {
            source_id: sid.clone(),
            reason,
        };
        let mut retried = false;
        let resp = loop {
            let (headers, used) = auth.headers(&self.fetcher).await?;
            let limit = def
                .common
                .politeness
                .per_host_concurrency
                .map(|n| n as usize);
            let permit = self
                .hosts
                .acquire(&host_key(&url), Duration::ZERO, limit)
                .await;
            let r = self
                .fetcher
                .send(Request {
                    method: Method::GET,
                    url: url.clone(),
                    headers,
                    form: None,
                    jar: None,
                    credentials: auth.has_credentials(),
                })
                .await
                .map_err(|e| fail(e.to_string()))?;
            drop(permit);
            if r.status.as_u16() == 401 && !retried {
                if let Some(t) = used {
                    auth.invalidate(&t).await;
                    retried = true;
                    continue;
                }
            }
            if !r.status.is_success() {
                return Err(fail(format!("{url}: HTTP {}", r.status.as_u16())));
            }
            break r;
        };
        let def = Arc::new(def);
        let seen_ms = crate::store::now_ms();
        let recs = self
            .cpu
            .run(move || -> Result<Vec<RecordWrite>, HarvestError> {
                let SourceSpec::Json(src) = &def.spec else {
                    return Ok(Vec::new());
                };
                let hv: Vec<(&str, &str)> = resp
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
                    .collect();
                let state = PageState {
                    url: resp.url.clone(),
                    page: 0,
                    offset: 0,
                    cursor: None,
                    window: None,
                    since: None,
                };
                let page = extract_json_page(&resp.body, &hv, src, &state).map_err(|e| {
                    HarvestError::Auth {
                        source_id: def.id().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                page.records
                    .into_iter()
                    .map(|r| {
                        Ok(RecordWrite {
                            source: def.id().to_string(),
                            key: r.key,
                            payload: encode_payload(&serde_json::Value::Object(r.fields))?,
                            seen_ms,
                        })
                    })
                    .collect()
            })
            .await??;
        let outcomes = db.put_records(recs).await?;
        Ok(tally(&sid, &outcomes))
    }
}
