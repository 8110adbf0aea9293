//! The authorization matrix: every API route × every kind of credential × own tenant /
//! other tenant, against the real binary. Each cell's expected status is derived from the
//! route's declared permission and asserted; the test also checks it covered every route
//! the router serves.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use gleaner::auth::Role;
use serde_json::{json, Value};

/// A credential and what it should be allowed.
struct Cred {
    name: &'static str,
    token: Option<String>,
    /// `None`: must be refused with 401 everywhere.
    grant: Option<(Role, Option<&'static str>)>,
}

/// One request per route; allowed requests get `ok` (targets chosen so nothing is
/// destroyed: deletes and key operations name things that do not exist → 404 after
/// authorization).
/// What a route needs, written out here independently of the library's tables.
#[derive(Clone, Copy)]
enum Need {
    Admin,
    InTenant(Role),
}

struct Call {
    method: &'static str,
    path: &'static str,
    perm: Need,
    body: Option<Value>,
    ok: u16,
}

#[allow(non_snake_case, non_upper_case_globals)]
mod P {
    use super::{Need, Role};
    pub const ManageTenants: Need = Need::Admin;
    pub const ManageAdminKeys: Need = Need::Admin;
    pub const ReadGlobalAudit: Need = Need::Admin;
    pub const ReadRecords: Need = Need::InTenant(Role::Reader);
    pub const ReadChanges: Need = Need::InTenant(Role::Reader);
    pub const WriteRecords: Need = Need::InTenant(Role::Editor);
    pub const ManageKeys: Need = Need::InTenant(Role::TenantAdmin);
    pub const ReadAudit: Need = Need::InTenant(Role::TenantAdmin);
    pub const ReadUsage: Need = Need::InTenant(Role::TenantAdmin);
    pub const ReadSources: Need = Need::InTenant(Role::Reader);
    pub const WriteSources: Need = Need::InTenant(Role::Editor);
    pub const ManageSecrets: Need = Need::InTenant(Role::TenantAdmin);
    pub const ReadConnections: Need = Need::InTenant(Role::Reader);
    pub const ManageConnections: Need = Need::InTenant(Role::TenantAdmin);
}

/// The connection every tenant gets before the matrix runs.
fn connection() -> Value {
    json!({"auth": {"type": "bearer", "token": "secret:matrix"}})
}

/// The push source every tenant gets before the matrix runs (no signature: pushes need
/// `records:write`).
fn push_source() -> Value {
    json!({"kind": "push", "key": {"field": "id"}})
}

fn calls() -> Vec<Call> {
    let c = |method, path, perm, body: Option<Value>, ok| Call {
        method,
        path,
        perm,
        body,
        ok,
    };
    vec![
        c(
            "POST",
            "/v1/tenants",
            P::ManageTenants,
            Some(json!({"id": "a"})),
            409,
        ),
        c("GET", "/v1/tenants", P::ManageTenants, None, 200),
        c("GET", "/v1/tenants/{tenant}", P::ManageTenants, None, 200),
        c(
            "PATCH",
            "/v1/tenants/{tenant}",
            P::ManageTenants,
            Some(json!({"display_name": "T"})),
            200,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}",
            P::ManageTenants,
            None,
            404,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/records",
            P::ReadRecords,
            None,
            200,
        ),
        c(
            "POST",
            "/v1/tenants/{tenant}/records",
            P::WriteRecords,
            Some(json!({"records": [{"source": "s", "key": "matrix", "fields": {"x": 1}}]})),
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/records/{id}",
            P::ReadRecords,
            None,
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/export",
            P::ReadRecords,
            None,
            200,
        ),
        // No `from`: 400 once authorized.
        c(
            "GET",
            "/v1/tenants/{tenant}/records/{id}/diff",
            P::ReadChanges,
            None,
            400,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/runs/{run}/changes",
            P::ReadChanges,
            None,
            404,
        ),
        c("GET", "/v1/tenants/{tenant}/keys", P::ManageKeys, None, 200),
        c(
            "POST",
            "/v1/tenants/{tenant}/keys",
            P::ManageKeys,
            Some(json!({"name": "m", "role": "reader"})),
            201,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/keys/{key_id}",
            P::ManageKeys,
            None,
            404,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}/keys/{key_id}",
            P::ManageKeys,
            None,
            404,
        ),
        c(
            "POST",
            "/v1/tenants/{tenant}/keys/{key_id}/rotate",
            P::ManageKeys,
            None,
            404,
        ),
        c("GET", "/v1/tenants/{tenant}/audit", P::ReadAudit, None, 200),
        c(
            "GET",
            "/v1/tenants/{tenant}/audit/verify",
            P::ReadAudit,
            None,
            200,
        ),
        c("GET", "/v1/tenants/{tenant}/usage", P::ReadUsage, None, 200),
        c(
            "GET",
            "/v1/tenants/{tenant}/sources",
            P::ReadSources,
            None,
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/sources/{source}",
            P::ReadSources,
            None,
            200,
        ),
        c(
            "PUT",
            "/v1/tenants/{tenant}/sources/{source}",
            P::WriteSources,
            Some(push_source()),
            200,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}/sources/{source}",
            P::WriteSources,
            None,
            404,
        ),
        // A push source cannot be run: 400 once authorized.
        c(
            "POST",
            "/v1/tenants/{tenant}/sources/{source}/runs",
            P::WriteSources,
            None,
            400,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/sources/{source}/runs",
            P::ReadSources,
            None,
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/sources/{source}/runs/{run}",
            P::ReadSources,
            None,
            404,
        ),
        c(
            "POST",
            "/v1/tenants/{tenant}/sources/{source}/runs/{run}/accept",
            P::WriteSources,
            None,
            404,
        ),
        c(
            "POST",
            "/v1/tenants/{tenant}/sources/{source}/runs/{run}/dismiss",
            P::WriteSources,
            None,
            404,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/sources/{source}/cursor",
            P::ReadSources,
            None,
            200,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}/sources/{source}/cursor",
            P::WriteSources,
            None,
            404,
        ),
        c(
            "POST",
            "/v1/tenants/{tenant}/sources/{source}/push",
            P::WriteRecords,
            Some(json!([{"id": "pushed", "x": 1}])),
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/secrets",
            P::ManageSecrets,
            None,
            200,
        ),
        c(
            "PUT",
            "/v1/tenants/{tenant}/secrets/{name}",
            P::ManageSecrets,
            Some(json!({"value": "v"})),
            204,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}/secrets/{name}",
            P::ManageSecrets,
            None,
            404,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/connections",
            P::ReadConnections,
            None,
            200,
        ),
        c(
            "GET",
            "/v1/tenants/{tenant}/connections/{name}",
            P::ReadConnections,
            None,
            200,
        ),
        c(
            "PUT",
            "/v1/tenants/{tenant}/connections/{name}",
            P::ManageConnections,
            Some(connection()),
            200,
        ),
        c(
            "DELETE",
            "/v1/tenants/{tenant}/connections/{name}",
            P::ManageConnections,
            None,
            404,
        ),
        c("GET", "/v1/admin/keys", P::ManageAdminKeys, None, 200),
        c(
            "POST",
            "/v1/admin/keys",
            P::ManageAdminKeys,
            Some(json!({"name": "m"})),
            201,
        ),
        c(
            "GET",
            "/v1/admin/keys/{key_id}",
            P::ManageAdminKeys,
            None,
            404,
        ),
        c(
            "DELETE",
            "/v1/admin/keys/{key_id}",
            P::ManageAdminKeys,
            None,
            404,
        ),
        c(
            "POST",
            "/v1/admin/keys/{key_id}/rotate",
            P::ManageAdminKeys,
            None,
            404,
        ),
        c("GET", "/v1/admin/audit", P::ReadGlobalAudit, None, 200),
        c(
            "GET",
            "/v1/admin/audit/verify",
            P::ReadGlobalAudit,
            None,
            200,
        ),
    ]
}

fn expected(call: &Call, cred: &Cred, target: &str) -> u16 {
    let Some((role, own)) = cred.grant else {
        return 401;
    };
    if role == Role::Admin {
        return call.ok;
    }
    let Need::InTenant(min) = call.perm else {
        return 403;
    };
    if own != Some(target) {
        return 403;
    }
    if role >= min {
        call.ok
    } else {
        403
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_every_credential_every_tenant() {
    let signer = Signer::es256("k1");
    let intruder = Signer::es256("k1"); // same kid, different key: bad signature
    let jwks = Jwks::serve(vec![signer.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), &oidc_toml(&jwks.url, 0));
    let api = Api::new(&srv);

    for t in ["a", "b"] {
        api.create_tenant(t).await;
        api.ok(
            "POST",
            &format!("/v1/tenants/{t}/records"),
            ADMIN_TOKEN,
            Some(json!({"records": [{"source": "s", "key": "first", "fields": {"x": 0}}]})),
        )
        .await;
        api.ok(
            "PUT",
            &format!("/v1/tenants/{t}/sources/m"),
            ADMIN_TOKEN,
            Some(push_source()),
        )
        .await;
        api.ok(
            "PUT",
            &format!("/v1/tenants/{t}/connections/matrix"),
            ADMIN_TOKEN,
            Some(connection()),
        )
        .await;
    }
    let admin_key = api
        .ok(
            "POST",
            "/v1/admin/keys",
            ADMIN_TOKEN,
            Some(json!({"name": "ops"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, ta) = api.key("a", "tenant-admin", json!({})).await;
    let (_, ed) = api.key("a", "editor", json!({})).await;
    let (_, rd) = api.key("a", "reader", json!({})).await;
    let (revoked_id, revoked) = api.key("a", "tenant-admin", json!({})).await;
    api.ok(
        "DELETE",
        &format!("/v1/tenants/a/keys/{revoked_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    let (rot_id, rotated_out) = api.key("a", "tenant-admin", json!({})).await;
    api.ok(
        "POST",
        &format!("/v1/tenants/a/keys/{rot_id}/rotate?grace_secs=0"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    let (_, expired) = api
        .key("a", "tenant-admin", json!({"expires_in_secs": 1}))
        .await;
    eventually(Duration::from_secs(10), "the key to expire", || async {
        match api
            .call("GET", "/v1/tenants/a/records", Some(&expired), None)
            .await
        {
            (401, _) => Ok(()),
            (s, v) => Err(format!("{s} {v}")),
        }
    })
    .await;

    let jwt_ta = signer.sign(&claims("a", "tenant-admin"), json!({}));
    let jwt_rd = signer.sign(&claims("a", "reader"), json!({}));
    let bad_sig = intruder.sign(&claims("a", "tenant-admin"), json!({}));
    let mut wrong_aud = claims("a", "tenant-admin");
    wrong_aud["aud"] = json!("someone-else");
    let wrong_aud = signer.sign(&wrong_aud, json!({}));
    let mut exp = claims("a", "tenant-admin");
    exp["exp"] = json!(now_secs() - 60);
    let exp = signer.sign(&exp, json!({}));
    // An admin claim from an issuer that may not grant it.
    let jwt_admin = signer.sign(&claims("a", "admin"), json!({}));

    let creds = vec![
        Cred {
            name: "admin token",
            token: Some(ADMIN_TOKEN.into()),
            grant: Some((Role::Admin, None)),
        },
        Cred {
            name: "admin key",
            token: Some(admin_key),
            grant: Some((Role::Admin, None)),
        },
        Cred {
            name: "tenant-admin key",
            token: Some(ta),
            grant: Some((Role::TenantAdmin, Some("a"))),
        },
        Cred {
            name: "editor key",
            token: Some(ed),
            grant: Some((Role::Editor, Some("a"))),
        },
        Cred {
            name: "reader key",
            token: Some(rd),
            grant: Some((Role::Reader, Some("a"))),
        },
        Cred {
            name: "tenant-admin JWT",
            token: Some(jwt_ta),
            grant: Some((Role::TenantAdmin, Some("a"))),
        },
        Cred {
            name: "reader JWT",
            token: Some(jwt_rd),
            grant: Some((Role::Reader, Some("a"))),
        },
        Cred {
            name: "no credential",
            token: None,
            grant: None,
        },
        Cred {
            name: "revoked key",
            token: Some(revoked),
            grant: None,
        },
        Cred {
            name: "expired key",
            token: Some(expired),
            grant: None,
        },
        Cred {
            name: "rotated-out key after grace",
            token: Some(rotated_out),
            grant: None,
        },
        Cred {
            name: "JWT with bad signature",
            token: Some(bad_sig),
            grant: None,
        },
        Cred {
            name: "JWT for another audience",
            token: Some(wrong_aud),
            grant: None,
        },
        Cred {
            name: "expired JWT",
            token: Some(exp),
            grant: None,
        },
        Cred {
            name: "JWT claiming admin",
            token: Some(jwt_admin),
            grant: None,
        },
        Cred {
            name: "garbage token",
            token: Some("not-a-token".into()),
            grant: None,
        },
    ];

    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    let mut cells = 0;
    for call in calls() {
        covered.insert((call.method.to_owned(), call.path.to_owned()));
        let targets: &[&str] = if call.path.contains("{tenant}") {
            &["a", "b"]
        } else {
            &["-"]
        };
        for target in targets {
            let path = call
                .path
                .replace(
                    "{tenant}",
                    if call.method == "DELETE" && call.path == "/v1/tenants/{tenant}" {
                        "nonexistent"
                    } else {
                        target
                    },
                )
                .replace("{id}", "1")
                // Deletes name things that do not exist (404 once authorized); everything
                // else the source and secret made above.
                .replace(
                    "{source}",
                    if call.method == "DELETE" { "gone" } else { "m" },
                )
                .replace(
                    "{name}",
                    if call.method == "DELETE" {
                        "gone"
                    } else {
                        "matrix"
                    },
                )
                .replace("{run}", "999999")
                .replace("{key_id}", "0000000000000000");
            for cred in &creds {
                // Global routes and the tenant delete (which names a tenant that does not
                // exist) do not depend on the target.
                let t = if matches!(call.perm, Need::InTenant(_)) {
                    *target
                } else {
                    "-"
                };
                let want = expected(&call, cred, t);
                let (got, body) = api
                    .call(
                        call.method,
                        &path,
                        cred.token.as_deref(),
                        call.body.as_ref(),
                    )
                    .await;
                cells += 1;
                if got != want {
                    failures.push(format!(
                        "{} {path} as {} → {got}, expected {want}: {body}",
                        call.method, cred.name
                    ));
                }
                if got >= 400 {
                    let code = body["error"]["code"].as_str().unwrap_or("");
                    if code.is_empty() {
                        failures.push(format!(
                            "{} {path} as {}: error body without code: {body}",
                            call.method, cred.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let served: BTreeSet<_> = gleaner::http::route_table()
        .into_iter()
        .filter(|r| r.permission.is_some())
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&covered).collect();
    assert!(missing.is_empty(), "routes not in the matrix: {missing:?}");

    // Failures were audited: the tenant chain of "a" saw a failed authentication and a
    // denied permission, and still verifies.
    eventually(
        Duration::from_secs(10),
        "the failures to be audited",
        || async {
            let actions = api
                .audit_actions("/v1/tenants/a/audit?limit=1000", ADMIN_TOKEN)
                .await;
            let has = |a: &str| actions.iter().any(|x| x == a);
            if has("auth.failed") && has("permission.denied") {
                Ok(())
            } else {
                Err(format!("{actions:?}"))
            }
        },
    )
    .await;
    let v = api
        .ok("GET", "/v1/tenants/a/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["ok"], true, "{v}");
}
