//! `gleaner connection` against the real binary: an installation provisioned without a
//! server defines a connection from an operator's file (an `env:` token, which the API
//! refuses), `gleaner harvest` runs a source that names it against a loopback API that
//! wants that bearer token, the server started on the same data directory shows it, and a
//! delete is refused while a source names it; bad files and names exit 2 naming the field.

use std::path::Path;
use std::process::Output;

use crate::support::{self, *};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{json, Value};

const TOKEN: &str = "cli-provisioned-token";

fn run(data: &Path, args: &[&str]) -> Output {
    support::command()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env(AUTH_SECRET.0, AUTH_SECRET.1)
        .env("PROVIDER_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An API that answers only requests carrying [`TOKEN`].
async fn provider() -> std::net::SocketAddr {
    let items = |h: HeaderMap| async move {
        let ok = h
            .get("authorization")
            .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
        if !ok {
            return Err(StatusCode::UNAUTHORIZED);
        }
        Ok(axum::Json(
            json!([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]),
        ))
    };
    serve(axum::Router::new().route("/items", get(items))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_provisioned_offline_and_used_by_harvest_and_the_server() {
    let site = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conn = dir.path().join("api.toml");
    std::fs::write(
        &conn,
        "[auth]\ntype = \"bearer\"\ntoken = \"env:PROVIDER_TOKEN\"\n",
    )
    .unwrap();
    let c = conn.to_str().unwrap().to_owned();
    let put = |data: &Path| {
        run(
            data,
            &[
                "connection",
                "put",
                "--tenant",
                "t",
                "--name",
                "api",
                "--file",
                &c,
            ],
        )
    };
    let out = put(&data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "created connection t/api\n");
    let out = put(&data);
    assert_eq!(text(&out.stdout), "replaced connection t/api\n");
    let out = run(&data, &["connection", "list", "--tenant", "t"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(listed.starts_with("api\tbearer\t"), "{listed}");

    // A source that names it, run by `gleaner harvest`: the token comes from the
    // connection (the definition has no auth of its own).
    let def = dir.path().join("items.toml");
    std::fs::write(
        &def,
        format!(
            "id = \"items\"\nkind = \"json\"\nurl = \"http://{site}/items\"\nrecords = \"$[*]\"\n\
             key = {{ field = \"id\" }}\nconnection = \"api\"\n"
        ),
    )
    .unwrap();
    let (d, f) = (data.clone(), def.clone());
    let out = tokio::task::spawn_blocking(move || {
        let f = f.to_str().unwrap().to_owned();
        run(
            &d,
            &[
                "harvest",
                "--tenant",
                "t",
                "--source-file",
                &f,
                "--allow-private-targets",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["counts"]["records_new"], 2, "{summary}");

    // While the source names it, the connection stays.
    let out = run(
        &data,
        &["connection", "delete", "--tenant", "t", "--name", "api"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("items"), "the refusal names the source: {err}");

    // The server on the same directory shows it, with the reference, never a value.
    let server = Server::start_admin(&data);
    let api = Api::new(&server);
    let got = api.admin_json("/v1/tenants/t/connections/api").await;
    assert_eq!(got["auth"]["token"], "env:PROVIDER_TOKEN", "{got}");
    assert!(!got.to_string().contains(TOKEN), "{got}");
    let (s, _) = api
        .call(
            "DELETE",
            "/v1/tenants/t/sources/items",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert!((200..300).contains(&s), "deleting the source: {s}");
    let audit = api.audit_actions("/v1/tenants/t/audit", ADMIN_TOKEN).await;
    assert!(
        audit
            .iter()
            .filter(|a| a.starts_with("connection."))
            .count()
            >= 2,
        "{audit:?}"
    );
    drop(api);
    assert!(server.stop().success());

    let out = run(
        &data,
        &["connection", "delete", "--tenant", "t", "--name", "api"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "deleted connection t/api\n");
    let out = run(&data, &["connection", "list", "--tenant", "t"]);
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn bad_files_and_names_exit_2_saying_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[auth]\ntype = \"bearer\"\ntokn = \"env:X\"\n").unwrap();
    let b = bad.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "connection",
                "put",
                "--tenant",
                "t",
                "--name",
                "api",
                "--file",
                b,
            ],
            "tokn",
        ),
        (
            vec![
                "connection",
                "put",
                "--tenant",
                "t",
                "--name",
                "A:B",
                "--file",
                b,
            ],
            "--name",
        ),
        (
            vec![
                "connection",
                "put",
                "--tenant",
                "t",
                "--name",
                "api",
                "--file",
                "/nonexistent.toml",
            ],
            "/nonexistent.toml",
        ),
        (vec!["connection", "list", "--tenant", "T T"], "--tenant"),
    ] {
        let out = run(&data, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Nothing was created by the refused commands.
    assert!(!data.join("tenants").join("t.db").exists());
}
