//! The three pipeline stages of a run, joined by bounded channels.
//!
//! Stages are tokio tasks joined by bounded channels: the claimer takes frontier URLs in
//! batches and spawns fetch tasks (at most `harvest.fetch_concurrency`), extraction jobs go
//! to the CPU pool (at most two per pool thread queued), and commits go to the tenant's
//! writer in operations of up to 32 pages (128 in flight, so group commit batches them). `in_flight` counts URLs
//! claimed but not yet committed; the run ends when the frontier has no pending URL and
//! nothing is in flight.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::counts::{bump, RunError};
use super::fetch_stage::fetch_job;
use super::process::{self, Fetched, Job, Output, DETAIL};
use super::run::Run;
use crate::harvest::extract::json::cursor::CursorSeen;
use crate::store::{
    FrontierEntry, PageCommit, PutOutcome, FRONTIER_DONE, FRONTIER_FAILED, FRONTIER_PENDING,
};
use crate::telemetry::metrics as m;

/// One URL's results on their way to the writer.
pub(super) struct Commit {
    entry: FrontierEntry,
    deferred: bool,
    out: Output,
    seen_ms: i64,
}

pub(super) async fn claim_loop(run: Arc<Run>, tx: mpsc::Sender<Job>) {
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

pub(super) async fn extract_loop(
    run: Arc<Run>,
    mut rx: mpsc::Receiver<Job>,
    tx: mpsc::Sender<Commit>,
) {
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

pub(super) async fn commit_loop(run: Arc<Run>, mut rx: mpsc::Receiver<Commit>) {
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
    let mut seen: Option<CursorSeen> = None;
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
        if state == FRONTIER_DONE {
            if let Some(c) = out.cursor {
                seen.get_or_insert_with(CursorSeen::default).merge(c);
            }
        }
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
    // Only what is stored counts towards the cursor.
    if let (Some(s), Ok(mut c)) = (seen, run.cursor.lock()) {
        c.merge(s);
    }
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
