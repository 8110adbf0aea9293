//! The auth module's duties around serving: the audit checkpoint published in the log at
//! start-up and shutdown, and the upkeep task that flushes keys' last-used times and
//! request counts.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Auth;
use crate::store::Store;

/// Publishes the audit checkpoint in the log (an anchor outside the database, see
/// `store::audit`), signing a log that predates anchoring at start-up. A checkpoint that
/// does not hold is an error to act on, not a reason to refuse to serve.
pub async fn log_audit_checkpoint(store: &Store, key: &crate::store::AuditKey, at: &str) {
    match store.anchor_audit(key).await {
        Ok(cp) if cp.ok => tracing::info!(
            at,
            last_seq = cp.last_seq,
            entries = cp.entries,
            chains = cp.chains,
            mac = %cp.mac,
            "audit checkpoint"
        ),
        Ok(cp) => tracing::error!(
            at,
            last_seq = cp.last_seq,
            entries = cp.entries,
            chains = cp.chains,
            reason = cp.reason.as_deref().unwrap_or(""),
            "audit checkpoint does not hold: the audit log was tampered with; run `gleaner audit verify`"
        ),
        Err(e) => tracing::warn!(at, error = %e, "cannot read the audit checkpoint"),
    }
}

/// Flushes what `auth` meters every `auth.last_used_flush_secs`, or sooner when the meter
/// fills and wakes it.
pub fn spawn_upkeep(auth: &Arc<Auth>, every: Duration) -> tokio::task::JoinHandle<()> {
    let auth = Arc::clone(auth);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = auth.meter.wake.notified() => {}
            }
            auth.upkeep().await;
        }
    })
}
