//! One destination of one database: its position in the WAL, its next TXID, the L0 file
//! waiting for upload, and the replica-side jobs (upload with capped jittered retries,
//! compaction into L1..L3, L9 snapshots, retention).
//!
//! Each destination keeps its own position and TXIDs (a second destination is a second,
//! independent replica of the same database), so one being down never stalls or breaks
//! the other's sequence; the database only checkpoints when every destination has shipped.
//! At most one staged file per destination exists: while it cannot be uploaded nothing new
//! is captured (the WAL keeps the frames, because nothing checkpoints them meanwhile).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::Semaphore;

use crate::cpu::CpuPool;
use crate::replicate::capture::{self, DbFiles, Position, Staged};
use crate::replicate::client::{ClientError, LtxObject, ReplicaClient};
use crate::replicate::ltx::{compact, Header, HEADER_SIZE, SNAPSHOT_LEVEL};
use crate::replicate::plan::{restore_plan, RestoreTarget};
use crate::replicate::resume_mark;
use crate::replicate::runtime_error::ReplicateError;
use crate::telemetry::metrics as m;

/// Settings shared by every replica (from `[replicate]`).
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub upload_attempts: u32,
    pub sync_max_bytes: u64,
    /// Compaction interval of levels 1, 2, 3, …
    pub level_intervals: Vec<Duration>,
    pub snapshot_interval: Duration,
    pub snapshot_retention: Duration,
    pub l0_retention: Duration,
    /// L0 backlog above level 1 at attach from which level 1 compacts at once (0 = never).
    pub startup_compact_l0_files: u64,
}

pub struct Replica {
    pub client: Arc<dyn ReplicaClient>,
    pub pos: Option<Position>,
    pub force_full: bool,
    pub next_txid: u64,
    pub pending: Option<Staged>,
    staging: PathBuf,
    /// Per level 1..=n and the snapshot level: when it last ran, and whether new files
    /// arrived below it since (idle databases cost no LIST requests).
    level_runs: Vec<(Instant, bool)>,
    snapshot_run: (Instant, bool),
    /// Level 1 is due at the next maintenance regardless of its interval (a large L0
    /// backlog found at attach).
    compact_now: bool,
    pub last_upload: Option<Instant>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Seconds since the Unix epoch, for timestamp gauges.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Capped, jittered exponential backoff for attempt `n` (0-based).
pub(crate) fn backoff(n: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << n.min(5)).min(2_000);
    let jitter = rand::rng().random_range(0..=base / 2);
    Duration::from_millis(base / 2 + jitter)
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or `attempts` are used.
pub(crate) async fn with_retries<T, F, Fut>(attempts: u32, mut op: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut n = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && n + 1 < attempts.max(1) => {
                tokio::time::sleep(backoff(n)).await;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Replica {
    /// Reads the replica's position: next TXID after the highest file of any level, and
    /// the WAL position from the newest L0 header if that file is the newest of all.
    pub async fn attach(
        client: Arc<dyn ReplicaClient>,
        staging: PathBuf,
        settings: &ReplicaSettings,
    ) -> Result<Replica, ReplicateError> {
        let attempts = settings.upload_attempts;
        let mut max_all = 0u64;
        let mut newest_l0: Option<LtxObject> = None;
        let (mut l0_txids, mut l1_max) = (Vec::new(), 0u64);
        for level in levels(settings) {
            let files = with_retries(attempts, || client.list(level)).await?;
            match level {
                0 => l0_txids = files.iter().map(|f| f.min_txid).collect(),
                1 => l1_max = files.iter().map(|f| f.max_txid).max().unwrap_or(0),
                _ => {}
            }
            if let Some(last) = files.iter().max_by_key(|f| f.max_txid) {
                max_all = max_all.max(last.max_txid);
                if level == 0 {
                    newest_l0 = Some(*last);
                }
            }
        }
        let mut pos = None;
        if let Some(l0) = newest_l0.filter(|f| f.max_txid == max_all) {
            let b = with_retries(attempts, || {
                client.get_prefix(0, l0.min_txid, l0.max_txid, HEADER_SIZE)
            })
            .await?;
            let name = client.object_name(0, l0.min_txid, l0.max_txid);
            let arr: [u8; HEADER_SIZE] = b.as_slice().try_into().map_err(|_| {
                ReplicateError::codec(name.clone())(crate::replicate::Error::Truncated {
                    what: "LTX header",
                })
            })?;
            let h = Header::from_bytes(&arr).map_err(ReplicateError::codec(name))?;
            pos = Position::from_l0_header(&h);
        }
        capture::clear_staging(&staging);
        let n = settings.level_intervals.len();
        let now = Instant::now();
        // Counted per attach, not per process lifetime: a process that always dies before
        // the level-1 interval would otherwise never compact (issue 20: 6,991 L0 files).
        let backlog = l0_txids.iter().filter(|&&t| t > l1_max).count() as u64;
        let compact_now = n > 0
            && settings.startup_compact_l0_files > 0
            && backlog >= settings.startup_compact_l0_files;
        if compact_now {
            tracing::info!(replica = %client.describe(), l0_files = backlog,
                "large L0 backlog: compacting level 1 now");
        }
        let mut level_runs = vec![(now, false); n];
        if let Some(l1) = level_runs.first_mut() {
            l1.1 = compact_now;
        }
        Ok(Replica {
            client,
            pos,
            force_full: false,
            next_txid: max_all + 1,
            pending: None,
            staging,
            level_runs,
            snapshot_run: (now, false),
            compact_now,
            last_upload: None,
        })
    }

    /// Captures new WAL frames into a staged L0 unless one is already waiting. Blocking.
    pub fn capture(&mut self, files: &DbFiles, sync_max_bytes: u64) -> Result<(), ReplicateError> {
        if self.pending.is_some() {
            return Ok(());
        }
        self.pending = capture::capture(
            files,
            &self.staging,
            self.pos,
            self.force_full,
            self.next_txid,
            now_ms(),
            sync_max_bytes,
        )?;
        Ok(())
    }

    /// Whether everything captured has been uploaded.
    pub fn shipped(&self) -> bool {
        self.pending.is_none()
    }

    /// Uploads the staged L0, if any. On success the position advances.
    pub async fn upload(
        &mut self,
        uploads: &Semaphore,
        attempts: u32,
    ) -> Result<Option<Header>, ReplicateError> {
        let Some(st) = self.pending.as_ref() else {
            return Ok(None);
        };
        let h = st.header;
        let started = Instant::now();
        let r = {
            let _permit = uploads
                .acquire()
                .await
                .map_err(|_| ReplicateError::Stopped)?;
            with_retries(attempts, || {
                self.client
                    .put_file(0, h.min_txid, h.max_txid, &st.path, h.timestamp_ms)
            })
            .await
        };
        if let Err(e) = r {
            metrics::counter!(m::REPLICATION_UPLOAD_ERRORS_TOTAL).increment(1);
            return Err(e.into());
        }
        metrics::counter!(m::REPLICATION_UPLOADED_BYTES_TOTAL).increment(st.bytes);
        metrics::counter!(m::REPLICATION_UPLOADED_OBJECTS_TOTAL).increment(1);
        metrics::histogram!(m::REPLICATION_UPLOAD_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if st.full && self.pos.is_none() {
            tracing::debug!(replica = %self.client.describe(), txid = h.max_txid, pages = h.commit,
                "first sync: shipped a full L0");
        } else if st.full {
            tracing::info!(replica = %self.client.describe(), txid = h.max_txid, pages = h.commit,
                reason = st.reason, "shipped a full L0");
        }
        let _ = std::fs::remove_file(&st.path);
        self.pos = Some(st.next);
        self.force_full = false;
        self.next_txid = h.max_txid + 1;
        self.pending = None;
        self.last_upload = Some(Instant::now());
        for r in &mut self.level_runs {
            r.1 = true;
        }
        self.snapshot_run.1 = true;
        Ok(Some(h))
    }

    /// Adopts the resume mark left by the last checkpoint (see `resume_mark`): if it equals
    /// this replica's position, one WAL restart since then is known to lose nothing.
    pub fn adopt_resume_mark(&mut self, db_ino: u64) {
        let txid = self.next_txid - 1;
        if let Some(p) = self.pos.as_mut() {
            if resume_mark::proves(&self.staging, txid, p, db_ino) {
                p.restart_ok = true;
            }
        }
    }

    /// Called after a checkpoint this replica was caught up for: `slipped` means writes may
    /// have been checkpointed unseen, so nothing is proven and the mark goes.
    pub fn checkpointed(&mut self, slipped: bool, db_ino: u64) {
        if slipped {
            self.force_full = true;
            resume_mark::clear(&self.staging);
            return;
        }
        if let Some(p) = self.pos.as_mut() {
            p.restart_ok = true;
        }
        self.write_resume_mark(db_ino);
    }

    /// Records the current position as shipped and checkpointed by us (see `resume_mark`).
    pub fn write_resume_mark(&self, db_ino: u64) {
        let txid = self.next_txid - 1;
        if let Some(p) = self.pos.as_ref() {
            if let Err(e) = resume_mark::write(&self.staging, txid, p, db_ino) {
                // Only costs a full L0 if the process dies before the next ship.
                tracing::debug!(replica = %self.client.describe(), error = %e, "cannot write the resume mark");
            }
        }
    }

    /// Before a checkpoint that may let writes slip in, and after a failed one.
    pub fn clear_resume_mark(&self) {
        resume_mark::clear(&self.staging);
    }

    /// Drops a staged file that may no longer match the WAL (after an error in a sync).
    pub fn discard_pending(&mut self) {
        if let Some(st) = self.pending.take() {
            let _ = std::fs::remove_file(&st.path);
        }
    }

    /// Runs due compactions, snapshot and retention. Errors are logged by the caller;
    /// nothing here affects the WAL position.
    pub async fn maintain(
        &mut self,
        settings: &ReplicaSettings,
        cpu: &CpuPool,
        uploads: &Semaphore,
        work: &Path,
    ) -> Result<(), ReplicateError> {
        let now = Instant::now();
        let mut did = false;
        for i in 0..self.level_runs.len() {
            let (last, dirty) = self.level_runs[i];
            let due = i == 0 && self.compact_now;
            if dirty && (due || now.duration_since(last) >= settings.level_intervals[i]) {
                self.compact_now = false;
                self.level_runs[i] = (now, false);
                let wrote = self
                    .compact_level(i as u8 + 1, settings, cpu, uploads, work)
                    .await?;
                // The next level has new input now. Without this, a level that ran just
                // before this one (their timers drift apart: start-up compaction resets
                // level 1's) would wait for the next upload to take it.
                if wrote {
                    if let Some(next) = self.level_runs.get_mut(i + 1) {
                        next.1 = true;
                    }
                }
                did = true;
            }
        }
        let (last, dirty) = self.snapshot_run;
        if dirty && now.duration_since(last) >= settings.snapshot_interval {
            self.snapshot_run = (now, false);
            self.snapshot(settings, cpu, uploads, work).await?;
            did = true;
        }
        if did {
            self.retention(settings).await?;
        }
        Ok(())
    }

    async fn list(&self, level: u8, attempts: u32) -> Result<Vec<LtxObject>, ReplicateError> {
        Ok(with_retries(attempts, || self.client.list(level)).await?)
    }

    /// Merges every file of `level - 1` above this level's highest TXID into one file.
    /// True when it wrote one.
    async fn compact_level(
        &mut self,
        level: u8,
        settings: &ReplicaSettings,
        cpu: &CpuPool,
        uploads: &Semaphore,
        work: &Path,
    ) -> Result<bool, ReplicateError> {
        let attempts = settings.upload_attempts;
        let hi = self
            .list(level, attempts)
            .await?
            .iter()
            .map(|f| f.max_txid)
            .max()
            .unwrap_or(0);
        let mut inputs: Vec<LtxObject> = self
            .list(level - 1, attempts)
            .await?
            .into_iter()
            .filter(|f| f.min_txid > hi)
            .collect();
        inputs.sort_by_key(|f| (f.min_txid, f.max_txid));
        // Only a contiguous run starting right after this level's end can be merged.
        let mut run: Vec<LtxObject> = Vec::new();
        for f in inputs {
            // A run must be contiguous; a hole before its start (lower files trimmed by
            // retention before this level took them) only means this level has a gap too.
            if run.last().is_some_and(|l| f.min_txid != l.max_txid + 1) {
                break;
            }
            run.push(f);
        }
        if run.is_empty() {
            return Ok(false);
        }
        self.merge_and_put(level, &run, settings, cpu, uploads, work)
            .await?;
        Ok(true)
    }

    /// Writes `L9 1-N` for the latest state: the latest restore plan merged into one file.
    async fn snapshot(
        &mut self,
        settings: &ReplicaSettings,
        cpu: &CpuPool,
        uploads: &Semaphore,
        work: &Path,
    ) -> Result<(), ReplicateError> {
        let mut all = Vec::new();
        for level in levels(settings) {
            all.extend(self.list(level, settings.upload_attempts).await?);
        }
        let snap_max = all
            .iter()
            .filter(|f| f.level == SNAPSHOT_LEVEL)
            .map(|f| f.max_txid)
            .max()
            .unwrap_or(0);
        let infos: Vec<_> = all.iter().map(LtxObject::info).collect();
        let plan = match restore_plan(&infos, RestoreTarget::Latest) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(replica = %self.client.describe(), error = %e,
                    "cannot take a snapshot: the replica has no complete chain");
                return Ok(());
            }
        };
        if plan.last().is_none_or(|l| l.max_txid <= snap_max) {
            return Ok(());
        }
        let run: Vec<LtxObject> = plan
            .iter()
            .filter_map(|p| {
                all.iter()
                    .find(|f| {
                        (f.level, f.min_txid, f.max_txid) == (p.level, p.min_txid, p.max_txid)
                    })
                    .copied()
            })
            .collect();
        self.merge_and_put(SNAPSHOT_LEVEL, &run, settings, cpu, uploads, work)
            .await
    }

    async fn merge_and_put(
        &mut self,
        level: u8,
        run: &[LtxObject],
        settings: &ReplicaSettings,
        cpu: &CpuPool,
        uploads: &Semaphore,
        work: &Path,
    ) -> Result<(), ReplicateError> {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return Ok(());
        };
        let (min, max) = (first.min_txid, last.max_txid);
        let dir = work.join(format!("compact-{level}-{min:016x}-{max:016x}"));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ReplicateError::io("create directory", &dir))?;
        let result = async {
            let mut paths = Vec::with_capacity(run.len());
            for (i, f) in run.iter().enumerate() {
                let p = dir.join(format!("{i:06}.ltx"));
                let _permit = uploads
                    .acquire()
                    .await
                    .map_err(|_| ReplicateError::Stopped)?;
                with_retries(settings.upload_attempts, || {
                    self.client.get_to_file(f.level, f.min_txid, f.max_txid, &p)
                })
                .await?;
                paths.push(p);
            }
            let out = dir.join("out.ltx");
            let (o, names) = (
                out.clone(),
                run.iter()
                    .map(|f| self.client.object_name(f.level, f.min_txid, f.max_txid))
                    .collect::<Vec<_>>(),
            );
            let header = cpu
                .run(move || -> Result<Header, ReplicateError> {
                    let mut inputs = Vec::with_capacity(paths.len());
                    for p in &paths {
                        let f = std::fs::File::open(p).map_err(ReplicateError::io("open", p))?;
                        inputs.push(std::io::BufReader::with_capacity(64 * 1024, f));
                    }
                    let file =
                        std::fs::File::create(&o).map_err(ReplicateError::io("create", &o))?;
                    let w = std::io::BufWriter::with_capacity(256 * 1024, file);
                    let (w, h, _) = compact(inputs, w).map_err(ReplicateError::codec(format!(
                        "compacting {} .. {}",
                        names.first().map_or("", |s| s.as_str()),
                        names.last().map_or("", |s| s.as_str())
                    )))?;
                    w.into_inner()
                        .map_err(|e| ReplicateError::io("write", &o)(e.into_error()))?;
                    Ok(h)
                })
                .await??;
            let _permit = uploads
                .acquire()
                .await
                .map_err(|_| ReplicateError::Stopped)?;
            with_retries(settings.upload_attempts, || {
                self.client
                    .put_file(level, min, max, &out, header.timestamp_ms)
            })
            .await?;
            metrics::counter!(m::REPLICATION_UPLOADED_OBJECTS_TOTAL).increment(1);
            tracing::debug!(replica = %self.client.describe(), level, min, max, "compacted");
            Ok::<(), ReplicateError>(())
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }

    /// Deletes what no longer serves a restore: L0 files covered by L1 and older than the
    /// L0 retention (the newest L0 is always kept: it holds the resume position), old
    /// snapshots (the newest is always kept) and level 1..8 files below the newest deleted
    /// snapshot (each level's last file kept).
    async fn retention(&mut self, settings: &ReplicaSettings) -> Result<(), ReplicateError> {
        let attempts = settings.upload_attempts;
        let now = SystemTime::now();
        let l1 = self.list(1, attempts).await?;
        let l1_max = l1.iter().map(|f| f.max_txid).max().unwrap_or(0);
        let l0 = self.list(0, attempts).await?;
        let newest_l0 = l0.iter().map(|f| f.max_txid).max().unwrap_or(0);
        let mut del = Vec::new();
        for f in &l0 {
            let old = now
                .duration_since(f.created_at)
                .is_ok_and(|age| age >= settings.l0_retention);
            if f.max_txid <= l1_max && f.max_txid < newest_l0 {
                if !old {
                    break;
                }
                del.push((f.min_txid, f.max_txid));
            }
        }
        let deleted_l0 = del.len();
        if !del.is_empty() {
            with_retries(attempts, || self.client.delete(0, del.clone())).await?;
        }
        let snaps = self.list(SNAPSHOT_LEVEL, attempts).await?;
        let newest_snap = snaps.iter().map(|f| f.max_txid).max().unwrap_or(0);
        let old_snaps: Vec<&LtxObject> = snaps
            .iter()
            .filter(|f| {
                f.max_txid < newest_snap
                    && now
                        .duration_since(f.created_at)
                        .is_ok_and(|age| age >= settings.snapshot_retention)
            })
            .collect();
        let mut deleted_below = 0usize;
        if let Some(cut) = old_snaps.iter().map(|f| f.max_txid).max() {
            let d: Vec<(u64, u64)> = old_snaps.iter().map(|f| (f.min_txid, f.max_txid)).collect();
            with_retries(attempts, || self.client.delete(SNAPSHOT_LEVEL, d.clone())).await?;
            for level in 1..=settings.level_intervals.len() as u8 {
                let files = self.list(level, attempts).await?;
                let last = files.iter().map(|f| f.max_txid).max().unwrap_or(0);
                let d: Vec<(u64, u64)> = files
                    .iter()
                    .filter(|f| f.max_txid < cut && f.max_txid < last)
                    .map(|f| (f.min_txid, f.max_txid))
                    .collect();
                deleted_below += d.len();
                if !d.is_empty() {
                    with_retries(attempts, || self.client.delete(level, d.clone())).await?;
                }
            }
        }
        // Logged once the whole pass is done, so the line means "the replica is as small as
        // the policy allows now". At info only when snapshots went (once per snapshot
        // interval); L0 trimming happens every level-1 interval and would be noise there.
        let (snapshots, replica) = (old_snaps.len(), self.client.describe());
        if snapshots > 0 {
            tracing::info!(%replica, l0 = deleted_l0, snapshots, compacted = deleted_below,
                "retention deleted files");
        } else if deleted_l0 > 0 {
            tracing::debug!(%replica, l0 = deleted_l0, "retention deleted files");
        }
        Ok(())
    }
}

/// Levels in use: 0, the compaction levels, and the snapshot level.
pub(crate) fn levels(settings: &ReplicaSettings) -> Vec<u8> {
    let mut v: Vec<u8> = (0..=settings.level_intervals.len() as u8).collect();
    v.push(SNAPSHOT_LEVEL);
    v
}
