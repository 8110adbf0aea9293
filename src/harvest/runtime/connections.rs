//! Connections at run time: their definitions in the tenant database, the one token state
//! each has in the process, and the references sources make to them.
//!
//! Every run (and fetch-now request) of a source that names a connection takes the token
//! slot of (tenant, connection) from the harvester's `token_slots`, so all of them share
//! one access token and one refresh lock: with a provider that rotates refresh tokens, the
//! second source never replays the token the first already spent.
//!
//! A connection cannot be deleted while a source names it, and a source cannot name one
//! that does not exist; both checks read the other database (connections live in the
//! tenant's, sources in the control database), so a delete racing a source write can still
//! leave a dangling name: its runs then fail saying which connection is missing.

use super::auth::{SourceAuth, TokenScope};
use super::token_slots::MAX_LIVE_SLOTS;
use super::{HarvestError, Harvester};
use crate::harvest::source::{
    ConnectionDef, ConnectionName, DefinitionError, FieldError, SourceDef,
};
use crate::store::{ConnectionPut, ConnectionRow, StoreError, TenantDb, MAX_SOURCE_LIST};
use crate::tenant::TenantId;

/// Most referencing sources a refused delete names.
const MAX_NAMED_REFERENCES: usize = 50;

fn parse_stored(tenant: &str, row: &ConnectionRow) -> Result<ConnectionDef, HarvestError> {
    serde_json::from_str(&row.definition)
        .map_err(|e| StoreError::Corrupt(format!("connection {tenant}/{}: {e}", row.name)).into())
}

impl Harvester {
    /// The credentials a run of `source` uses: its inline `auth` with a token of its own,
    /// or its connection's with the connection's shared token state.
    pub(super) async fn source_auth(
        &self,
        def: &SourceDef,
        db: &TenantDb,
        tenant: &str,
        source: &str,
    ) -> Result<SourceAuth, HarvestError> {
        let Some(name) = &def.common.connection else {
            let auth = def.common.auth.as_ref();
            return SourceAuth::new(auth, db, tenant, source, TokenScope::own(source)).await;
        };
        let row = db.connection(name.as_str()).await?.ok_or_else(|| {
            HarvestError::ConnectionNotFound {
                tenant: tenant.to_string(),
                name: name.to_string(),
            }
        })?;
        let conn = parse_stored(tenant, &row)?;
        let scope = TokenScope {
            key: name.token_key(),
            slot: self
                .token_slots
                .slot(tenant, name.as_str())
                .ok_or(HarvestError::ConnectionsBusy(MAX_LIVE_SLOTS))?,
        };
        let label = format!("{source} (connection {name})");
        SourceAuth::new(Some(&conn.auth), db, tenant, &label, scope).await
    }

    /// Refuses a definition that names a connection the tenant does not have.
    pub(super) async fn check_connection_ref(
        &self,
        tenant: &TenantId,
        def: &SourceDef,
    ) -> Result<(), HarvestError> {
        let Some(name) = &def.common.connection else {
            return Ok(());
        };
        let db = self.store.tenant_db(tenant).await?;
        if db.connection(name.as_str()).await?.is_some() {
            return Ok(());
        }
        Err(DefinitionError::Invalid(vec![FieldError {
            field: "connection".into(),
            message: format!(
                "tenant {tenant} has no connection {name}; create it first with PUT /v1/tenants/{tenant}/connections/{name}"
            ),
        }])
        .into())
    }

    /// Creates or replaces a connection (validated by the caller). True when created.
    pub async fn put_connection(
        &self,
        tenant: &TenantId,
        name: &ConnectionName,
        def: &ConnectionDef,
    ) -> Result<bool, HarvestError> {
        let db = self.store.tenant_db(tenant).await?;
        let text = serde_json::to_string(def).unwrap_or_default();
        match db.put_connection(name.as_str(), &text).await? {
            ConnectionPut::Created => Ok(true),
            ConnectionPut::Replaced => Ok(false),
            ConnectionPut::Full => Err(HarvestError::TooManyConnections {
                tenant: tenant.to_string(),
                limit: crate::store::MAX_CONNECTIONS,
            }),
        }
    }

    /// A stored connection and its definition.
    pub async fn connection(
        &self,
        tenant: &TenantId,
        name: &ConnectionName,
    ) -> Result<(ConnectionRow, ConnectionDef), HarvestError> {
        let db = self.store.tenant_db(tenant).await?;
        let row = db.connection(name.as_str()).await?.ok_or_else(|| {
            HarvestError::ConnectionNotFound {
                tenant: tenant.to_string(),
                name: name.to_string(),
            }
        })?;
        let def = parse_stored(tenant.as_str(), &row)?;
        Ok((row, def))
    }

    /// A page of connections by name.
    pub async fn list_connections(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(ConnectionRow, ConnectionDef)>, HarvestError> {
        let db = self.store.tenant_db(tenant).await?;
        let rows = db.list_connections(after, limit).await?;
        rows.into_iter()
            .map(|r| parse_stored(tenant.as_str(), &r).map(|d| (r, d)))
            .collect()
    }

    /// Deletes a connection and its token chain; refused while a source names it.
    pub async fn delete_connection(
        &self,
        tenant: &TenantId,
        name: &ConnectionName,
    ) -> Result<(), HarvestError> {
        let users = self.sources_using(tenant, name).await?;
        if !users.is_empty() {
            return Err(HarvestError::ConnectionInUse {
                name: name.to_string(),
                sources: users,
            });
        }
        let db = self.store.tenant_db(tenant).await?;
        if db
            .delete_connection(name.as_str(), &name.token_key())
            .await?
        {
            Ok(())
        } else {
            Err(HarvestError::ConnectionNotFound {
                tenant: tenant.to_string(),
                name: name.to_string(),
            })
        }
    }

    /// The sources of `tenant` that name connection `name` (at most
    /// [`MAX_NAMED_REFERENCES`]), reading every definition a page at a time.
    async fn sources_using(
        &self,
        tenant: &TenantId,
        name: &ConnectionName,
    ) -> Result<Vec<String>, HarvestError> {
        let mut users = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .list_sources(tenant.as_str(), after.as_deref(), MAX_SOURCE_LIST)
                .await?;
            for r in &rows {
                let v: serde_json::Value = serde_json::from_str(&r.definition).map_err(|e| {
                    StoreError::Corrupt(format!("source {}/{}: {e}", r.tenant, r.id))
                })?;
                if v.get("connection").and_then(|c| c.as_str()) == Some(name.as_str())
                    && users.len() < MAX_NAMED_REFERENCES
                {
                    users.push(r.id.clone());
                }
            }
            if rows.len() < MAX_SOURCE_LIST {
                return Ok(users);
            }
            after = rows.last().map(|r| r.id.clone());
        }
    }
}
