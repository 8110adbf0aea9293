//! The harvest runtime against local servers on 127.0.0.1: the bundled sample site (JSP
//! listings with session cookies and windows-1252, ETags, sitemaps, RSS, an OAuth2 JSON
//! API) and small axum servers that misbehave on purpose. The shared set-up (a store and a
//! harvester in this process) is here; the tests are in the files below, by theme.

mod auth;
mod bad_sites;
mod connections;
mod incremental;
mod limits;
mod sample_site;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use gleaner::config::HarvestConfig;
use gleaner::cpu::CpuPool;
use gleaner::harvest::runtime::{Harvester, RunSummary};
use gleaner::harvest::source::SourceDef;
use gleaner::store::Store;
use gleaner::tenant::TenantId;
use serde::Deserialize;

use crate::support::{control, open_store, registry_detail_toml, sample_site, serve};

struct Env {
    _dir: Option<tempfile::TempDir>,
    store: Arc<Store>,
    h: Arc<Harvester>,
    tenant: TenantId,
}

fn test_cfg() -> HarvestConfig {
    HarvestConfig {
        allow_private_targets: true,
        retry_base_ms: 10,
        retry_max_ms: 3000,
        max_attempts: 3,
        request_timeout_ms: 5000,
        ..HarvestConfig::default()
    }
}

async fn env(cfg: HarvestConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env_in(dir.path(), cfg).await;
    e._dir = Some(dir);
    e
}

async fn env_in(dir: &std::path::Path, cfg: HarvestConfig) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let store = Arc::new(open_store(dir).await);
    let tenant = TenantId::parse("acme").unwrap();
    let _ = store.create_tenant(&tenant, "Acme").await;
    let cpu = CpuPool::new(&Default::default()).unwrap();
    let h = Harvester::new(cfg, Arc::clone(&store), cpu).unwrap();
    Env {
        _dir: None,
        store,
        h,
        tenant,
    }
}

impl Env {
    async fn put(&self, toml: &str) {
        let def = SourceDef::parse_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        self.h.put_source(&self.tenant, &def).await.unwrap();
    }

    async fn run(&self, source: &str) -> RunSummary {
        self.h
            .run_source(&self.tenant, source, "test")
            .await
            .unwrap()
    }

    async fn db(&self) -> gleaner::store::TenantDb {
        self.store.tenant_db(&self.tenant).await.unwrap()
    }
}
