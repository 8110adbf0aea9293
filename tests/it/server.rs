//! The real binary on a loopback port: health, readiness, metrics, shutdown, rejections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{self, client, json_error, wait_until, Api, Server, ADMIN_TOKEN};

#[tokio::test]
async fn health_ready_and_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &[]);
    let c = client();

    let r = c.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");

    let r = c
        .get(srv.url("/readyz"))
        .header("x-request-id", "my-request-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "my-request-42");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["checks"]["store"],
        "ok"
    );

    let body = Api::new(&srv).text("/metrics").await;
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let samples = &scrape.samples;
    let find = |name: &'static str| samples.iter().filter(move |s| s.metric == name);
    assert_eq!(find("gleaner_build_info").count(), 1);
    let healthz = find("gleaner_http_requests_total")
        .find(|s| {
            s.labels.get("route") == Some("/healthz") && s.labels.get("status") == Some("200")
        })
        .expect("request counter for /healthz");
    assert!(matches!(healthz.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
    assert!(find("gleaner_http_request_duration_seconds_count").count() >= 2);
    // Readiness pinged control.db's writer without writing anything.
    assert!(!body.contains("route=\"/nope\""));

    // Compressed responses when the client accepts them.
    for enc in ["gzip", "zstd"] {
        let r = reqwest::Client::builder()
            .no_gzip()
            .no_zstd()
            .build()
            .unwrap()
            .get(srv.url("/metrics"))
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-encoding"], enc);
    }
    // Unmatched routes are counted under one label, not per path.
    let r = c.get(srv.url("/nope/123")).send().await.unwrap();
    let (status, code, _) = json_error(r).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let body = Api::new(&srv).text("/metrics").await;
    assert!(body.contains("route=\"unmatched\""));
    assert!(!body.contains("/nope/123"));
    assert!(srv.stop().success());
}

/// GET with the path sent exactly as given; returns (status, body).
fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Whether the server end of the connection `server` ← `client` has read everything sent
/// to it: its receive queue in /proc/net/tcp is empty (the kernel completes connections the
/// server has not accepted yet too, with what we sent waiting in their queue).
fn server_has_read(server: SocketAddr, client: SocketAddr) -> bool {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => unreachable!("the test server listens on 127.0.0.1"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 4
            && f[1] == local
            && f[2] == remote
            && f[4].split_once(':').is_some_and(|(_, rx)| rx == "00000000")
    })
}

/// Sends a request head and half the body, calls `before_rest` with the client's address,
/// then sends the rest in slow pieces and returns the raw response.
fn slow_post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    before_rest: impl FnOnce(SocketAddr),
) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    s.write_all(first).unwrap();
    s.flush().unwrap();
    before_rest(s.local_addr().unwrap());
    for chunk in rest.chunks(4) {
        // Pacing: the slow client is the test's point.
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(chunk).unwrap();
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_admin(dir.path());
    let addr = srv.addr;
    let pid = srv.child.id() as i32;
    let body = br#"{"id":"slowpoke","display_name":"Slow Poke Inc"}"#;
    let resp = tokio::task::spawn_blocking(move || {
        slow_post(addr, "/v1/tenants", body, |client| {
            // The request is in flight: the server has read its head and half its body.
            wait_until(
                Duration::from_secs(10),
                "the server to read the slow request's head",
                || server_has_read(addr, client),
            );
            unsafe { libc::kill(pid, libc::SIGTERM) };
            // The listener closes: new connections are refused while the old one runs (its
            // rest is only sent after this returns).
            wait_until(
                Duration::from_secs(10),
                "the server to stop accepting after SIGTERM",
                || TcpStream::connect(addr).is_err(),
            );
        })
    })
    .await
    .unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    assert!(resp.contains("\"slowpoke\""), "{resp}");
    let status = srv.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let log = srv.drain_log().join("\n");
    assert!(log.contains("\"drained\":\"Clean\""), "{log}");

    // The write acknowledged during shutdown is on disk.
    let srv = Server::start_admin(dir.path());
    let (s, v) = Api::new(&srv)
        .call("GET", "/v1/tenants/slowpoke", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["display_name"], "Slow Poke Inc");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn sigint_also_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), &[], &[]);
    srv.signal(libc::SIGINT);
    assert_eq!(srv.wait(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test]
async fn rejects_bad_requests_with_json_errors_and_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        dir.path(),
        &[],
        &[
            ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
            ("GLEANER_HTTP__MAX_BODY_BYTES", "4096"),
        ],
    );
    let c = client();
    let post = |body: Vec<u8>, ctype: &'static str| {
        c.post(srv.url("/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", ctype)
            .body(body)
            .send()
    };

    let (s, code, msg) =
        json_error(post(vec![b'x'; 100_000], "application/json").await.unwrap()).await;
    assert_eq!((s, code.as_str()), (413, "too_large"), "{msg}");
    let (s, _, msg) = json_error(
        post(b"{\"id\": ".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("invalid JSON"), "{msg}");
    let (s, _, msg) = json_error(
        post(br#"{"id":"a","colour":"red"}"#.to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("colour"), "{msg}");
    let (s, _, msg) = json_error(
        post(br#"{"id":5}"#.to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("id"), "{msg}");
    let (s, _, msg) =
        json_error(post(br#"{"id":"a"}"#.to_vec(), "text/plain").await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(msg.contains("content-type"), "{msg}");

    // Tenant ids with path tricks, upper case, NUL or over 63 characters: refused in the
    // body and in the path, and no file appears under the data dir.
    let long = "a".repeat(64);
    for bad in [
        "..",
        "a/b",
        "../etc",
        "Acme",
        "a\u{0}b",
        long.as_str(),
        "-x",
        "",
    ] {
        let body = serde_json::to_vec(&serde_json::json!({"id": bad})).unwrap();
        let (s, code, msg) = json_error(post(body, "application/json").await.unwrap()).await;
        assert_eq!((s, code.as_str()), (400, "invalid_input"), "{bad:?}: {msg}");
        assert!(msg.contains("tenant id"), "{bad:?}: {msg}");
    }
    // Raw requests: an HTTP client library would normalise `..` away before sending.
    let addr = srv.addr;
    let long2 = long.clone();
    tokio::task::spawn_blocking(move || {
        for bad in [
            "..",
            "a%2Fb",
            "%2E%2E",
            "%2e%2e%2fetc",
            "Acme",
            "a%00b",
            long2.as_str(),
        ] {
            let (status, body) = raw_get(addr, &format!("/v1/tenants/{bad}"));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            assert_eq!(status, 400, "{bad:?}: {body}");
            assert_eq!(v["error"]["code"], "invalid_input", "{bad:?}: {body}");
        }
    })
    .await
    .unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("tenants"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "no tenant file may be created: {files:?}");

    // Auth failures and unknown tenants are JSON too.
    let api = Api::new(&srv);
    for (path, token, status) in [
        ("/v1/tenants", None, 401),
        ("/v1/tenants", Some("wrong-token-wrong-token"), 401),
        ("/v1/tenants/ghost", Some(ADMIN_TOKEN), 404),
        ("/v1/tenants?limit=0", Some(ADMIN_TOKEN), 400),
        ("/v1/tenants?limit=abc", Some(ADMIN_TOKEN), 400),
    ] {
        let r = api.send("GET", path, token, None).await;
        assert_eq!(json_error(r).await.0, status, "GET {path}");
    }
    let r = c.delete(srv.url("/healthz")).send().await.unwrap();
    let (status, code, _) = json_error(r).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));

    // Malformed HTTP: garbage request line, oversized head. The server answers or closes,
    // and keeps serving everyone else.
    let addr = srv.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"\x00\x01GARBAGE / HTTP/9.9\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(out.is_empty() || text.starts_with("HTTP/1.1 400"), "{text}");

        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        );
        let _ = s.write_all(huge.as_bytes());
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            out.is_empty() || text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 400"),
            "{text}"
        );
    })
    .await
    .unwrap();

    // A valid create still works after all that.
    let r = post(
        br#"{"id":"acme-2","display_name":"Acme 2"}"#.to_vec(),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert!(dir.path().join("tenants/acme-2.db").exists());
    let r = post(br#"{"id":"acme-2"}"#.to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 409);
    let r = c.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(srv.stop().success());
}

#[tokio::test]
async fn healthcheck_command_reflects_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &[]);
    let ok = support::command()
        .args(["healthcheck", "--addr", &srv.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Through the configuration's listen address, as a container health check runs it.
    let ok = support::command()
        .arg("healthcheck")
        .env("GLEANER_HTTP__LISTEN", srv.addr.to_string())
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let addr = srv.addr;
    assert!(srv.stop().success());
    let down = support::command()
        .args([
            "healthcheck",
            "--addr",
            &addr.to_string(),
            "--timeout-ms",
            "1000",
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz"));
}

#[test]
fn version_and_help() {
    let out = support::command().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gleaner {}", env!("CARGO_PKG_VERSION"))
    );
    for sub in [
        &["serve", "--help"][..],
        &["config", "check", "--help"],
        &["healthcheck", "--help"],
    ] {
        let out = support::command().args(sub).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: gleaner"), "{text}");
    }
}
