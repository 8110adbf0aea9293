//! Configuration of the API's security and limits: the `[auth]` and `[limits]` sections,
//! and the TLS and CORS keys of `[http]` (declared in `super::HttpConfig`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{checker, Invalid, Secret};

/// Authentication: the server secret, API key behaviour, OIDC issuers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Server secret (at least 32 characters) keying API key hashes, cursors and the audit
    /// chain. Prefer `secret_file` or `GLEANER_AUTH__SECRET`. When neither is set, a random
    /// secret is generated once into `<data_dir>/server.secret` (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// File holding the server secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// After a key rotation, how long the old secret stays valid unless the request says
    /// otherwise, in seconds.
    pub key_rotation_grace_secs: u64,
    /// Longest grace period a rotation request may ask for, in seconds.
    pub max_key_rotation_grace_secs: u64,
    /// How often last-used times of API keys are written (they are gathered in memory in
    /// between, so a request never waits for a write), in seconds.
    pub last_used_flush_secs: u64,
    /// Most API keys and tenants kept in the authentication cache (invalidated on every
    /// change, so the cache never serves a revoked key).
    pub cache_entries: usize,
    /// How often each issuer's JWKS is refreshed, in seconds.
    pub jwks_refresh_secs: u64,
    /// Least time between two fetches of one issuer's JWKS caused by unknown key ids, in
    /// seconds (a token with a random `kid` cannot make us hammer the issuer).
    pub jwks_min_refetch_secs: u64,
    /// Timeout of one JWKS fetch, in milliseconds.
    pub jwks_fetch_timeout_ms: u64,
    /// OIDC issuers whose JWTs are accepted as bearer tokens.
    pub oidc: Vec<OidcIssuer>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: None,
            secret_file: None,
            key_rotation_grace_secs: 3600,
            max_key_rotation_grace_secs: 30 * 86400,
            last_used_flush_secs: 30,
            cache_entries: 10_000,
            jwks_refresh_secs: 3600,
            jwks_min_refetch_secs: 60,
            jwks_fetch_timeout_ms: 5000,
            oidc: Vec::new(),
        }
    }
}

/// One trusted OIDC issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// Expected `iss` claim, exactly.
    pub issuer: String,
    /// Expected `aud` claim (one of the token's audiences).
    pub audience: String,
    /// Where the issuer publishes its JWKS. https, or http on a loopback address only.
    pub jwks_url: String,
    /// Accepted signature algorithms, pinned: RS256/384/512, PS256/384/512, ES256/384,
    /// EdDSA. HMAC algorithms and `none` are refused.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim holding the tenant id.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim holding the role: `tenant-admin`, `editor` or `reader` (or `admin` when
    /// `allow_admin` is true).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Whether this issuer may grant the global admin role.
    #[serde(default)]
    pub allow_admin: bool,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_tenant_claim() -> String {
    "gleaner_tenant".into()
}
fn default_role_claim() -> String {
    "gleaner_role".into()
}
fn default_leeway() -> u64 {
    30
}

/// Algorithms an issuer may be pinned to.
pub const ALLOWED_JWT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Rate limits, page sizes and query bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second per credential (API key, JWT subject, admin token);
    /// 0 disables the limit.
    pub key_requests_per_second: u32,
    /// Requests a credential may send in a burst above the sustained rate.
    pub key_burst: u32,
    /// Sustained requests per second per tenant, all credentials together; 0 disables.
    pub tenant_requests_per_second: u32,
    /// Burst per tenant.
    pub tenant_burst: u32,
    /// Most credentials and tenants tracked by the rate limiters; idle entries are dropped
    /// first.
    pub rate_limit_entries: usize,
    /// Page size when a request gives no `limit`.
    pub default_page_size: usize,
    /// Largest `limit` a request may ask for.
    pub max_page_size: usize,
    /// Longest time one query statement may run before it is interrupted, in ms.
    pub statement_timeout_ms: u64,
    /// Most record ids one filtered page may walk past before it returns with a cursor.
    pub max_scan_rows: u64,
    /// Rows read per chunk while streaming an export.
    pub export_chunk_rows: usize,
    /// Most records one push request may carry.
    pub max_push_records: usize,
    /// Audit entries for failed authentication or denied permission per remote address per
    /// minute; more are counted in a metric but not written.
    pub audit_failures_per_minute: u32,
    /// Failed authentications (401) per source address per minute, also the burst; past
    /// it the address is answered 429 with `Retry-After`, its credentials not even tried,
    /// until the bucket allows one more. 0 = no limit.
    pub auth_failures_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            key_requests_per_second: 50,
            key_burst: 100,
            tenant_requests_per_second: 200,
            tenant_burst: 400,
            rate_limit_entries: 100_000,
            default_page_size: 100,
            max_page_size: 1000,
            statement_timeout_ms: 2000,
            max_scan_rows: 200_000,
            export_chunk_rows: 1000,
            max_push_records: 1000,
            audit_failures_per_minute: 30,
            auth_failures_per_minute: 30,
        }
    }
}

pub(super) fn validate(auth: &AuthConfig, l: &LimitsConfig, bad: &mut Vec<Invalid>) {
    let mut check = checker(bad);
    check(
        !(auth.secret.is_some() && auth.secret_file.is_some()),
        "auth.secret_file",
        "either secret or secret_file, not both",
    );
    check(
        auth.secret.as_ref().is_none_or(|s| s.expose().len() >= 32),
        "auth.secret",
        "a secret of at least 32 characters",
    );
    check(
        auth.key_rotation_grace_secs <= auth.max_key_rotation_grace_secs,
        "auth.key_rotation_grace_secs",
        "at most auth.max_key_rotation_grace_secs",
    );
    check(
        auth.max_key_rotation_grace_secs <= 365 * 86400,
        "auth.max_key_rotation_grace_secs",
        "seconds from 0 to 31536000",
    );
    check(
        (1..=86_400).contains(&auth.last_used_flush_secs),
        "auth.last_used_flush_secs",
        "seconds from 1 to 86400",
    );
    check(
        (1..=10_000_000).contains(&auth.cache_entries),
        "auth.cache_entries",
        "a count from 1 to 10000000",
    );
    check(
        (1..=86_400 * 7).contains(&auth.jwks_refresh_secs),
        "auth.jwks_refresh_secs",
        "seconds from 1 to 604800",
    );
    check(
        auth.jwks_min_refetch_secs <= 86_400,
        "auth.jwks_min_refetch_secs",
        "seconds from 0 to 86400",
    );
    check(
        (100..=60_000).contains(&auth.jwks_fetch_timeout_ms),
        "auth.jwks_fetch_timeout_ms",
        "milliseconds from 100 to 60000",
    );
    for i in &auth.oidc {
        check(
            !i.issuer.is_empty() && !i.audience.is_empty(),
            "auth.oidc",
            "every issuer with a non-empty `issuer` and `audience`",
        );
        check(
            !i.algorithms.is_empty()
                && i.algorithms
                    .iter()
                    .all(|a| ALLOWED_JWT_ALGORITHMS.contains(&a.as_str())),
            "auth.oidc",
            "`algorithms` from RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
        );
        check(
            jwks_url_ok(&i.jwks_url),
            "auth.oidc",
            "`jwks_url` with https://, or http:// on 127.0.0.1, [::1] or localhost",
        );
    }
    check(
        l.key_requests_per_second == 0 || l.key_burst >= 1,
        "limits.key_burst",
        "at least 1 when key_requests_per_second is set",
    );
    check(
        l.tenant_requests_per_second == 0 || l.tenant_burst >= 1,
        "limits.tenant_burst",
        "at least 1 when tenant_requests_per_second is set",
    );
    check(
        (1..=10_000_000).contains(&l.rate_limit_entries),
        "limits.rate_limit_entries",
        "a count from 1 to 10000000",
    );
    check(
        (1..=100_000).contains(&l.max_page_size),
        "limits.max_page_size",
        "a count from 1 to 100000",
    );
    check(
        (1..=l.max_page_size).contains(&l.default_page_size),
        "limits.default_page_size",
        "a count from 1 to limits.max_page_size",
    );
    check(
        (10..=600_000).contains(&l.statement_timeout_ms),
        "limits.statement_timeout_ms",
        "milliseconds from 10 to 600000",
    );
    check(
        l.max_scan_rows >= 1000,
        "limits.max_scan_rows",
        "at least 1000",
    );
    check(
        (1..=100_000).contains(&l.export_chunk_rows),
        "limits.export_chunk_rows",
        "a count from 1 to 100000",
    );
    check(
        (1..=100_000).contains(&l.max_push_records),
        "limits.max_push_records",
        "a count from 1 to 100000",
    );
}

/// https anywhere; plain http only to this machine.
pub fn jwks_url_ok(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
}
