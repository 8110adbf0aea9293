//! OTLP span export for real: `gleaner serve` with `log.otlp_endpoint` pointing at an OTLP/HTTP
//! receiver on loopback (this test), an API request and a harvest run of the sample site.
//! The received protobuf is decoded and the trace shape asserted: the HTTP request span,
//! and one trace per run with `harvest.fetch`, `harvest.extract` and `harvest.store` spans
//! under its `harvest.run` root. Also: without an endpoint nothing is sent, and a bad
//! endpoint is a configuration error naming the key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::support::{self, client, registry_json, sample_site, serve, Api, Server, ADMIN_TOKEN};
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP traces receiver: decodes each request and keeps its spans.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let g = Arc::clone(&g);
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                let mut g = g.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .any(|a| a.key == "service.name");
                    assert!(service, "resource without service.name");
                    for ss in rs.scope_spans {
                        g.extend(ss.spans);
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let url = format!("http://{}/v1/traces", serve(app).await);
    (url, got)
}

fn names(spans: &[Span]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for s in spans {
        *m.entry(s.name.clone()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_with_the_run_as_their_root() {
    let site_addr = sample_site(120).await;
    let (endpoint, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        dir.path(),
        &[],
        &[
            ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
            ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
            ("GLEANER_LOG__OTLP_ENDPOINT", endpoint.as_str()),
        ],
    );
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let (s, v) = api
        .call(
            "PUT",
            "/v1/tenants/acme/sources/registry",
            Some(ADMIN_TOKEN),
            Some(&registry_json(site_addr)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let run = api.start_run("acme", "registry").await;
    let v = api.wait_run(run["url"].as_str().unwrap()).await;
    assert!(v["ended_ms"].is_i64(), "{v}");
    assert_eq!(v["status"], "succeeded", "{v}");
    // SIGTERM: the exporter flushes what is queued before the process exits.
    let status = srv.stop();
    assert!(status.success(), "{status:?}");
    let spans = got.lock().unwrap().clone();
    let n = names(&spans);
    for want in [
        "http",
        "harvest.run",
        "harvest.fetch",
        "harvest.extract",
        "harvest.store",
    ] {
        assert!(n.contains_key(want), "no {want} span among {n:?}");
    }
    let root = spans.iter().find(|s| s.name == "harvest.run").unwrap();
    assert!(root.parent_span_id.is_empty(), "the run is a trace root");
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    // Every fetch, extract and store span of the run's trace descends from the run.
    for s in spans
        .iter()
        .filter(|s| s.name.starts_with("harvest.") && s.name != "harvest.run")
    {
        assert_eq!(
            s.trace_id, root.trace_id,
            "{} is not in the run's trace",
            s.name
        );
        let mut cur: &Span = s;
        let mut hops = 0;
        while !cur.parent_span_id.is_empty() {
            cur = *by_id
                .get(cur.parent_span_id.as_slice())
                .unwrap_or_else(|| panic!("{}: parent span not exported", s.name));
            hops += 1;
            assert!(hops < 16);
        }
        assert_eq!(cur.name, "harvest.run", "{} roots at {}", s.name, cur.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_without_an_endpoint_and_a_bad_one_is_refused() {
    let (_endpoint, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        dir.path(),
        &[],
        &[("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let r = client().get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(srv.stop().success());
    assert!(got.lock().unwrap().is_empty());

    let out = support::command()
        .args(["config", "check"])
        .env("GLEANER_LOG__OTLP_ENDPOINT", "collector:4318")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.otlp_endpoint"), "{err}");
    assert!(err.contains("GLEANER_LOG__OTLP_ENDPOINT"), "{err}");
}
