//! Every route: path, method, handler and declared permission, in one table.
//!
//! [`routes`] builds both the router and [`route_table`], so the list the OpenAPI test
//! compares with the document is exactly what the router serves.

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::routing::{self, MethodRouter};
use axum::Router;
use http::Method;

use super::error::ApiError;
use super::{
    audit, changes, connections, harvest, health, keys, openapi, records, run_review,
    source_cursors, tenants, usage, AppState,
};
use crate::auth::Permission;
use crate::error::ErrorKind;

/// One route as the OpenAPI test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    /// `None` for public routes.
    pub permission: Option<Permission>,
}

pub(super) struct Routes {
    by_path: BTreeMap<&'static str, MethodRouter<AppState>>,
    table: Vec<RouteInfo>,
}

macro_rules! verb {
    ($name:ident, $method:ident) => {
        fn $name<H, T>(self, path: &'static str, perm: Option<Permission>, h: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(Method::$method, path, perm, routing::$name(h))
        }
    };
}

impl Routes {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        permission: Option<Permission>,
        mr: MethodRouter<AppState>,
    ) -> Self {
        let merged = match self.by_path.remove(path) {
            Some(existing) => existing.merge(mr),
            None => mr,
        };
        self.by_path.insert(path, merged);
        self.table.push(RouteInfo {
            method,
            path,
            permission,
        });
        self
    }

    verb!(get, GET);
    verb!(post, POST);
    verb!(put, PUT);
    verb!(patch, PATCH);
    verb!(delete, DELETE);

    pub(super) fn into_router(self) -> Router<AppState> {
        let mut r = Router::new();
        for (path, mr) in self.by_path {
            r = r.route(path, mr);
        }
        r.fallback(|| async { ApiError::new(ErrorKind::NotFound, "no such route") })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    ErrorKind::MethodNotAllowed,
                    "method not allowed on this route",
                )
            })
    }
}

/// Every route, group by group (the OpenAPI document's paths come in the same groups).
pub(super) fn routes() -> Routes {
    let groups: [fn(Routes) -> Routes; 7] = [
        public_routes,
        tenant_routes,
        record_routes,
        tenant_admin_routes,
        source_routes,
        connection_routes,
        admin_routes,
    ];
    let empty = Routes {
        by_path: BTreeMap::new(),
        table: Vec::new(),
    };
    groups.into_iter().fold(empty, |r, group| group(r))
}

/// Health, metrics and the OpenAPI document (no credential).
fn public_routes(r: Routes) -> Routes {
    r.get("/healthz", None, health::healthz)
        .get("/readyz", None, health::readyz)
        .get("/metrics", None, health::metrics)
        .get("/openapi.json", None, openapi::serve)
}

/// Tenants (admin).
fn tenant_routes(r: Routes) -> Routes {
    use Permission as P;
    r.post("/v1/tenants", Some(P::ManageTenants), tenants::create)
        .get("/v1/tenants", Some(P::ManageTenants), tenants::list)
        .get("/v1/tenants/{tenant}", Some(P::ManageTenants), tenants::get)
        .patch(
            "/v1/tenants/{tenant}",
            Some(P::ManageTenants),
            tenants::update,
        )
        .delete(
            "/v1/tenants/{tenant}",
            Some(P::ManageTenants),
            tenants::delete,
        )
}

/// Records: list, push, one record, export; what changed (a run's changes, version diffs).
fn record_routes(r: Routes) -> Routes {
    use Permission as P;
    r.get(
        "/v1/tenants/{tenant}/records",
        Some(P::ReadRecords),
        records::list,
    )
    .post(
        "/v1/tenants/{tenant}/records",
        Some(P::WriteRecords),
        records::push,
    )
    .get(
        "/v1/tenants/{tenant}/records/{id}",
        Some(P::ReadRecords),
        records::get,
    )
    .get(
        "/v1/tenants/{tenant}/export",
        Some(P::ReadRecords),
        records::export,
    )
    .get(
        "/v1/tenants/{tenant}/records/{id}/diff",
        Some(P::ReadChanges),
        changes::diff,
    )
    .get(
        "/v1/tenants/{tenant}/runs/{run}/changes",
        Some(P::ReadChanges),
        changes::run_changes,
    )
}

/// A tenant's keys, audit and usage (tenant-admin).
fn tenant_admin_routes(r: Routes) -> Routes {
    use Permission as P;
    r.get(
        "/v1/tenants/{tenant}/keys",
        Some(P::ManageKeys),
        keys::tenant_list,
    )
    .post(
        "/v1/tenants/{tenant}/keys",
        Some(P::ManageKeys),
        keys::tenant_create,
    )
    .get(
        "/v1/tenants/{tenant}/keys/{key_id}",
        Some(P::ManageKeys),
        keys::tenant_get,
    )
    .delete(
        "/v1/tenants/{tenant}/keys/{key_id}",
        Some(P::ManageKeys),
        keys::tenant_revoke,
    )
    .post(
        "/v1/tenants/{tenant}/keys/{key_id}/rotate",
        Some(P::ManageKeys),
        keys::tenant_rotate,
    )
    .get(
        "/v1/tenants/{tenant}/audit",
        Some(P::ReadAudit),
        audit::tenant_list,
    )
    .get(
        "/v1/tenants/{tenant}/audit/verify",
        Some(P::ReadAudit),
        audit::tenant_verify,
    )
    .get("/v1/tenants/{tenant}/usage", Some(P::ReadUsage), usage::get)
}

/// Sources and runs (reader reads, editor changes and runs) and the secrets source
/// definitions refer to (tenant-admin).
fn source_routes(r: Routes) -> Routes {
    use Permission as P;
    r.get(
        "/v1/tenants/{tenant}/sources",
        Some(P::ReadSources),
        harvest::list_sources,
    )
    .get(
        "/v1/tenants/{tenant}/sources/{source}",
        Some(P::ReadSources),
        harvest::get_source,
    )
    .put(
        "/v1/tenants/{tenant}/sources/{source}",
        Some(P::WriteSources),
        harvest::put_source,
    )
    .delete(
        "/v1/tenants/{tenant}/sources/{source}",
        Some(P::WriteSources),
        harvest::delete_source,
    )
    .post(
        "/v1/tenants/{tenant}/sources/{source}/runs",
        Some(P::WriteSources),
        harvest::trigger,
    )
    .get(
        "/v1/tenants/{tenant}/sources/{source}/runs",
        Some(P::ReadSources),
        harvest::list_runs,
    )
    .get(
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}",
        Some(P::ReadSources),
        harvest::get_run,
    )
    .post(
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}/accept",
        Some(P::WriteSources),
        run_review::accept,
    )
    .post(
        "/v1/tenants/{tenant}/sources/{source}/runs/{run}/dismiss",
        Some(P::WriteSources),
        run_review::dismiss,
    )
    .get(
        "/v1/tenants/{tenant}/sources/{source}/cursor",
        Some(P::ReadSources),
        source_cursors::get_cursor,
    )
    .delete(
        "/v1/tenants/{tenant}/sources/{source}/cursor",
        Some(P::WriteSources),
        source_cursors::delete_cursor,
    )
    // `records:write`, or no credential and a valid signature (see `harvest`).
    .post(
        "/v1/tenants/{tenant}/sources/{source}/push",
        Some(P::WriteRecords),
        harvest::push,
    )
    .get(
        "/v1/tenants/{tenant}/secrets",
        Some(P::ManageSecrets),
        harvest::list_secrets,
    )
    .put(
        "/v1/tenants/{tenant}/secrets/{name}",
        Some(P::ManageSecrets),
        harvest::put_secret,
    )
    .delete(
        "/v1/tenants/{tenant}/secrets/{name}",
        Some(P::ManageSecrets),
        harvest::delete_secret,
    )
}

/// Connections: named credentials sources use (reader reads, tenant-admin changes).
fn connection_routes(r: Routes) -> Routes {
    use Permission as P;
    r.get(
        "/v1/tenants/{tenant}/connections",
        Some(P::ReadConnections),
        connections::list,
    )
    .get(
        "/v1/tenants/{tenant}/connections/{name}",
        Some(P::ReadConnections),
        connections::get,
    )
    .put(
        "/v1/tenants/{tenant}/connections/{name}",
        Some(P::ManageConnections),
        connections::put,
    )
    .delete(
        "/v1/tenants/{tenant}/connections/{name}",
        Some(P::ManageConnections),
        connections::delete,
    )
}

/// Global admin keys and audit (admin).
fn admin_routes(r: Routes) -> Routes {
    use Permission as P;
    r.get("/v1/admin/keys", Some(P::ManageAdminKeys), keys::admin_list)
        .post(
            "/v1/admin/keys",
            Some(P::ManageAdminKeys),
            keys::admin_create,
        )
        .get(
            "/v1/admin/keys/{key_id}",
            Some(P::ManageAdminKeys),
            keys::admin_get,
        )
        .delete(
            "/v1/admin/keys/{key_id}",
            Some(P::ManageAdminKeys),
            keys::admin_revoke,
        )
        .post(
            "/v1/admin/keys/{key_id}/rotate",
            Some(P::ManageAdminKeys),
            keys::admin_rotate,
        )
        .get(
            "/v1/admin/audit",
            Some(P::ReadGlobalAudit),
            audit::global_list,
        )
        .get(
            "/v1/admin/audit/verify",
            Some(P::ReadGlobalAudit),
            audit::global_verify,
        )
}

/// Every (method, path, permission) the router serves.
pub fn route_table() -> Vec<RouteInfo> {
    routes().table
}
