//! Schedules: `serve` starts due runs and reports stale sources.
//!
//! Every `harvest.scheduler_tick_secs` the scheduler asks control.db for sources whose
//! `next_run_ms` has passed (one indexed query, however many tenants exist), moves each
//! one's next run forward *before* starting it (so a crash cannot make it run in a loop),
//! and starts it unless it is already running or the node is at
//! `harvest.max_concurrent_runs` (then it is retried on the next tick). It also counts
//! sources whose last success is older than their freshness threshold.

use std::sync::Arc;
use std::time::Duration;

use super::Harvester;
use crate::harvest::source::Schedule;
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

/// Most due sources looked at per tick.
const DUE_BATCH: usize = 256;
/// Most stale sources counted (the gauge saturates there).
const STALE_SCAN: usize = 100_000;

impl Harvester {
    /// Runs the scheduler until the harvester shuts down.
    pub fn spawn_scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let h = Arc::clone(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(h.cfg.scheduler_tick_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => break,
                }
                if h.is_shutting_down() {
                    break;
                }
                h.tick().await;
            }
        })
    }

    /// One scheduler pass (public for tests).
    pub async fn tick(self: &Arc<Self>) {
        let now = crate::store::now_ms();
        match self.store.due_sources(now, DUE_BATCH).await {
            Ok(due) => {
                for row in due {
                    let next = row
                        .schedule
                        .as_deref()
                        .and_then(|s| Schedule::parse(s).ok())
                        .and_then(|s| {
                            let t = time::OffsetDateTime::from_unix_timestamp(now / 1000).ok()?;
                            s.next_after(t).map(|n| n.unix_timestamp() * 1000)
                        });
                    let Ok(tenant) = TenantId::parse(&row.tenant) else {
                        continue;
                    };
                    if self.is_running(&row.tenant, &row.id) {
                        continue;
                    }
                    match self.start_run(&tenant, &row.id, "schedule").await {
                        Ok(handle) => {
                            tracing::info!(tenant = %row.tenant, source = %row.id, run_id = handle.run_id, "scheduled run started");
                            if let Err(e) = self
                                .store
                                .set_source_next_run(&row.tenant, &row.id, next)
                                .await
                            {
                                tracing::warn!(error = %e, "cannot move the next run of a source");
                            }
                        }
                        Err(e) if e.kind().is_retryable() => {
                            tracing::debug!(tenant = %row.tenant, source = %row.id, error = %e, "scheduled run postponed");
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %row.tenant, source = %row.id, error = %e, "scheduled run not started");
                            let _ = self
                                .store
                                .set_source_next_run(&row.tenant, &row.id, next)
                                .await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due sources"),
        }
        match self.store.stale_sources(now, STALE_SCAN).await {
            Ok(s) => metrics::gauge!(m::HARVEST_STALE_SOURCES).set(s.len() as f64),
            Err(e) => tracing::warn!(error = %e, "cannot count stale sources"),
        }
    }
}
