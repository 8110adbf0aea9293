//! Configuration through the real binary: precedence, and every rejection with exit codes.

use crate::support::{self, command, Server};

fn write(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn precedence_file_then_env_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "g.toml",
        "[http]\nmax_body_bytes = 1000\nmax_connections = 10\nrequest_timeout_ms = 5000\n",
    );
    let out = command()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "check", "--print", "--log-level", "debug"])
        .env("GLEANER_HTTP__MAX_CONNECTIONS", "20")
        .env("GLEANER_HTTP__REQUEST_TIMEOUT_MS", "6000")
        .env("GLEANER_LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eff: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(eff["http"]["max_body_bytes"].as_integer(), Some(1000)); // file
    assert_eq!(eff["http"]["max_connections"].as_integer(), Some(20)); // env over file
    assert_eq!(eff["http"]["request_timeout_ms"].as_integer(), Some(6000));
    assert_eq!(eff["log"]["level"].as_str(), Some("debug")); // flag over env
    assert_eq!(eff["store"]["max_batch"].as_integer(), Some(512)); // default

    // GLEANER_CONFIG names the file like --config does.
    let out = command()
        .args(["config", "check", "--print"])
        .env("GLEANER_CONFIG", &cfg)
        .output()
        .unwrap();
    let eff: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(eff["http"]["max_body_bytes"].as_integer(), Some(1000));
}

#[test]
fn precedence_decides_the_listen_address_of_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (pf, pe, pc) = (
        support::free_port(),
        support::free_port(),
        support::free_port(),
    );
    let cfg = write(
        dir.path(),
        "g.toml",
        &format!("[http]\nlisten = \"127.0.0.1:{pf}\"\n"),
    );
    let data = dir.path().join("data");
    let serve = |env: Option<u16>, flag: Option<u16>| {
        let mut c = command();
        c.arg("--config")
            .arg(&cfg)
            .args(["serve", "--log-format", "json", "--data-dir"])
            .arg(&data);
        if let Some(p) = env {
            c.env("GLEANER_HTTP__LISTEN", format!("127.0.0.1:{p}"));
        }
        if let Some(p) = flag {
            c.args(["--listen", &format!("127.0.0.1:{p}")]);
        }
        Server::spawn(c, &data)
    };
    let s = serve(None, None);
    assert_eq!(s.addr.port(), pf);
    assert!(s.stop().success());
    let s = serve(Some(pe), None);
    assert_eq!(s.addr.port(), pe);
    assert!(s.stop().success());
    let s = serve(Some(pe), Some(pc));
    assert_eq!(s.addr.port(), pc);
    assert!(s.stop().success());
}

fn check_fails(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // One message (a TOML syntax error may add the offending line under it), not a
    // backtrace, a panic or a pile of errors.
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("gleaner:")).count(),
        1,
        "one message expected: {err}"
    );
    assert!(err.lines().count() <= 8, "{err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_configuration_exits_2_naming_file_key_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();

    let p = write(dir.path(), "syntax.toml", "[http\nlisten = 1\n");
    let (code, err) = check_fails(&["--config", p.to_str().unwrap(), "serve"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{d}/syntax.toml")), "{err}");

    let p = write(dir.path(), "unknown.toml", "[store]\ndata_dri = \"/x\"\n");
    let (code, err) = check_fails(&["--config", p.to_str().unwrap(), "config", "check"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown.toml") && err.contains("data_dri"),
        "{err}"
    );

    let p = write(dir.path(), "badval.toml", "[store]\nreaders_per_db = 0\n");
    let (code, err) = check_fails(&["--config", p.to_str().unwrap(), "serve"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("badval.toml")
            && err.contains("store.readers_per_db")
            && err.contains("from 1 to 64"),
        "{err}"
    );

    let p = write(
        dir.path(),
        "type.toml",
        "[http]\nlisten = \"not an address\"\n",
    );
    let (code, err) = check_fails(&["--config", p.to_str().unwrap(), "serve"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("type.toml") && err.contains("http.listen"),
        "{err}"
    );

    let (code, err) = check_fails(&["config", "check"], &[("GLEANER_STORE__MAX_BATCH", "-5")]);
    assert_eq!(code, 2);
    assert!(err.contains("GLEANER_STORE__MAX_BATCH"), "{err}");

    let (code, err) = check_fails(&["config", "check"], &[("GLEANER_HTTP__NO_SUCH", "1")]);
    assert_eq!(code, 2);
    assert!(err.contains("no_such"), "{err}");

    let (code, err) = check_fails(
        &["--config", "/does/not/exist.toml", "config", "check"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("/does/not/exist.toml"), "{err}");

    let (code, err) = check_fails(
        &["config", "check"],
        &[("GLEANER_HTTP__ADMIN_TOKEN_FILE", "/does/not/token")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("http.admin_token_file") && err.contains("/does/not/token"),
        "{err}"
    );

    let (code, err) = check_fails(
        &["config", "check"],
        &[("GLEANER_HTTP__ADMIN_TOKEN", "short")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("http.admin_token"), "{err}");
}

#[test]
fn unusable_data_dir_and_taken_port_fail_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "plain-file", "x");
    let bad = file.join("data");
    let (code, err) = check_fails(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            bad.to_str().unwrap(),
        ],
        &[("GLEANER_LOG__LEVEL", "off")],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("data directory") && err.contains("plain-file/data"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = dir.path().join("d");
    let (code, err) = check_fails(
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("GLEANER_LOG__LEVEL", "off")],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    drop(taken);
}

#[test]
fn allow_private_targets_flag_wins_over_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "g.toml",
        "[harvest]\nallow_private_targets = false\n",
    );
    let effective = |flag: bool, env: Option<&str>| -> bool {
        let mut c = command();
        c.arg("--config")
            .arg(&cfg)
            .args(["config", "check", "--print"]);
        if flag {
            c.arg("--allow-private-targets");
        }
        if let Some(v) = env {
            c.env("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let eff: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
        eff["harvest"]["allow_private_targets"].as_bool().unwrap()
    };
    assert!(!effective(false, None), "file: off");
    assert!(effective(false, Some("true")), "env over file");
    assert!(effective(true, Some("false")), "flag over env");
    assert!(effective(true, None), "flag over file");
}

/// Starts `gleaner serve` (with `extra` flags), runs a source on a loopback site and
/// returns the finished run.
async fn serve_and_harvest_loopback(extra: &[&str]) -> serde_json::Value {
    use crate::support::{registry_json, sample_site, Api, ADMIN_TOKEN};
    let site = sample_site(10).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        dir.path(),
        extra,
        &[("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let r = api
        .admin(
            "PUT",
            "/v1/tenants/acme/sources/registry",
            Some(&registry_json(site)),
        )
        .await;
    assert_eq!(r.status(), 201);
    let run_id = api.start_run("acme", "registry").await["run_id"]
        .as_i64()
        .unwrap();
    let run = api
        .wait_run(&format!("/v1/tenants/acme/sources/registry/runs/{run_id}"))
        .await;
    assert!(srv.stop().success());
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_allow_private_targets_like_harvest() {
    let run = serve_and_harvest_loopback(&[]).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["errors"][0]["kind"], "blocked", "{run}");

    let run = serve_and_harvest_loopback(&["--allow-private-targets"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["records_new"], 10, "{run}");
}
