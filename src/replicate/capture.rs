//! The database side of one sync: read the WAL (and the database file for growth pages
//! and full captures) with plain reads and write one L0 file into a local staging
//! directory (format doc §4.2, resume checks §4.4). Synchronous and bounded (one page in
//! memory at a time, one sync capped in WAL bytes); callers run it on the blocking pool or
//! inside a store exclusive job.
//!
//! Whether a sync may continue from the last position or must capture every page ("full
//! L0"): same WAL salts and the frame before the position still chains → incremental;
//! salts changed by exactly one WAL restart after a checkpoint this replicator ran while
//! caught up (`restart_ok`) → incremental from offset 32; anything else (no position, WAL
//! truncated or rewritten by someone else, missed restarts, page size change) → full.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::replicate::error::Error as CodecError;
use crate::replicate::ltx::{format_file_name, lock_page, valid_page_size, Encoder, Header};
use crate::replicate::runtime_error::ReplicateError;
use crate::replicate::wal::{self, WalHeader, WalSync};

/// Where the next sync starts reading the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub salt1: u32,
    pub salt2: u32,
    /// Resume offset: end of the last captured commit frame.
    pub offset: u64,
    /// Database size in pages after the last captured commit.
    pub commit: u32,
    pub page_size: u32,
    /// Everything committed was captured and then checkpointed by this replicator (or no
    /// WAL existed): one WAL restart since then loses nothing.
    pub restart_ok: bool,
}

impl Position {
    /// The position an L0 header describes. Files without WAL data (compactions,
    /// snapshots, or `32/0/0/0` headers) give none: the next sync must be full.
    pub fn from_l0_header(h: &Header) -> Option<Position> {
        if h.wal_salt1 == 0 && h.wal_salt2 == 0 {
            return None;
        }
        let offset = u64::try_from(h.wal_offset.checked_add(h.wal_size)?).ok()?;
        Some(Position {
            salt1: h.wal_salt1,
            salt2: h.wal_salt2,
            offset,
            commit: h.commit,
            page_size: h.page_size,
            restart_ok: false,
        })
    }
}

/// An L0 file written to the staging directory, not yet uploaded.
#[derive(Debug, Clone)]
pub struct Staged {
    pub path: PathBuf,
    pub header: Header,
    pub bytes: u64,
    /// Position after this file, to adopt once it is uploaded.
    pub next: Position,
    pub full: bool,
    /// Why a full capture was needed (for the log).
    pub reason: &'static str,
    /// Committed WAL frames it covers.
    pub frames: u64,
}

/// The files of one database, read without SQLite.
///
/// The database file is opened once and its descriptor kept for as long as any clone
/// lives: closing a descriptor drops every POSIX lock this process holds on the file,
/// including the SHARED lock of SQLite's own connections, which would let another
/// process's last-connection close checkpoint and delete the WAL under us. (The -wal file
/// carries no such locks, so it is opened per sync.)
#[derive(Debug, Clone)]
pub struct DbFiles {
    pub db: PathBuf,
    pub wal: PathBuf,
    db_file: Arc<Mutex<Option<Arc<File>>>>,
}

impl DbFiles {
    pub fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        DbFiles {
            db: db.to_path_buf(),
            wal: PathBuf::from(wal),
            db_file: Arc::new(Mutex::new(None)),
        }
    }

    /// The long-lived descriptor of the database file.
    fn db_file(&self) -> Result<Arc<File>, ReplicateError> {
        let mut g = self
            .db_file
            .lock()
            .map_err(|_| ReplicateError::Join("database file lock poisoned".into()))?;
        if let Some(f) = g.as_ref() {
            return Ok(Arc::clone(f));
        }
        let f =
            Arc::new(File::open(&self.db).map_err(ReplicateError::io("open database", &self.db))?);
        *g = Some(Arc::clone(&f));
        Ok(f)
    }

    /// (length, mtime in ns, inode) of the WAL: a change means new frames may exist.
    pub fn wal_stamp(&self) -> Option<(u64, i128, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&self.wal).ok()?;
        let ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        Some((m.len(), ns, m.ino()))
    }

    pub fn wal_len(&self) -> u64 {
        fs::metadata(&self.wal).map_or(0, |m| m.len())
    }
}

fn read_wal_header(f: &mut File) -> Option<WalHeader> {
    let mut b = [0u8; wal::HEADER_SIZE as usize];
    f.seek(SeekFrom::Start(0)).ok()?;
    f.read_exact(&mut b).ok()?;
    WalHeader::parse(&b).ok()
}

/// Page size from the database header (bytes 16–17; 1 means 65536).
fn db_page_size(db: &File) -> Option<u32> {
    let mut b = [0u8; 2];
    db.read_exact_at(&mut b, 16).ok()?;
    let v = u16::from_be_bytes(b);
    let ps = if v == 1 { 65536 } else { u32::from(v) };
    valid_page_size(ps).then_some(ps)
}

/// Captures everything committed since `pos` (or every page when `force_full` or `pos` is
/// None) into `staging/<txid>-<txid>.ltx`. `Ok(None)`: nothing new to ship.
pub fn capture(
    files: &DbFiles,
    staging: &Path,
    pos: Option<Position>,
    force_full: bool,
    txid: u64,
    now_ms: i64,
    sync_limit: u64,
) -> Result<Option<Staged>, ReplicateError> {
    let mut open = Opened::new(files)?;
    let hdr = open.hdr;
    let Some(page_size) = hdr.map(|h| h.page_size).or_else(|| db_page_size(&open.db)) else {
        // An empty database file and no WAL: nothing exists yet.
        return Ok(None);
    };
    let Some(mut start) = decide_start(pos, force_full, hdr, page_size, open.wal_len) else {
        return Ok(None);
    };
    let scan = scan_wal(files, &mut open, &mut start, sync_limit)?;
    let full = start.full;
    let committed = scan.as_ref().and_then(|s| s.commit);
    if !full && committed.is_none() {
        return Ok(None);
    }
    let commit = match committed {
        Some(c) => c,
        None => u32::try_from(open.db_len / u64::from(page_size)).unwrap_or(u32::MAX),
    };
    if commit == 0 {
        return Ok(None);
    }

    let mut header = Header::new(page_size, commit, txid, txid, now_ms);
    let (salt1, salt2) = hdr.map_or((0, 0), |h| (h.salt1, h.salt2));
    let wal_size = scan.as_ref().map_or(0, |s| s.size);
    if hdr.is_some() {
        header.wal_offset = start.offset as i64;
        header.wal_size = wal_size as i64;
        header.wal_salt1 = salt1;
        header.wal_salt2 = salt2;
    }
    let next = Position {
        salt1,
        salt2,
        offset: if hdr.is_some() {
            start.offset + wal_size
        } else {
            wal::HEADER_SIZE
        },
        commit,
        page_size,
        // With no WAL at all, every page came from the database file: any WAL that
        // appears later holds only new commits.
        restart_ok: hdr.is_none(),
    };

    let prev_commit = if full { 0 } else { pos.map_or(0, |p| p.commit) };
    let pgnos = page_numbers(full, commit, prev_commit, page_size, scan.as_ref());
    let (path, bytes) = write_l0(files, &mut open, scan.as_ref(), header, pgnos, staging)?;
    Ok(Some(Staged {
        path,
        header,
        bytes,
        next,
        full,
        reason: start.reason,
        frames: scan.as_ref().map_or(0, |s| s.frames),
    }))
}

/// The files one capture reads: the database through its long-lived descriptor, and the
/// WAL (when there is one) as it is at the start of the capture.
struct Opened {
    db: Arc<File>,
    db_len: u64,
    wal: Option<File>,
    wal_len: u64,
    hdr: Option<WalHeader>,
}

impl Opened {
    fn new(files: &DbFiles) -> Result<Opened, ReplicateError> {
        let db = files.db_file()?;
        let db_len = db
            .metadata()
            .map_err(ReplicateError::io("stat", &files.db))?
            .len();
        let mut wal = match File::open(&files.wal) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ReplicateError::io("open WAL", &files.wal)(e)),
        };
        let wal_len = match &wal {
            Some(f) => f
                .metadata()
                .map_err(ReplicateError::io("stat", &files.wal))?
                .len(),
            None => 0,
        };
        let hdr = wal.as_mut().and_then(read_wal_header);
        Ok(Opened {
            db,
            db_len,
            wal,
            wal_len,
            hdr,
        })
    }
}

/// Where a sync reads the WAL from, and whether it captures every page instead.
struct Start {
    full: bool,
    /// Why a full capture is needed (for the log).
    reason: &'static str,
    /// WAL offset the scan starts at.
    offset: u64,
}

/// Decides where to read from (the rules in the module doc). `None`: nothing new to ship.
fn decide_start(
    pos: Option<Position>,
    force_full: bool,
    hdr: Option<WalHeader>,
    page_size: u32,
    wal_len: u64,
) -> Option<Start> {
    let mut full = force_full || pos.is_none();
    let mut reason = if force_full {
        "a checkpoint could not prove every commit was captured"
    } else {
        "no position in the replica"
    };
    let mut start = wal::HEADER_SIZE;
    if let (false, Some(p)) = (full, pos) {
        if p.page_size != page_size {
            full = true;
            reason = "page size changed";
        } else {
            match hdr {
                None => {
                    // No valid WAL: fine if we truncated it ourselves after capturing all,
                    // else someone removed frames we never saw.
                    if p.restart_ok || p.offset <= wal::HEADER_SIZE {
                        return None;
                    }
                    full = true;
                    reason = "WAL removed or truncated by another process";
                }
                Some(h) if (h.salt1, h.salt2) == (p.salt1, p.salt2) => {
                    if p.offset > wal_len {
                        full = true;
                        reason = "WAL truncated by another process";
                    } else {
                        start = p.offset;
                    }
                }
                Some(h) => {
                    let one_restart =
                        (p.salt1 == 0 && p.salt2 == 0) || h.salt1 == p.salt1.wrapping_add(1);
                    if !(p.restart_ok && one_restart) {
                        full = true;
                        reason = "WAL restarted by another process";
                    }
                }
            }
        }
    }
    Some(Start {
        full,
        reason,
        offset: start,
    })
}

/// Scans the WAL's committed frames from `start` (capped at `sync_limit` bytes unless
/// full). A frame before the position that no longer chains turns it into a full capture.
fn scan_wal(
    files: &DbFiles,
    open: &mut Opened,
    start: &mut Start,
    sync_limit: u64,
) -> Result<Option<WalSync>, ReplicateError> {
    let (Some(_), Some(f)) = (open.hdr, open.wal.as_mut()) else {
        return Ok(None);
    };
    let limit = if start.full { None } else { Some(sync_limit) };
    match wal::scan(&mut *f, start.offset, limit) {
        Ok(s) => Ok(Some(s)),
        Err(CodecError::WalPrevFrame { .. }) | Err(CodecError::Truncated { .. }) if !start.full => {
            // The frame before our position was overwritten: start over.
            start.full = true;
            start.reason = "WAL overwritten by another process";
            start.offset = wal::HEADER_SIZE;
            Ok(Some(wal::scan(&mut *f, start.offset, None).map_err(
                ReplicateError::codec(files.wal.display().to_string()),
            )?))
        }
        Err(e) => Err(ReplicateError::codec(files.wal.display().to_string())(e)),
    }
}

/// Pages to write, ascending: every page of a full capture; else the pages in the WAL
/// scan and the pages the database grew by since `prev_commit`. Never the lock page.
fn page_numbers(
    full: bool,
    commit: u32,
    prev_commit: u32,
    page_size: u32,
    scan: Option<&WalSync>,
) -> Vec<u32> {
    let lock = lock_page(page_size);
    let wal_pages = scan.map(|s| &s.pages);
    let mut pgnos: Vec<u32> = Vec::new();
    if full {
        pgnos.extend((1..=commit).filter(|&p| p != lock));
    } else {
        let mut set: std::collections::BTreeSet<u32> = wal_pages
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        if commit > prev_commit {
            set.extend((prev_commit + 1..=commit).filter(|&p| p != lock));
        }
        pgnos.extend(set);
    }
    pgnos
}

/// Encodes the pages into the staging directory (each from the WAL when the scan holds
/// it, else from the database file), fsyncs and renames it into place. Returns its path
/// and length; a failed write leaves no partial file behind.
fn write_l0(
    files: &DbFiles,
    open: &mut Opened,
    scan: Option<&WalSync>,
    header: Header,
    pgnos: Vec<u32>,
    staging: &Path,
) -> Result<(PathBuf, u64), ReplicateError> {
    let page_size = header.page_size;
    let db_len = open.db_len;
    fs::create_dir_all(staging).map_err(ReplicateError::io("create directory", staging))?;
    let name = format_file_name(header.min_txid, header.max_txid);
    let path = staging.join(&name);
    let tmp = staging.join(format!("{name}.tmp"));
    let result = (|| -> Result<u64, ReplicateError> {
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(ReplicateError::io("create", &tmp))?;
        let what = || format!("encoding {}", path.display());
        let mut enc = Encoder::new(BufWriter::with_capacity(256 * 1024, out), header)
            .map_err(ReplicateError::codec(what()))?;
        let mut buf = vec![0u8; page_size as usize];
        let ps = u64::from(page_size);
        for pgno in pgnos {
            let from_wal = match (scan, open.wal.as_mut()) {
                (Some(s), Some(f)) => s
                    .read_page(&mut *f, pgno, &mut buf)
                    .map_err(ReplicateError::codec(files.wal.display().to_string()))?,
                _ => false,
            };
            if !from_wal {
                let at = u64::from(pgno - 1) * ps;
                if at + ps > db_len {
                    return Err(ReplicateError::Codec {
                        what: files.db.display().to_string(),
                        source: CodecError::MissingPage(pgno),
                    });
                }
                open.db
                    .read_exact_at(&mut buf, at)
                    .map_err(ReplicateError::io("read", &files.db))?;
            }
            enc.write_page(pgno, &buf)
                .map_err(ReplicateError::codec(what()))?;
        }
        let (w, _) = enc.finish().map_err(ReplicateError::codec(what()))?;
        let f = w
            .into_inner()
            .map_err(|e| ReplicateError::io("write", &tmp)(e.into_error()))?;
        f.sync_data().map_err(ReplicateError::io("fsync", &tmp))?;
        let len = f
            .metadata()
            .map_err(ReplicateError::io("stat", &tmp))?
            .len();
        fs::rename(&tmp, &path).map_err(ReplicateError::io("rename", &path))?;
        Ok(len)
    })();
    match result {
        Ok(n) => Ok((path, n)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The one file of a staging directory that outlives a run: `resume_mark`'s.
pub const RESUME_MARK_FILE: &str = "checkpointed-at";

/// Removes leftovers of an earlier run from a staging directory (files only: the resume
/// mark stays, a crash during start-up must not lose it).
pub fn clear_staging(staging: &Path) {
    if let Ok(rd) = fs::read_dir(staging) {
        for e in rd.flatten() {
            if e.file_name() != RESUME_MARK_FILE {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Inode of the database file (0 if it cannot be read): a replaced file is another database.
pub fn db_inode(db: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(db).map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::ltx::decode_file;
    use rusqlite::Connection;

    fn db(dir: &Path) -> (Connection, DbFiles) {
        let p = dir.join("t.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (v BLOB);",
        )
        .unwrap();
        (c, DbFiles::new(&p))
    }

    fn insert(c: &Connection, n: usize) {
        for _ in 0..n {
            c.execute("INSERT INTO t VALUES (randomblob(2000))", [])
                .unwrap();
        }
    }

    /// Captures and adopts the result, as an upload would.
    fn step(f: &DbFiles, staging: &Path, pos: &mut Option<Position>, txid: u64) -> Option<Staged> {
        let st = capture(f, staging, *pos, false, txid, 1, 64 << 20).unwrap()?;
        let bytes = fs::read(&st.path).unwrap();
        let d = decode_file(&bytes).unwrap();
        assert_eq!(d.header.min_txid, txid);
        *pos = Some(st.next);
        Some(st)
    }

    #[test]
    fn resume_rules() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        let (c, f) = db(dir.path());
        let mut pos = None;

        let s = step(&f, &staging, &mut pos, 1).unwrap();
        assert!(s.full, "first capture is full");

        // Nothing new: nothing captured.
        assert!(step(&f, &staging, &mut pos, 2).is_none());

        insert(&c, 3);
        let s = step(&f, &staging, &mut pos, 2).unwrap();
        assert!(!s.full && s.frames >= 3, "{s:?}");

        // A checkpoint by someone else, then a WAL restart: the replicator cannot know
        // what it missed, so it must capture everything.
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        insert(&c, 1);
        let s = step(&f, &staging, &mut pos, 3).unwrap();
        assert!(s.full, "{s:?}");
        assert!(s.reason.contains("another process"), "{}", s.reason);

        // A checkpoint the replicator ran while caught up: one restart loses nothing.
        insert(&c, 2);
        step(&f, &staging, &mut pos, 4).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        if let Some(p) = pos.as_mut() {
            p.restart_ok = true;
        }
        // The WAL is empty now: nothing to capture, no full capture either.
        assert!(step(&f, &staging, &mut pos, 5).is_none());
        insert(&c, 2);
        let s = step(&f, &staging, &mut pos, 5).unwrap();
        assert!(!s.full, "{s:?}");
        assert_eq!(s.header.wal_offset, 32);

        // Growth: the file covers every new page up to the new commit.
        let before = pos.unwrap().commit;
        insert(&c, 50);
        let s = step(&f, &staging, &mut pos, 6).unwrap();
        assert!(!s.full);
        assert!(
            s.header.commit > before + 20,
            "{} -> {}",
            before,
            s.header.commit
        );
        let d = decode_file(&fs::read(&s.path).unwrap()).unwrap();
        let pages: Vec<u32> = d.pages.iter().map(|(p, _)| *p).collect();
        for p in before + 1..=s.header.commit {
            assert!(pages.contains(&p), "growth page {p} missing");
        }
    }

    #[test]
    fn sync_limit_splits_at_commit_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        let (c, f) = db(dir.path());
        let mut pos = None;
        step(&f, &staging, &mut pos, 1).unwrap();
        insert(&c, 40);
        // A 16 KiB cap: several files, each ending at a commit, together covering all.
        let mut txid = 2;
        while let Some(st) = capture(&f, &staging, pos, false, txid, 1, 16 * 1024).unwrap() {
            assert!(!st.full);
            pos = Some(st.next);
            txid += 1;
        }
        assert!(txid > 4, "expected several files, got {}", txid - 2);
        assert_eq!(pos.unwrap().offset, f.wal_len());
    }
}
