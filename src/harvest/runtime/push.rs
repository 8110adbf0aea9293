//! Records pushed to Gleaner (webhooks), and "fetch resource X of json source Y now".
//!
//! A push body is verified (the source's HMAC scheme and time window, then the replay
//! memory) before anything is parsed; verifying, parsing and encoding run on the CPU pool;
//! the records are written in one operation. A body that is one of the source's `events`
//! fetches the record it names into that record's source instead. When handling fails (or
//! the caller goes away) after the replay memory took the event, the event is forgotten
//! again, so the provider's retry is not refused as a replay.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::Method;
use serde::Serialize;

use super::auth::resolve_secret;
use super::fetch::Request;
use super::politeness::host_key;
use super::{HarvestError, Harvester};
use crate::harvest::extract::json::{extract_json_page, PageState};
use crate::harvest::extract::push::replay::{self, ReplayKey, ReplayStore};
use crate::harvest::extract::push::{
    match_event, parse_payload, verify_scheme, FetchNow, SignatureError,
};
use crate::harvest::source::{JsonPathExpr, PushSource, SourceSpec};
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
    /// The delivery was one already taken ([`Verdict::Duplicate`]): nothing was stored or
    /// fetched again.
    pub duplicate: bool,
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

/// The replay entries a verified push took: given back when dropped unkept, so a push
/// that failed, or whose caller went away, does not make the provider's retry a replay.
struct Admitted<'a> {
    store: &'a Mutex<ReplayStore>,
    scope: String,
    keys: Vec<ReplayKey>,
    kept: bool,
}

impl Admitted<'_> {
    fn keep_if<T>(admitted: Option<Self>, r: &Result<T, HarvestError>) {
        if let (Some(mut a), Ok(_)) = (admitted, r) {
            a.kept = true;
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget(&self.scope, &self.keys);
        }
    }
}

/// What a verified push goes on with: the source and the replay entries it took, or
/// nothing, because the sender already delivered it.
enum Verdict<'a> {
    Take(Box<PushSource>, Option<Admitted<'a>>),
    /// The same signed content or event id was taken before: a provider's retry after a
    /// lost answer, or a replay. Answered as a success that stores nothing, so that the
    /// provider stops retrying (a 4xx makes Stripe or GitHub retry for days).
    Duplicate,
}

/// The answer to a duplicate delivery; counted with the refusals (`reason="replayed"`).
fn duplicate(tenant: &TenantId, source: &str) -> PushOutcome {
    metrics::counter!(m::PUSH_REFUSED_TOTAL, "reason" => "replayed").increment(1);
    tracing::info!(%tenant, source, "duplicate delivery taken as a no-op");
    PushOutcome {
        source: source.to_owned(),
        duplicate: true,
        ..PushOutcome::default()
    }
}

impl Harvester {
    /// Verifies the signature of a body sent to push source `source` (when it requires
    /// one) and records the event against replays; returns the source's definition for
    /// the caller to go on with, or that the delivery is a duplicate.
    async fn verified_push_source(
        &self,
        tenant: &TenantId,
        source: &str,
        headers: &[(&str, &str)],
        body: &bytes::Bytes,
    ) -> Result<Verdict<'_>, HarvestError> {
        let (_, def) = self.source(tenant, source).await?;
        let SourceSpec::Push(src) = def.spec else {
            return Err(HarvestError::WrongKind {
                source_id: source.to_owned(),
                expected: "push",
            });
        };
        let Some(sig) = &src.signature else {
            return Ok(Verdict::Take(Box::new(src), None));
        };
        let db = self.store.tenant_db(tenant).await?;
        let secret = resolve_secret(&sig.secret, &db, tenant.as_str()).await?;
        let scheme = sig.scheme();
        let now_ms = crate::store::now_ms();
        let owned: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (sch, b) = (scheme.clone(), body.clone());
        let verified = self
            .cpu
            .run(move || {
                let hv: Vec<(&str, &str)> = owned
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                verify_scheme(&sch, secret.as_bytes(), &hv, &b, now_ms)
            })
            .await??;
        let scope = format!("{tenant}/{source}");
        let keys = replay::keys(&scope, &verified.mac, verified.event_id.as_deref());
        let admitted = self
            .replays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(
                &scope,
                &keys,
                now_ms,
                scheme.replay_window_ms,
                scheme.replay_capacity,
            );
        match admitted {
            Ok(()) => Ok(Verdict::Take(
                Box::new(src),
                Some(Admitted {
                    store: &self.replays,
                    scope,
                    keys,
                    kept: false,
                }),
            )),
            Err(replay::Refused::Seen) => Ok(Verdict::Duplicate),
            Err(replay::Refused::Full) => Err(SignatureError::ReplayFull.into()),
        }
    }

    /// Stores the records of a push body, or fetches the record an event names.
    pub async fn push(
        &self,
        tenant: &TenantId,
        source: &str,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> Result<PushOutcome, HarvestError> {
        let Verdict::Take(src, admitted) = self
            .verified_push_source(tenant, source, headers, &body)
            .await?
        else {
            return Ok(duplicate(tenant, source));
        };
        let r = self.take_push(tenant, source, *src, headers, body).await;
        Admitted::keep_if(admitted, &r);
        r
    }

    async fn take_push(
        &self,
        tenant: &TenantId,
        source: &str,
        src: PushSource,
        headers: &[(&str, &str)],
        body: bytes::Bytes,
    ) -> Result<PushOutcome, HarvestError> {
        if !src.events.is_empty() {
            let (events, b) = (src.events.clone(), body.clone());
            if let Some(ev) = self.cpu.run(move || match_event(&events, &b)).await?? {
                tracing::debug!(source, event = %ev.event_type, target = %ev.request.source, "event fetches its record");
                return self
                    .fetch_resource(tenant, &ev.request, ev.records.as_ref())
                    .await;
            }
        }
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
        let Verdict::Take(_, admitted) = self
            .verified_push_source(tenant, push_source, headers, &body)
            .await?
        else {
            return Ok(duplicate(tenant, push_source));
        };
        let r = match FetchNow::parse_json(&body) {
            Ok(req) => self.fetch_resource(tenant, &req, None).await,
            Err(e) => Err(e.into()),
        };
        Admitted::keep_if(admitted, &r);
        r
    }

    /// One request to json source `req.source` with its credentials; the records found
    /// (at `records`, or the source's own path) are stored under that source.
    async fn fetch_resource(
        &self,
        tenant: &TenantId,
        req: &FetchNow,
        records: Option<&JsonPathExpr>,
    ) -> Result<PushOutcome, HarvestError> {
        let (_, mut def) = self.source(tenant, req.source.as_str()).await?;
        if let (Some(r), SourceSpec::Json(j)) = (records, &mut def.spec) {
            j.records = r.clone();
        }
        let SourceSpec::Json(src) = &def.spec else {
            return Err(HarvestError::WrongKind {
                source_id: req.source.to_string(),
                expected: "json",
            });
        };
        let url = req.resolve(src)?;
        let db = self.store.tenant_db(tenant).await?;
        let sid = req.source.to_string();
        let auth = self.source_auth(&def, &db, tenant.as_str(), &sid).await?;
        let fail = |reason: String| HarvestError::Auth {
            source_id: sid.clone(),
            reason,
        };
        let mut retried = false;
        let resp = loop {
            let limit = def
                .common
                .politeness
                .per_host_concurrency
                .map(|n| n as usize);
            let permit = self
                .hosts
                .acquire(&host_key(&url), Duration::ZERO, limit)
                .await;
            // Taken after the host's wait, so it cannot expire during it.
            let (headers, used) = auth.headers(&self.fetcher).await?;
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
