//! Restoring a database from a replica (and verifying one): list, plan exactly as
//! Litestream does, download the plan's files in parallel (applied in order as they
//! arrive), verify every checksum and the TXID chain, write `OUT.tmp`, fsync, rename.
//! Nothing is ever written at `OUT` itself unless the whole restore succeeded; every
//! error names the replica object and the reason.

use std::fs::{self, File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::stream::{self, StreamExt};

use crate::replicate::apply::{Applied, Applier};
use crate::replicate::client::{LtxObject, ReplicaClient};
use crate::replicate::error::Error as CodecError;
use crate::replicate::ltx::SNAPSHOT_LEVEL;
use crate::replicate::plan::{restore_plan, RestoreTarget};
use crate::replicate::replica::with_retries;
use crate::replicate::runtime_error::ReplicateError;

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: RestoreTarget,
    pub output: PathBuf,
    /// Overwrite a non-empty output.
    pub force: bool,
    /// Downloads in flight at once.
    pub parallelism: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a restore produced.
#[derive(Debug, Clone, Copy)]
pub struct RestoreReport {
    pub applied: Applied,
    pub files: usize,
    pub downloaded_bytes: u64,
}

/// Lists every level of a replica (with metadata timestamps when `detailed`).
pub async fn list_all(
    client: &dyn ReplicaClient,
    detailed: bool,
) -> Result<Vec<LtxObject>, ReplicateError> {
    let mut all = Vec::new();
    for level in 0..=SNAPSHOT_LEVEL {
        let v = with_retries(3, || {
            if detailed {
                client.list_detailed(level)
            } else {
                client.list(level)
            }
        })
        .await?;
        all.extend(v);
    }
    Ok(all)
}

fn plan_error(client: &dyn ReplicaClient, all: &[LtxObject], e: CodecError) -> ReplicateError {
    use crate::error::ErrorKind;
    let replica = client.describe();
    let reason = match &e {
        CodecError::NonContiguous { have, next } => {
            let next_file = all
                .iter()
                .filter(|f| f.min_txid == *next)
                .map(|f| client.object_name(f.level, f.min_txid, f.max_txid))
                .next()
                .unwrap_or_default();
            format!(
                "TXID gap: the files reach TXID {have:016x} but the next file {next_file} starts at {next:016x}"
            )
        }
        CodecError::TxnNotAvailable if all.is_empty() => {
            "the replica is empty (no LTX files under it)".to_string()
        }
        CodecError::TxnNotAvailable if !all.iter().any(|f| f.min_txid == 1) => {
            "no snapshot: no file starts at TXID 1, so there is nothing to start a restore from"
                .to_string()
        }
        CodecError::TxnNotAvailable => {
            "no matching backup files available for that TXID or timestamp".to_string()
        }
        CodecError::TimestampNotFound => {
            let b = crate::replicate::plan::time_bounds(
                &all.iter().map(LtxObject::info).collect::<Vec<_>>(),
            );
            match b {
                Some((lo, hi)) => format!(
                    "timestamp does not exist: the replica covers {} to {}",
                    fmt_time(lo),
                    fmt_time(hi)
                ),
                None => "timestamp does not exist: the replica is empty".to_string(),
            }
        }
        other => other.to_string(),
    };
    ReplicateError::Plan {
        replica,
        reason,
        kind: match e.kind() {
            crate::replicate::CodecErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::InvalidInput,
        },
    }
}

/// RFC 3339 UTC with milliseconds, for messages and reports.
pub fn fmt_time(t: SystemTime) -> String {
    let ns = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn tmp_path(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Restores `client`'s replica to `opts.output`.
pub async fn restore(
    client: Arc<dyn ReplicaClient>,
    opts: &RestoreOptions,
) -> Result<RestoreReport, ReplicateError> {
    let out = opts.output.clone();
    if !opts.force {
        if let Ok(m) = fs::metadata(&out) {
            if m.len() > 0 || !m.is_file() {
                return Err(ReplicateError::OutputExists(out));
            }
        }
    }
    let detailed = matches!(opts.target, RestoreTarget::Timestamp(_));
    let all = list_all(client.as_ref(), detailed).await?;
    let infos: Vec<_> = all.iter().map(LtxObject::info).collect();
    let plan =
        restore_plan(&infos, opts.target).map_err(|e| plan_error(client.as_ref(), &all, e))?;
    let files: Vec<LtxObject> = plan
        .iter()
        .filter_map(|p| {
            all.iter()
                .find(|f| (f.level, f.min_txid, f.max_txid) == (p.level, p.min_txid, p.max_txid))
                .copied()
        })
        .collect();
    let total: u64 = files.iter().map(|f| f.size).sum();
    let tmp = tmp_path(&out, ".tmp");
    let dl_dir = tmp_path(&out, ".tmp-download");
    let res = run_restore(client, &files, &tmp, &dl_dir, &out, total, opts).await;
    let _ = fs::remove_dir_all(&dl_dir);
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

async fn run_restore(
    client: Arc<dyn ReplicaClient>,
    files: &[LtxObject],
    tmp: &Path,
    dl_dir: &Path,
    out: &Path,
    total: u64,
    opts: &RestoreOptions,
) -> Result<RestoreReport, ReplicateError> {
    fs::create_dir_all(dl_dir).map_err(ReplicateError::io("create directory", dl_dir))?;
    let image = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(ReplicateError::io("create", tmp))?;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut applier = Some(Applier::new(image));
    let mut downloaded = 0u64;
    // Downloads run ahead (bounded), files are applied strictly in plan order.
    let mut stream = stream::iter(files.iter().copied().enumerate())
        .map(|(i, f)| {
            let client = Arc::clone(&client);
            let p = dl_dir.join(format!("{i:06}.ltx"));
            async move {
                let n = with_retries(3, || {
                    client.get_to_file(f.level, f.min_txid, f.max_txid, &p)
                })
                .await?;
                Ok::<_, ReplicateError>((f, p, n))
            }
        })
        .buffered(opts.parallelism.max(1));
    while let Some(item) = stream.next().await {
        let (f, p, n) = item?;
        downloaded += n;
        let name = client.object_name(f.level, f.min_txid, f.max_txid);
        bar.set_message(name.rsplit('/').next().unwrap_or("").to_owned());
        let mut a = applier.take().ok_or(ReplicateError::Stopped)?;
        let (a, r) = tokio::task::spawn_blocking(move || {
            let r = File::open(&p)
                .map_err(ReplicateError::io("open", &p))
                .and_then(|file| {
                    a.apply(BufReader::with_capacity(256 * 1024, file))
                        .map_err(ReplicateError::codec(name))
                });
            let _ = fs::remove_file(&p);
            (a, r)
        })
        .await
        .map_err(|e| ReplicateError::Join(e.to_string()))?;
        r?;
        applier = Some(a);
        bar.inc(n);
    }
    let a = applier.ok_or(ReplicateError::Stopped)?;
    let (tmp2, out2) = (tmp.to_path_buf(), out.to_path_buf());
    let last_name = files
        .last()
        .map(|f| client.object_name(f.level, f.min_txid, f.max_txid))
        .unwrap_or_default();
    let applied = tokio::task::spawn_blocking(move || -> Result<Applied, ReplicateError> {
        let (file, applied) = a.finish().map_err(ReplicateError::codec(format!(
            "restored image (last file {last_name})"
        )))?;
        file.sync_all()
            .map_err(ReplicateError::io("fsync", &tmp2))?;
        drop(file);
        fs::rename(&tmp2, &out2).map_err(ReplicateError::io("rename", &out2))?;
        if let Some(dir) = out2.parent() {
            if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(applied)
    })
    .await
    .map_err(|e| ReplicateError::Join(e.to_string()))??;
    bar.finish_and_clear();
    Ok(RestoreReport {
        applied,
        files: files.len(),
        downloaded_bytes: downloaded,
    })
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub txid: u64,
    pub timestamp_ms: i64,
    pub page_count: u32,
    pub page_size: u32,
    pub size: u64,
    pub files: usize,
    pub downloaded_bytes: u64,
}

/// Restores the latest state into a temporary file and runs `PRAGMA integrity_check`.
pub async fn verify(
    client: Arc<dyn ReplicaClient>,
    tmp_dir: &Path,
    parallelism: usize,
) -> Result<VerifyReport, ReplicateError> {
    let out = tmp_dir.join(format!("verify-{}.db", std::process::id()));
    let opts = RestoreOptions {
        target: RestoreTarget::Latest,
        output: out.clone(),
        force: true,
        parallelism,
        progress: false,
    };
    let r = restore(client, &opts).await;
    let result = match r {
        Ok(rep) => {
            let o = out.clone();
            let check = tokio::task::spawn_blocking(move || crate::store::integrity_check(&o))
                .await
                .map_err(|e| ReplicateError::Join(e.to_string()))?;
            match check {
                Ok(msgs) if msgs.len() == 1 && msgs[0] == "ok" => Ok(VerifyReport {
                    txid: rep.applied.last.max_txid,
                    timestamp_ms: rep.applied.last.timestamp_ms,
                    page_count: rep.applied.last.commit,
                    page_size: rep.applied.last.page_size,
                    size: rep.applied.db_size,
                    files: rep.files,
                    downloaded_bytes: rep.downloaded_bytes,
                }),
                Ok(msgs) => Err(ReplicateError::Integrity {
                    path: out.clone(),
                    detail: msgs.join("; "),
                }),
                Err(e) => Err(ReplicateError::Integrity {
                    path: out.clone(),
                    detail: e.to_string(),
                }),
            }
        }
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&out);
    result
}
