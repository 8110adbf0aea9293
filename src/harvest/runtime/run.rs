//! The state one run shares across its stages: the source, its database, counters and
//! errors, cookies, credentials and budgets, and the flags that stop it.
//!
//! The lifecycle ([`super::runner`]) builds it; the fetch, extract and commit stages
//! ([`super::stages`], [`super::fetch_stage`]) hold it behind an `Arc`. It sits below them
//! all, so none of them has to import another for the shared type.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::auth::SourceAuth;
use super::cookies::RunJar;
use super::counts::{Counters, ErrorLog};
use super::politeness::Budget;
use super::process::Ctx;
use super::session::Session;
use super::Harvester;
use crate::harvest::extract::json::cursor::CursorSeen;
use crate::harvest::source::SourceDef;
use crate::store::TenantDb;

/// One run in progress.
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
    /// The run sees every record of the source, so a complete run marks the missing ones
    /// removed and an empty one is flagged (not a windowed or incremental run).
    pub(super) full: bool,
    /// What the stored pages have shown of the incremental cursor (see `incremental`).
    pub(super) cursor: Mutex<CursorSeen>,
}

impl Run {
    pub(super) fn stopping(&self) -> bool {
        self.h.is_shutting_down()
            || self.budget_hit.load(Ordering::Relaxed)
            || self.fatal.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    pub(super) fn set_fatal(&self, why: String) {
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
