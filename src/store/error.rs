//! Errors of the store, named by what failed.

use std::path::PathBuf;

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path} is not usable: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this build knows ({known}); upgrade gleaner")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migration {version} of {path} failed: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database is busy or locked; try again")]
    Busy,
    #[error("disk full or quota exceeded while writing")]
    DiskFull,
    #[error("tenant {0} does not exist")]
    TenantNotFound(String),
    #[error("tenant {0} already exists")]
    TenantExists(String),
    #[error("API key {0} does not exist in this scope")]
    KeyNotFound(String),
    #[error("API key {0} is revoked")]
    KeyRevoked(String),
    #[error("record {0} does not exist")]
    RecordNotFound(i64),
    #[error("run {0} does not exist")]
    RunNotFound(i64),
    #[error(
        "record {id} has no version {version} (it never existed, or history pruning dropped it)"
    )]
    VersionNotFound { id: i64, version: i64 },
    #[error(
        "quota `{quota}` of tenant {tenant} would be exceeded: limit {limit}, would be {would_be}"
    )]
    QuotaExceeded {
        tenant: String,
        quota: &'static str,
        limit: i64,
        would_be: i64,
    },
    #[error("tenant {tenant} was deleted {secs_ago} s ago and its database may still be closing; retry in {retry_secs} s")]
    TenantRecentlyDeleted {
        tenant: String,
        secs_ago: i64,
        retry_secs: i64,
    },
    #[error("query took longer than limits.statement_timeout_ms ({0} ms); narrow the filters")]
    QueryTimeout(u64),
    #[error("too many tenant databases in use at once (limit {0}); try again")]
    TooManyOpen(usize),
    #[error("record payload is corrupt: {0}")]
    Corrupt(String),
    #[error("record decompresses to more than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("a write operation panicked: {0}")]
    WritePanicked(String),
    #[error("the store is closed")]
    Closed,
    #[error("the write was not committed: {0}")]
    WriteFailed(String),
    #[error("background task failed: {0}")]
    Join(String),
}

/// Whether SQLite reported that the file system has no space left (SQLITE_FULL).
fn sqlite_disk_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

impl StoreError {
    /// Whether the failure is a full disk, wherever it struck (opening, migrating, writing).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull => true,
            StoreError::Open { source, .. }
            | StoreError::Migration { source, .. }
            | StoreError::Sqlite(source) => sqlite_disk_full(source),
            _ => false,
        }
    }

    /// A database that could not be opened or migrated for want of space is a transient
    /// [`StoreError::DiskFull`], not a broken environment: the caller may retry once space
    /// returns, and the answer names no file path. The full error is logged here.
    pub(crate) fn disk_full_on_open(self) -> Self {
        if !self.is_disk_full() || matches!(self, StoreError::DiskFull) {
            return self;
        }
        tracing::warn!(error = %self, "cannot open a database: the disk is full");
        StoreError::DiskFull
    }

    pub fn kind(&self) -> ErrorKind {
        use rusqlite::ErrorCode as C;
        if self.is_disk_full() {
            return ErrorKind::Unavailable;
        }
        match self {
            StoreError::DataDir { .. } | StoreError::Open { .. } => ErrorKind::Environment,
            StoreError::SchemaTooNew { .. } | StoreError::Migration { .. } => {
                ErrorKind::Environment
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, C::DatabaseBusy | C::DatabaseLocked) =>
            {
                ErrorKind::Unavailable
            }
            StoreError::Sqlite(_) => ErrorKind::Internal,
            StoreError::Busy | StoreError::DiskFull | StoreError::TooManyOpen(_) => {
                ErrorKind::Unavailable
            }
            StoreError::TenantNotFound(_) => ErrorKind::NotFound,
            StoreError::TenantExists(_)
            | StoreError::KeyRevoked(_)
            | StoreError::TenantRecentlyDeleted { .. } => ErrorKind::Conflict,
            StoreError::KeyNotFound(_)
            | StoreError::RecordNotFound(_)
            | StoreError::RunNotFound(_)
            | StoreError::VersionNotFound { .. } => ErrorKind::NotFound,
            StoreError::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            StoreError::QueryTimeout(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) | StoreError::WritePanicked(_) | StoreError::Join(_) => {
                ErrorKind::Internal
            }
            StoreError::PayloadTooLarge(_) => ErrorKind::TooLarge,
            StoreError::WriteFailed(_) => ErrorKind::Unavailable,
            StoreError::Closed => ErrorKind::ShuttingDown,
        }
    }

    /// A copy of a batch-wide failure for each caller in the batch (SQLite errors do not
    /// clone, and every caller must hear the same thing).
    pub(crate) fn for_each_caller(&self) -> StoreError {
        match self {
            StoreError::Busy => StoreError::Busy,
            StoreError::DiskFull => StoreError::DiskFull,
            StoreError::Closed => StoreError::Closed,
            other => StoreError::WriteFailed(other.to_string()),
        }
    }

    /// Maps SQLite's transient conditions to their own variants so callers can retry.
    pub(crate) fn from_sqlite(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::DatabaseBusy | C::DatabaseLocked => StoreError::Busy,
                C::DiskFull => StoreError::DiskFull,
                _ => StoreError::Sqlite(e),
            },
            _ => StoreError::Sqlite(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        )
    }

    #[test]
    fn a_full_disk_is_unavailable_wherever_it_strikes() {
        let path = PathBuf::from("/data/tenants/t.db");
        let open = StoreError::Open {
            path: path.clone(),
            source: full(),
        };
        let migration = StoreError::Migration {
            path,
            version: 3,
            source: full(),
        };
        for e in [
            open,
            migration,
            StoreError::Sqlite(full()),
            StoreError::DiskFull,
        ] {
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
            let plain = e.disk_full_on_open();
            assert!(matches!(plain, StoreError::DiskFull), "{plain:?}");
            assert!(!plain.to_string().contains("/data"));
        }
        let other = StoreError::Open {
            path: PathBuf::from("/x.db"),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                None,
            ),
        };
        assert_eq!(other.kind(), ErrorKind::Environment);
        assert!(matches!(other.disk_full_on_open(), StoreError::Open { .. }));
    }
}
