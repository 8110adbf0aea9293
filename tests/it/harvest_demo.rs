//! `gleaner demo` harvests the bundled site into the `demo` tenant, then serves the API
//! with the admin token it printed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_harvests_and_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = support::command()
        .args([
            "demo",
            "--entities",
            "200",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut lines = Vec::new();
    let (api, token) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("demo printed no API line: {lines:#?}")
        });
        if let Some(rest) = line.strip_prefix("Gleaner API on ") {
            let (api, tok) = rest.split_once(" — admin token (shown once): ").unwrap();
            break (api.to_owned(), tok.trim().to_owned());
        }
        lines.push(line);
    };
    let succeeded = lines
        .iter()
        .filter(|l| l.contains(": succeeded (complete)"))
        .count();
    assert_eq!(succeeded, 4, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("200 new")), "{lines:#?}");
    let c = support::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let v: serde_json::Value = loop {
        match c
            .get(format!("{api}/v1/tenants/demo/sources"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => break r.json().await.unwrap(),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("API not answering: {other:?}"),
        }
    };
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4);
    assert!(
        sources.iter().all(|s| s["last_status"] == "succeeded"),
        "{v}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
