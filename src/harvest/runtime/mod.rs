//! The harvest runtime: fetching, politeness, the durable frontier-driven pipeline, runs,
//! schedules and pushes — the I/O around the pure extractors of [`crate::harvest`].
//!
//! ```text
//! claimer (frontier batches from SQLite) → fetch tasks (tokio; per-host politeness,
//!   robots.txt, budgets, retries, auth) → bounded channel → extraction (CPU pool) →
//!   bounded channel → commits (one writer op per URL: records + links + done mark)
//! ```
//!
//! One [`Harvester`] per node holds what runs share: the HTTP client and its connection
//! pool, per-host politeness and robots.txt caches (bounded LRU maps), the CPU pool and the
//! store. Runs of one source never overlap; `harvest.max_concurrent_runs` bounds how many
//! run at once.

mod anomaly;
mod auth;
mod connections;
mod cookies;
mod counts;
mod dict_training;
mod fetch;
mod fetch_stage;
mod guard;
mod incremental;
mod politeness;
mod process;
mod push;
mod run;
mod runner;
mod scheduler;
mod session;
mod stages;
mod token_slots;

pub use counts::{RunCounts, RunError};
pub use fetch::FetchError;
pub use guard::is_public;
pub use push::PushOutcome;
pub use runner::{RunHandle, RunSummary};

/// Milliseconds since the Unix epoch, the clock runs and schedules use.
pub fn now_ms() -> i64 {
    crate::store::now_ms()
}

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};

use crate::config::HarvestConfig;
use crate::cpu::{CpuError, CpuPool};
use crate::error::ErrorKind;
use crate::harvest::extract::push::{FetchNowError, PushError, SignatureError};
use crate::harvest::source::{DefinitionError, SourceDef};
use crate::store::{SourceRow, SourceWrite, Store, StoreError};
use crate::tenant::TenantId;

#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error("source definition: {0}")]
    Definition(#[from] DefinitionError),
    #[error("tenant {tenant} has no source {source_id}")]
    SourceNotFound { tenant: String, source_id: String },
    #[error("source {tenant}/{source_id} is already running (run {run_id})")]
    AlreadyRunning {
        tenant: String,
        source_id: String,
        run_id: i64,
    },
    #[error("{tenant}/{source_id} is a push source; it is not fetched")]
    NotFetchable { tenant: String, source_id: String },
    #[error("source {source_id} is not a {expected} source")]
    WrongKind {
        source_id: String,
        expected: &'static str,
    },
    #[error("secret {reference}: {reason}")]
    Secret { reference: String, reason: String },
    #[error("source {source_id}: authentication failed: {reason}")]
    Auth { source_id: String, reason: String },
    #[error("tenant {tenant} has no connection {name}; create it with PUT /v1/tenants/{tenant}/connections/{name}")]
    ConnectionNotFound { tenant: String, name: String },
    #[error("connection {name} is used by sources {}; point them elsewhere first", .sources.join(", "))]
    ConnectionInUse { name: String, sources: Vec<String> },
    #[error("tenant {tenant} has {limit} connections, the most it may have")]
    TooManyConnections { tenant: String, limit: usize },
    #[error(
        "{0} connections are in use at once on this node, the most it tracks; try again later"
    )]
    ConnectionsBusy(usize),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("too many runs at once (harvest.max_concurrent_runs = {0}); try again later")]
    Busy(usize),
    #[error("push rejected: {0}")]
    Push(#[from] PushError),
    #[error("push signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("fetch-now request: {0}")]
    FetchNow(#[from] FetchNowError),
    #[error("the harvester is shutting down")]
    ShuttingDown,
}

impl HarvestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            HarvestError::Store(e) => e.kind(),
            HarvestError::Cpu(e) => e.kind(),
            HarvestError::Definition(e) => e.kind(),
            HarvestError::SourceNotFound { .. } => ErrorKind::NotFound,
            HarvestError::AlreadyRunning { .. } => ErrorKind::Conflict,
            HarvestError::NotFetchable { .. } | HarvestError::WrongKind { .. } => {
                ErrorKind::InvalidInput
            }
            HarvestError::Secret { .. } | HarvestError::Auth { .. } => ErrorKind::Unavailable,
            HarvestError::ConnectionNotFound { .. } => ErrorKind::NotFound,
            HarvestError::ConnectionInUse { .. } => ErrorKind::Conflict,
            HarvestError::TooManyConnections { .. } => ErrorKind::QuotaExceeded,
            HarvestError::ConnectionsBusy(_) => ErrorKind::Unavailable,
            HarvestError::Client(_) => ErrorKind::Environment,
            HarvestError::Busy(_) => ErrorKind::Unavailable,
            HarvestError::Push(e) => e.kind(),
            HarvestError::Signature(e) => e.kind(),
            HarvestError::FetchNow(e) => e.kind(),
            HarvestError::ShuttingDown => ErrorKind::ShuttingDown,
        }
    }
}

/// The node's harvester.
pub struct Harvester {
    cfg: HarvestConfig,
    store: Arc<Store>,
    cpu: CpuPool,
    fetcher: fetch::Fetcher,
    hosts: politeness::Politeness,
    running: Mutex<HashSet<(String, String)>>,
    /// Recent webhook events of signed push sources (bounded; see its header).
    replays: Mutex<crate::harvest::extract::push::replay::ReplayStore>,
    slots: Arc<Semaphore>,
    token_slots: token_slots::TokenSlots,
    shutdown: watch::Sender<bool>,
}

impl Harvester {
    pub fn new(
        cfg: HarvestConfig,
        store: Arc<Store>,
        cpu: CpuPool,
    ) -> Result<Arc<Harvester>, HarvestError> {
        let fetcher = fetch::Fetcher::new(&cfg).map_err(HarvestError::Client)?;
        let hosts = politeness::Politeness::new(cfg.max_hosts, cfg.per_host_concurrency as usize);
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Harvester {
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_runs)),
            cfg,
            store,
            cpu,
            fetcher,
            hosts,
            running: Mutex::new(HashSet::new()),
            replays: Mutex::default(),
            token_slots: token_slots::TokenSlots::default(),
            shutdown,
        }))
    }

    pub fn config(&self) -> &HarvestConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Asks running runs to stop at the next URL; their frontiers stay for the next run to
    /// resume.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until no run is in progress, at most `limit`.
    pub async fn wait_idle(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.running.lock().map(|r| !r.is_empty()).unwrap_or(false)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Stores a source definition (validated by the caller: `validate_untrusted` for the
    /// API, `validate` for operator files). Returns true when it was created. A definition
    /// naming a connection the tenant lacks is refused (`HarvestError::Definition`).
    pub async fn put_source(
        &self,
        tenant: &TenantId,
        def: &SourceDef,
    ) -> Result<bool, HarvestError> {
        self.check_connection_ref(tenant, def).await?;
        let now = crate::store::now_ms();
        // A new source counts against the tenant's `sources` quota.
        if self
            .store
            .get_source(tenant.as_str(), def.id().as_str())
            .await?
            .is_none()
        {
            let n = self.store.count_sources(tenant.as_str()).await?;
            self.store.check_sources_quota(tenant, n).await?;
        }
        let next = def.common.schedule.as_ref().and_then(|s| {
            let t = time::OffsetDateTime::from_unix_timestamp(now / 1000).ok()?;
            s.next_after(t).map(|n| n.unix_timestamp() * 1000)
        });
        let created = self
            .store
            .put_source(SourceWrite {
                tenant: tenant.to_string(),
                id: def.id().to_string(),
                kind: def.kind().to_owned(),
                definition: serde_json::to_string(def).unwrap_or_default(),
                schedule: def.common.schedule.as_ref().map(|s| s.to_string()),
                freshness_secs: def.common.freshness.map(|f| f.secs() as i64),
                next_run_ms: next,
            })
            .await?;
        Ok(created)
    }

    /// A stored source and its parsed definition.
    pub async fn source(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(SourceRow, SourceDef), HarvestError> {
        let row = self
            .store
            .get_source(tenant.as_str(), id)
            .await?
            .ok_or_else(|| HarvestError::SourceNotFound {
                tenant: tenant.to_string(),
                source_id: id.to_owned(),
            })?;
        let v: serde_json::Value = serde_json::from_str(&row.definition)
            .map_err(|e| StoreError::Corrupt(format!("source {}/{}: {e}", row.tenant, row.id)))?;
        let def = SourceDef::from_value(v)?;
        Ok((row, def))
    }

    /// Whether `source` has a run in progress on this node.
    pub fn is_running(&self, tenant: &str, source: &str) -> bool {
        self.running
            .lock()
            .map(|r| r.contains(&(tenant.to_owned(), source.to_owned())))
            .unwrap_or(false)
    }
}
