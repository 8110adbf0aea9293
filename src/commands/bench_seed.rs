//! `gleaner bench-seed` (hidden): fills a tenant with synthetic records for the API and
//! replication benchmarks, optionally with a plain SQLite copy for peers (Datasette) that
//! cannot read compressed payloads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::cli;
use super::CommandError;
use crate::auth::load_server_secret;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::store::{encode_payload, AuditEntry, Quotas, RecordWrite, StoreError, GLOBAL_CHAIN};
use crate::tenant::TenantId;

#[derive(Args)]
pub struct BenchSeedArgs {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    records: u64,
    /// Also write a plain SQLite copy of the records here (for Datasette).
    #[arg(long, value_name = "FILE")]
    plain_copy: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(config: Option<&Path>, a: BenchSeedArgs) -> ExitCode {
    let cfg = match cli::load(config, &cli::data_dir_override(a.data_dir)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tenant = match TenantId::parse(&a.tenant) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gleaner: --tenant: {e}");
            return ExitCode::from(2);
        }
    };
    let records = a.records;
    match cli::runtime().block_on(seed_records(
        &cfg,
        &tenant,
        records,
        a.plain_copy.as_deref(),
    )) {
        Ok(rate) => {
            println!("seeded {records} records into {tenant} at {rate:.0} records/s");
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e, e.kind()),
    }
}

/// The fields of seeded record number `n` (benches/codec.rs times the codec on the same
/// shape): four fields, about 110 bytes of canonical JSON.
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

/// Fills `tenant` (created if missing) with `count` synthetic records, in batches encoded on
/// the CPU pool and written as one transaction each. Returns records/s.
pub async fn seed_records(
    cfg: &Config,
    tenant: &TenantId,
    count: u64,
    plain_copy: Option<&Path>,
) -> Result<f64, CommandError> {
    let store = cli::open_store(cfg).await?;
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
