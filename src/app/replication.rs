//! Replication at start-up: the replicator (restoring a missing control.db first), tenant
//! databases restored from their replicas when a node was rebuilt, tails shipped that a
//! crash left unshipped, and the background tasks that watch replication (scheduled
//! verification of every replica ([`super::verifier`]), the lag/health watch behind /readyz's log lines).

use std::time::Duration;

use super::AppError;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::replicate::plan::RestoreTarget;
use crate::replicate::restore::{self, RestoreOptions};
use crate::replicate::runtime::{Replicator, RuntimeSettings};
use crate::replicate::url::open_destination;
use crate::replicate::ReplicateError;
use crate::store::Store;

/// Builds the replicator when `[replicate]` is on, restoring a missing control.db first.
pub async fn start_replication(
    cfg: &Config,
    cpu: &CpuPool,
) -> Result<Option<Replicator>, AppError> {
    let r = &cfg.replicate;
    if !r.enabled {
        return Ok(None);
    }
    let mut dests = vec![open_destination(&r.url, &r.s3)
        .await
        .map_err(ReplicateError::from)?];
    if let Some(u) = &r.second_url {
        dests.push(
            open_destination(u, &r.s3)
                .await
                .map_err(ReplicateError::from)?,
        );
    }
    let control = cfg.store.data_dir.join("control.db");
    if r.restore_on_start && !control.exists() {
        let client = dests[0].at("control");
        let all = restore::list_all(client.as_ref(), false).await?;
        if all.is_empty() {
            tracing::info!(replica = %client.describe(), "no control.db and no replica: starting empty");
        } else {
            crate::store::create_private_dir(&cfg.store.data_dir, true)?;
            let rep = restore::restore(
                client.clone(),
                &RestoreOptions {
                    target: RestoreTarget::Latest,
                    output: control.clone(),
                    force: false,
                    parallelism: r.upload_concurrency,
                    progress: false,
                },
            )
            .await?;
            tracing::info!(replica = %client.describe(), txid = rep.applied.last.max_txid,
                bytes = rep.applied.db_size, "restored control.db from its replica");
        }
    }
    Ok(Some(Replicator::new(
        RuntimeSettings::from_config(r),
        dests,
        cfg.store.data_dir.clone(),
        cpu.clone(),
    )))
}

/// Restores tenant databases that control.db lists but whose files are missing (a node
/// rebuilt from its replica), before the server takes requests. Tenants without a replica
/// are left alone (and logged).
pub async fn restore_missing_tenants(cfg: &Config, store: &Store) -> Result<(), AppError> {
    use futures_util::stream::{self, StreamExt};
    let dest = open_destination(&cfg.replicate.url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    let mut missing = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_tenants(after.as_deref(), crate::store::MAX_TENANT_LIST)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for row in &page {
            if let Ok(id) = crate::tenant::TenantId::parse(&row.id) {
                let path = store.tenant_db_path(&id);
                if !path.exists() {
                    missing.push((id, path));
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(
        count = missing.len(),
        "restoring tenant databases missing locally"
    );
    let parallel = cfg.replicate.upload_concurrency.max(1);
    let results: Vec<Result<(), AppError>> = stream::iter(missing)
        .map(|(id, path)| {
            let client = dest.at(&format!("tenants/{id}"));
            async move {
                let all = restore::list_all(client.as_ref(), false).await?;
                if all.is_empty() {
                    tracing::warn!(tenant = %id, replica = %client.describe(),
                        "tenant database missing locally and no replica: it stays missing");
                    return Ok(());
                }
                let rep = restore::restore(
                    client,
                    &RestoreOptions {
                        target: RestoreTarget::Latest,
                        output: path,
                        force: false,
                        parallelism: 4,
                        progress: false,
                    },
                )
                .await?;
                tracing::info!(tenant = %id, txid = rep.applied.last.max_txid, "tenant database restored");
                Ok(())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Opens, once, every tenant database that may hold commits never shipped (the process
/// died, or a destination was down, before its last close): opening attaches the
/// replicator, which ships the tail; the idle sweeper closes it again later.
pub async fn reopen_unshipped_tenants(store: &Store, r: &Replicator) {
    let dir = store.data_dir().join("tenants");
    let d = dir.clone();
    let names: Vec<String> = tokio::task::spawn_blocking(move || {
        std::fs::read_dir(&d)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".db"))
                    .collect()
            })
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    let mut n = 0usize;
    for name in names {
        let Ok(id) = crate::tenant::TenantId::parse(name.trim_end_matches(".db")) else {
            continue;
        };
        if !r.maybe_unshipped(&dir.join(&name)) {
            continue;
        }
        match store.tenant_db(&id).await {
            Ok(_) => n += 1,
            Err(e) => {
                tracing::warn!(tenant = %id, error = %e, "cannot open a tenant database to ship its tail")
            }
        }
    }
    if n > 0 {
        tracing::info!(
            count = n,
            "opened tenant databases with possibly unshipped commits"
        );
    }
}

/// Logs when replication falls behind its bounds and when it is back. Lag and WAL gauges
/// are computed from every database's status; refreshing them on the sync interval keeps
/// /metrics current without anyone polling /readyz.
pub fn spawn_health_watch(cfg: &Config, r: &Replicator) -> tokio::task::JoinHandle<()> {
    let r = r.clone();
    let every = Duration::from_millis(cfg.replicate.sync_interval_ms);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_bad = false;
        loop {
            tick.tick().await;
            let h = r.health();
            match (&h.problem, was_bad) {
                (Some(p), false) => {
                    tracing::error!(problem = %p, "replication is behind its bounds; /readyz fails")
                }
                (None, true) => tracing::info!("replication back within its bounds"),
                _ => {}
            }
            was_bad = h.problem.is_some();
            r.verify_board().publish();
        }
    })
}

/// The replication tasks that run beside the server, stopped before the store closes.
pub struct Watchers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watchers {
    /// The health watch, and the scheduled verifier of every database's replica unless
    /// `replicate.verify_interval_secs` is 0; nothing without replication.
    pub fn spawn(
        cfg: &Config,
        store: &std::sync::Arc<Store>,
        replicator: Option<&Replicator>,
    ) -> Watchers {
        let mut tasks = Vec::new();
        if let Some(r) = replicator {
            if cfg.replicate.verify_interval_secs > 0 {
                tasks.push(super::verifier::spawn(
                    cfg,
                    std::sync::Arc::clone(store),
                    r.clone(),
                ));
            }
            tasks.push(spawn_health_watch(cfg, r));
        }
        Watchers { tasks }
    }

    pub fn abort(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}
