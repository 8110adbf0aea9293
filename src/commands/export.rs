//! `gleaner export`: a tenant's records from the data directory as NDJSON or CSV, to
//! stdout or a file, with the API export's filters and exactly its output (both go through
//! `store::export`). A file is written beside its final name and renamed when complete, so
//! a failed export never leaves a truncated file that looks whole. Like the API's export
//! it is audited (actor `cli`, remote `local`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use tokio::io::AsyncWriteExt;

use super::cli;
use super::CommandError;
use crate::auth::{load_server_secret, now_ms, DerivedKeys};
use crate::config::Config;
use crate::store::export::{self, ExportCursor, ExportFormat, ExportLimits};
use crate::store::{match_expression, AuditEntry, RecordFilter};
use crate::tenant::TenantId;

/// The bound on a filter's text, as the API's.
const MAX_FILTER_CHARS: usize = 1024;

/// What to export; the filters mean what the API's query parameters of the same names do.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub tenant: String,
    pub format: Option<ExportFormat>,
    pub source: Option<String>,
    pub key_prefix: Option<String>,
    pub changed_since: Option<i64>,
    /// `Some(true)`: only removed records; `Some(false)`: only present ones; `None`: all.
    pub removed: Option<bool>,
    pub field: Option<String>,
    pub equals: Option<String>,
    pub q: Option<String>,
    pub fields: Option<String>,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    /// CSV text cells that would start a spreadsheet formula get a leading `'`.
    pub neutralize_formulas: bool,
}

/// What was written.
#[derive(Debug)]
pub struct Exported {
    pub records: u64,
    pub bytes: u64,
}

fn check(flag: &str, v: &Option<String>) -> Result<(), CommandError> {
    match v {
        Some(s) if s.chars().count() > MAX_FILTER_CHARS || s.chars().any(char::is_control) => {
            Err(CommandError::Usage(format!(
                "{flag}: at most {MAX_FILTER_CHARS} characters, no control characters"
            )))
        }
        _ => Ok(()),
    }
}

fn filter_of(a: &ExportArgs) -> Result<RecordFilter, CommandError> {
    for (flag, v) in [
        ("--source", &a.source),
        ("--key-prefix", &a.key_prefix),
        ("--equals", &a.equals),
        ("--q", &a.q),
    ] {
        check(flag, v)?;
    }
    if a.changed_since.is_some_and(|t| t < 0) {
        return Err(CommandError::Usage(
            "--changed-since: milliseconds since 1970, not negative".into(),
        ));
    }
    let field_equals = match (&a.field, &a.equals) {
        (Some(p), Some(v)) => Some((
            export::field_path("--field", p).map_err(CommandError::Usage)?,
            v.clone(),
        )),
        (None, None) => None,
        _ => {
            return Err(CommandError::Usage(
                "--field and --equals go together".into(),
            ))
        }
    };
    let text_match = match &a.q {
        Some(q) => Some(
            match_expression(q)
                .ok_or_else(|| CommandError::Usage("--q: give at least one word".into()))?,
        ),
        None => None,
    };
    Ok(RecordFilter {
        source: a.source.clone(),
        key_prefix: a.key_prefix.clone(),
        changed_since_ms: a.changed_since,
        removed: a.removed,
        field_equals,
        text_match,
    })
}

/// The temporary name a file export is written under.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// `gleaner export`.
pub async fn export(cfg: &Config, a: ExportArgs) -> Result<Exported, CommandError> {
    let tenant =
        TenantId::parse(&a.tenant).map_err(|e| CommandError::Usage(format!("--tenant: {e}")))?;
    let filter = filter_of(&a)?;
    let projection = a
        .fields
        .as_deref()
        .map(|l| export::projection("--fields", l))
        .transpose()
        .map_err(CommandError::Usage)?;
    let format = a.format.unwrap_or(ExportFormat::Ndjson);
    if !cfg.store.data_dir.join("control.db").exists() {
        return Err(CommandError::Usage(format!(
            "no data directory at {} (set --data-dir or store.data_dir)",
            cfg.store.data_dir.display()
        )));
    }
    let store = cli::open_store(cfg).await?;
    let r = async {
        store.get_tenant(&tenant).await?;
        let db = store.tenant_db(&tenant).await?;
        let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
        let key = DerivedKeys::from_secret(&secret).audit;
        let detail = serde_json::json!({
            "format": if format == ExportFormat::Csv { "csv" } else { "ndjson" },
            "source": a.source, "key_prefix": a.key_prefix, "changed_since": a.changed_since,
            "removed": a.removed, "field": a.field, "equals": a.equals, "q": a.q,
            "fields": a.fields, "neutralize_formulas": a.neutralize_formulas,
            "output": a.output.as_ref().map_or("stdout".to_owned(), |p| p.display().to_string()),
        });
        store
            .append_audit(
                &key,
                AuditEntry {
                    tenant: tenant.to_string(),
                    at_ms: now_ms(),
                    actor: "cli".into(),
                    action: "export".into(),
                    target: tenant.to_string(),
                    remote: "local".into(),
                    outcome: "success".into(),
                    detail,
                },
            )
            .await?;
        let limits = ExportLimits {
            chunk_rows: cfg.limits.export_chunk_rows,
            timeout_ms: cfg.limits.statement_timeout_ms,
            max_scan: cfg.limits.max_scan_rows as i64,
        };
        let cursor = ExportCursor::new(db, filter, format, projection, limits)
            .neutralize_formulas(a.neutralize_formulas);
        match &a.output {
            None => write_all(cursor, tokio::io::stdout(), "stdout").await,
            Some(out) => {
                let tmp = partial_path(out);
                let io = |e: std::io::Error| CommandError::Io(format!("{}: {e}", tmp.display()));
                let file = tokio::fs::File::create(&tmp).await.map_err(io)?;
                let r = write_all(cursor, file, &tmp.display().to_string()).await;
                match r {
                    Ok(n) => {
                        tokio::fs::rename(&tmp, out)
                            .await
                            .map_err(|e| CommandError::Io(format!("{}: {e}", out.display())))?;
                        Ok(n)
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        Err(e)
                    }
                }
            }
        }
    }
    .await;
    store.close().await;
    r
}

async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    mut cursor: ExportCursor,
    w: W,
    what: &str,
) -> Result<Exported, CommandError> {
    let mut w = tokio::io::BufWriter::new(w);
    let io = |e: std::io::Error| CommandError::Io(format!("cannot write to {what}: {e}"));
    let (mut records, mut bytes) = (0u64, 0u64);
    while let Some((text, n)) = cursor.next().await? {
        match w.write_all(text.as_bytes()).await {
            Ok(()) => {}
            // A reader that has seen enough (`gleaner export | head`) is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Exported { records, bytes })
            }
            Err(e) => return Err(io(e)),
        }
        records += n as u64;
        bytes += text.len() as u64;
    }
    match w.flush().await {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(Exported { records, bytes })
        }
        r => r.map_err(io)?,
    }
    // A file is on disk before it is renamed into place.
    w.into_inner().shutdown().await.map_err(io)?;
    Ok(Exported { records, bytes })
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormatArg {
    Ndjson,
    Csv,
}

#[derive(Args)]
pub struct ExportCli {
    /// The tenant whose records to export.
    #[arg(long, value_name = "TENANT")]
    tenant: String,
    /// NDJSON (one record per line, as the API lists them) or CSV (RFC 4180).
    #[arg(long, value_enum, default_value = "ndjson")]
    format: ExportFormatArg,
    /// Only records of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only records whose key starts with this.
    #[arg(long, value_name = "PREFIX")]
    key_prefix: Option<String>,
    /// Only records whose current version started at or after this time (ms since 1970).
    #[arg(long, value_name = "MS")]
    changed_since: Option<i64>,
    /// true: only records marked removed; false: only present ones. Default: both.
    #[arg(long, value_name = "BOOL")]
    removed: Option<bool>,
    /// With --equals: only records whose field at this dotted path equals the value.
    #[arg(long, requires = "equals", value_name = "PATH")]
    field: Option<String>,
    #[arg(long, requires = "field", value_name = "VALUE")]
    equals: Option<String>,
    /// Full-text query: words, `word*` for a prefix.
    #[arg(long, short = 'q', value_name = "WORDS")]
    q: Option<String>,
    /// Only these fields (comma-separated dotted paths), as named columns in CSV.
    #[arg(long, value_name = "A,B.C")]
    fields: Option<String>,
    /// Write here (via FILE.partial, renamed when complete) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// CSV: prefix text cells that would start a spreadsheet formula with `'`. Default:
    /// http.csv_neutralize_formulas (true).
    #[arg(long, value_name = "BOOL")]
    neutralize_formulas: Option<bool>,
    /// Data directory (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(config: Option<&Path>, a: ExportCli) -> ExitCode {
    let mut cfg = match cli::load(config, &cli::data_dir_override(a.data_dir.clone())) {
        Ok(c) => c,
        Err(code) => return code,
    };
    cfg.log.level = "warn".into();
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    let to_file = a.output.clone();
    let args = ExportArgs {
        tenant: a.tenant,
        format: Some(match a.format {
            ExportFormatArg::Ndjson => ExportFormat::Ndjson,
            ExportFormatArg::Csv => ExportFormat::Csv,
        }),
        source: a.source,
        key_prefix: a.key_prefix,
        changed_since: a.changed_since,
        removed: a.removed,
        field: a.field,
        equals: a.equals,
        q: a.q,
        fields: a.fields,
        output: a.output,
        neutralize_formulas: a
            .neutralize_formulas
            .unwrap_or(cfg.http.csv_neutralize_formulas),
    };
    match cli::runtime().block_on(export(&cfg, args)) {
        Ok(done) => {
            if let Some(p) = to_file {
                eprintln!(
                    "gleaner: exported {} records ({} bytes) to {}",
                    done.records,
                    done.bytes,
                    p.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e, e.kind()),
    }
}
