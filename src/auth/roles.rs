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

/// The one list of permissions: for each, its doc, variant, string and least role, handed
/// to the macro `$then` (the name of a `macro_rules!` in scope where this is invoked). It
/// declares [`Permission`] here and the permission marker types in `http::extract`, so
/// adding a permission is one line.
macro_rules! permissions {
    ($then:ident) => {
        $then! {
            /// Create, list, update, delete tenants.
            ManageTenants = "tenants:manage", Admin;
            /// Manage global admin keys.
            ManageAdminKeys = "admin-keys:manage", Admin;
            /// Read and verify the global audit chain.
            ReadGlobalAudit = "global-audit:read", Admin;
            /// List, get and export a tenant's records.
            ReadRecords = "records:read", Reader;
            /// List what a harvest run changed and diff two versions of a record.
            ReadChanges = "changes:read", Reader;
            /// Push records into a tenant.
            WriteRecords = "records:write", Editor;
            /// Manage a tenant's API keys.
            ManageKeys = "keys:manage", TenantAdmin;
            /// Read and verify a tenant's audit chain.
            ReadAudit = "audit:read", TenantAdmin;
            /// Read a tenant's usage.
            ReadUsage = "usage:read", TenantAdmin;
            /// List and get a tenant's source definitions and their runs.
            ReadSources = "sources:read", Reader;
            /// Create, replace and delete source definitions; start runs.
            WriteSources = "sources:write", Editor;
            /// Set and delete the secrets source definitions refer to (values are never read back).
            ManageSecrets = "secrets:manage", TenantAdmin;
            /// List and get a tenant's connections (credential definitions; secret references only).
            ReadConnections = "connections:read", Reader;
            /// Create, replace and delete a tenant's connections.
            ManageConnections = "connections:manage", TenantAdmin;
        }
    };
}
pub(crate) use permissions;

/// Declares [`Permission`] from the list in [`permissions`].
macro_rules! declare_permission {
    ($($(#[$doc:meta])* $name:ident = $text:literal, $role:ident;)*) => {
        /// What an endpoint needs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission {
            $($(#[$doc])* $name,)*
        }

        impl Permission {
            /// Every permission, in the order of the list.
            pub const ALL: &'static [Permission] = &[$(Permission::$name),*];

            /// The least role that holds this permission.
            pub fn min_role(self) -> Role {
                match self {
                    $(Permission::$name => Role::$role,)*
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$name => $text,)*
                }
            }
        }
    };
}

permissions!(declare_permission);

impl Permission {
    pub fn tenant_scoped(self) -> bool {
        self.min_role() != Role::Admin
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

    #[test]
    fn permission_strings_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert!(seen.insert(p.as_str()), "{p:?}: {} twice", p.as_str());
            assert!(p.as_str().contains(':'), "{p:?}");
        }
    }
}
