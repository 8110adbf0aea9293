//! Provider webhooks on `gleaner serve`: each preset (WHOOP, Stripe, GitHub, Slack) takes a
//! request signed exactly as that provider documents and refuses a wrong signature or a
//! stale timestamp (401, counted, audited, nothing stored); a delivery already taken is a
//! no-op (200 `duplicate`, counted, nothing stored). A WHOOP `recovery.updated` event
//! fetches that recovery from a fake provider API into the `recovery` source.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};

use crate::support::{eventually, serve, Api, Server, ADMIN_TOKEN};

const SECRET: &str = "whsec_test_0123456789";

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
        ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
    ]
}

fn hmac(parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The headers `provider` sends for `body` at Unix time `t` (seconds), as it documents them.
fn signed(provider: &str, t: i64, body: &str, event: &str) -> Vec<(&'static str, String)> {
    let b = body.as_bytes();
    match provider {
        // base64(HMAC-SHA256(timestamp + body)), timestamp in milliseconds.
        "whoop" => {
            let ms = (t * 1000 + 417).to_string();
            let sig = base64::engine::general_purpose::STANDARD.encode(hmac(&[ms.as_bytes(), b]));
            vec![
                ("X-WHOOP-Signature", sig),
                ("X-WHOOP-Signature-Timestamp", ms),
            ]
        }
        // Stripe-Signature: t=<s>,v1=<hex HMAC(t + "." + body)> (one per active secret).
        "stripe" => {
            let ts = t.to_string();
            let good = hex::encode(hmac(&[ts.as_bytes(), b".", b]));
            let old_secret = "0f".repeat(32);
            vec![(
                "Stripe-Signature",
                format!("t={ts},v1={old_secret},v1={good}"),
            )]
        }
        // X-Hub-Signature-256: sha256=<hex HMAC(body)>; the delivery id in X-GitHub-Delivery.
        "github" => vec![
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hex::encode(hmac(&[b]))),
            ),
            ("X-GitHub-Delivery", event.to_owned()),
            ("X-GitHub-Event", "issues".to_owned()),
        ],
        // X-Slack-Signature: v0=<hex HMAC("v0:" + ts + ":" + body)>, ts in seconds.
        "slack" => {
            let ts = t.to_string();
            let sig = hex::encode(hmac(&[b"v0:", ts.as_bytes(), b":", b]));
            vec![
                ("X-Slack-Signature", format!("v0={sig}")),
                ("X-Slack-Request-Timestamp", ts),
            ]
        }
        _ => unreachable!(),
    }
}

fn body_for(provider: &str, event: &str, n: u32) -> String {
    match provider {
        "whoop" => json!({"user_id": 10129, "id": n, "type": "workout.updated", "trace_id": event}),
        "stripe" => json!({"id": event, "object": "event", "type": "customer.updated", "n": n}),
        "github" => json!({"action": "opened", "issue": {"number": n}, "id": event}),
        _ => json!({"type": "event_callback", "event_id": event, "n": n}),
    }
    .to_string()
}

async fn post(api: &Api, source: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut r = api
        .request(
            "POST",
            &format!("/v1/tenants/acme/sources/{source}/push"),
            None,
            None,
        )
        .header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let r = r.body(body.to_owned()).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn records(api: &Api, source: &str) -> Vec<Value> {
    let v = api
        .admin_json(&format!("/v1/tenants/acme/records?source={source}"))
        .await;
    v["records"].as_array().cloned().unwrap_or_default()
}

async fn setup(api: &Api) {
    api.create_tenant("acme").await;
    let r = api
        .admin(
            "PUT",
            "/v1/tenants/acme/secrets/hook",
            Some(&json!({"value": SECRET})),
        )
        .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_take_their_providers_signatures_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let api = Api::new(&srv);
    setup(&api).await;
    let key = |p: &str| match p {
        "whoop" => "trace_id",
        "github" => "id",
        "stripe" => "id",
        _ => "event_id",
    };
    for p in ["whoop", "stripe", "github", "slack"] {
        let def = json!({"kind": "push", "key": {"field": key(p)},
                         "signature": {"secret": "secret:hook", "preset": p}});
        let r = api
            .admin("PUT", &format!("/v1/tenants/acme/sources/{p}"), Some(&def))
            .await;
        assert_eq!(r.status(), 201, "{p}: {}", r.text().await.unwrap());
    }
    for p in ["whoop", "stripe", "github", "slack"] {
        let t = now_s();
        let body = body_for(p, "ev-1", 1);
        let (st, v) = post(&api, p, &signed(p, t, &body, "ev-1"), &body).await;
        assert_eq!((st, &v["new"]), (200, &json!(1)), "{p}: {v}");

        // A body changed after signing (one byte more, still the same JSON): refused.
        let other = body_for(p, "ev-2", 2);
        let mut wrong = signed(p, t, &other, "ev-2");
        let (st, v) = post(&api, p, &wrong, &format!("{other} ")).await;
        assert_eq!(st, 401, "{p}: a changed body must not verify: {v}");
        assert_eq!(v["error"]["code"], "unauthenticated", "{p}: {v}");
        // A garbled digest: refused too. One character well inside the digest (the last
        // few are in every layout's digest; base64's last one may hold only padding bits)
        // swapped for another valid in hex and base64.
        let sig = &mut wrong[0].1;
        let i = sig.trim_end_matches('=').len() - 5;
        let swap = if sig.as_bytes()[i] == b'0' { "1" } else { "0" };
        sig.replace_range(i..=i, swap);
        let (st, _) = post(&api, p, &wrong, &other).await;
        assert_eq!(st, 401, "{p}");

        // The same delivery again (a replay), and the same event id newly signed.
        // Both are taken as no-ops: 200 (so the provider stops retrying), nothing stored.
        let duplicate = |st: u16, v: &Value, what: &str| {
            assert_eq!(st, 200, "{p}: {what}: {v}");
            assert_eq!(v["duplicate"], true, "{p}: {what}: {v}");
            assert_eq!(v["records"], 0, "{p}: {what}: {v}");
        };
        let (st, v) = post(&api, p, &signed(p, t, &body, "ev-1"), &body).await;
        duplicate(st, &v, "the same delivery again");
        if p != "github" {
            let (st, v) = post(&api, p, &signed(p, t + 1, &body, "ev-1"), &body).await;
            duplicate(st, &v, "the same event id newly signed");
            // Ten minutes old: stale.
            let old = body_for(p, "ev-3", 3);
            let (st, v) = post(&api, p, &signed(p, t - 600, &old, "ev-3"), &old).await;
            assert_eq!(st, 401, "{p}: {v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("away from the server clock"),
                "{v}"
            );
        } else {
            // GitHub signs no timestamp: a new delivery id on the same body is still the
            // same signed content, so it is a replay as well.
            let (st, v) = post(&api, p, &signed(p, t, &body, "ev-9"), &body).await;
            duplicate(st, &v, "the same body with a new delivery id");
        }
        // Nothing of the refused requests was stored.
        let recs = records(&api, p).await;
        assert_eq!(recs.len(), 1, "{p}: {recs:?}");
    }
    let m = api.text("/metrics").await;
    for reason in ["mismatch", "replayed", "stale"] {
        assert!(
            m.lines()
                .any(|l| l.starts_with("gleaner_push_refused_total") && l.contains(reason)),
            "{reason} not counted"
        );
    }
    // Audited off the request path: poll for it.
    eventually(
        Duration::from_secs(10),
        "a push.refused audit entry",
        || async {
            let actions = api
                .audit_actions("/v1/tenants/acme/audit", ADMIN_TOKEN)
                .await;
            if actions.iter().any(|a| a == "push.refused") {
                Ok(())
            } else {
                Err(format!("{actions:?}"))
            }
        },
    )
    .await;
    assert!(srv.stop().success());
}

/// A WHOOP-like API: `GET /v2/cycle/{id}/recovery` with a bearer token.
fn provider(hits: Arc<AtomicU32>) -> Router {
    Router::new()
        .route(
            "/v2/cycle/{id}/recovery",
            get(
                |State(h): State<Arc<AtomicU32>>, Path(id): Path<u64>, headers: HeaderMap| async move {
                    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
                        != Some("Bearer whoop-token")
                    {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    // Cycle 500 fails on its first fetch (a provider hiccup).
                    if h.fetch_add(1, Ordering::SeqCst) == 1 && id == 500 {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    Json(json!({"cycle_id": id, "sleep_id": "s-1", "user_id": 10129,
                                "score_state": "SCORED", "score": {"recovery_score": 44}}))
                    .into_response()
                },
            ),
        )
        .with_state(hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whoop_event_fetches_its_record_into_the_source_it_belongs_to() {
    let hits = Arc::new(AtomicU32::new(0));
    let addr = serve(provider(Arc::clone(&hits))).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let api = Api::new(&srv);
    setup(&api).await;
    let r = api
        .admin(
            "PUT",
            "/v1/tenants/acme/secrets/whoop-token",
            Some(&json!({"value": "whoop-token"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let recovery = json!({"kind": "json", "url": format!("http://{addr}/v2/recovery"),
        "records": "$.records[*]", "key": {"field": "cycle_id"},
        "auth": {"type": "bearer", "token": "secret:whoop-token"}});
    let r = api
        .admin("PUT", "/v1/tenants/acme/sources/recovery", Some(&recovery))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let hook = json!({"kind": "push", "key": {"field": "trace_id"},
        "signature": {"secret": "secret:hook", "preset": "whoop"},
        "events": [{"type": "recovery.updated", "id_path": "$.id", "source": "recovery",
                    "resource": "cycle/{id}/recovery", "records": "$"}]});
    let r = api
        .admin("PUT", "/v1/tenants/acme/sources/whoop", Some(&hook))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let body =
        r#"{"user_id":10129,"id":10235,"type":"recovery.updated","trace_id":"d3709ee7-104e"}"#;
    let h = signed("whoop", now_s(), body, "");
    let (st, v) = post(&api, "whoop", &h, body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["source"], &v["new"]),
        (&json!("recovery"), &json!(1)),
        "{v}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let recs = records(&api, "recovery").await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["key"], "10235");
    assert_eq!(recs[0]["fields"]["score"]["recovery_score"], 44);
    // The event itself is not stored as a record of the push source.
    assert!(records(&api, "whoop").await.is_empty());

    // A badly signed event fetches nothing.
    let other = body
        .replace("10235", "10236")
        .replace("d3709ee7-104e", "t-2");
    let mut bad = signed("whoop", now_s(), &other, "");
    bad[0].1 = signed("whoop", now_s(), body, "")[0].1.clone();
    let (st, _) = post(&api, "whoop", &bad, &other).await;
    assert_eq!(st, 401);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no fetch for a refused event"
    );

    // A fetch that fails leaves the event unremembered: the provider's retry of the very
    // same delivery is taken, not refused as a replay.
    let e500 = body
        .replace("10235", "500")
        .replace("d3709ee7-104e", "t-500");
    let h500 = signed("whoop", now_s(), &e500, "");
    let (st, v) = post(&api, "whoop", &h500, &e500).await;
    assert_ne!(st, 200, "{v}");
    let (st, v) = post(&api, "whoop", &h500, &e500).await;
    assert_eq!((st, &v["new"]), (200, &json!(1)), "{v}");
    let (st, v) = post(&api, "whoop", &h500, &e500).await;
    assert_eq!(
        (st, &v["duplicate"]),
        (200, &json!(true)),
        "once taken, it is a duplicate: {v}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "a duplicate fetches nothing"
    );
    assert_eq!(records(&api, "recovery").await.len(), 2);

    // An event type without a mapping is stored as a pushed record.
    let w = r#"{"user_id":10129,"id":77,"type":"workout.updated","trace_id":"t-3"}"#;
    let (st, v) = post(&api, "whoop", &signed("whoop", now_s(), w, ""), w).await;
    assert_eq!((st, &v["source"]), (200, &json!("whoop")), "{v}");
    assert_eq!(records(&api, "whoop").await.len(), 1);
    assert!(srv.stop().success());
}
