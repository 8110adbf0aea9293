//! Roles, permissions and the principal a request authenticated as.
//!
//! Four roles, ordered: `reader` < `editor` < `tenant-admin` < `admin`. The first three are
//! bound to one tenant; `admin` is global. Every endpoint declares one [`Permission`]; a
//! tenant-scoped permission needs the role's rank and the request's tenant to be the
//! principal's tenant (admins pass for every tenant), a global one needs `admin`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::tenant::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Reader,
    Editor,
    TenantAdmin,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::TenantAdmin, Role::Editor, Role::Reader];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Editor => "editor",
            Role::Reader => "reader",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Create, list, update, delete tenants.
    ManageTenants,
    /// Manage global admin keys.
    ManageAdminKeys,
    /// Read and verify the global audit chain.
    ReadGlobalAudit,
    /// List, get and export a tenant's records.
    ReadRecords,
    /// Push records into a tenant.
    WriteRecords,
    /// Manage a tenant's API keys.
    ManageKeys,
    /// Read and verify a tenant's audit chain.
    ReadAudit,
    /// Read a tenant's usage.
    ReadUsage,
    /// List and get a tenant's source definitions and their runs.
    ReadSources,
    /// Create, replace and delete source definitions; start runs.
    WriteSources,
    /// Set and delete the secrets source definitions refer to (values are never read back).
    ManageSecrets,
}

impl Permission {
    /// The least role that holds this permission.
    pub fn min_role(self) -> Role {
        match self {
            Permission::ManageTenants
            | Permission::ManageAdminKeys
            | Permission::ReadGlobalAudit => Role::Admin,
            Permission::ManageKeys
            | Permission::ReadAudit
            | Permission::ReadUsage
            | Permission::ManageSecrets => Role::TenantAdmin,
            Permission::WriteRecords | Permission::WriteSources => Role::Editor,
            Permission::ReadRecords | Permission::ReadSources => Role::Reader,
        }
    }

    pub fn tenant_scoped(self) -> bool {
        self.min_role() != Role::Admin
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageTenants => "tenants:manage",
            Permission::ManageAdminKeys => "admin-keys:manage",
            Permission::ReadGlobalAudit => "global-audit:read",
            Permission::ReadRecords => "records:read",
            Permission::WriteRecords => "records:write",
            Permission::ManageKeys => "keys:manage",
            Permission::ReadAudit => "audit:read",
            Permission::ReadUsage => "usage:read",
            Permission::ReadSources => "sources:read",
            Permission::WriteSources => "sources:write",
            Permission::ManageSecrets => "secrets:manage",
        }
    }
}

/// Who a request authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// For the audit log: `admin-token`, `key:<id>`, `jwt:<issuer>#<sub>`.
    pub actor: String,
    pub role: Role,
    /// `None` only for `admin`.
    pub tenant: Option<TenantId>,
    /// The API key's id when authenticated by a key.
    pub key_id: Option<String>,
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("role `{role}` lacks permission `{perm}` (needs `{needs}` or above)")]
    Role {
        role: Role,
        perm: &'static str,
        needs: Role,
    },
    #[error("this credential belongs to another tenant")]
    OtherTenant,
}

impl Denied {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Forbidden
    }
}

impl Principal {
    /// Checks `perm` for a request on `tenant` (None for global endpoints).
    pub fn authorize(&self, perm: Permission, tenant: Option<&TenantId>) -> Result<(), Denied> {
        if self.role == Role::Admin && self.tenant.is_none() {
            return Ok(());
        }
        let needs = perm.min_role();
        if !perm.tenant_scoped() || self.role < needs {
            return Err(Denied::Role {
                role: self.role,
                perm: perm.as_str(),
                needs,
            });
        }
        match (tenant, &self.tenant) {
            (Some(t), Some(mine)) if t == mine => Ok(()),
            _ => Err(Denied::OtherTenant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            actor: "t".into(),
            role,
            tenant: tenant.map(|t| TenantId::parse(t).unwrap()),
            key_id: None,
        }
    }

    #[test]
    fn roles_and_tenants() {
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert!(p(Role::Admin, None)
            .authorize(Permission::ManageTenants, None)
            .is_ok());
        assert!(p(Role::Admin, None)
            .authorize(Permission::ReadAudit, Some(&b))
            .is_ok());
        let r = p(Role::Reader, Some("a"));
        assert!(r.authorize(Permission::ReadRecords, Some(&a)).is_ok());
        assert_eq!(
            r.authorize(Permission::ReadRecords, Some(&b)),
            Err(Denied::OtherTenant)
        );
        assert!(matches!(
            r.authorize(Permission::WriteRecords, Some(&a)),
            Err(Denied::Role { .. })
        ));
        let ta = p(Role::TenantAdmin, Some("a"));
        assert!(ta.authorize(Permission::ManageKeys, Some(&a)).is_ok());
        assert!(ta.authorize(Permission::ManageTenants, None).is_err());
        assert!(ta.authorize(Permission::ManageKeys, Some(&b)).is_err());
        assert!(p(Role::Editor, Some("a"))
            .authorize(Permission::ReadUsage, Some(&a))
            .is_err());
        let ed = p(Role::Editor, Some("a"));
        assert!(ed.authorize(Permission::WriteSources, Some(&a)).is_ok());
        assert!(ed.authorize(Permission::ManageSecrets, Some(&a)).is_err());
        assert!(r.authorize(Permission::ReadSources, Some(&a)).is_ok());
        assert!(r.authorize(Permission::WriteSources, Some(&a)).is_err());
        assert!(ta.authorize(Permission::ManageSecrets, Some(&a)).is_ok());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
