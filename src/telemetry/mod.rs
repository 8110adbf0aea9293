//! Tracing setup and the metrics recorder.
//!
//! Logs go to stderr as text or JSON (one object per line) as the config says. Metric names
//! live in [`metrics`], described once at start-up; the Prometheus recorder is installed
//! here and rendered by the HTTP `/metrics` handler.

pub mod metrics;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber. Calling it twice keeps the first.
pub fn init_tracing(cfg: &LogConfig) {
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
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
