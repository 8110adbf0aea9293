//! How a source authenticates to what it harvests: the configuration shape only.
//!
//! Secrets are [`SecretRef`]s, never values; the fetch stage resolves them and performs the
//! token exchanges. Only `headers.headers` holds plain values, for non-secret headers such
//! as `Accept`; secret headers go in `secret_headers`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::values::{HttpUrl, SecretRef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// Static request headers.
    Headers {
        /// Plain, non-secret headers, e.g. `Accept = "application/json"`.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Headers whose values are secrets, e.g. `X-Api-Key = "secret:registry-key"`.
        #[serde(default)]
        secret_headers: BTreeMap<String, SecretRef>,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { token: SecretRef },
    /// `Authorization: Basic` (RFC 7617).
    Basic {
        username: String,
        password: SecretRef,
    },
    /// OAuth 2.0 client credentials grant (RFC 6749 §4.4).
    Oauth2ClientCredentials {
        token_url: HttpUrl,
        client_id: String,
        client_secret: SecretRef,
        #[serde(default)]
        scopes: Vec<String>,
        /// Some providers (Auth0, Azure) need an audience or resource parameter.
        #[serde(default)]
        audience: Option<String>,
    },
    /// OAuth 2.0 refresh token grant (RFC 6749 §6).
    Oauth2RefreshToken {
        token_url: HttpUrl,
        client_id: String,
        #[serde(default)]
        client_secret: Option<SecretRef>,
        refresh_token: SecretRef,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl Auth {
    /// Every secret this auth references, with its field name.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        match self {
            Auth::Headers { secret_headers, .. } => secret_headers
                .iter()
                .map(|(k, v)| (format!("secret_headers.{k}"), v))
                .collect(),
            Auth::Bearer { token } => vec![("token".into(), token)],
            Auth::Basic { password, .. } => vec![("password".into(), password)],
            Auth::Oauth2ClientCredentials { client_secret, .. } => {
                vec![("client_secret".into(), client_secret)]
            }
            Auth::Oauth2RefreshToken {
                client_secret,
                refresh_token,
                ..
            } => {
                let mut v = vec![("refresh_token".into(), refresh_token)];
                if let Some(s) = client_secret {
                    v.push(("client_secret".into(), s));
                }
                v
            }
        }
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        match self {
            Auth::Headers {
                headers,
                secret_headers,
            } => {
                c.check(
                    !headers.is_empty() || !secret_headers.is_empty(),
                    "headers",
                    "set at least one header in headers or secret_headers",
                );
                for (name, value) in headers {
                    c.at("headers", |c| {
                        check_header_name(c, name);
                        c.check(
                            http::HeaderValue::from_str(value).is_ok(),
                            name,
                            "header value must be visible ASCII without line breaks",
                        );
                    });
                }
                for name in secret_headers.keys() {
                    c.at("secret_headers", |c| check_header_name(c, name));
                    c.check(
                        !headers.keys().any(|h| h.eq_ignore_ascii_case(name)),
                        &format!("secret_headers.{name}"),
                        "this header is also set in headers; keep one",
                    );
                }
            }
            Auth::Bearer { .. } => {}
            Auth::Basic { username, .. } => {
                c.check(
                    !username.is_empty()
                        && !username.contains(':')
                        && !username.chars().any(char::is_control),
                    "username",
                    "a non-empty user name without ':' (RFC 7617)",
                );
            }
            Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                scopes,
                ..
            }
            | Auth::Oauth2RefreshToken {
                token_url,
                client_id,
                scopes,
                ..
            } => {
                check_token_url(c, token_url);
                c.check(
                    !client_id.trim().is_empty(),
                    "client_id",
                    "a non-empty client id",
                );
                for (i, s) in scopes.iter().enumerate() {
                    // RFC 6749 §3.3: scope tokens are printable ASCII without space, '"', '\'.
                    let ok = !s.is_empty()
                        && s.bytes().all(|b| {
                            b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
                        });
                    c.check(
                        ok,
                        &format!("scopes[{i}]"),
                        "a scope token without spaces or quotes",
                    );
                }
            }
        }
    }
}

fn check_header_name(c: &mut Checker, name: &str) {
    let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    c.check(ok, name, "not a valid HTTP header name");
    let reserved = ["host", "content-length", "transfer-encoding", "connection"];
    c.check(
        !reserved.iter().any(|r| r.eq_ignore_ascii_case(name)),
        name,
        "this header is set by the fetcher and cannot be configured",
    );
}

/// Client secrets must not cross the network in clear text, except to a token endpoint on
/// the node itself (test setups, sidecars).
fn check_token_url(c: &mut Checker, u: &HttpUrl) {
    let loopback = match u.url().host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    c.check(
        u.url().scheme() == "https" || loopback,
        "token_url",
        "the token endpoint must use https (plain http only for localhost)",
    );
}
