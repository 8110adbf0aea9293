//! One run of one source: start or resume, setting up the pipeline, and the run's end.
//!
//! The pipeline's stages live in [`super::stages`] (fetching in [`super::fetch_stage`]),
//! the state they share in [`super::run`], and dictionary training after a run in
//! [`super::dict_training`]. A run that dies leaves its frontier and `running` status
//! behind; the next start resumes it without refetching any committed URL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit};
use tracing::Instrument;
use url::Url;

use super::anomaly;
use super::cookies::RunJar;
use super::counts::{bump, Counters, ErrorLog, RunCounts, RunError};
use super::dict_training::status_ok_for_training;
use super::incremental;
use super::politeness::Budget;
use super::process::{self, ApiData, Ctx, Job};
use super::run::Run;
use super::session::Session;
use super::stages::{claim_loop, commit_loop, extract_loop, Commit};
use super::{HarvestError, Harvester};
use crate::harvest::extract::json::{first_request_from, TimeWindow};
use crate::harvest::source::{SourceDef, SourceSpec};
use crate::store::{NewEntry, RunEnd, TenantDb};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

/// The end of a run, as printed by `gleaner harvest` and returned by the API.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub tenant: String,
    pub source: String,
    /// `succeeded`, `partial` (some URLs failed), `failed`, `interrupted` (resumable),
    /// `paused` (the daily request budget ran out; resumable) or `anomalous` (complete, but
    /// its counts strayed from the source's baseline: its removals wait for an operator to
    /// accept it, which makes it `accepted`, or dismiss it: `dismissed`).
    pub status: String,
    /// The whole frontier was worked through without errors; removals were marked (held,
    /// when the status is `anomalous`).
    pub complete: bool,
    pub resumed: bool,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub counts: RunCounts,
    pub errors: Vec<RunError>,
    pub message: Option<String>,
}

/// A started run.
pub struct RunHandle {
    pub run_id: i64,
    pub resumed: bool,
    pub counters: Arc<Counters>,
    pub task: tokio::task::JoinHandle<RunSummary>,
}

/// Removes a source from the running set when the run ends, however it ends.
struct RunningGuard {
    h: Arc<Harvester>,
    key: (String, String),
    _slot: OwnedSemaphorePermit,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut r) = self.h.running.lock() {
            r.remove(&self.key);
        }
    }
}

/// The URLs a fresh run starts from; `since`: the incremental cursor's parameter value.
fn starts(
    def: &SourceDef,
    last_success_ms: Option<i64>,
    since: Option<String>,
) -> Result<Vec<NewEntry>, HarvestError> {
    let e = |url: &Url, kind: &str, data: Option<String>| NewEntry {
        url: url.to_string(),
        kind: kind.to_owned(),
        depth: 0,
        data,
    };
    Ok(match &def.spec {
        SourceSpec::Html(s) => s
            .start_urls
            .iter()
            .map(|u| e(u.url(), process::LISTING, None))
            .collect(),
        SourceSpec::Sitemap(s) => s
            .sitemaps
            .iter()
            .map(|u| e(u.url(), process::SITEMAP, None))
            .collect(),
        SourceSpec::Feed(s) => s
            .feeds
            .iter()
            .map(|u| e(u.url(), process::FEED, None))
            .collect(),
        SourceSpec::Csv(s) => vec![e(s.url.url(), process::CSV, None)],
        SourceSpec::Json(s) => {
            let now = time::OffsetDateTime::now_utc();
            let window = s.window.as_ref().map(|w| {
                let last = last_success_ms
                    .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok());
                TimeWindow::since_last_run(w, last, now)
            });
            let first = first_request_from(s, window, since).map_err(|err| HarvestError::Auth {
                source_id: def.id().to_string(),
                reason: err.to_string(),
            })?;
            let data = serde_json::to_string(&ApiData::from_state(&first.state)).ok();
            vec![e(&first.url, process::API, data)]
        }
        SourceSpec::Push(_) => {
            return Err(HarvestError::NotFetchable {
                tenant: String::new(),
                source_id: def.id().to_string(),
            })
        }
    })
}

fn frontier_cap(def: &SourceDef) -> u64 {
    match &def.spec {
        SourceSpec::Html(s) => u64::from(s.scope.max_pages),
        SourceSpec::Sitemap(s) => u64::from(s.max_urls) * 2 + 1000,
        SourceSpec::Json(s) => u64::from(s.max_pages),
        SourceSpec::Feed(s) => s.feeds.len() as u64,
        SourceSpec::Csv(_) => 1,
        SourceSpec::Push(_) => 0,
    }
}

/// Removals are only meaningful where a complete run sees every record: not for feeds
/// (they list the newest entries) nor for time-windowed APIs (they list what changed),
/// nor for a run that starts from an incremental cursor (see [`Run::full`]).
fn marks_removals(def: &SourceDef) -> bool {
    match &def.spec {
        SourceSpec::Html(_) | SourceSpec::Sitemap(_) | SourceSpec::Csv(_) => true,
        SourceSpec::Json(s) => s.window.is_none(),
        SourceSpec::Feed(_) | SourceSpec::Push(_) => false,
    }
}

/// Whether a run lists the whole source (so finding nothing is suspicious): not a
/// windowed API, not one started from an incremental cursor. A resumed run of an
/// incremental source may have started from one, so it counts as not full.
fn sees_all(def: &SourceDef, resumed: bool, since: Option<&String>) -> bool {
    match &def.spec {
        SourceSpec::Json(s) => {
            s.window.is_none() && (s.incremental.is_none() || (!resumed && since.is_none()))
        }
        SourceSpec::Push(_) => false,
        _ => true,
    }
}

impl Harvester {
    /// Starts a run of `source` (resuming an unfinished one) in the background.
    pub async fn start_run(
        self: &Arc<Self>,
        tenant: &TenantId,
        source: &str,
        trigger: &str,
    ) -> Result<RunHandle, HarvestError> {
        if self.is_shutting_down() {
            return Err(HarvestError::ShuttingDown);
        }
        let (row, def) = self.source(tenant, source).await?;
        if matches!(def.spec, SourceSpec::Push(_)) {
            return Err(HarvestError::NotFetchable {
                tenant: tenant.to_string(),
                source_id: source.to_owned(),
            });
        }
        let key = (tenant.to_string(), source.to_owned());
        let db = self.store.tenant_db(tenant).await?;
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| HarvestError::Busy(self.cfg.max_concurrent_runs))?;
        {
            let mut r = self
                .running
                .lock()
                .map_err(|_| HarvestError::ShuttingDown)?;
            if !r.insert(key.clone()) {
                let run_id = row.last_run_id.unwrap_or(0);
                return Err(HarvestError::AlreadyRunning {
                    tenant: key.0,
                    source_id: key.1,
                    run_id,
                });
            }
        }
        let guard = RunningGuard {
            h: Arc::clone(self),
            key,
            _slot: slot,
        };
        let now = crate::store::now_ms();
        let (run_id, started_ms, resumed, counts, errors, full) = match db
            .unfinished_run(source)
            .await?
        {
            Some(r) => {
                db.frontier_resume(source).await?;
                let counts: RunCounts = serde_json::from_value(r.counts).unwrap_or_default();
                let errors: Vec<RunError> = serde_json::from_value(r.errors).unwrap_or_default();
                tracing::info!(tenant = %tenant, source, run_id = r.id, "resuming unfinished run");
                let full = sees_all(&def, true, None);
                (r.id, r.started_ms, true, counts, errors, full)
            }
            None => {
                // A new run counts against the tenant's `runs_per_day` quota (a resumed
                // one was counted when it started).
                let today = time::OffsetDateTime::now_utc().date();
                let day = format!(
                    "{:04}-{:02}-{:02}",
                    today.year(),
                    u8::from(today.month()),
                    today.day()
                );
                self.store.start_run(tenant, &day).await?;
                let since = incremental::resume_from(&db, &def).await?;
                let full = sees_all(&def, false, since.as_ref());
                if let Some(v) = &since {
                    tracing::info!(tenant = %tenant, source, since = %v, "resuming from the incremental cursor");
                }
                let first = starts(&def, row.last_success_ms, since)?;
                let id = db.start_run(source, trigger, now).await?;
                db.frontier_reset(source, id, first).await?;
                (id, now, false, RunCounts::default(), Vec::new(), full)
            }
        };
        let counters = Arc::new(Counters::from_snapshot(&counts));
        let h = Arc::clone(self);
        let tenant_s = tenant.to_string();
        let source_s = source.to_owned();
        let c2 = Arc::clone(&counters);
        // The root of a run's trace (OTLP): fetch, extract and store spans nest under it.
        // A run outlives the request that started it, so it is its own trace, linked to
        // that request rather than nested in it.
        let span = tracing::info_span!(parent: None, "harvest.run", tenant = %tenant_s, source = %source_s, run_id, resumed);
        span.follows_from(tracing::Span::current());
        let task = tokio::spawn(
            async move {
                let _guard = guard;
                let t0 = Instant::now();
                let summary = h
                    .execute(
                        tenant_s, source_s, def, db, run_id, started_ms, resumed, full, c2, errors,
                    )
                    .await;
                metrics::histogram!(m::HARVEST_RUN_DURATION_SECONDS)
                    .record(t0.elapsed().as_secs_f64());
                metrics::counter!(m::HARVEST_RUNS_TOTAL, "outcome" => summary.status.clone())
                    .increment(1);
                summary
            }
            .instrument(span),
        );
        Ok(RunHandle {
            run_id,
            resumed,
            counters,
            task,
        })
    }

    /// Runs `source` to its end.
    pub async fn run_source(
        self: &Arc<Self>,
        tenant: &TenantId,
        source: &str,
        trigger: &str,
    ) -> Result<RunSummary, HarvestError> {
        let h = self.start_run(tenant, source, trigger).await?;
        h.task
            .await
            .map_err(|e| HarvestError::Cpu(crate::cpu::CpuError::Panicked(e.to_string())))
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        self: Arc<Self>,
        tenant: String,
        source: String,
        def: SourceDef,
        db: TenantDb,
        run_id: i64,
        started_ms: i64,
        resumed: bool,
        full: bool,
        counters: Arc<Counters>,
        errors: Vec<RunError>,
    ) -> RunSummary {
        let def = Arc::new(def);
        let pol = &def.common.politeness;
        let today = crate::store::now_ms() / 86_400_000;
        let used_today = if pol.requests_per_day.is_some() {
            db.requests_on_day(&source, run_id, today)
                .await
                .unwrap_or(0)
        } else {
            0
        };
        let jar = match db.run_cookies(run_id).await {
            Ok(Some(j)) if resumed => RunJar::from_json(&j),
            _ => RunJar::default(),
        };
        let auth = match self.source_auth(&def, &db, &tenant, &source).await {
            Ok(a) => a,
            Err(e) => {
                return finish_failed(
                    &db,
                    &tenant,
                    &source,
                    run_id,
                    started_ms,
                    resumed,
                    &counters,
                    errors,
                    e.to_string(),
                    &self,
                )
                .await
            }
        };
        let run = Arc::new(Run {
            ctx: Arc::new(Ctx {
                def: Arc::clone(&def),
                source: source.clone(),
                max_body: self.cfg.max_body_bytes as usize,
                dict: db.source_dictionary(&source).await.ok().flatten(),
            }),
            h: Arc::clone(&self),
            tenant: tenant.clone(),
            source: source.clone(),
            frontier_cap: frontier_cap(&def),
            conditional: db.has_fetch_state(&source).await.unwrap_or(true),
            def: Arc::clone(&def),
            db: db.clone(),
            run_id,
            started_ms,
            counters: Arc::clone(&counters),
            errors: ErrorLog::new(self.cfg.max_run_errors, errors),
            jar,
            auth,
            budget: Budget::new(pol.requests_per_minute, pol.requests_per_day, used_today),
            host_limit: pol.per_host_concurrency.map(|n| n as usize),
            min_delay: pol
                .min_delay
                .map(|d| d.0)
                .unwrap_or(Duration::from_millis(self.cfg.min_delay_ms))
                .max(Duration::from_millis(self.cfg.min_delay_ms)),
            obey_robots: pol.obey_robots,
            budget_hit: AtomicBool::new(false),
            fatal: Mutex::new(None),
            in_flight: AtomicU64::new(0),
            progress: Notify::new(),
            session: Session::for_source(&def.spec),
            full,
            cursor: Mutex::new(Default::default()),
        });
        let cap = self.cfg.channel_capacity;
        let (job_tx, job_rx) = mpsc::channel::<Job>(cap);
        let (commit_tx, commit_rx) = mpsc::channel::<Commit>(cap);
        let claimer = tokio::spawn(claim_loop(Arc::clone(&run), job_tx).in_current_span());
        let extractor =
            tokio::spawn(extract_loop(Arc::clone(&run), job_rx, commit_tx).in_current_span());
        let committer = tokio::spawn(commit_loop(Arc::clone(&run), commit_rx).in_current_span());
        // Progress is saved every two seconds so a crash keeps the counts.
        let saver = {
            let run = Arc::clone(&run);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(2));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let c = serde_json::to_string(&run.counters.snapshot()).unwrap_or_default();
                    let e = serde_json::to_string(&run.errors.snapshot()).unwrap_or_default();
                    let _ = run.db.run_progress(run.run_id, c, e).await;
                }
            })
        };
        for (name, t) in [
            ("claim", claimer),
            ("extract", extractor),
            ("commit", committer),
        ] {
            if let Err(e) = t.await {
                run.set_fatal(format!("{name} stage failed: {e}"));
            }
        }
        saver.abort();
        self.finish(run, resumed).await
    }

    async fn finish(&self, run: Arc<Run>, resumed: bool) -> RunSummary {
        let fatal = run.fatal.lock().ok().and_then(|f| f.clone());
        let interrupted = self.is_shutting_down() && fatal.is_none();
        let budget_hit = run.budget_hit.load(Ordering::Relaxed);
        let snap = run.counters.snapshot();
        let complete = fatal.is_none()
            && !interrupted
            && !budget_hit
            && snap.errors == 0
            && snap.links_dropped == 0;
        let mut message = fatal.clone();
        let marks = marks_removals(&run.def);
        // A complete full run is judged before it marks anything: a held one marks nothing.
        let held = if complete && run.full {
            anomaly::check(&run, marks).await
        } else {
            None
        };
        if complete && run.full && marks && held.is_none() {
            match run
                .db
                .mark_removed(&run.source, run.run_id, run.started_ms)
                .await
            {
                Ok(n) => {
                    bump(&run.counters.records_removed, n);
                    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "removed").increment(n);
                }
                Err(e) => message = Some(format!("marking removed records failed: {e}")),
            }
        }
        if status_ok_for_training(&fatal, &run) {
            self.train_dictionary(&run).await;
        }
        let hist = &run.def.common.history;
        if hist.keep_versions.is_some() || hist.keep_for.is_some() {
            let older = hist
                .keep_for
                .map(|d| crate::store::now_ms() - (d.secs() as i64).saturating_mul(1000));
            if let Err(e) = run
                .db
                .prune_history(&run.source, hist.keep_versions, older)
                .await
            {
                tracing::warn!(source = %run.source, error = %e, "pruning record history failed");
            }
        }
        let snap = run.counters.snapshot();
        let status = if interrupted {
            "interrupted"
        } else if fatal.is_some() {
            "failed"
        } else if budget_hit {
            // Resumed by the next run, from the frontier as it stands, not started over.
            "paused"
        } else if snap.errors > 0 {
            if snap.pages > snap.errors {
                "partial"
            } else {
                "failed"
            }
        } else if held.is_some() {
            "anomalous"
        } else {
            "succeeded"
        };
        if let Some(why) = held {
            message = Some(join(message, why));
        }
        if budget_hit && message.is_none() {
            message = Some(
                "the source's requests_per_day budget is spent; the next run resumes here".into(),
            );
        } else if snap.links_dropped > 0 && message.is_none() {
            message = Some(format!(
                "page cap reached: {} links not followed (raise the source's max_pages)",
                snap.links_dropped
            ));
        }
        if status == "succeeded" && complete {
            if let Some(why) = incremental::commit(&run).await {
                tracing::warn!(tenant = %run.tenant, source = %run.source, run_id = run.run_id, "{why}");
                message = Some(join(message, why));
            }
        }
        if status == "succeeded"
            && run.full
            && snap.records_new + snap.records_changed + snap.records_unchanged == 0
        {
            // Succeeded, but a full listing with nothing in it is more often a wrong
            // records path, an expired credential or a changed site than an empty source.
            metrics::counter!(m::HARVEST_EMPTY_RUNS_TOTAL).increment(1);
            tracing::warn!(tenant = %run.tenant, source = %run.source, run_id = run.run_id,
                pages = snap.pages, "a full run found no records");
            message = Some(join(message, format!("{EMPTY_RUN}: the run found no records on {} pages; check the source's records path or selector, its credentials and the site", snap.pages)));
        }
        let ended_ms = crate::store::now_ms();
        let errors = run.errors.snapshot();
        let end = RunEnd {
            status: status.into(),
            complete,
            counts: serde_json::to_string(&snap).unwrap_or_default(),
            errors: serde_json::to_string(&errors).unwrap_or_default(),
            message: message.clone(),
            ended_ms,
        };
        if let Err(e) = run.db.finish_run(run.run_id, end).await {
            tracing::error!(source = %run.source, run_id = run.run_id, error = %e, "cannot record the end of a run");
        }
        let success = (status == "succeeded").then_some(ended_ms);
        if let Err(e) = self
            .store
            .set_source_last_run(&run.tenant, &run.source, run.run_id, status, success)
            .await
        {
            tracing::warn!(source = %run.source, error = %e, "cannot record the run on its source");
        }
        tracing::info!(tenant = %run.tenant, source = %run.source, run_id = run.run_id, status, complete,
            fetched = snap.fetched, not_modified = snap.not_modified, errors = snap.errors, "run finished");
        RunSummary {
            run_id: run.run_id,
            tenant: run.tenant.clone(),
            source: run.source.clone(),
            status: status.into(),
            complete,
            resumed,
            started_ms: run.started_ms,
            ended_ms,
            counts: snap,
            errors,
            message,
        }
    }
}

/// How the message of a succeeded full run without records starts, for people and
/// scripts alike (the status stays `succeeded`, which existing consumers rely on).
pub const EMPTY_RUN: &str = "no records";

fn join(message: Option<String>, more: String) -> String {
    match message {
        Some(m) => format!("{m}; {more}"),
        None => more,
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_failed(
    db: &TenantDb,
    tenant: &str,
    source: &str,
    run_id: i64,
    started_ms: i64,
    resumed: bool,
    counters: &Counters,
    mut errors: Vec<RunError>,
    why: String,
    h: &Harvester,
) -> RunSummary {
    errors.push(RunError {
        url: String::new(),
        kind: "setup".into(),
        reason: why.clone(),
    });
    let ended_ms = crate::store::now_ms();
    let snap = counters.snapshot();
    let _ = db
        .finish_run(
            run_id,
            RunEnd {
                status: "failed".into(),
                complete: false,
                counts: serde_json::to_string(&snap).unwrap_or_default(),
                errors: serde_json::to_string(&errors).unwrap_or_default(),
                message: Some(why.clone()),
                ended_ms,
            },
        )
        .await;
    let _ = h
        .store
        .set_source_last_run(tenant, source, run_id, "failed", None)
        .await;
    RunSummary {
        run_id,
        tenant: tenant.into(),
        source: source.into(),
        status: "failed".into(),
        complete: false,
        resumed,
        started_ms,
        ended_ms,
        counts: snap,
        errors,
        message: Some(why),
    }
}
