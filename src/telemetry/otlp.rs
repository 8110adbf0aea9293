//! OTLP/HTTP span export (opentelemetry-otlp), off unless `log.otlp_endpoint` is set.
//!
//! The SDK's batch processor runs on its own thread with a bounded queue: a collector that
//! is slow or down costs dropped spans, never memory or a blocked request. Only Gleaner's
//! own spans (target `gleaner`, debug and above) are exported.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{Layer, Registry};

use crate::config::LogConfig;

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub struct TracingGuard(Option<SdkTracerProvider>);

impl TracingGuard {
    pub(super) fn none() -> Self {
        TracingGuard(None)
    }

    /// Whether spans are being exported.
    pub fn active(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("gleaner: flushing OTLP spans failed: {e}");
            }
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The export layer and its guard, or `None` when no endpoint is configured.
pub(super) fn layer(cfg: &LogConfig) -> Result<Option<(BoxedLayer, TracingGuard)>, String> {
    if cfg.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.otlp_endpoint.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the exporter for {}: {e}", cfg.otlp_endpoint))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.otlp_sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name("gleaner")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("gleaner");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(Targets::new().with_target("gleaner", Level::DEBUG))
        .boxed();
    Ok(Some((layer, TracingGuard(Some(provider)))))
}
