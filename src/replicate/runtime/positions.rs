//! What the scheduled verifier reads from the live replicator: the TXID shipped to the
//! first destination for an open database, and the node's verification board.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Replicator;
use crate::replicate::client::ReplicaClient;
use crate::replicate::verify_board::VerifyBoard;

/// The live position of one database as the replicator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivePosition {
    /// Last TXID shipped to the first destination (0 = position not known yet).
    pub shipped_txid: u64,
    /// Some commit is not shipped yet.
    pub unshipped: bool,
}

impl Replicator {
    /// The live position of `db` while it is open (attached), `None` when it is closed.
    /// The TXID is published after each sync tick, so it may trail the replica by one
    /// tick but never lead it.
    pub fn live_position(&self, db: &Path) -> Option<LivePosition> {
        let tasks = match self.shared.tasks.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        tasks
            .get(db)
            .filter(|t| !t.join.is_finished())
            .map(|t| LivePosition {
                shipped_txid: t.status.last_txid.load(Ordering::Relaxed),
                unshipped: t.status.is_unshipped(),
            })
    }

    /// Replica sub-path (`control`, `tenants/<id>`) of a store database.
    pub fn replica_sub_path(&self, db: &Path) -> String {
        self.sub_path(db)
    }

    /// The client for `sub` under the first destination (the one the live TXID is of).
    pub fn primary_client(&self, sub: &str) -> Option<Arc<dyn ReplicaClient>> {
        self.shared.dests.first().map(|d| d.at(sub))
    }

    /// The outcome of scheduled verification per database.
    pub fn verify_board(&self) -> &Arc<VerifyBoard> {
        &self.shared.verify_board
    }
}
