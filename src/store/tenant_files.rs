//! A tenant database file's life before and outside control.db: building it under a
//! temporary name, moving it into place, and the start-up sweep of files no row owns.
//!
//! A tenant is created file first, row second, so a row never points at a missing file. A
//! kill in between used to leave `tenants/<id>.db` (often empty, with a `-journal`) that
//! nothing owned and nothing removed. Now the database is built and migrated as
//! `tenants/.creating-<id>.<pid>.<n>.tmp` and linked into place only when finished, so the
//! real name never holds a half-made database, and the temporary name (not `*.db`) is never
//! taken for a tenant — not by the registry, and not by the replicator's start-up reopening
//! of `*.db` files, so nothing is replicated under it. What a kill can still leave — a
//! temporary file, or a finished empty database whose row was not committed — the server
//! removes at start-up ([`sweep_blocking`]). A file without a row that holds data is never
//! removed: it is reported for the operator to decide.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::conn;
use super::error::StoreError;
use super::fts;
use super::schema::{self, DbKind};
use crate::config::Synchronous;
use crate::tenant::TenantId;

const TEMP_PREFIX: &str = ".creating-";
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Tables whose rows the migrations themselves write, or that only index other tables:
/// rows there are not data.
const NOT_DATA: &str = "name NOT IN ('schema_migrations', 'record_stats')
    AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'records\\_fts%' ESCAPE '\\'
    AND sql NOT LIKE 'CREATE VIRTUAL%'";

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database file and its -wal/-shm/-journal companions, ignoring absent ones.
pub(crate) fn remove_db_files(db: &Path) {
    for suffix in std::iter::once("").chain(COMPANIONS) {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::DataDir {
            path: dir.to_path_buf(),
            reason: format!("cannot sync the tenants directory: {e}"),
        })
}

/// Builds `id`'s migrated database under a temporary name and links it into place as
/// `dir/<id>.db`. [`StoreError::TenantExists`] if a file of that name is already there
/// (another creation of the same id won, or a file kept by the sweep is in the way): an
/// existing file is never replaced. Blocking.
pub(crate) fn build_blocking(
    dir: &Path,
    id: &TenantId,
    sync: Synchronous,
    busy_timeout: Duration,
) -> Result<PathBuf, StoreError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dst = dir.join(id.db_file_name());
    if dst.exists() {
        return Err(StoreError::TenantExists(id.to_string()));
    }
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TEMP_PREFIX}{id}.{}.{n}.tmp", std::process::id()));
    let built = (|| {
        let mut c = conn::open_writer(&tmp, sync, busy_timeout)?;
        schema::migrate(&mut c, DbKind::Tenant, &tmp, Some(fts::TENANT_WRITER))?;
        // Everything into the main file: only that file is moved, its WAL is dropped.
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(StoreError::from_sqlite)?;
        drop(c);
        for suffix in COMPANIONS {
            let _ = std::fs::remove_file(with_suffix(&tmp, suffix));
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::DataDir {
                path: tmp.clone(),
                reason: format!("cannot sync a new tenant database: {e}"),
            })
    })();
    if let Err(e) = built {
        remove_db_files(&tmp);
        return Err(e.disk_full_on_open());
    }
    // A link fails where a rename would replace: two creations of one id cannot both win.
    let linked = std::fs::hard_link(&tmp, &dst);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::TenantExists(id.to_string()))
        }
        Err(e) => {
            return Err(StoreError::DataDir {
                path: dst,
                reason: format!("cannot move a new tenant database into place: {e}"),
            })
        }
    }
    // The row committed next must never outlive the file's directory entry.
    sync_dir(dir)?;
    Ok(dst)
}

/// What the start-up sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Files removed (names in the tenants directory).
    pub removed: Vec<String>,
    /// Databases without a row kept because they hold data (or could not be read).
    pub kept: Vec<String>,
}

/// Rows of data in a database file (0 for a file SQLite left empty). Opened without
/// creating and with the WAL persisted, so a file that is kept is left as it was (a hot
/// rollback journal is rolled back, which only undoes an unfinished transaction).
fn data_rows(path: &Path) -> Result<(i64, i64), StoreError> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok((0, 0));
    }
    let c = conn::open_aux(path, Duration::from_secs(5))?;
    let tables: Vec<String> = c
        .prepare(&format!(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND {NOT_DATA}"
        ))
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(StoreError::from_sqlite)?;
    let (mut rows, mut records) = (0i64, 0i64);
    for t in tables {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .map_err(StoreError::from_sqlite)?;
        rows += n;
        if t == "records" {
            records = n;
        }
    }
    Ok((rows, records))
}

/// Removes from `dir` what an interrupted tenant creation left: temporary files, and
/// `<id>.db` files (with companions) of ids not in `owned` that hold no data. Files with
/// data are kept and logged at error level. Blocking; for start-up, before any tenant
/// database is opened.
pub(crate) fn sweep_blocking(dir: &Path, owned: &HashSet<String>) -> Sweep {
    let mut out = Sweep::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let present: HashSet<&str> = names.iter().map(String::as_str).collect();
    for name in &names {
        let path = dir.join(name);
        if name.starts_with(TEMP_PREFIX) {
            if std::fs::remove_file(&path).is_ok() {
                tracing::warn!(file = %path.display(), "removed an orphan tenant file left by an interrupted tenant creation");
                out.removed.push(name.clone());
            }
            continue;
        }
        // A companion whose database file is gone (and which no row owns).
        if let Some((db, _)) = COMPANIONS
            .iter()
            .find_map(|s| name.strip_suffix(s).map(|db| (db, s)))
        {
            let owner = db.strip_suffix(".db").map(|id| owned.contains(id));
            if owner == Some(false) && !present.contains(db) && std::fs::remove_file(&path).is_ok()
            {
                tracing::warn!(file = %path.display(), "removed an orphan tenant file left by an interrupted tenant creation");
                out.removed.push(name.clone());
            }
            continue;
        }
        let Some(id) = name.strip_suffix(".db") else {
            continue;
        };
        if TenantId::parse(id).is_err() || owned.contains(id) {
            continue;
        }
        match data_rows(&path) {
            Ok((0, _)) => {
                remove_db_files(&path);
                tracing::warn!(file = %path.display(), tenant = id, "removed an orphan tenant database (no control.db row, no data) left by an interrupted tenant creation");
                out.removed.push(name.clone());
            }
            Ok((rows, records)) => {
                tracing::error!(
                    file = %path.display(), tenant = id, records, rows,
                    "tenant database {} holds {records} records ({rows} rows) but control.db has no row for tenant {id}; kept. To keep the data, restore control.db from a backup that has the tenant; to discard it, move the file (and its -wal) out of the tenants directory. Creating tenant {id} is refused while the file is there",
                    path.display()
                );
                out.kept.push(name.clone());
            }
            Err(e) => {
                tracing::error!(
                    file = %path.display(), tenant = id, error = %e,
                    "tenant database {} has no control.db row and cannot be read to tell whether it holds data; kept. Inspect it, then move it out of the tenants directory",
                    path.display()
                );
                out.kept.push(name.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn built_database_is_migrated_and_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        let p = build_blocking(
            d.path(),
            &id("a"),
            Synchronous::Full,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(p, d.path().join("a.db"));
        let c = rusqlite::Connection::open(&p).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        drop(c);
        let e = build_blocking(
            d.path(),
            &id("a"),
            Synchronous::Full,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, StoreError::TenantExists(_)), "{e}");
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn sweep_removes_unowned_empty_files_and_keeps_data() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        for t in ["owned", "blank", "full"] {
            build_blocking(dir, &id(t), Synchronous::Full, Duration::from_secs(5)).unwrap();
        }
        let c = rusqlite::Connection::open(dir.join("full.db")).unwrap();
        c.execute(
            "INSERT INTO secrets (name, value, updated_ms) VALUES ('k', 'v', 1)",
            [],
        )
        .unwrap();
        drop(c);
        std::fs::write(dir.join("ghost.db"), b"").unwrap();
        std::fs::write(dir.join("ghost.db-journal"), b"").unwrap();
        std::fs::write(dir.join("gone.db-wal"), b"").unwrap();
        std::fs::write(dir.join(format!("{TEMP_PREFIX}x.1.0.tmp")), b"x").unwrap();
        let owned: HashSet<String> = ["owned".to_owned()].into();
        let mut s = sweep_blocking(dir, &owned);
        s.removed.sort();
        let mut want = vec![
            "blank.db".to_owned(),
            "ghost.db".into(),
            "gone.db-wal".into(),
            format!("{TEMP_PREFIX}x.1.0.tmp"),
        ];
        want.sort();
        assert_eq!(s.removed, want);
        assert_eq!(s.kept, vec!["full.db".to_owned()]);
        assert!(!dir.join("ghost.db-journal").exists());
        assert!(dir.join("owned.db").exists() && dir.join("full.db").exists());
    }
}
