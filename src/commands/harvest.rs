//! `gleaner harvest`: one run of one source in the foreground, with a progress bar.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::cli::{self, ServeArgs};
use super::CommandError;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::harvest::runtime::{Harvester, RunSummary};
use crate::harvest::source::SourceDef;
use crate::store::{Store, StoreError};
use crate::tenant::TenantId;

/// Opens the store and the harvester for a command.
pub async fn open(cfg: &Config) -> Result<(Arc<Store>, Arc<Harvester>), CommandError> {
    let cpu = CpuPool::new(&cfg.cpu)?;
    let store = Arc::new(cli::open_store(cfg).await?);
    let h = Harvester::new(cfg.harvest.clone(), Arc::clone(&store), cpu)?;
    Ok((store, h))
}

/// Creates the tenant when it does not exist.
pub async fn ensure_tenant(store: &Store, tenant: &TenantId) -> Result<(), CommandError> {
    match store.get_tenant(tenant).await {
        Ok(_) => Ok(()),
        Err(StoreError::TenantNotFound(_)) => {
            match store.create_tenant(tenant, tenant.as_str()).await {
                Ok(_) | Err(StoreError::TenantExists(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads a definition file (TOML, or JSON when it ends in `.json`) as a trusted operator
/// file: `env:` and `file:` secret references are allowed.
pub fn read_definition(path: &Path) -> Result<SourceDef, CommandError> {
    let text = std::fs::read_to_string(path).map_err(|e| CommandError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let def = if path.extension().is_some_and(|e| e == "json") {
        SourceDef::parse_json(text.as_bytes())
    } else {
        SourceDef::parse_toml(&text)
    };
    def.map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))
}

/// A progress bar fed from a run's counters until `done` is set.
pub fn progress_bar(label: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_prefix(label.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Runs one harvest with a progress bar and returns its summary.
pub async fn run_with_progress(
    h: &Arc<Harvester>,
    tenant: &TenantId,
    source: &str,
    show: bool,
) -> Result<RunSummary, CommandError> {
    let handle = h.start_run(tenant, source, "cli").await?;
    let pb = if show {
        progress_bar(&format!("{tenant}/{source}"))
    } else {
        ProgressBar::hidden()
    };
    if handle.resumed {
        pb.println(format!(
            "resuming run {} of {tenant}/{source}",
            handle.run_id
        ));
    }
    let counters = Arc::clone(&handle.counters);
    let t0 = Instant::now();
    let mut task = handle.task;
    let summary = loop {
        tokio::select! {
            r = &mut task => break r.map_err(|e| CommandError::Io(format!("the run task failed: {e}")))?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                let c = counters.snapshot();
                let secs = t0.elapsed().as_secs_f64().max(0.001);
                let records = c.records_new + c.records_changed + c.records_unchanged;
                pb.set_message(format!(
                    "pages {} · records {} ({} new, {} changed) · {:.0} pages/s · errors {}",
                    c.pages, records, c.records_new, c.records_changed, c.pages as f64 / secs, c.errors
                ));
            }
            _ = tokio::signal::ctrl_c() => {
                pb.println("interrupted: finishing in-flight URLs; the next run resumes here");
                h.shutdown();
            }
        }
    };
    pb.finish_and_clear();
    Ok(summary)
}

/// A human summary of a run.
pub fn describe(s: &RunSummary) -> String {
    let c = &s.counts;
    let secs = ((s.ended_ms - s.started_ms) as f64 / 1000.0).max(0.001);
    let mut out = format!(
        "run {} of {}/{}: {}{}{}\n",
        s.run_id,
        s.tenant,
        s.source,
        s.status,
        if s.complete { " (complete)" } else { "" },
        if s.resumed { ", resumed" } else { "" }
    );
    out += &format!(
        "  requests {} · fetched {} · not modified {} · unchanged bodies {} · errors {} · robots blocked {} · retries {} · {:.1} MB\n",
        c.requests,
        c.fetched,
        c.not_modified,
        c.unchanged_bodies,
        c.errors,
        c.robots_blocked,
        c.retries,
        c.bytes as f64 / 1e6
    );
    out += &format!(
        "  records: {} new · {} changed · {} unchanged · {} removed{}\n",
        c.records_new,
        c.records_changed,
        c.records_unchanged,
        c.records_removed,
        if c.removals_held > 0 {
            format!(
                " · {} removals held until the run is accepted",
                c.removals_held
            )
        } else {
            String::new()
        }
    );
    out += &format!(
        "  took {secs:.1} s ({:.0} pages/s)\n",
        c.pages as f64 / secs
    );
    if let Some(m) = &s.message {
        out += &format!("  note: {m}\n");
    }
    for e in s.errors.iter().take(10) {
        out += &format!("  error [{}] {}\n", e.kind, e.reason);
    }
    if s.errors.len() > 10 {
        out += &format!(
            "  … {} more errors kept with the run\n",
            s.errors.len() - 10
        );
    }
    out
}

/// `gleaner harvest`.
pub async fn harvest(
    cfg: Config,
    tenant: &str,
    source: Option<&str>,
    source_file: Option<&Path>,
    show_progress: bool,
) -> Result<RunSummary, CommandError> {
    let tenant =
        TenantId::parse(tenant).map_err(|e| CommandError::Usage(format!("--tenant: {e}")))?;
    let def = source_file.map(read_definition).transpose()?;
    let source = match (source, &def) {
        (Some(s), Some(d)) if s != d.id().as_str() => {
            return Err(CommandError::Usage(format!(
                "--source {s} does not match the id {:?} in the definition file",
                d.id().as_str()
            )))
        }
        (Some(s), _) => s.to_owned(),
        (None, Some(d)) => d.id().to_string(),
        (None, None) => {
            return Err(CommandError::Usage(
                "give --source, --source-file or both".into(),
            ))
        }
    };
    let (store, h) = open(&cfg).await?;
    let result = async {
        ensure_tenant(&store, &tenant).await?;
        if let Some(d) = &def {
            h.put_source(&tenant, d).await?;
        }
        run_with_progress(&h, &tenant, &source, show_progress).await
    }
    .await;
    store.close().await;
    result
}

#[derive(Args)]
pub struct HarvestArgs {
    /// Tenant (created when it does not exist).
    #[arg(long)]
    tenant: String,
    /// Source id (optional with --source-file: the file's id).
    #[arg(long)]
    source: Option<String>,
    /// Source definition (TOML, or JSON when it ends in .json) to store before running.
    #[arg(long, value_name = "FILE")]
    source_file: Option<PathBuf>,
    /// Print the run summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Exit 0 only when the run succeeded: a failed or incomplete run is 1, so scripts notice.
pub fn run(config: Option<&Path>, args: HarvestArgs) -> ExitCode {
    let mut cfg = match cli::load(config, &args.serve.overrides()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if args.serve.log_level.is_none() {
        cfg.log.level = "warn".into();
    }
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    let r = cli::runtime().block_on(harvest(
        cfg,
        &args.tenant,
        args.source.as_deref(),
        args.source_file.as_deref(),
        !args.quiet && !args.json,
    ));
    match r {
        Ok(summary) => {
            if args.json {
                println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            } else {
                print!("{}", describe(&summary));
            }
            if summary.status == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => cli::fail(&e, e.kind()),
    }
}
