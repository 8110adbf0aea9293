//! The API's error type and its JSON body: `{"error":{"code":"...","message":"..."}}`.
//!
//! Module errors convert into [`ApiError`] through their `kind()`, and the status comes from
//! [`ErrorKind::http_status`] — the same table `main` uses for exit codes. Internal errors
//! are logged in full and answered with a generic message, so no SQL or path leaks out.
//! Rate-limited answers carry `Retry-After` and the `RateLimit-*` headers.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, HeaderValue};
use serde_json::json;

use crate::auth::{AuthError, Denied, Limited, RateInfo};
use crate::cpu::CpuError;
use crate::error::ErrorKind;
use crate::store::StoreError;
use crate::tenant::TenantIdError;

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    pub rate: Option<RateInfo>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            retry_after_secs: None,
            rate: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
}

/// Sets the `RateLimit-*` headers (IETF draft names) for a limiter state.
pub fn rate_headers(h: &mut HeaderMap, r: &RateInfo) {
    let mut set = |name: &'static str, v: u64| {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(name, v);
        }
    };
    set("ratelimit-limit", u64::from(r.limit));
    set("ratelimit-remaining", u64::from(r.remaining));
    set("ratelimit-reset", r.reset_secs);
}

impl ApiError {
    /// The status and the documented JSON body (`{"error":{"code","message"}}`), used by
    /// [`IntoResponse`] and by the connection-level answers hyper would otherwise send
    /// without a body (`head_errors`).
    pub(super) fn status_and_body(&self) -> (http::StatusCode, serde_json::Value) {
        let status = self.kind.http_status();
        let message = if status.is_server_error() && self.kind == ErrorKind::Internal {
            tracing::error!(error = %self.message, "internal error");
            "internal error; see the server log for details"
        } else {
            self.message.as_str()
        };
        (
            status,
            json!({"error": {"code": self.kind.code(), "message": message}}),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut resp = (status, Json(body)).into_response();
        let h = resp.headers_mut();
        if self.kind == ErrorKind::TooLarge {
            // The rest of the body was not read; tell the client not to reuse the connection.
            h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        // For a rate-limited answer this is the limiter's one wait, also sent as
        // `RateLimit-Reset`, so the two headers cannot disagree.
        let retry = self.retry_after_secs.or_else(|| {
            (self.kind.is_retryable() || self.kind == ErrorKind::ShuttingDown).then_some(1)
        });
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                h.insert(http::header::RETRY_AFTER, v);
            }
        }
        if let Some(r) = &self.rate {
            rate_headers(h, r);
        }
        if self.kind == ErrorKind::Unauthenticated {
            h.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gleaner\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<TenantIdError> for ApiError {
    fn from(e: TenantIdError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<CpuError> for ApiError {
    fn from(e: CpuError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        ApiError {
            kind: ErrorKind::RateLimited,
            message: format!(
                "rate limit of this {} exceeded; retry after {} s",
                l.scope, l.retry_after_secs
            ),
            retry_after_secs: Some(l.retry_after_secs),
            rate: Some(l.info),
        }
    }
}
