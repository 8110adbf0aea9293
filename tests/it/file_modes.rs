//! File modes of what the real `gleaner serve` creates under the common umask 022 (the
//! binary run outside the .deb's unit): the data directory and `tenants/` 0700, every
//! database and its -wal and -shm files 0600.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::support::{client, command, Server, ADMIN_TOKEN};
use serde_json::json;

/// The mode in octal, as `ls` and chmod spell it.
fn mode(p: &Path) -> String {
    let m = std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode();
    format!("{:04o}", m & 0o7777)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_and_databases_are_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = command();
    cmd.args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN);
    // SAFETY: umask(2) is async-signal-safe and touches only the child's process state.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let srv = Server::spawn(cmd, &data);
    let c = client();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = c
        .post(srv.url("/v1/tenants"))
        .header("authorization", &auth)
        .json(&json!({"id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(srv.url("/v1/tenants/acme/records"))
        .header("authorization", &auth)
        .json(&json!({"records": [{"source": "s", "key": "k", "fields": {"x": 1}}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // While the server runs, both databases are open: their -wal and -shm exist.
    let mut got: Vec<(String, String)> = vec![
        ("data".to_owned(), mode(&data)),
        ("tenants".to_owned(), mode(&data.join("tenants"))),
    ];
    for db in ["control.db", "tenants/acme.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let name = format!("{db}{suffix}");
            got.push((name.clone(), mode(&data.join(&name))));
        }
    }
    let want: Vec<(String, String)> = got
        .iter()
        .map(|(n, _)| {
            let m = if n.contains(".db") { "0600" } else { "0700" };
            (n.clone(), m.to_owned())
        })
        .collect();
    assert_eq!(got, want);
    assert!(srv.stop().success());
    // server.secret was already private; it still is.
    assert_eq!(mode(&data.join("server.secret")), "0600");
}

#[test]
fn loose_modes_left_by_an_earlier_run_are_tightened_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = |umask: u32| {
        let mut cmd = command();
        cmd.args(["key", "create", "--admin", "--data-dir"])
            .arg(&data)
            .env("GLEANER_LOG__LEVEL", "off");
        // SAFETY: as above.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(umask as libc::mode_t);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    key(0o022);
    let control = data.join("control.db");
    let [wal, shm] = ["control.db-wal", "control.db-shm"].map(|n| data.join(n));
    assert_eq!([mode(&control), mode(&wal), mode(&shm)], ["0600"; 3]);
    // As a copy or restore made under another umask, or an older version, would leave them.
    for (p, m) in [(&control, 0o644), (&wal, 0o666), (&shm, 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::set_permissions(data.join("tenants"), std::fs::Permissions::from_mode(0o755)).unwrap();
    key(0o022);
    assert_eq!(
        [
            mode(&control),
            mode(&wal),
            mode(&shm),
            mode(&data.join("tenants"))
        ],
        ["0600", "0600", "0600", "0700"]
    );
    // The data directory the administrator chose keeps its mode (see docs/security.md).
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    key(0o022);
    assert_eq!(mode(&data), "0750");
}
