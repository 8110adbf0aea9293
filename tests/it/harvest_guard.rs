//! The anomaly guard over the HTTP API, on the sample site: a baseline of complete runs,
//! an ordinary change that stays `succeeded`, a relaunched layout whose run is held as
//! `anomalous` with nothing marked removed, and accepting it, which applies the removals.

use std::time::Duration;

use crate::support::poll::eventually;
use crate::support::{control, registry_json, sample_site, Api, Server, ADMIN_TOKEN};
use serde_json::{json, Value};

const SRC: &str = "/v1/tenants/acme/sources/registry";

async fn run(api: &Api) -> Value {
    // The previous run's status is written a moment before its source is free again: a
    // start in between answers 409 (already running), so it is retried.
    let v = eventually(Duration::from_secs(20), "the source to be free", || async {
        match api
            .call("POST", &format!("{SRC}/runs"), Some(ADMIN_TOKEN), None)
            .await
        {
            (202, v) => Ok(v),
            (s, v) => Err(format!("{s}: {v}")),
        }
    })
    .await;
    let id = v["run_id"].as_i64().unwrap();
    api.wait_run(&format!("{SRC}/runs/{id}")).await
}

/// Records of the registry the API shows as present (not removed).
async fn present(api: &Api) -> usize {
    let v = api
        .admin_json("/v1/tenants/acme/records?source=registry&removed=false&limit=500")
        .await;
    v["records"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaunched_site_is_held_as_anomalous_until_accepted() {
    let site = sample_site(120).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
        ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
    ];
    let srv = Server::start(dir.path(), &[], &env);
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let r = api.admin("PUT", SRC, Some(&registry_json(site))).await;
    assert_eq!(r.status(), 201);

    // Three complete runs: the baseline (120 records seen, none removed).
    for _ in 0..3 {
        let r = run(&api).await;
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    // An ordinary change (3 of 120 gone) is judged and passes: removed at once.
    control(site, "revision/1").await;
    let r = run(&api).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["records_removed"], 3, "{r}");
    assert_eq!(present(&api).await, 117);

    // The relaunch: the extractor finds nothing; nothing is marked removed.
    control(site, "layout/2").await;
    let held = run(&api).await;
    let id = held["id"].as_i64().unwrap();
    assert_eq!(held["status"], "anomalous", "{held}");
    assert!(held["complete"].as_bool().unwrap(), "{held}");
    assert_eq!(held["counts"]["records_removed"], 0, "{held}");
    assert_eq!(held["counts"]["removals_held"], 117, "{held}");
    let msg = held["message"].as_str().unwrap();
    assert!(
        msg.starts_with("anomalous: the run would mark 117 records removed"),
        "{msg}"
    );
    assert!(msg.contains(&format!("/runs/{id}/accept")), "{msg}");
    assert_eq!(present(&api).await, 117, "the held run removed nothing");
    let src = api.admin_json(SRC).await;
    assert_eq!(src["last_status"], "anomalous");
    let m = api.text("/metrics").await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("gleaner_harvest_anomalous_runs_total{rule=\"removed\"} 1")),
        "{m}"
    );

    // A second broken run is held again: a held run does not join the baseline.
    let again = run(&api).await;
    assert_eq!(again["status"], "anomalous", "{again}");

    // Accepting the first applies exactly the removals it held back.
    let (st, v) = api
        .call(
            "POST",
            &format!("{SRC}/runs/{id}/accept"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "accepted", "{v}");
    assert_eq!(v["counts"]["records_removed"], 117, "{v}");
    assert_eq!(v["counts"]["removals_held"], 0, "{v}");
    assert_eq!(present(&api).await, 0);
    let (st, v) = api
        .call(
            "POST",
            &format!("{SRC}/runs/{id}/accept"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let (st, _) = api
        .call(
            "POST",
            &format!("{SRC}/runs/9999/accept"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(st, 404);
    // The second held run is dismissed: it never removes anything.
    let again_id = again["id"].as_i64().unwrap();
    let (st, v) = api
        .call(
            "POST",
            &format!("{SRC}/runs/{again_id}/dismiss"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!((st, v["status"].as_str()), (200, Some("dismissed")), "{v}");
    let (st, _) = api
        .call(
            "POST",
            &format!("{SRC}/runs/{again_id}/accept"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(st, 409);
    let audit = api
        .audit_actions("/v1/tenants/acme/audit", ADMIN_TOKEN)
        .await;
    assert!(audit.iter().any(|a| a == "run.accepted"), "{audit:?}");
    assert!(audit.iter().any(|a| a == "run.dismissed"), "{audit:?}");

    // With the guard off, the same kind of run removes at once.
    let mut def = registry_json(site);
    def["guard"] = json!({"enabled": false});
    let r = api.admin("PUT", SRC, Some(&def)).await;
    assert_eq!(r.status(), 200);
    control(site, "layout/0").await;
    assert_eq!(run(&api).await["status"], "succeeded");
    assert_eq!(present(&api).await, 117);
    control(site, "layout/2").await;
    let r = run(&api).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["records_removed"], 117, "{r}");
}
