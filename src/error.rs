//! The one place where error kinds become exit codes and HTTP statuses.
//!
//! Every module has its own typed error (thiserror) with a `kind()` that returns an
//! [`ErrorKind`]. Callers decide retries from the kind; `main` maps it to an exit code and
//! `http` maps it to a status, both through the functions below, so the two tables cannot
//! drift apart.

use http::StatusCode;

/// What kind of failure happened, independent of which module reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller sent something malformed or out of range; retrying the same input fails again.
    InvalidInput,
    /// The operator's configuration is wrong.
    Config,
    /// The named thing does not exist.
    NotFound,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
    /// The thing already exists, or the request conflicts with current state.
    Conflict,
    /// No or bad credentials.
    Unauthenticated,
    /// Credentials are fine but do not allow this.
    Forbidden,
    /// A body or collection is over a configured cap.
    TooLarge,
    /// The request line and headers together are over the server's head buffer.
    HeadTooLarge,
    /// A tenant quota (storage, records, sources, runs per day) would be exceeded.
    QuotaExceeded,
    /// Too many requests for a key or tenant; retry after the advertised delay.
    RateLimited,
    /// A dependency (disk, database, pool) is temporarily unable to serve; retry later.
    Unavailable,
    /// The process is shutting down.
    ShuttingDown,
    /// The environment is unfit to start (data dir not writable, port taken).
    Environment,
    /// A bug or an invariant broken in our own code.
    Internal,
}

impl ErrorKind {
    /// Whether the same operation may succeed if tried again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }

    /// Process exit code for a command that failed with this kind.
    ///
    /// 2 = the invocation or configuration must be fixed, 3 = the environment must be fixed,
    /// 1 = anything else.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::InvalidInput | ErrorKind::Config => 2,
            ErrorKind::Environment => 3,
            _ => 1,
        }
    }

    /// HTTP status for a request that failed with this kind.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::QuotaExceeded => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable | ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Config | ErrorKind::Environment | ErrorKind::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Stable machine-readable code used in JSON error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Config => "config",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Environment => "environment",
            ErrorKind::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_input_errors_exit_2() {
        assert_eq!(ErrorKind::Config.exit_code(), 2);
        assert_eq!(ErrorKind::InvalidInput.exit_code(), 2);
        assert_eq!(ErrorKind::Environment.exit_code(), 3);
        assert_eq!(ErrorKind::Internal.exit_code(), 1);
    }

    #[test]
    fn statuses_are_client_or_server_errors_as_expected() {
        assert_eq!(
            ErrorKind::TooLarge.http_status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ErrorKind::InvalidInput.http_status(),
            StatusCode::BAD_REQUEST
        );
        assert!(ErrorKind::Internal.http_status().is_server_error());
        assert!(ErrorKind::Unavailable.is_retryable());
        assert!(!ErrorKind::InvalidInput.is_retryable());
    }
}
