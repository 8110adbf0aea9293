//! File modes of the data directory and the databases in it: private to the service user.
//!
//! The databases hold API key hashes, the audit log and every tenant's records, so they are
//! created 0600 in directories created 0700 whatever the process umask is (outside the
//! .deb's unit, which sets UMask=0027, the usual 022 would make them world-readable). The
//! mode is given at creation (open(2) and mkdir(2) can only take bits away from it through
//! the umask, never add any). A database file is created here, empty, before SQLite opens
//! it: SQLite's unix VFS creates a new main database file 0644 less the umask, but creates
//! its -wal and -shm files with exactly the main file's permission bits (`robust_open`
//! fchmods a new, empty file to the mode it asked for), so they follow the 0600.
//!
//! Existing files are handled by whose they are. The databases and `tenants/` are Gleaner's
//! own: looser modes (an older version, a restore or a copy made under another umask) are
//! tightened at open, with a warning naming the old mode. The data directory itself may be
//! one an administrator chose and shares (the .deb makes it 0750 gleaner:gleaner and lets
//! dpkg-statoverride change that; a mount point; a home directory), so it is never chmod-ed:
//! a world-accessible one gets a warning, and the 0600 files inside stay unreadable anyway.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::StoreError;

/// Mode of every database file and its -wal and -shm files.
pub const DB_FILE_MODE: u32 = 0o600;
/// Mode of directories the store creates.
pub const DIR_MODE: u32 = 0o700;

fn fail(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::DataDir {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Creates `dir` (and missing parents) 0700. An existing directory keeps its mode; a
/// world-accessible one is reported when `warn_if_open` is set.
pub fn create_private_dir(dir: &Path, warn_if_open: bool) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| fail(dir, "cannot create it", e))?;
    if warn_if_open {
        let mode = mode_of(dir)?;
        if mode & 0o007 != 0 {
            tracing::warn!(path = %dir.display(), mode = format!("{mode:04o}"),
                "the data directory is accessible to all users; the databases in it are \
                 0600, but consider chmod 0700 (or 0750 for a service group)");
        }
    }
    Ok(())
}

/// Creates `dir` 0700, or tightens an existing one that group or others can use: for
/// directories only Gleaner writes into (`tenants/`).
pub fn own_private_dir(dir: &Path) -> Result<(), StoreError> {
    create_private_dir(dir, false)?;
    tighten(dir, DIR_MODE)
}

/// Makes `db` exist with mode 0600 before SQLite opens it, and tightens an existing
/// database's -wal and -shm files too (SQLite sets their mode only when it creates them).
pub fn prepare_db_file(db: &Path) -> Result<(), StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_FILE_MODE)
        .open(db)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(db, DB_FILE_MODE)?,
        Err(e) => return Err(fail(db, "cannot create the database file", e)),
    }
    for side in sidecars(db) {
        if side.exists() {
            tighten(&side, DB_FILE_MODE)?;
        }
    }
    Ok(())
}

/// The -wal and -shm files SQLite keeps beside `db`.
fn sidecars(db: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [with("-wal"), with("-shm")]
}

fn mode_of(path: &Path) -> Result<u32, StoreError> {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| fail(path, "cannot read its mode", e))
}

/// Removes every permission bit outside `max` (group and others, for our modes).
fn tighten(path: &Path, max: u32) -> Result<(), StoreError> {
    let mode = mode_of(path)?;
    if mode & !max == 0 {
        return Ok(());
    }
    let new = mode & max;
    std::fs::set_permissions(path, Permissions::from_mode(new)).map_err(|e| {
        fail(
            path,
            &format!("cannot tighten mode {mode:04o} to {new:04o}"),
            e,
        )
    })?;
    tracing::warn!(path = %path.display(), was = format!("{mode:04o}"), now = format!("{new:04o}"),
        "tightened the mode of a file group or others could use");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_files_and_dirs_are_private_and_loose_ones_are_tightened() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("a/data");
        create_private_dir(&data, true).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&d.path().join("a")), 0o700);

        let db = data.join("x.db");
        prepare_db_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);

        // Looser leftovers: the database, its WAL, its shm, and tenants/.
        let tenants = data.join("tenants");
        std::fs::create_dir(&tenants).unwrap();
        std::fs::set_permissions(&tenants, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        let [wal, shm] = sidecars(&db);
        std::fs::write(&wal, b"w").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o664)).unwrap();
        std::fs::write(&shm, b"s").unwrap();
        std::fs::set_permissions(&shm, Permissions::from_mode(0o640)).unwrap();
        prepare_db_file(&db).unwrap();
        own_private_dir(&tenants).unwrap();
        assert_eq!(
            [mode(&db), mode(&wal), mode(&shm), mode(&tenants)],
            [0o600, 0o600, 0o600, 0o700]
        );
        assert_eq!(std::fs::read(&wal).unwrap(), b"w", "contents untouched");

        // A data directory the administrator made is left as it is.
        let shared = d.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&shared, true).unwrap();
        assert_eq!(mode(&shared), 0o750);
    }
}
