//! `gleaner export` against the real binary: a tenant harvested twice by `gleaner harvest`
//! (the sample site dropped entries in between) exports its removed records with the run
//! that removed them, to stdout byte-equal to the API's export, and CSV with projected
//! columns to a file; bad flags are refused with exit 2.

use std::path::Path;
use std::process::Output;

use crate::support::{self, *};
use serde_json::Value;

fn run(data: &Path, args: &[&str]) -> Output {
    support::command()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env(AUTH_SECRET.0, AUTH_SECRET.1)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `gleaner harvest` on the blocking pool (the sample site is served by this runtime).
async fn harvest(data: &Path, def: &Path) -> Value {
    let (data, def) = (data.to_path_buf(), def.to_path_buf());
    let out = tokio::task::spawn_blocking(move || {
        run(
            &data,
            &[
                "harvest",
                "--tenant",
                "t",
                "--source-file",
                def.to_str().unwrap(),
                "--allow-private-targets",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_removed_records_and_csv_like_the_api() {
    let site = sample_site(60).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let def = dir.path().join("registry.toml");
    std::fs::write(&def, registry_toml(site)).unwrap();
    let r1 = harvest(&data, &def).await;
    assert_eq!(r1["counts"]["records_new"], 60, "{r1}");
    control(site, "revision/1").await;
    let r2 = harvest(&data, &def).await;
    let removed = r2["counts"]["records_removed"].as_u64().unwrap();
    assert!(removed > 0, "{r2}");
    let run2 = r2["run_id"].as_i64().unwrap();

    let d = data.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(&d, &["export", "--tenant", "t", "--removed", "true"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, removed);
    for l in &lines {
        assert_eq!(l["removed"], true, "{l}");
        assert_eq!(l["removed_run"], run2, "{l}");
        assert_eq!(l["source"], "registry", "{l}");
    }

    // The API's export of the same filter is the same bytes.
    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    let api_body = api
        .admin("GET", "/v1/tenants/t/export?removed=true", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(api_body, text(&out.stdout));
    let api_csv = api
        .admin(
            "GET",
            "/v1/tenants/t/export?format=csv&fields=code,title&source=registry",
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    drop(srv);

    // CSV with projected columns, to a file.
    let csv_path = dir.path().join("out.csv");
    let (d, p) = (data.clone(), csv_path.clone());
    let out = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &[
                "export",
                "--tenant",
                "t",
                "--format",
                "csv",
                "--fields",
                "code,title",
                "--source",
                "registry",
                "-o",
                p.to_str().unwrap(),
            ],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("exported 60 records"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("out.csv.partial").exists());
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv, api_csv);
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "id,source,key,version,first_seen_ms,version_since_ms,last_seen_ms,removed,removed_run,code,title"
    );
    assert_eq!(rows.len(), 61);
    let gone: Vec<&&str> = rows
        .iter()
        .filter(|r| r.contains(&format!(",true,{run2},")))
        .collect();
    assert_eq!(gone.len() as u64, removed, "{csv}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(",false,,")).count() as u64,
        60 - removed
    );

    // The export is in the tenant's audit chain, and the chain still verifies.
    let out = run(&data, &["audit", "verify", "--tenant", "t", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn export_refuses_bad_flags_and_unknown_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["export", "--tenant", "t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no data directory"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        dir.path(),
        &["bench-seed", "--tenant", "s", "--records", "3"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(dir.path(), &["export", "--tenant", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nosuch"),
        "{}",
        text(&out.stderr)
    );
    for (args, says) in [
        (&["--fields", "a..b"][..], "--fields"),
        (&["--changed-since=-5"][..], "--changed-since"),
        (&["-q", "  "][..], "--q"),
    ] {
        let mut all = vec!["export", "--tenant", "s"];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(dir.path(), &["export", "--tenant", "../x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("gleaner: --tenant: "),
        "{}",
        text(&out.stderr)
    );
    // Without the value: clap refuses it before anything runs.
    let out = run(dir.path(), &["export", "--tenant", "s", "--field", "a"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(dir.path(), &["export", "--tenant", "s", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 4);
}
