//! API keys and the audit log against the real binary: secrets shown once, rotation grace,
//! immediate revocation, role limits, batched last-used times, the CLI's first admin key,
//! and a tampered audit chain reported at its first broken link.

use std::time::Duration;

use crate::support::{self, *};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_revoke_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "[auth]\nlast_used_flush_secs = 1\n");
    let api = Api::new(&srv);
    api.create_tenant("k1").await;
    api.create_tenant("k2").await;

    let (ta_id, ta) = api.key("k1", "tenant-admin", json!({})).await;
    // A tenant admin manages its own tenant's keys, within its own role.
    let v = api
        .ok(
            "POST",
            "/v1/tenants/k1/keys",
            &ta,
            Some(json!({"name": "ci", "role": "reader"})),
        )
        .await;
    let (rid, rtok) = (
        v["key"]["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    assert!(rtok.starts_with(&format!("glk_{rid}_")));
    // Refused: a role above the creator's, another tenant, a reader creating keys, an
    // unknown field.
    for (tenant, token, body, status) in [
        ("k1", &ta, json!({"name": "x", "role": "admin"}), 400),
        ("k2", &ta, json!({"name": "x", "role": "reader"}), 403),
        ("k1", &rtok, json!({"name": "x", "role": "reader"}), 403),
        (
            "k1",
            &ta,
            json!({"name": "x", "role": "reader", "extra": 1}),
            400,
        ),
    ] {
        let path = format!("/v1/tenants/{tenant}/keys");
        let (s, _) = api.call("POST", &path, Some(token), Some(&body)).await;
        assert_eq!(s, status, "POST {path} {body}");
    }

    // The secret is never listed.
    let list = api.ok("GET", "/v1/tenants/k1/keys", &ta, None).await;
    let text = list.to_string();
    // The secret is everything after "glk_<id>_"; base64url secrets may contain '_' themselves.
    let secret = rtok.splitn(3, '_').nth(2).unwrap();
    assert!(!text.contains(secret) && !text.contains("hash"), "{text}");
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);

    // Rotation with a grace period: both secrets work until it ends.
    let v = api
        .ok(
            "POST",
            &format!("/v1/tenants/k1/keys/{rid}/rotate?grace_secs=600"),
            &ta,
            None,
        )
        .await;
    let new_tok = v["token"].as_str().unwrap().to_owned();
    assert_ne!(new_tok, rtok);
    assert!(new_tok.starts_with(&format!("glk_{rid}_")));
    for t in [&rtok, &new_tok] {
        assert_eq!(
            api.call("GET", "/v1/tenants/k1/records", Some(t), None)
                .await
                .0,
            200
        );
    }
    // Rotating again with no grace retires the middle secret at once.
    let v = api
        .ok(
            "POST",
            &format!("/v1/tenants/k1/keys/{rid}/rotate?grace_secs=0"),
            &ta,
            None,
        )
        .await;
    let newest = v["token"].as_str().unwrap().to_owned();
    let (s, e) = api
        .call("GET", "/v1/tenants/k1/records", Some(&new_tok), None)
        .await;
    assert_eq!(s, 401);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("rotation"),
        "{e}"
    );
    assert_eq!(
        api.call("GET", "/v1/tenants/k1/records", Some(&rtok), None)
            .await
            .0,
        401
    );
    let (s, _) = api
        .call(
            "POST",
            &format!("/v1/tenants/k1/keys/{rid}/rotate?grace_secs=99999999999"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Revocation is refused from the very next request (the key was just cached).
    assert_eq!(
        api.call("GET", "/v1/tenants/k1/records", Some(&newest), None)
            .await
            .0,
        200
    );
    api.ok("DELETE", &format!("/v1/tenants/k1/keys/{rid}"), &ta, None)
        .await;
    let (s, e) = api
        .call("GET", "/v1/tenants/k1/records", Some(&newest), None)
        .await;
    assert_eq!(s, 401);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("revoked"),
        "{e}"
    );
    let (s, _) = api
        .call(
            "POST",
            &format!("/v1/tenants/k1/keys/{rid}/rotate"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(s, 409);
    // Another tenant's key id is not found through this tenant.
    let (other_id, _) = api.key("k2", "reader", json!({})).await;
    let (s, _) = api
        .call(
            "GET",
            &format!("/v1/tenants/k1/keys/{other_id}"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call("GET", "/v1/tenants/k1/keys/..%2F..", Some(&ta), None)
        .await;
    assert_eq!(s, 400);

    // Last-used times arrive in batches, without a write per request.
    let key_path = format!("/v1/tenants/k1/keys/{ta_id}");
    eventually(
        Duration::from_secs(10),
        "last_used_ms to be written",
        || async {
            let v = api.ok("GET", &key_path, ADMIN_TOKEN, None).await;
            if v["last_used_ms"].is_i64() {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;

    // The tenant's audit chain holds every key change, with actor and remote address.
    let v = api
        .ok("GET", "/v1/tenants/k1/audit?limit=1000", &ta, None)
        .await;
    let entries = v["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in ["key.created", "key.rotated", "key.revoked"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let rev = entries
        .iter()
        .find(|e| e["action"] == "key.revoked")
        .unwrap();
    assert_eq!(rev["actor"], format!("key:{ta_id}"));
    assert_eq!(rev["remote"], "127.0.0.1");
    assert_eq!(rev["target"], rid);
    assert_eq!(
        api.ok("GET", "/v1/tenants/k1/audit/verify", &ta, None)
            .await["ok"],
        true
    );
    let _ = srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_admin_key_and_a_tampered_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = (
        "GLEANER_AUTH__SECRET",
        "test-server-secret-0123456789abcdef",
    );
    // The first admin credential, before any server ran.
    let out = support::command()
        .args([
            "key",
            "create",
            "--admin",
            "--name",
            "bootstrap",
            "--data-dir",
        ])
        .arg(&data)
        .env(secret.0, secret.1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("glk_"));
    let bad = support::command()
        .args([
            "key",
            "create",
            "--tenant",
            "x",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    api.ok("POST", "/v1/tenants", &token, Some(json!({"id": "c1"})))
        .await;
    let (_, _) = api.key("c1", "reader", json!({})).await;
    let (_, _) = api.key("c1", "editor", json!({})).await;
    let (_, _) = api.key("c1", "tenant-admin", json!({})).await;
    let v = api.ok("GET", "/v1/tenants/c1/audit", &token, None).await;
    let second = v["entries"][1]["seq"].as_i64().unwrap();
    assert_eq!(
        api.ok("GET", "/v1/tenants/c1/audit/verify", &token, None)
            .await["ok"],
        true
    );
    let _ = srv.stop();

    // Someone with the database file drops the guard and rewrites history.
    let c = rusqlite::Connection::open(data.join("control.db")).unwrap();
    c.execute_batch("DROP TRIGGER audit_log_no_update;")
        .unwrap();
    c.execute(
        "UPDATE audit_log SET actor = 'nobody' WHERE seq = ?1",
        [second],
    )
    .unwrap();
    drop(c);

    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    let v = api
        .ok("GET", "/v1/tenants/c1/audit/verify", &token, None)
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_broken"]["seq"], second, "{v}");
    let g = api.ok("GET", "/v1/admin/audit/verify", &token, None).await;
    assert_eq!(g["ok"], true, "{g}");
}
