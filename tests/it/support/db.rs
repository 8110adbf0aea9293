//! Databases: the store opened in-process on a data directory, and SQLite content checks
//! (a read-only connection, a fingerprint of every user table's rows, `integrity_check`).

use std::path::Path;

use gleaner::config::StoreConfig;
use gleaner::store::{CheckpointPolicy, Store};
use rusqlite::{Connection, OpenFlags};

/// The store on `data_dir` with default settings, checkpoints left to the caller (as
/// `gleaner harvest` and the tests' own runtimes run it).
pub async fn open_store(data_dir: &Path) -> Store {
    Store::open(
        &StoreConfig {
            data_dir: data_dir.to_path_buf(),
            ..StoreConfig::default()
        },
        CheckpointPolicy::External,
    )
    .await
    .unwrap()
}

/// Read-only connection: never checkpoints or deletes the WAL on close.
pub fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Fingerprint of every user table's rows (tables Litestream adds are ignored).
pub fn content(path: &Path) -> String {
    let c = open_ro(path);
    let mut tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_litestream%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    let mut h = blake3::Hasher::new();
    for t in tables {
        h.update(t.as_bytes());
        // Rows are hashed in sorted order, so tables without a rowid (WITHOUT ROWID)
        // hash the same way as the rest.
        let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        let mut lines = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            let mut line = String::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                line.push_str(&format!("{v:?}\u{1f}"));
            }
            lines.push(line);
        }
        lines.sort();
        for l in lines {
            h.update(l.as_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

pub fn integrity(path: &Path) -> String {
    open_ro(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}
