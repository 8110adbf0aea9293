//! One HTTP exchange: redirects, cookies, size caps, timeouts and the trickle guard.
//!
//! The client is reqwest (on hyper, rustls with the ring provider and webpki roots built
//! in, so it works in a FROM-scratch image): HTTP/1.1 and HTTP/2 with pooled connections,
//! gzip/deflate/br/zstd decoded as the body streams. Redirects are followed here rather
//! than by reqwest so each hop is checked against the address guard, a loop is caught at
//! its first repeat, credentials are dropped when a hop leaves the origin, and cookies set
//! on any hop reach the run's jar. The body is counted as it streams *after*
//! decompression, so a compression bomb stops at `max_body_bytes`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::cookies::RunJar;
use super::guard::{self, BlockedAddress, GuardedResolver};
use crate::config::HarvestConfig;
use crate::error::ErrorKind;

/// Why fetching one URL failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: blocked: {reason}")]
    Blocked { url: String, reason: String },
    #[error("{url}: timed out after {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("{url}: connection failed: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: body is larger than {limit} bytes (after decompression)")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: body arrived slower than {min_bps} bytes/s; abandoned")]
    Trickle { url: String, min_bps: u64 },
    #[error("{url}: redirect loop back to {to}")]
    RedirectLoop { url: String, to: String },
    #[error("{url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: u32 },
    #[error("{url}: bad redirect: {reason}")]
    BadRedirect { url: String, reason: String },
    #[error("{url}: reading the body failed: {reason}")]
    Body { url: String, reason: String },
    #[error("{url}: not a valid URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{url}: {reason}")]
    Auth { url: String, reason: String },
    /// The site answered with its start page or a "session expired" page instead of the
    /// page asked for, also after the session was renewed.
    #[error("{url}: the site's session was lost ({reason}); renewed {renewals} times, then given up; the stored record is kept")]
    SessionLost {
        url: String,
        reason: String,
        renewals: u32,
    },
    /// The host's robots.txt could not be fetched (5xx or no answer): RFC 9309 §2.3.1.4
    /// says to assume everything is disallowed until it can be.
    #[error("{url}: not fetched: robots.txt is unreachable ({reason}); retried on a later run")]
    RobotsUnreachable { url: String, reason: String },
}

impl FetchError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FetchError::Blocked { .. } => ErrorKind::Forbidden,
            FetchError::Timeout { .. }
            | FetchError::Connect { .. }
            | FetchError::Trickle { .. }
            | FetchError::Body { .. }
            | FetchError::SessionLost { .. }
            | FetchError::RobotsUnreachable { .. } => ErrorKind::Unavailable,
            FetchError::Status { status, .. }
                if *status >= 500 || *status == 408 || *status == 429 =>
            {
                ErrorKind::Unavailable
            }
            FetchError::Status { status, .. } if *status == 404 || *status == 410 => {
                ErrorKind::NotFound
            }
            FetchError::Status { status, .. } if *status == 401 => ErrorKind::Unauthenticated,
            FetchError::Status { status, .. } if *status == 403 => ErrorKind::Forbidden,
            FetchError::Status { .. } => ErrorKind::InvalidInput,
            FetchError::TooLarge { .. } => ErrorKind::TooLarge,
            FetchError::RedirectLoop { .. }
            | FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect { .. }
            | FetchError::InvalidUrl { .. } => ErrorKind::InvalidInput,
            FetchError::Auth { .. } => ErrorKind::Unauthenticated,
        }
    }

    /// Timeouts, connection errors, 5xx, 408 and 429 may succeed later; other 4xx never.
    pub fn retryable(&self) -> bool {
        // A lost session has its own bounded retries, each after renewing the session.
        self.kind() == ErrorKind::Unavailable && !matches!(self, FetchError::SessionLost { .. })
    }

    /// A short label for metrics and counts.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Blocked { .. } => "blocked",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Connect { .. } => "connect",
            FetchError::Status { .. } => "status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Trickle { .. } => "trickle",
            FetchError::RedirectLoop { .. }
            | FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect { .. } => "redirect",
            FetchError::Body { .. } => "body",
            FetchError::InvalidUrl { .. } => "invalid_url",
            FetchError::Auth { .. } => "auth",
            FetchError::RobotsUnreachable { .. } => "robots_unreachable",
            FetchError::SessionLost { .. } => "session_lost",
        }
    }
}

/// A response with its whole (decoded) body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    /// The URL the body came from, after redirects.
    pub url: Url,
    /// The URLs redirected from, in order, starting with the one asked for (empty when
    /// there was no redirect).
    pub redirected_from: Vec<Url>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to send.
pub struct Request<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    /// Form body (token requests).
    pub form: Option<Vec<(String, String)>>,
    pub jar: Option<&'a RunJar>,
    /// Headers dropped when a redirect leaves the first URL's origin.
    pub credentials: bool,
}

impl<'a> Request<'a> {
    pub fn get(url: Url) -> Self {
        Request {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            form: None,
            jar: None,
            credentials: false,
        }
    }
}

/// Limits of one exchange.
#[derive(Debug, Clone)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    pub max_redirects: u32,
    pub min_bytes_per_sec: u64,
    pub allow_private: bool,
}

/// Grace period before the trickle guard starts measuring.
const TRICKLE_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: Arc<Limits>,
}

impl Fetcher {
    pub fn new(cfg: &HarvestConfig) -> Result<Fetcher, String> {
        let client = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .dns_resolver(GuardedResolver::shared(cfg.allow_private_targets))
            .gzip(true)
            .brotli(true)
            .zstd(true)
            .deflate(true)
            .https_only(false)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fetcher {
            client,
            limits: Arc::new(Limits {
                request_timeout: Duration::from_millis(cfg.request_timeout_ms),
                max_body_bytes: cfg.max_body_bytes,
                max_redirects: cfg.max_redirects,
                min_bytes_per_sec: cfg.min_bytes_per_sec,
                allow_private: cfg.allow_private_targets,
            }),
        })
    }

    /// Sends `req`, following redirects, and reads the whole body within the limits.
    /// Non-2xx statuses are returned as responses (the caller decides what they mean).
    pub async fn send(&self, req: Request<'_>) -> Result<Response, FetchError> {
        use tracing::Instrument;
        let first = req.url.to_string();
        let ms = self.limits.request_timeout.as_millis() as u64;
        let span = tracing::debug_span!("harvest.fetch", method = %req.method, url = %first);
        match tokio::time::timeout(self.limits.request_timeout, self.exchange(req))
            .instrument(span)
            .await
        {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout { url: first, ms }),
        }
    }

    async fn exchange(&self, req: Request<'_>) -> Result<Response, FetchError> {
        let origin = req.url.origin();
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut form = req.form.clone();
        let mut visited: HashSet<String> = HashSet::new();
        let mut chain: Vec<Url> = Vec::new();
        let mut hops = 0u32;
        loop {
            let u = url.to_string();
            guard::check_url(&url, self.limits.allow_private).map_err(|e| FetchError::Blocked {
                url: u.clone(),
                reason: e.to_string(),
            })?;
            visited.insert(u.clone());
            let mut headers = req.headers.clone();
            if req.credentials && url.origin() != origin {
                headers.remove(http::header::AUTHORIZATION);
            }
            if let Some(jar) = req.jar {
                if let Some(c) = jar.header(&url) {
                    headers.insert(http::header::COOKIE, c);
                }
            }
            let mut rb = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers);
            if let Some(f) = &form {
                rb = rb.form(f);
            }
            let resp = rb.send().await.map_err(|e| classify(&u, &e))?;
            if let Some(jar) = req.jar {
                jar.take(resp.headers(), &url);
            }
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let Some(loc) = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Err(FetchError::BadRedirect {
                        url: u,
                        reason: format!("{status} without a Location header"),
                    });
                };
                let next = url.join(loc).map_err(|e| FetchError::BadRedirect {
                    url: u.clone(),
                    reason: format!("Location {loc:?}: {e}"),
                })?;
                if !matches!(next.scheme(), "http" | "https") {
                    return Err(FetchError::BadRedirect {
                        url: u,
                        reason: format!("Location {loc:?} is not http(s)"),
                    });
                }
                let next = crate::harvest::urls::without_fragment(next);
                if visited.contains(next.as_str()) {
                    return Err(FetchError::RedirectLoop {
                        url: req.url.to_string(),
                        to: next.to_string(),
                    });
                }
                hops += 1;
                if hops > self.limits.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: req.url.to_string(),
                        max: self.limits.max_redirects,
                    });
                }
                // 303, and 301/302 after POST, continue as GET without a body (RFC 9110).
                if status == StatusCode::SEE_OTHER
                    || (method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    method = Method::GET;
                    form = None;
                }
                chain.push(std::mem::replace(&mut url, next));
                continue;
            }
            let headers = resp.headers().clone();
            let body = self.read_body(&u, resp).await?;
            return Ok(Response {
                status,
                url,
                redirected_from: chain,
                headers,
                body,
            });
        }
    }

    async fn read_body(&self, u: &str, mut resp: reqwest::Response) -> Result<Bytes, FetchError> {
        let limit = self.limits.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > limit)
            && resp.headers().get(http::header::CONTENT_ENCODING).is_none()
        {
            return Err(FetchError::TooLarge {
                url: u.to_owned(),
                limit,
            });
        }
        let start = Instant::now();
        let mut buf = BytesMut::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                let mut c = classify(u, &e);
                if let FetchError::Connect { reason, .. } = &c {
                    c = FetchError::Body {
                        url: u.to_owned(),
                        reason: reason.clone(),
                    };
                }
                c
            })?;
            let Some(chunk) = chunk else { break };
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(FetchError::TooLarge {
                    url: u.to_owned(),
                    limit,
                });
            }
            buf.extend_from_slice(&chunk);
            let min = self.limits.min_bytes_per_sec;
            let el = start.elapsed();
            if min > 0 && el > TRICKLE_GRACE && (buf.len() as f64) < min as f64 * el.as_secs_f64() {
                return Err(FetchError::Trickle {
                    url: u.to_owned(),
                    min_bps: min,
                });
            }
        }
        Ok(buf.freeze())
    }
}

/// Maps a reqwest error to what failed, finding a blocked address in its chain.
fn classify(u: &str, e: &reqwest::Error) -> FetchError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BlockedAddress>() {
            return FetchError::Blocked {
                url: u.to_owned(),
                reason: b.to_string(),
            };
        }
        src = s.source();
    }
    if e.is_timeout() {
        return FetchError::Timeout {
            url: u.to_owned(),
            ms: 0,
        };
    }
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    FetchError::Connect {
        url: u.to_owned(),
        reason,
    }
}

/// Seconds or an HTTP date in a Retry-After header, as a delay from now.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = httpdate::parse_http_date(v).ok()?;
    Some(
        t.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_transient_failures_retry() {
        let s = |status| FetchError::Status {
            url: "u".into(),
            status,
        };
        assert!(
            s(500).retryable() && s(503).retryable() && s(429).retryable() && s(408).retryable()
        );
        assert!(!s(404).retryable() && !s(400).retryable() && !s(401).retryable());
        assert!(FetchError::Timeout {
            url: "u".into(),
            ms: 1
        }
        .retryable());
        assert!(!FetchError::TooLarge {
            url: "u".into(),
            limit: 1
        }
        .retryable());
        assert!(!FetchError::RedirectLoop {
            url: "u".into(),
            to: "v".into()
        }
        .retryable());
    }
}
