//! Cross-cutting layers applied to every route: request id, tracing, metrics, timeout,
//! panic catching, compression, security headers, CORS (off unless origins are configured)
//! and the `RateLimit-*` headers of successful answers.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{HeaderName, HeaderValue};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use super::error::{rate_headers, ApiError};
use super::extract::RateSlot;
use crate::config::HttpConfig;
use crate::error::ErrorKind;
use crate::telemetry::metrics as m;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(super) fn layers(router: Router, cfg: &HttpConfig, timeout: Duration) -> Router {
    // Layers run outside-in in the reverse order they are added: the request id is set
    // first so every span and response carries it.
    let router = router
        .layer(from_fn(rate_limit_headers))
        .layer(from_fn(record_metrics))
        .layer(from_fn(move |req: Request, next: Next| {
            with_timeout(req, next, timeout)
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorKind::Internal, "handler panicked").into_response()
        }))
        .layer(CompressionLayer::new().gzip(true).zstd(true))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let router = if cfg.tls_cert_file.is_some() {
        router.layer(SetResponseHeaderLayer::overriding(
            http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    };
    let router = match cors(cfg) {
        Some(c) => router.layer(c),
        None => router,
    };
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// CORS for the configured origins, or `None` (no CORS headers at all) by default.
fn cors(cfg: &HttpConfig) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if cfg.cors_allowed_origins.is_empty() {
        return None;
    }
    let origin = if cfg.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cfg.cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                http::Method::GET,
                http::Method::POST,
                http::Method::PATCH,
                http::Method::DELETE,
            ])
            .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
            .expose_headers([
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(cfg.cors_max_age_secs)),
    )
}

/// Gives the extractors a slot for the rate limiter's state and copies it into the
/// response's `RateLimit-*` headers.
async fn rate_limit_headers(mut req: Request, next: Next) -> Response {
    let slot = RateSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let info = slot.0.lock().ok().and_then(|s| *s);
    if let Some(info) = info {
        if !resp.headers().contains_key("ratelimit-limit") {
            rate_headers(resp.headers_mut(), &info);
        }
    }
    resp
}

async fn with_timeout(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "request took longer than http.request_timeout_ms ({} ms)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}
