//! One run of one source: start or resume, the three-stage pipeline, and the run's end.
//!
//! Stages are tokio tasks joined by bounded channels: the claimer takes frontier URLs in
//! batches and spawns fetch tasks (at most `harvest.fetch_concurrency`), extraction jobs go
//! to the CPU pool (at most two per pool thread queued), and commits go to the tenant's
//! writer in operations of up to 32 pages (128 in flight, so group commit batches them). `in_flight` counts URLs
//! claimed but not yet committed; the run ends when the frontier has no pending URL and
//! nothing is in flight. A run that dies leaves its frontier and `running` status behind;
//! the next start resumes it without refetching any committed URL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;
use url::Url;

use super::auth::SourceAuth;
use super::cookies::RunJar;
use super::counts::{bump, Counters, ErrorLog, RunCounts, RunError};
use super::fetch::{FetchError, Request};
use super::fetch_stage::fetch_job;
use super::politeness::{host_key, Budget, RobotsState};
use super::process::{self, ApiData, Ctx, Fetched, Job, Output, DETAIL};
use super::session::Session;
use super::{HarvestError, Harvester};
use crate::harvest::extract::json::{first_request, TimeWindow};
use crate::harvest::robots::RobotsTxt;
use crate::harvest::source::{SourceDef, SourceSpec};
use crate::store::{
    FrontierEntry, NewEntry, PageCommit, PutOutcome, RunEnd, TenantDb, FRONTIER_DONE,
    FRONTIER_FAILED, FRONTIER_PENDING,
};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

/// The end of a run, as printed by `gleaner harvest` and returned by the API.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub tenant: String,
    pub source: String,
    /// `succeeded`, `partial` (some URLs failed), `failed`, `interrupted` (resumable) or
    /// `paused` (the daily request budget ran out; resumable).
    pub status: String,
    /// The whole frontier was worked through without errors; removals were marked.
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

pub(super) struct Run {
    pub(super) h: Arc<Harvester>,
    pub(super) tenant: String,
    pub(super) source: String,
    pub(super) def: Arc<SourceDef>,
    pub(super) ctx: Arc<Ctx>,
    pub(super) db: TenantDb,
    pub(super) run_id: i64,
    pub(super) started_ms: i64,
    pub(super) counters: Arc<Counters>,
    pub(super) errors: ErrorLog,
    pub(super) jar: RunJar,
    pub(super) auth: SourceAuth,
    pub(super) budget: Budget,
    /// The source's own per-host concurrency (see `politeness`), below the node's.
    pub(super) host_limit: Option<usize>,
    pub(super) min_delay: Duration,
    pub(super) obey_robots: bool,
    pub(super) frontier_cap: u64,
    /// Some URL of the source has ETag / Last-Modified / body hash stored.
    pub(super) conditional: bool,
    pub(super) budget_hit: AtomicBool,
    pub(super) fatal: Mutex<Option<String>>,
    pub(super) in_flight: AtomicU64,
    pub(super) progress: Notify,
    /// How this source's pages show a lost site session (html and sitemap sources).
    pub(super) session: Option<Session>,
}

/// One URL's results on their way to the writer.
struct Commit {
    entry: FrontierEntry,
    deferred: bool,
    out: Output,
    seen_ms: i64,
}

impl Run {
    pub(super) fn stopping(&self) -> bool {
        self.h.is_shutting_down()
            || self.budget_hit.load(Ordering::Relaxed)
            || self.fatal.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    fn set_fatal(&self, why: String) {
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(why);
        }
    }

    /// Saves the jar when a response changed it, before that page's results are
    /// committed: a resumed run needs the session.
    pub(super) async fn save_jar(&self) {
        if self.jar.take_dirty() {
            if let Err(e) = self
                .db
                .save_run_cookies(self.run_id, self.jar.to_json())
                .await
            {
                tracing::warn!(source = %self.source, error = %e, "cannot save the run's cookies");
            }
        }
    }
}

/// The URLs a fresh run starts from.
fn starts(def: &SourceDef, last_success_ms: Option<i64>) -> Result<Vec<NewEntry>, HarvestError> {
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
            let first = first_request(s, window).map_err(|err| HarvestError::Auth {
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
/// (they list the newest entries) nor for time-windowed APIs (they list what changed).
fn marks_removals(def: &SourceDef) -> bool {
    match &def.spec {
        SourceSpec::Html(_) | SourceSpec::Sitemap(_) | SourceSpec::Csv(_) => true,
        SourceSpec::Json(s) => s.window.is_none(),
        SourceSpec::Feed(_) | SourceSpec::Push(_) => false,
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
        let (run_id, started_ms, resumed, counts, errors) = match db.unfinished_run(source).await? {
            Some(r) => {
                db.frontier_resume(source).await?;
                let counts: RunCounts = serde_json::from_value(r.counts).unwrap_or_default();
                let errors: Vec<RunError> = serde_json::from_value(r.errors).unwrap_or_default();
                tracing::info!(tenant = %tenant, source, run_id = r.id, "resuming unfinished run");
                (r.id, r.started_ms, true, counts, errors)
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
                let first = starts(&def, row.last_success_ms)?;
                let id = db.start_run(source, trigger, now).await?;
                db.frontier_reset(source, id, first).await?;
                (id, now, false, RunCounts::default(), Vec::new())
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
                        tenant_s, source_s, def, db, run_id, started_ms, resumed, c2, errors,
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

    /// robots.txt rules of `url`'s host for our agent, cached per host. An unreachable
    /// robots.txt (5xx, or no answer at all) disallows the whole host (RFC 9309 §2.3.1.3-4)
    /// and is asked again after a minute; a 4xx allows everything.
    pub(super) async fn robots(&self, url: &Url) -> RobotsState {
        let key = host_key(url);
        let host = self.hosts.host(&key);
        let mut slot = host.robots.lock().await;
        if let Some((r, exp)) = slot.as_ref() {
            if Instant::now() < *exp {
                return r.clone();
            }
        }
        let ttl = Duration::from_secs(self.cfg.robots_ttl_secs);
        let short = Duration::from_secs(60);
        let token = self
            .cfg
            .user_agent
            .split('/')
            .next()
            .unwrap_or("GleanerBot");
        let (state, ttl) = match url.join("/robots.txt") {
            Ok(ru) => match self.fetcher.send(Request::get(ru)).await {
                Ok(r) if r.status.as_u16() >= 500 => (
                    RobotsState::Unreachable(format!("HTTP {}", r.status.as_u16())),
                    short,
                ),
                Ok(r) => (
                    RobotsState::Rules(Arc::new(
                        RobotsTxt::from_status(r.status.as_u16(), &r.body).for_agent(token),
                    )),
                    ttl,
                ),
                // A blocked address: the page's own fetch reports the block. Redirect
                // trouble: "unavailable" (RFC 9309 §2.3.1.2), as a 4xx.
                Err(
                    FetchError::Blocked { .. }
                    | FetchError::RedirectLoop { .. }
                    | FetchError::TooManyRedirects { .. }
                    | FetchError::BadRedirect { .. },
                ) => (
                    RobotsState::Rules(Arc::new(RobotsTxt::allow_all().for_agent(token))),
                    short,
                ),
                Err(e) => (RobotsState::Unreachable(e.label().replace('_', " ")), short),
            },
            // A URL without a host has no robots.txt; the fetch reports the URL itself.
            Err(_) => (
                RobotsState::Rules(Arc::new(RobotsTxt::allow_all().for_agent(token))),
                ttl,
            ),
        };
        *slot = Some((state.clone(), Instant::now() + ttl));
        state
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
        let auth = match SourceAuth::new(def.common.auth.as_ref(), &db, &tenant, &source).await {
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
        if complete && marks_removals(&run.def) {
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
        } else {
            "succeeded"
        };
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

fn status_ok_for_training(fatal: &Option<String>, run: &Run) -> bool {
    fatal.is_none() && run.ctx.dict.is_none() && run.h.cfg.dictionary_min_records > 0
}

impl Harvester {
    /// Trains the source's first zstd dictionary once it has enough records; later runs
    /// compress with it.
    async fn train_dictionary(&self, run: &Run) {
        let min = self.cfg.dictionary_min_records as usize;
        let samples = match run
            .db
            .training_samples(&run.source, min.max(crate::store::MAX_DICT_SAMPLES))
            .await
        {
            Ok(s) if s.len() >= min => s,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "cannot read records to train a dictionary");
                return;
            }
        };
        let trained = self
            .cpu
            .run(move || crate::store::train_dictionary(&samples))
            .await;
        match trained {
            Ok(Ok(d)) => match run.db.put_source_dictionary(&run.source, &d).await {
                Ok(v) => {
                    tracing::info!(source = %run.source, version = v, bytes = d.bytes.len(), "trained a zstd dictionary")
                }
                Err(e) => {
                    tracing::warn!(source = %run.source, error = %e, "cannot store the dictionary")
                }
            },
            Ok(Err(e)) => {
                tracing::warn!(source = %run.source, error = %e, "dictionary training failed")
            }
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "dictionary training failed")
            }
        }
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

async fn claim_loop(run: Arc<Run>, tx: mpsc::Sender<Job>) {
    let h = Arc::clone(&run.h);
    let slots = Arc::new(Semaphore::new(h.cfg.fetch_concurrency));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        if run.stopping() {
            break;
        }
        // Read before claiming: if nothing was in flight then, no commit can add URLs
        // after the claim looked, so an empty claim means the frontier is exhausted.
        let idle = run.in_flight.load(Ordering::Acquire) == 0;
        let batch = match run.db.frontier_claim(&run.source, h.cfg.claim_batch).await {
            Ok(b) => b,
            Err(e) => {
                run.set_fatal(format!("reading the frontier failed: {e}"));
                break;
            }
        };
        if batch.is_empty() {
            if idle {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), run.progress.notified()).await;
            continue;
        }
        run.in_flight
            .fetch_add(batch.len() as u64, Ordering::AcqRel);
        for entry in batch {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let (run, tx) = (Arc::clone(&run), tx.clone());
            tasks.spawn(
                async move {
                    let job = fetch_job(&run, entry).await;
                    drop(permit);
                    if tx.send(job).await.is_err() {
                        run.in_flight.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                .in_current_span(),
            );
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn extract_loop(run: Arc<Run>, mut rx: mpsc::Receiver<Job>, tx: mpsc::Sender<Commit>) {
    let slots = Arc::new(Semaphore::new((run.h.cpu.threads() * 2).max(2)));
    let mut tasks = JoinSet::new();
    while let Some(mut job) = rx.recv().await {
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (run, tx) = (Arc::clone(&run), tx.clone());
        tasks.spawn(
            async move {
                let deferred = matches!(job.fetched, Fetched::Deferred);
                // A detail page needs its stored record only when the listing's fields are not
                // with it (the listing was replayed) or the detail itself did not change.
                if job.entry.kind == DETAIL {
                    let data = job
                        .entry
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str::<process::DetailData>(d).ok());
                    if let Some(d) = data {
                        let needed = match job.fetched {
                            Fetched::NotModified => d.fields.is_some(),
                            Fetched::Body(_) => d.fields.is_none(),
                            _ => false,
                        };
                        if needed {
                            job.stored = run
                                .db
                                .record_fields(&run.source, &d.key)
                                .await
                                .ok()
                                .flatten();
                        }
                    }
                }
                let entry = job.entry.clone();
                let ctx = Arc::clone(&run.ctx);
                let seen_ms = crate::store::now_ms();
                // Entered on the pool thread: the extraction nests under the run's trace.
                let span = tracing::debug_span!("harvest.extract", url = %entry.url);
                let out = match run
                    .h
                    .cpu
                    .run(move || span.in_scope(|| process::process(&ctx, job, seen_ms)))
                    .await
                {
                    Ok(o) => o,
                    Err(e) => Output {
                        error: Some(RunError {
                            url: entry.url.clone(),
                            kind: "internal".into(),
                            reason: e.to_string(),
                        }),
                        ..Output::default()
                    },
                };
                drop(permit);
                let c = Commit {
                    entry,
                    deferred,
                    out,
                    seen_ms,
                };
                if tx.send(c).await.is_err() {
                    run.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
            .in_current_span(),
        );
    }
    while tasks.join_next().await.is_some() {}
}

/// Writer operations in flight at once (each holds up to [`COMMIT_BATCH`] pages): the
/// writer groups them into one transaction (one fsync), and several pages per operation
/// spare the writer per-operation work.
const COMMITS_IN_FLIGHT: usize = 128;
/// Most pages stored by one writer operation.
const COMMIT_BATCH: usize = 32;

async fn commit_loop(run: Arc<Run>, mut rx: mpsc::Receiver<Commit>) {
    let slots = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    while let Some(first) = rx.recv().await {
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        // Whatever else is ready goes in the same operation.
        let mut batch = vec![first];
        while batch.len() < COMMIT_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let run = Arc::clone(&run);
        tasks.spawn(
            async move {
                let n = batch.len() as u64;
                let span = tracing::debug_span!("harvest.store", pages = n);
                commit_batch(&run, batch).instrument(span).await;
                drop(permit);
                run.in_flight.fetch_sub(n, Ordering::AcqRel);
                run.progress.notify_one();
            }
            .in_current_span(),
        );
    }
    while tasks.join_next().await.is_some() {}
}

async fn commit_batch(run: &Run, batch: Vec<Commit>) {
    let counters = &run.counters;
    let mut pages = Vec::with_capacity(batch.len());
    let mut meta = Vec::with_capacity(batch.len());
    for c in batch {
        let Commit {
            entry,
            deferred,
            out,
            seen_ms,
        } = c;
        bump(&counters.warnings, out.warnings);
        if out.replayed {
            bump(&counters.unchanged_bodies, 1);
        }
        let state = if deferred {
            FRONTIER_PENDING
        } else if let Some(e) = out.error {
            bump(&counters.errors, 1);
            tracing::debug!(source = %run.source, url = %e.url, reason = %e.reason, "URL failed");
            run.errors.push(e);
            FRONTIER_FAILED
        } else {
            FRONTIER_DONE
        };
        meta.push((deferred, out.touch_keys.len() as u64, entry.url.clone()));
        pages.push(PageCommit {
            source: run.source.clone(),
            run_id: run.run_id,
            entry_id: entry.id,
            state,
            records: out.records,
            touch_keys: out.touch_keys,
            seen_ms,
            new_entries: out.new_entries,
            frontier_cap: run.frontier_cap,
            fetch_state: out.fetch_state,
        });
    }
    let done = match run.db.commit_pages(pages).await {
        Ok(d) => d,
        Err(e) => {
            let first = meta.first().map(|m| m.2.as_str()).unwrap_or("");
            run.set_fatal(format!(
                "storing the results of {first} (and {} more URLs) failed: {e}",
                meta.len().saturating_sub(1)
            ));
            return;
        }
    };
    let (mut new, mut changed, mut same) = (0, 0, 0);
    for (d, (deferred, touched, _)) in done.into_iter().zip(meta) {
        if !deferred {
            bump(&counters.pages, 1);
        }
        same += touched;
        for o in d.outcomes {
            match o {
                PutOutcome::New => new += 1,
                PutOutcome::Changed { .. } => changed += 1,
                PutOutcome::Unchanged => same += 1,
            }
        }
        bump(&counters.links_dropped, d.dropped);
    }
    bump(&counters.records_new, new);
    bump(&counters.records_changed, changed);
    bump(&counters.records_unchanged, same);
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "new").increment(new);
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "changed").increment(changed);
    metrics::counter!(m::HARVEST_RECORDS_TOTAL, "change" => "unchanged").increment(same);
}
