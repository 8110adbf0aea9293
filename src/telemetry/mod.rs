//! Tracing setup, optional OTLP span export, and the metrics recorder.
//!
//! Logs go to stderr as text or JSON (one object per line) as the config says, filtered by
//! `log.level`. When `log.otlp_endpoint` is set, a second layer exports Gleaner's spans
//! (HTTP requests; harvest run → fetch → extract → store) over OTLP/HTTP with its own
//! filter, so span export does not depend on the log level, and per-page spans (debug
//! level) cost nothing when neither wants them. Metric names live in [`metrics`],
//! described once at start-up; the Prometheus recorder is installed here and rendered by
//! the HTTP `/metrics` handler.

pub mod metrics;
mod otlp;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

pub use otlp::TracingGuard;

/// Installs the global tracing subscriber (calling it twice keeps the first) and, when
/// configured, the OTLP exporter. Keep the guard until the end: dropping it flushes the
/// spans still queued.
pub fn init_tracing(cfg: &LogConfig) -> TracingGuard {
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match cfg.format {
        LogFormat::Text => fmt.with_ansi(false).with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![fmt];
    let guard = match otlp::layer(cfg) {
        Ok(Some((layer, guard))) => {
            layers.push(layer);
            guard
        }
        Ok(None) => TracingGuard::none(),
        Err(e) => {
            eprintln!("gleaner: OTLP span export is off: {e}");
            TracingGuard::none()
        }
    };
    if tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok()
        && guard.active()
    {
        tracing::info!(endpoint = %cfg.otlp_endpoint, ratio = cfg.otlp_sample_ratio, "exporting spans over OTLP");
    }
    guard
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its render handle.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    metrics::LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            metrics::STORE_WRITER_BATCH_SIZE.into(),
                        ),
                        metrics::BATCH_BUCKETS,
                    )
                })
                .expect("bucket lists are non-empty constants");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests linking the library twice);
            // then this handle renders nothing but the process keeps running.
            let _ = ::metrics::set_global_recorder(recorder);
            metrics::describe_all();
            handle
        })
        .clone()
}
