//! Erasure of a deleted tenant's replica: every LTX object of `tenants/<id>` at every
//! destination, and the local staging state. This is the erasure users are owed under
//! GDPR when a tenant is deleted with `erase=true`.
//!
//! The store has already closed the tenant's database (its final frames were shipped and
//! its replication task stopped) and removed its files, so nothing uploads behind the
//! erasure. Objects are listed and deleted level by level through the [`ReplicaClient`]
//! trait, then every level is listed again: the status is `done` only when no object
//! remains anywhere, else the error names what is left so the operator can act.

use std::future::Future;
use std::pin::Pin;

use super::client::ReplicaClient;
use super::ltx::SNAPSHOT_LEVEL;
use super::runtime::Replicator;
use crate::store::{EraseStatus, ReplicaEraser};
use crate::tenant::TenantId;

/// Deletes every object of one database's replica; returns how many it deleted.
pub async fn erase_replica(client: &dyn ReplicaClient) -> Result<usize, String> {
    let mut deleted = 0;
    for level in 0..=SNAPSHOT_LEVEL {
        let objects = client
            .list(level)
            .await
            .map_err(|e| format!("{}: listing level {level}: {e}", client.describe()))?;
        if objects.is_empty() {
            continue;
        }
        deleted += objects.len();
        let files = objects.iter().map(|o| (o.min_txid, o.max_txid)).collect();
        client
            .delete(level, files)
            .await
            .map_err(|e| format!("{}: deleting level {level}: {e}", client.describe()))?;
    }
    for level in 0..=SNAPSHOT_LEVEL {
        let left = client
            .list(level)
            .await
            .map_err(|e| format!("{}: listing level {level}: {e}", client.describe()))?;
        if !left.is_empty() {
            return Err(format!(
                "{}: {} object(s) of level {level} remain after deletion",
                client.describe(),
                left.len()
            ));
        }
    }
    Ok(deleted)
}

impl ReplicaEraser for Replicator {
    fn erase<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> Pin<Box<dyn Future<Output = Result<EraseStatus, String>> + Send + 'a>> {
        Box::pin(async move {
            let sub = format!("tenants/{tenant}");
            let mut deleted = 0;
            for dest in self.destinations() {
                let client = dest.at(&sub);
                deleted += erase_replica(client.as_ref()).await?;
            }
            let staging = self.staging_dir(&sub);
            match tokio::fs::remove_dir_all(&staging).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "replica objects erased, but the staging directory {} could not be removed: {e}",
                        staging.display()
                    ))
                }
            }
            tracing::info!(tenant = %tenant, objects = deleted, "replica erased");
            Ok(EraseStatus::Done)
        })
    }
}
