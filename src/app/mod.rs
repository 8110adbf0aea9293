//! Wiring: start-up order, serving, and shutdown order. [`serve_on`] reads top to bottom as
//! that order; each step is a function here or in a file of its own:
//!
//! Start: replication destinations (and restore of a missing control.db from its replica,
//! [`replication`]) → store (data dir checked, control.db migrated; the replicator attached
//! as the store's observer, owning checkpoints) → missing tenant databases restored, tails a
//! crash left unshipped shipped → replication watchers → listener (and TLS) → auth (audit
//! checkpoint logged, [`auth_tasks`]) → harvester and its scheduler → HTTP. Stop (SIGTERM or
//! SIGINT, [`signals`]): readiness turns false, the server stops accepting and drains
//! in-flight requests within `http.shutdown_timeout_ms`, harvest runs finish their
//! in-flight URLs (and stay resumable), then every database writer commits what it has
//! queued, the replicator ships each database's last frames (trying for
//! `replicate.shutdown_ship_timeout_ms` even while the destination fails), and it closes.
//! Only then does the process exit: 0, or 1 when some database closed with commits
//! unshipped (each logged at error level).
//!
//! The one-shot commands (`restore`, `key create`, …) live in `crate::commands`, one file
//! each; they use this module, never the other way round.

mod auth_tasks;
mod error;
mod replication;
mod signals;
mod verifier;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{load_server_secret, Auth};
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::harvest::runtime::Harvester;
use crate::http::{self, ApiSettings, AppState, TlsReloader};
use crate::replicate::runtime::Replicator;
use crate::replicate::ReplicateError;
use crate::store::{CheckpointPolicy, DbObserver, PendingEraser, Store};
use crate::telemetry;

pub use error::AppError;
pub use signals::shutdown_signal;

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> Result<(), AppError> {
    serve_on(cfg, None).await
}

/// [`serve`] on a listener the caller bound earlier (`gleaner demo` binds its API port
/// before harvesting, so no outgoing connection can take that port in the meantime);
/// `None` binds `http.listen` here.
pub async fn serve_on(cfg: Config, bound: Option<std::net::TcpListener>) -> Result<(), AppError> {
    let admin_token = cfg.admin_token()?;
    let prometheus = telemetry::prometheus();
    let cpu = CpuPool::new(&cfg.cpu)?;
    let replicator = replication::start_replication(&cfg, &cpu).await?;
    let store = open_store(&cfg, replicator.as_ref()).await?;
    let watchers = replication::Watchers::spawn(&cfg, &store, replicator.as_ref());
    let listener = bind(&cfg, bound).await?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: cfg.http.listen,
        source,
    })?;
    let tls = tls(&cfg)?;
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let auth = Arc::new(Auth::new(
        Arc::clone(&store),
        admin_token.as_ref(),
        &secret,
        &cfg.auth,
        &cfg.limits,
    )?);
    auth_tasks::log_audit_checkpoint(&store, auth.audit_key(), "start-up").await;
    let upkeep =
        auth_tasks::spawn_upkeep(&auth, Duration::from_secs(cfg.auth.last_used_flush_secs));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let state = AppState::new(http::Shared {
        store: Arc::clone(&store),
        prometheus,
        auth: Arc::clone(&auth),
        cpu: cpu.clone(),
        api: Arc::new(api_settings(&cfg)),
        // With replication on, `DELETE /v1/tenants/{id}?erase=true` erases the replica;
        // without, the request is recorded and stays pending.
        eraser: match &replicator {
            Some(r) => Arc::new(r.clone()),
            None => Arc::new(PendingEraser),
        },
        shutting_down: Arc::clone(&shutting_down),
        replication: replicator.clone(),
    });
    // Harvest: the runtime, its scheduler, and its routes' access to it.
    let harvester = Harvester::new(cfg.harvest.clone(), Arc::clone(&store), cpu.clone())
        .map_err(|e| AppError::Harvest(e.to_string()))?;
    let scheduler = harvester.spawn_scheduler();
    let router = http::router(state, &cfg.http).layer(axum::Extension(Arc::clone(&harvester)));
    let signal = shutdown_signal()?;
    tracing::info!(
        addr = %addr,
        data_dir = %cfg.store.data_dir.display(),
        cpu_threads = cpu.threads(),
        admin_api = admin_token.is_some(),
        tls = tls.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    // systemd `Type=notify`: ready once the listener is bound and the store is open. A no-op
    // when NOTIFY_SOCKET is unset (containers, a shell, tests).
    signals::notify_service_manager(sd_notify::NotifyState::Ready);
    let flag = Arc::clone(&shutting_down);
    let drained = http::serve(listener, router, &cfg.http, tls, async move {
        let which = signal.await;
        flag.store(true, Ordering::Relaxed);
        signals::notify_service_manager(sd_notify::NotifyState::Stopping);
        tracing::info!(signal = which, "shutdown requested");
    })
    .await;
    // Harvest stops before the store: runs finish their in-flight URLs and stay resumable.
    harvester.shutdown();
    scheduler.abort();
    harvester
        .wait_idle(Duration::from_millis(cfg.http.shutdown_timeout_ms))
        .await;
    watchers.abort();
    upkeep.abort();
    // Last-used times and request counts gathered since the last flush.
    auth.upkeep().await;
    auth_tasks::log_audit_checkpoint(&store, auth.audit_key(), "shutdown").await;
    // Closing the store ships every database's tail through the replicator's hooks, all
    // within one `replicate.shutdown_ship_timeout_ms`.
    if let Some(r) = &replicator {
        r.begin_shutdown();
    }
    store.close().await;
    tracing::info!(drained = ?drained, "stopped");
    // Commits the destination never took are not a clean stop: the log named them per
    // database, the exit code says so to the service manager.
    match replicator.map(|r| r.unshipped_at_close()) {
        Some(dbs) if !dbs.is_empty() => Err(AppError::Unshipped(ReplicateError::Unshipped(dbs))),
        _ => Ok(()),
    }
}

/// Opens the store: with replication on, the replicator is its observer and owns
/// checkpoints, missing tenant databases come back from their replicas
/// (`replicate.restore_on_start`), and databases with a possibly unshipped tail are opened
/// so the replicator ships it.
async fn open_store(cfg: &Config, replicator: Option<&Replicator>) -> Result<Arc<Store>, AppError> {
    let store = Arc::new(match replicator {
        Some(r) => {
            let obs: Arc<dyn DbObserver> = Arc::new(r.clone());
            Store::open_with(&cfg.store, CheckpointPolicy::External, Some(obs)).await?
        }
        None => {
            Store::open(
                &cfg.store,
                CheckpointPolicy::Store {
                    wal_bytes: cfg.store.checkpoint_wal_bytes,
                },
            )
            .await?
        }
    });
    // Before anything opens tenant databases (and the replicator attaches to them).
    store.sweep_orphan_tenants().await?;
    if let Some(r) = replicator {
        if cfg.replicate.restore_on_start {
            replication::restore_missing_tenants(cfg, &store).await?;
        }
        replication::reopen_unshipped_tenants(&store, r).await;
    }
    Ok(store)
}

/// The listener: the one the caller bound, or `http.listen`.
async fn bind(
    cfg: &Config,
    bound: Option<std::net::TcpListener>,
) -> Result<tokio::net::TcpListener, AppError> {
    match bound {
        Some(l) => l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(l)),
        None => tokio::net::TcpListener::bind(cfg.http.listen).await,
    }
    .map_err(|source| AppError::Bind {
        addr: cfg.http.listen,
        source,
    })
}

/// TLS when a certificate and key are configured, reloaded when the files change.
fn tls(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, AppError> {
    match (&cfg.http.tls_cert_file, &cfg.http.tls_key_file) {
        (Some(c), Some(k)) => {
            let r = TlsReloader::new(c, k)?;
            r.spawn_watcher(Duration::from_secs(cfg.http.tls_reload_secs));
            Ok(Some(r.server_config()?))
        }
        _ => Ok(None),
    }
}

/// What the handlers need to know of the configuration.
fn api_settings(cfg: &Config) -> ApiSettings {
    ApiSettings {
        limits: cfg.limits.clone(),
        auth: cfg.auth.clone(),
        reuse_after_ms: (cfg.store.idle_close_secs as i64 + 60) * 1000,
        csv_neutralize_formulas: cfg.http.csv_neutralize_formulas,
    }
}
