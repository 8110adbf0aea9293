//! Cross-cutting layers applied to every route: request id, tracing, metrics, timeout,
//! panic catching, compression, security headers, CORS (off unless origins are configured),
//! the `RateLimit-*` headers of successful answers, and the query-string check.
//!
//! A client's `X-Request-Id` is kept only when it is a short token (1-128 characters of
//! `[A-Za-z0-9._:-]`); anything else is replaced by a minted UUID before the tracing span
//! or the response sees it, so no client bytes reach the log or are echoed back.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::{from_fn, map_request, Next};
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
        .layer(map_request(query_is_utf8))
        .layer(from_fn(rate_limit_headers))
        .layer(from_fn(record_metrics))
        .layer(from_fn(move |req: Request, next: Next| {
            with_timeout(req, next, timeout)
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorKind::Internal, "handler panicked").into_response()
        }))
        .layer(CompressionLayer::new().gzip(true).zstd(true));
    let mut router = router;
    for (name, value) in security_headers(cfg.tls_cert_file.is_some()) {
        router = router.layer(SetResponseHeaderLayer::overriding(name, value));
    }
    // Handlers that choose their own caching keep it.
    let router = router.layer(SetResponseHeaderLayer::if_not_present(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
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
        .layer(map_request(drop_untrusted_request_id))
}

/// The headers every answer carries, including the ones written below the router
/// (`head_errors`). `cache-control: no-store` is set where the handler set none.
pub(super) fn security_headers(tls: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if tls {
        h.push((
            http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    h
}

const MAX_REQUEST_ID: usize = 128;

/// Whether a client's request id may be logged and echoed as sent.
fn is_request_id_token(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Removes a client's `X-Request-Id` unless it is one short token, so that
/// `SetRequestIdLayer` mints one instead.
async fn drop_untrusted_request_id(mut req: Request) -> Request {
    let mut ids = req.headers().get_all(&REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(v), None) => is_request_id_token(v.as_bytes()),
        (None, _) => true,
        _ => false,
    };
    if !keep {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// Refuses a query string whose names or values are not UTF-8 once percent-decoded: axum's
/// query parser would replace such bytes with U+FFFD and answer as if they had been sent.
/// Checked for every route, whether or not it reads a query.
async fn query_is_utf8(req: Request) -> Result<Request, ApiError> {
    if let Some(q) = req.uri().query() {
        for pair in q.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded_name = percent_encoding::percent_decode_str(name).decode_utf8();
            let value_ok = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .is_ok();
            if decoded_name.is_err() || !value_ok {
                let shown: String = match decoded_name {
                    Ok(n) => n.chars().take(64).collect(),
                    Err(_) => "(a name)".into(),
                };
                return Err(ApiError::invalid(format!(
                    "query parameter `{shown}` is not valid UTF-8 after percent-decoding"
                )));
            }
        }
    }
    Ok(req)
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
            .allow_methods(route_methods())
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

/// Every method the route table serves, for CORS preflights.
fn route_methods() -> Vec<http::Method> {
    let mut methods: Vec<http::Method> = super::routes::route_table()
        .into_iter()
        .map(|r| r.method)
        .collect();
    methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    methods.dedup();
    methods
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_tokens() {
        assert!(is_request_id_token(b"req-42.a_b:C"));
        assert!(is_request_id_token("a".repeat(128).as_bytes()));
        for bad in [
            &b""[..],
            "a".repeat(129).as_bytes(),
            b"<script>",
            b"a b",
            b"a\tb",
            b"caf\xc3\xa9",
            b"%0d%0a",
        ] {
            assert!(!is_request_id_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn cors_allows_every_routed_method() {
        let m = route_methods();
        for want in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(m.iter().any(|x| x.as_str() == want), "{want} in {m:?}");
        }
    }
}
