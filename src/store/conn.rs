//! Opening SQLite connections with the settings every Gleaner database uses.
//!
//! Writers get WAL mode, the configured `synchronous`, `wal_autocheckpoint=0` (checkpoints
//! belong to the store's hook now and to the replicator later: an automatic checkpoint could
//! pass frames the replicator has not captured) and foreign keys. Readers are opened
//! read-only with `query_only` so a bug cannot turn a read into a write. Every connection
//! keeps stable query plans, so cached statements stay prepared (see [`stable_plans`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::StoreError;
use crate::config::Synchronous;

pub(crate) fn open_writer(
    path: &Path,
    sync: Synchronous,
    busy_timeout: Duration,
) -> Result<Connection, StoreError> {
    let wrap = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    // Created 0600 here, so SQLite's -wal and -shm (which copy its mode) are 0600 too.
    super::fsmode::prepare_db_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap)?;
    conn.busy_timeout(busy_timeout).map_err(wrap)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(wrap)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::DataDir {
            path: path.to_path_buf(),
            reason: format!("SQLite refused WAL mode (got {mode}); is the file system local?"),
        });
    }
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // temp_store=MEMORY: the statement journals of the writer's per-operation savepoints
    // (and the TEMP staging table of the full-text index) stay in memory instead of
    // spilling into temporary files created and deleted on the writer thread.
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA wal_autocheckpoint=0; PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY;"
    ))
    .map_err(wrap)?;
    stable_plans(&conn).map_err(wrap)?;
    persist_wal(&conn, path)?;
    Ok(conn)
}

/// Keeps the -wal file when this connection closes last (see `hooks`): the replicator's
/// resume position lives in it.
pub(crate) fn persist_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: the handle is a live connection owned by `conn` for the duration of the call;
    // SQLITE_FCNTL_PERSIST_WAL reads and writes exactly one int through the pointer, which
    // points at a local that outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(StoreError::DataDir {
            path: path.to_path_buf(),
            reason: format!("cannot set SQLITE_FCNTL_PERSIST_WAL (code {rc})"),
        });
    }
    Ok(())
}

/// A read-write connection that never writes on its own: the snapshot holder of an
/// external database (it must be able to checkpoint) and the barrier connection.
pub(crate) fn open_aux(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let wrap = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap)?;
    conn.busy_timeout(busy_timeout).map_err(wrap)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
        .map_err(wrap)?;
    stable_plans(&conn).map_err(wrap)?;
    persist_wal(&conn, path)?;
    Ok(conn)
}

/// A read-only connection. With `mmap_bytes` > 0 SQLite reads the first that many bytes of
/// the database file through a shared mapping instead of `pread` (the WAL is always read
/// with `pread`): no system call and no copy per page, 4-14% of a record list request's
/// CPU when the pages are in the OS cache (docs/benchmarks.md). Off by default for the reasons on
/// `store.reader_mmap_bytes`.
pub(crate) fn open_reader(
    path: &Path,
    busy_timeout: Duration,
    mmap_bytes: u64,
) -> Result<Connection, StoreError> {
    let wrap = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap)?;
    conn.busy_timeout(busy_timeout).map_err(wrap)?;
    conn.execute_batch(&format!(
        "PRAGMA query_only=ON; PRAGMA mmap_size={mmap_bytes};"
    ))
    .map_err(wrap)?;
    stable_plans(&conn).map_err(wrap)?;
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee. Without it, a statement whose plan
/// used a bound value is marked expired on every new binding and re-parsed and re-planned at
/// its next step. Every `LIMIT ?` is such a statement (SQLite 3.50 compiles a bound limit
/// into the program as a constant), so without this the statement cache does nothing for
/// paged reads: profiled at 5% of a record list request's CPU.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// Proves `dir` (already created, see `fsmode`) is writable by creating and removing a
/// file, so an unusable data dir is reported at start-up rather than at the first write.
pub(crate) fn ensure_writable_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |reason: String| StoreError::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    let probe = dir.join(format!(".gleaner-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|e| fail(format!("cannot write in it: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(format!("cannot remove files in it: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled_with(option: &std::ffi::CStr) -> bool {
        // SAFETY: the argument is a NUL-terminated string that outlives the call; the
        // function only reads it.
        unsafe { rusqlite::ffi::sqlite3_compileoption_used(option.as_ptr()) == 1 }
    }

    /// `.cargo/config.toml` builds the bundled SQLite without these (see its comment). A
    /// build that lost them still works, only slower, so this is where it shows.
    #[test]
    fn the_bundled_sqlite_gives_each_connection_its_own_page_cache_and_no_global_malloc_lock() {
        assert!(
            !compiled_with(c"ENABLE_MEMORY_MANAGEMENT"),
            "SQLite built with SQLITE_ENABLE_MEMORY_MANAGEMENT: every connection's page \
             cache shares one mutex; is LIBSQLITE3_FLAGS from .cargo/config.toml applied?"
        );
        assert!(
            compiled_with(c"DEFAULT_MEMSTATUS=0"),
            "SQLite built with memory statistics: every allocation takes a global mutex"
        );
    }

    #[test]
    fn a_mapped_reader_reads_what_a_plain_one_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.db");
        let w = open_writer(&p, Synchronous::Normal, Duration::from_secs(1)).unwrap();
        w.execute_batch(
            "CREATE TABLE t(x INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, randomblob(300) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);
             INSERT INTO t VALUES (2001, x'00');",
        )
        .unwrap();
        let digest = |c: &Connection| -> (i64, i64) {
            c.query_row("SELECT count(*), sum(length(b) * x) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
        };
        let plain = open_reader(&p, Duration::from_secs(1), 0).unwrap();
        let mapped = open_reader(&p, Duration::from_secs(1), 1 << 20).unwrap();
        let size =
            |c: &Connection| -> i64 { c.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap() };
        assert_eq!((size(&plain), size(&mapped)), (0, 1 << 20));
        // The last row is only in the WAL, which is never mapped.
        assert_eq!(digest(&mapped), digest(&plain));
        assert_eq!(digest(&mapped).0, 2001);
    }
}
