//! Wiring: start-up order, serving, and shutdown order.
//!
//! Start: replication destinations (and restore of a missing control.db from its replica)
//! → store (data dir checked, control.db migrated; the replicator attached as the store's
//! observer, owning checkpoints) → listener → harvester and its scheduler → HTTP. Stop
//! (SIGTERM or SIGINT): readiness turns false, the server stops accepting and drains
//! in-flight requests within `http.shutdown_timeout_ms`, harvest runs finish their
//! in-flight URLs (and stay resumable), then every database writer commits what it has
//! queued, the replicator ships each database's last frames, and it closes. Only then does
//! the process exit 0.
//!
//! Also here: the `restore`, `verify` and `replicate` commands.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{load_server_secret, Auth};
use crate::config::{Config, ConfigError};
use crate::cpu::{CpuError, CpuPool};
use crate::error::ErrorKind;
use crate::http::{self, ApiSettings, AppState, TlsError, TlsReloader};
use crate::replicate::plan::RestoreTarget;
use crate::replicate::restore::{self, RestoreOptions};
use crate::replicate::runtime::{Replicator, RuntimeSettings};
use crate::replicate::url::{open_client, open_destination};
use crate::replicate::ReplicateError;
use crate::store::{CheckpointPolicy, DbObserver, PendingEraser, Store, StoreError};
use crate::telemetry;
use crate::telemetry::metrics as m;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error(transparent)]
    Replicate(#[from] ReplicateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("harvester: {0}")]
    Harvest(String),
    #[error("health check of {url} failed: {reason}")]
    Unhealthy { url: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("OIDC configuration: {0}")]
    Oidc(#[from] crate::auth::oidc::OidcError),
}

impl AppError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Config(e) => e.kind(),
            AppError::Store(e) => e.kind(),
            AppError::Cpu(e) => e.kind(),
            AppError::Replicate(e) => e.kind(),
            AppError::Bind { .. } | AppError::Signals(_) => ErrorKind::Environment,
            AppError::Unhealthy { .. } => ErrorKind::Unavailable,
            AppError::Tls(e) => e.kind(),
            AppError::Oidc(_) => ErrorKind::Config,
            AppError::Harvest(_) => ErrorKind::Environment,
        }
    }
}

/// Publishes the audit checkpoint in the log (an anchor outside the database, see
/// `store::audit`), signing a log that predates anchoring at start-up. A checkpoint that
/// does not hold is an error to act on, not a reason to refuse to serve.
async fn log_audit_checkpoint(store: &Store, key: &crate::store::AuditKey, at: &str) {
    match store.anchor_audit(key).await {
        Ok(cp) if cp.ok => tracing::info!(
            at,
            last_seq = cp.last_seq,
            entries = cp.entries,
            chains = cp.chains,
            mac = %cp.mac,
            "audit checkpoint"
        ),
        Ok(cp) => tracing::error!(
            at,
            last_seq = cp.last_seq,
            entries = cp.entries,
            chains = cp.chains,
            reason = cp.reason.as_deref().unwrap_or(""),
            "audit checkpoint does not hold: the audit log was tampered with; run `gleaner audit verify`"
        ),
        Err(e) => tracing::warn!(at, error = %e, "cannot read the audit checkpoint"),
    }
}

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
    let replicator = start_replication(&cfg, &cpu).await?;
    let store = Arc::new(match &replicator {
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
    if let Some(r) = &replicator {
        if cfg.replicate.restore_on_start {
            restore_missing_tenants(&cfg, &store).await?;
        }
        reopen_unshipped_tenants(&store, r).await;
    }
    let verifier = replicator
        .as_ref()
        .filter(|_| cfg.replicate.verify_interval_secs > 0)
        .map(|_| spawn_verifier(&cfg));
    let gauges = replicator.clone().map(|r| {
        // Lag and WAL gauges are computed from every database's status; refresh them on
        // the sync interval so /metrics is current without anyone polling /readyz.
        let every = Duration::from_millis(cfg.replicate.sync_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_bad = false;
            loop {
                tick.tick().await;
                let h = r.health();
                match (&h.problem, was_bad) {
                    (Some(p), false) => tracing::error!(problem = %p, "replication is behind its bounds; /readyz fails"),
                    (None, true) => tracing::info!("replication back within its bounds"),
                    _ => {}
                }
                was_bad = h.problem.is_some();
            }
        })
    });
    let listener = match bound {
        Some(l) => l
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(l)),
        None => tokio::net::TcpListener::bind(cfg.http.listen).await,
    }
    .map_err(|source| AppError::Bind {
        addr: cfg.http.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: cfg.http.listen,
        source,
    })?;
    let tls = match (&cfg.http.tls_cert_file, &cfg.http.tls_key_file) {
        (Some(c), Some(k)) => {
            let r = TlsReloader::new(c, k)?;
            r.spawn_watcher(Duration::from_secs(cfg.http.tls_reload_secs));
            Some(r.server_config()?)
        }
        _ => None,
    };
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let auth = Arc::new(Auth::new(
        Arc::clone(&store),
        admin_token.as_ref(),
        &secret,
        &cfg.auth,
        &cfg.limits,
    )?);
    log_audit_checkpoint(&store, auth.audit_key(), "start-up").await;
    let upkeep = tokio::spawn({
        let auth = Arc::clone(&auth);
        let every = Duration::from_secs(cfg.auth.last_used_flush_secs);
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = auth.meter.wake.notified() => {}
                }
                auth.upkeep().await;
            }
        }
    });
    let shutting_down = Arc::new(AtomicBool::new(false));
    let state = AppState::new(http::Shared {
        store: Arc::clone(&store),
        prometheus,
        auth: Arc::clone(&auth),
        cpu: cpu.clone(),
        api: Arc::new(ApiSettings {
            limits: cfg.limits.clone(),
            auth: cfg.auth.clone(),
            reuse_after_ms: (cfg.store.idle_close_secs as i64 + 60) * 1000,
            csv_neutralize_formulas: cfg.http.csv_neutralize_formulas,
        }),
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
    let harvester = crate::harvest::runtime::Harvester::new(
        cfg.harvest.clone(),
        Arc::clone(&store),
        cpu.clone(),
    )
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
    notify_service_manager(sd_notify::NotifyState::Ready);
    let flag = Arc::clone(&shutting_down);
    let drained = http::serve(listener, router, &cfg.http, tls, async move {
        let which = signal.await;
        flag.store(true, Ordering::Relaxed);
        notify_service_manager(sd_notify::NotifyState::Stopping);
        tracing::info!(signal = which, "shutdown requested");
    })
    .await;
    // Harvest stops before the store: runs finish their in-flight URLs and stay resumable.
    harvester.shutdown();
    scheduler.abort();
    harvester
        .wait_idle(Duration::from_millis(cfg.http.shutdown_timeout_ms))
        .await;
    if let Some(v) = verifier {
        v.abort();
    }
    if let Some(g) = gauges {
        g.abort();
    }
    upkeep.abort();
    // Last-used times and request counts gathered since the last flush.
    auth.upkeep().await;
    log_audit_checkpoint(&store, auth.audit_key(), "shutdown").await;
    // Closing the store ships every database's tail through the replicator's hooks.
    store.close().await;
    tracing::info!(drained = ?drained, "stopped");
    Ok(())
}

/// Tells systemd about a state change. Failing to reach it is logged, never fatal.
fn notify_service_manager(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Builds the replicator when `[replicate]` is on, restoring a missing control.db first.
async fn start_replication(cfg: &Config, cpu: &CpuPool) -> Result<Option<Replicator>, AppError> {
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
async fn restore_missing_tenants(cfg: &Config, store: &Store) -> Result<(), AppError> {
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
async fn reopen_unshipped_tenants(store: &Store, r: &Replicator) {
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

/// Scheduled verification of control.db's replica, exposed as metrics.
fn spawn_verifier(cfg: &Config) -> tokio::task::JoinHandle<()> {
    let r = cfg.replicate.clone();
    let tmp = cfg.store.data_dir.join(".replicate");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(r.verify_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let res = async {
                let client = open_destination(&r.url, &r.s3).await?.at("control");
                tokio::fs::create_dir_all(&tmp)
                    .await
                    .map_err(ReplicateError::io("create directory", &tmp))?;
                restore::verify(client, &tmp, r.upload_concurrency).await
            }
            .await;
            match res {
                Ok(rep) => {
                    metrics::counter!(m::REPLICATION_VERIFY_TOTAL, "outcome" => "ok").increment(1);
                    metrics::gauge!(m::REPLICATION_VERIFY_LAST_SUCCESS_SECONDS)
                        .set(crate::replicate::replica::now_secs());
                    tracing::info!(
                        txid = rep.txid,
                        pages = rep.page_count,
                        "replica of control.db verified"
                    );
                }
                Err(e) => {
                    metrics::counter!(m::REPLICATION_VERIFY_TOTAL, "outcome" => "failed")
                        .increment(1);
                    tracing::error!(error = %e, "replica verification of control.db failed");
                }
            }
        }
    })
}

/// What `gleaner restore` was asked for.
pub struct RestoreArgs {
    pub url: String,
    pub output: std::path::PathBuf,
    pub target: RestoreTarget,
    pub force: bool,
    /// Succeed without restoring when `output` exists and is not empty.
    pub if_db_not_exists: bool,
    /// Succeed without restoring when the replica holds no files.
    pub if_replica_exists: bool,
    pub parallelism: usize,
    pub progress: bool,
}

/// `gleaner restore`: prints what it restored.
pub async fn restore_cmd(cfg: &Config, a: RestoreArgs) -> Result<(), AppError> {
    if a.if_db_not_exists && std::fs::metadata(&a.output).is_ok_and(|m| !m.is_file() || m.len() > 0)
    {
        eprintln!(
            "{} already exists; nothing restored (--if-db-not-exists)",
            a.output.display()
        );
        return Ok(());
    }
    let client = open_client(&a.url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    if a.if_replica_exists && restore::list_all(client.as_ref(), false).await?.is_empty() {
        eprintln!(
            "no replica at {}; nothing restored (--if-replica-exists)",
            client.describe()
        );
        return Ok(());
    }
    let started = std::time::Instant::now();
    let rep = restore::restore(
        client,
        &RestoreOptions {
            target: a.target,
            output: a.output.clone(),
            force: a.force,
            parallelism: a.parallelism,
            progress: a.progress,
        },
    )
    .await?;
    eprintln!(
        "restored {} (txid {:016x}, {} pages, {} bytes) from {} files in {:.2}s",
        a.output.display(),
        rep.applied.last.max_txid,
        rep.applied.last.commit,
        rep.applied.db_size,
        rep.files,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `gleaner verify`: restores to a temporary file and checks it; prints the state.
pub async fn verify_cmd(cfg: &Config, url: &str) -> Result<(), AppError> {
    let client = open_client(url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    let dir = std::env::temp_dir();
    let rep = restore::verify(client, &dir, cfg.replicate.upload_concurrency).await?;
    println!("replica:    {url}");
    println!("txid:       {:016x}", rep.txid);
    println!(
        "timestamp:  {}",
        restore::fmt_time(
            std::time::UNIX_EPOCH + Duration::from_millis(rep.timestamp_ms.max(0) as u64)
        )
    );
    println!("pages:      {} of {} bytes", rep.page_count, rep.page_size);
    println!("size:       {} bytes", rep.size);
    println!("files:      {}", rep.files);
    println!("integrity:  ok");
    Ok(())
}

/// `gleaner replicate`: replicates a database another program writes until SIGTERM/SIGINT,
/// then ships the tail and exits.
pub async fn replicate_cmd(cfg: &Config, db: &std::path::Path, url: &str) -> Result<(), AppError> {
    let signal = shutdown_signal()?;
    let cpu = CpuPool::new(&cfg.cpu)?;
    let dest = open_destination(url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    let data_dir = db
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let rep = Replicator::new(
        RuntimeSettings::from_config(&cfg.replicate),
        vec![dest],
        data_dir,
        cpu,
    );
    rep.attach_external(db, Duration::from_millis(cfg.store.busy_timeout_ms))
        .await?;
    tracing::info!(db = %db.display(), replica = url, "replicating");
    let which = signal.await;
    tracing::info!(
        signal = which,
        "shutdown requested; shipping the last frames"
    );
    rep.detach_all().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves with the signal's name on SIGTERM or SIGINT. Handlers are installed before
/// returning, so a signal that arrives during start-up is not lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>, AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// GETs `/readyz` of the local server; Ok only on 200. Containers run this as their health
/// check because a minimal image has no shell or curl.
pub async fn healthcheck(
    cfg: &Config,
    url: Option<&str>,
    timeout: Duration,
) -> Result<(), AppError> {
    let addr = match url {
        Some(u) => u.to_owned(),
        None => {
            let mut a = cfg.http.listen;
            // A wildcard listen address is reached through loopback.
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            a.to_string()
        }
    };
    let url = format!("http://{addr}/readyz");
    let fail = |reason: String| AppError::Unhealthy {
        url: url.clone(),
        reason,
    };
    let check = async {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| fail(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        let req = ::http::Request::get("/readyz")
            .header(::http::header::HOST, addr.as_str())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("request: {e}")))?;
        if resp.status() == ::http::StatusCode::OK {
            Ok(())
        } else {
            Err(fail(format!("status {}", resp.status())))
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| fail(format!("no answer within {} ms", timeout.as_millis())))?
}

/// Who a key created on the command line is for.
#[derive(Debug, Clone)]
pub enum KeyFor {
    Admin,
    Tenant {
        tenant: crate::tenant::TenantId,
        role: crate::auth::Role,
    },
}

/// Creates an API key directly in the store (no server needed) and returns its token,
/// which is shown only this once. The creation is audited with actor `cli`.
pub async fn create_key(
    cfg: &Config,
    who: KeyFor,
    name: &str,
    expires_in_secs: Option<u64>,
) -> Result<String, AppError> {
    use crate::store::{AuditEntry, NewApiKey, GLOBAL_CHAIN};
    let store = Store::open(
        &cfg.store,
        CheckpointPolicy::Store {
            wal_bytes: cfg.store.checkpoint_wal_bytes,
        },
    )
    .await?;
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let keys = crate::auth::DerivedKeys::from_secret(&secret);
    let hasher = crate::auth::KeyHasher::new(&keys.key_hmac);
    let token = hasher.generate().map_err(|_| AppError::Unhealthy {
        url: "local".into(),
        reason: "no randomness available".into(),
    })?;
    let (tenant, role) = match &who {
        KeyFor::Admin => (None, crate::auth::Role::Admin),
        KeyFor::Tenant { tenant, role } => (Some(tenant.to_string()), *role),
    };
    let now = crate::auth::now_ms();
    let audit = AuditEntry {
        tenant: tenant.clone().unwrap_or_else(|| GLOBAL_CHAIN.to_owned()),
        at_ms: now,
        actor: "cli".into(),
        action: "key.created".into(),
        target: token.id.clone(),
        remote: "local".into(),
        outcome: "success".into(),
        detail: serde_json::json!({"role": role.as_str(), "name": name}),
    };
    let r = store
        .insert_api_key(
            NewApiKey {
                id: token.id.clone(),
                tenant,
                role: role.as_str().to_owned(),
                name: name.to_owned(),
                secret_hash: token.secret_hash,
                created_ms: now,
                created_by: "cli".into(),
                expires_ms: expires_in_secs.map(|s| now + s as i64 * 1000),
            },
            &keys.audit,
            audit,
        )
        .await;
    store.close().await;
    r?;
    Ok(token.token)
}

/// The fields of seeded record number `n` (`gleaner bench-seed`; benches/codec.rs times
/// the codec on the same shape): four fields, about 110 bytes of canonical JSON.
pub fn seed_fields(n: u64) -> serde_json::Value {
    const WORDS: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let w = |m: u64| WORDS[(n % m) as usize];
    serde_json::json!({
        "title": format!("record {n} {}", w(8)),
        "n": n,
        "group": n % 100,
        "body": format!("{} {} {} text of record number {n}", w(3), w(5), w(7)),
    })
}

/// Fills `tenant` (created if missing) with `count` synthetic records for benchmarks, in
/// batches encoded on the CPU pool and written as one transaction each; optionally writes a
/// plain SQLite copy for peers that cannot read compressed payloads. Returns records/s.
pub async fn seed_records(
    cfg: &Config,
    tenant: &crate::tenant::TenantId,
    count: u64,
    plain_copy: Option<&std::path::Path>,
) -> Result<f64, AppError> {
    use crate::store::{encode_payload, AuditEntry, Quotas, RecordWrite, GLOBAL_CHAIN};
    let store = Store::open(
        &cfg.store,
        CheckpointPolicy::Store {
            wal_bytes: cfg.store.checkpoint_wal_bytes,
        },
    )
    .await?;
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let keys = crate::auth::DerivedKeys::from_secret(&secret);
    if store.get_tenant_details(tenant).await.is_err() {
        let audit = AuditEntry {
            tenant: GLOBAL_CHAIN.into(),
            at_ms: crate::auth::now_ms(),
            actor: "cli".into(),
            action: "tenant.created".into(),
            target: tenant.to_string(),
            remote: "local".into(),
            outcome: "success".into(),
            detail: serde_json::json!({"seeded": count}),
        };
        store
            .create_tenant_audited(
                tenant,
                tenant.as_str(),
                Quotas::default(),
                serde_json::json!({}),
                0,
                &keys.audit,
                audit,
            )
            .await?;
    }
    let db = store.tenant_db(tenant).await?;
    let cpu = CpuPool::new(&cfg.cpu)?;
    let started = std::time::Instant::now();
    const BATCH: u64 = 5000;
    let mut i = 0u64;
    while i < count {
        let end = (i + BATCH).min(count);
        let now = crate::auth::now_ms();
        let batch = cpu
            .run(move || {
                (i..end)
                    .map(|n| {
                        let fields = seed_fields(n);
                        Ok(RecordWrite {
                            source: format!("source-{}", n % 10),
                            key: format!("key-{n:08}"),
                            payload: encode_payload(&fields)?,
                            seen_ms: now,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await??;
        db.put_records(batch).await?;
        i = end;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if let Some(p) = plain_copy {
        db.export_plain_sqlite(p).await?;
    }
    drop(db);
    store.close().await;
    Ok(rate)
}
