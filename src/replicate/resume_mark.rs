//! The local proof that a WAL restart after a crash lost nothing ("resume mark").
//!
//! A replica's position comes from its newest L0 header, which cannot say whether the
//! replicator checkpointed after shipping it. Without that knowledge the first start after a
//! SIGKILL that landed between our own checkpoint and the next ship sees the WAL restarted
//! (salt-1 + 1) and must take a full L0, although the checkpoint only copied frames that had
//! been shipped. So after each checkpoint that ran with everything shipped and no write
//! slipping in, every destination records its position here (TXID, WAL salts, resume offset,
//! database inode): for PASSIVE inside the exclusive job just before the checkpoint (once
//! the job returns a write may restart the WAL at once), for TRUNCATE only after it proved
//! that nothing slipped in (the mark is removed before it and after any failed checkpoint). On attach, a mark that
//! equals the replica's position proves the restart safe (`Position::restart_ok`); any other
//! change (another TXID, other salts, a replaced database file, two restarts) still leads
//! to a full L0.

use std::fs;
use std::path::{Path, PathBuf};

use crate::replicate::capture::{Position, RESUME_MARK_FILE as NAME};

/// The mark file in a destination's staging directory (kept by `clear_staging`).
pub fn path(staging: &Path) -> PathBuf {
    staging.join(NAME)
}

fn text(txid: u64, p: &Position, db_ino: u64) -> String {
    format!(
        "{txid} {} {} {} {} {db_ino}\n",
        p.salt1, p.salt2, p.offset, p.page_size
    )
}

/// Records that everything up to `txid` at `p` was shipped and then checkpointed by us.
pub fn write(staging: &Path, txid: u64, p: &Position, db_ino: u64) -> std::io::Result<()> {
    fs::create_dir_all(staging)?;
    let tmp = staging.join(format!("{NAME}.tmp"));
    fs::write(&tmp, text(txid, p, db_ino))?;
    fs::rename(&tmp, path(staging))
}

pub fn clear(staging: &Path) {
    let _ = fs::remove_file(path(staging));
}

/// Whether the mark proves that one WAL restart since position `p` (TXID `txid`) of the
/// database file with inode `db_ino` lost nothing.
pub fn proves(staging: &Path, txid: u64, p: &Position, db_ino: u64) -> bool {
    fs::read_to_string(path(staging)).is_ok_and(|s| s == text(txid, p, db_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_proves_only_its_own_position() {
        let d = tempfile::tempdir().unwrap();
        let p = Position {
            salt1: 7,
            salt2: 9,
            offset: 4152,
            commit: 3,
            page_size: 4096,
            restart_ok: false,
        };
        assert!(!proves(d.path(), 5, &p, 11));
        write(d.path(), 5, &p, 11).unwrap();
        assert!(proves(d.path(), 5, &p, 11));
        assert!(!proves(d.path(), 6, &p, 11), "another TXID");
        assert!(!proves(d.path(), 5, &p, 12), "another database file");
        let q = Position { salt1: 8, ..p };
        assert!(!proves(d.path(), 5, &q, 11), "other salts");
        clear(d.path());
        assert!(!proves(d.path(), 5, &p, 11));
    }
}
