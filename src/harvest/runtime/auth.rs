//! Source credentials at run time: secret references resolved, static headers, and OAuth2
//! token exchanges (client credentials, refresh token with rotation).
//!
//! Tokens are refreshed shortly before they expire and again when a request comes back
//! 401. One async mutex per run serialises refreshes, so a provider that rotates refresh
//! tokens never sees two refreshes racing with the same old token. A rotated refresh
//! token is committed to the tenant database (its own write, fsync'd) *before* the access
//! token that came with it is used: if the process dies at any point, the database holds
//! the newest valid refresh token.

use std::time::{Duration, Instant};

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use url::Url;

use super::fetch::{Fetcher, Request};
use super::HarvestError;
use crate::config::Secret;
use crate::harvest::source::{Auth, SecretRef};
use crate::store::{OAuthTokenRow, TenantDb};

/// Resolves a secret reference: `secret:` from the tenant's store, `env:` and `file:` from
/// the node (only definitions from trusted files may use those; the API refuses them).
pub async fn resolve_secret(
    r: &SecretRef,
    db: &TenantDb,
    tenant: &str,
) -> Result<String, HarvestError> {
    match r {
        SecretRef::Store(name) => db.secret(name).await?.ok_or_else(|| HarvestError::Secret {
            reference: r.to_string(),
            reason: format!(
                "not set for tenant {tenant}; PUT /v1/tenants/{tenant}/secrets/{name} to set it"
            ),
        }),
        SecretRef::Env(name) => Secret::from_env(name)
            .map(|s| s.expose().to_owned())
            .map_err(|e| HarvestError::Secret {
                reference: r.to_string(),
                reason: e.to_string(),
            }),
        SecretRef::File(path) => tokio::fs::read_to_string(path)
            .await
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| HarvestError::Secret {
                reference: r.to_string(),
                reason: e.to_string(),
            }),
    }
}

struct Token {
    access: String,
    /// Refresh before this instant.
    refresh_at: Instant,
}

enum Mode {
    None,
    Static(HeaderMap),
    ClientCredentials {
        token_url: Url,
        form: Vec<(String, String)>,
    },
    RefreshToken {
        token_url: Url,
        client_id: String,
        client_secret: Option<String>,
        scopes: Vec<String>,
        seed: String,
    },
}

/// A run's credentials.
pub struct SourceAuth {
    mode: Mode,
    source: String,
    db: TenantDb,
    token: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn bad(source: &str, reason: impl Into<String>) -> HarvestError {
    HarvestError::Auth {
        source_id: source.to_owned(),
        reason: reason.into(),
    }
}

fn header_pair(
    source: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), HarvestError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad(source, format!("header name {name:?} is invalid")))?;
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        bad(
            source,
            format!("the value of header {name} is not a valid header value"),
        )
    })?;
    v.set_sensitive(true);
    Ok((n, v))
}

fn seed_hash(seed: &str) -> Vec<u8> {
    blake3::hash(seed.as_bytes()).as_bytes().to_vec()
}

/// When to refresh a token that lives `secs`: a minute early, or halfway for short lives.
fn refresh_margin(secs: u64) -> Duration {
    Duration::from_secs((secs / 2).min(60))
}

impl SourceAuth {
    pub async fn new(
        auth: Option<&Auth>,
        db: &TenantDb,
        tenant: &str,
        source: &str,
    ) -> Result<SourceAuth, HarvestError> {
        let mode = match auth {
            None => Mode::None,
            Some(Auth::Headers {
                headers,
                secret_headers,
            }) => {
                let mut h = HeaderMap::new();
                for (k, v) in headers {
                    let (n, v) = header_pair(source, k, v)?;
                    h.insert(n, v);
                }
                for (k, r) in secret_headers {
                    let v = resolve_secret(r, db, tenant).await?;
                    let (n, v) = header_pair(source, k, &v)?;
                    h.insert(n, v);
                }
                Mode::Static(h)
            }
            Some(Auth::Bearer { token }) => {
                let t = resolve_secret(token, db, tenant).await?;
                let mut h = HeaderMap::new();
                let (n, v) = header_pair(source, "authorization", &format!("Bearer {t}"))?;
                h.insert(n, v);
                Mode::Static(h)
            }
            Some(Auth::Basic { username, password }) => {
                let p = resolve_secret(password, db, tenant).await?;
                let enc =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{p}"));
                let mut h = HeaderMap::new();
                let (n, v) = header_pair(source, "authorization", &format!("Basic {enc}"))?;
                h.insert(n, v);
                Mode::Static(h)
            }
            Some(Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
            }) => {
                let secret = resolve_secret(client_secret, db, tenant).await?;
                let mut form = vec![
                    ("grant_type".to_owned(), "client_credentials".to_owned()),
                    ("client_id".to_owned(), client_id.clone()),
                    ("client_secret".to_owned(), secret),
                ];
                if !scopes.is_empty() {
                    form.push(("scope".into(), scopes.join(" ")));
                }
                if let Some(a) = audience {
                    form.push(("audience".into(), a.clone()));
                }
                Mode::ClientCredentials {
                    token_url: token_url.url().clone(),
                    form,
                }
            }
            Some(Auth::Oauth2RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scopes,
            }) => {
                let client_secret = match client_secret {
                    Some(r) => Some(resolve_secret(r, db, tenant).await?),
                    None => None,
                };
                Mode::RefreshToken {
                    token_url: token_url.url().clone(),
                    client_id: client_id.clone(),
                    client_secret,
                    scopes: scopes.clone(),
                    seed: resolve_secret(refresh_token, db, tenant).await?,
                }
            }
        };
        Ok(SourceAuth {
            mode,
            source: source.to_owned(),
            db: db.clone(),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether requests carry credentials (redirects off-origin then drop them).
    pub fn has_credentials(&self) -> bool {
        !matches!(self.mode, Mode::None)
    }

    /// Headers to add to a request; fetches or refreshes a token when needed. Returns the
    /// access token used (for [`SourceAuth::invalidate`] after a 401).
    pub async fn headers(
        &self,
        fetcher: &Fetcher,
    ) -> Result<(HeaderMap, Option<String>), HarvestError> {
        match &self.mode {
            Mode::None => Ok((HeaderMap::new(), None)),
            Mode::Static(h) => Ok((h.clone(), None)),
            Mode::ClientCredentials { .. } | Mode::RefreshToken { .. } => {
                let mut slot = self.token.lock().await;
                let fresh = slot.as_ref().is_some_and(|t| Instant::now() < t.refresh_at);
                if !fresh {
                    *slot = Some(self.obtain(fetcher, slot.is_none()).await?);
                }
                let access = slot.as_ref().map(|t| t.access.clone()).unwrap_or_default();
                let mut h = HeaderMap::new();
                let (n, v) =
                    header_pair(&self.source, "authorization", &format!("Bearer {access}"))?;
                h.insert(n, v);
                Ok((h, Some(access)))
            }
        }
    }

    /// After a 401: forget `used` so the next request gets a new token (unless another
    /// task already replaced it).
    pub async fn invalidate(&self, used: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.access == used) {
            if let Some(t) = slot.as_mut() {
                t.refresh_at = Instant::now();
            }
        }
    }

    async fn obtain(&self, fetcher: &Fetcher, first: bool) -> Result<Token, HarvestError> {
        match &self.mode {
            Mode::ClientCredentials { token_url, form } => {
                let r = self.token_request(fetcher, token_url, form.clone()).await?;
                Ok(token_of(&r))
            }
            Mode::RefreshToken {
                token_url,
                client_id,
                client_secret,
                scopes,
                seed,
            } => {
                let hash = seed_hash(seed);
                let stored = self
                    .db
                    .oauth_token(&self.source)
                    .await?
                    .filter(|t| t.seed_hash == hash);
                // At the start of a run a stored, unexpired access token is reused.
                if first {
                    if let Some(t) = &stored {
                        if let (Some(a), Some(exp)) = (&t.access_token, t.expires_ms) {
                            let left = exp - crate::store::now_ms();
                            if left > 60_000 {
                                return Ok(Token {
                                    access: a.clone(),
                                    refresh_at: Instant::now()
                                        + Duration::from_millis((left - 60_000) as u64),
                                });
                            }
                        }
                    }
                }
                let current = stored
                    .as_ref()
                    .and_then(|t| t.refresh_token.clone())
                    .unwrap_or_else(|| seed.clone());
                let mut form = vec![
                    ("grant_type".to_owned(), "refresh_token".to_owned()),
                    ("refresh_token".to_owned(), current.clone()),
                    ("client_id".to_owned(), client_id.clone()),
                ];
                if let Some(s) = client_secret {
                    form.push(("client_secret".into(), s.clone()));
                }
                if !scopes.is_empty() {
                    form.push(("scope".into(), scopes.join(" ")));
                }
                let r = self.token_request(fetcher, token_url, form).await?;
                let expires_ms = r
                    .expires_in
                    .map(|s| crate::store::now_ms() + (s as i64).saturating_mul(1000));
                // Durable before use: the provider may have invalidated `current` already.
                self.db
                    .put_oauth_token(
                        &self.source,
                        OAuthTokenRow {
                            seed_hash: hash,
                            refresh_token: Some(r.refresh_token.clone().unwrap_or(current)),
                            access_token: Some(r.access_token.clone()),
                            expires_ms,
                        },
                    )
                    .await?;
                Ok(token_of(&r))
            }
            _ => Err(bad(&self.source, "no token grant configured")),
        }
    }

    async fn token_request(
        &self,
        fetcher: &Fetcher,
        url: &Url,
        form: Vec<(String, String)>,
    ) -> Result<TokenResponse, HarvestError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let resp = fetcher
            .send(Request {
                method: Method::POST,
                url: url.clone(),
                headers,
                form: Some(form),
                jar: None,
                credentials: true,
            })
            .await
            .map_err(|e| bad(&self.source, format!("token request failed: {e}")))?;
        if !resp.status.is_success() {
            let body = String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into_owned();
            return Err(bad(
                &self.source,
                format!(
                    "token endpoint {url} answered {}: {body}",
                    resp.status.as_u16()
                ),
            ));
        }
        serde_json::from_slice::<TokenResponse>(&resp.body).map_err(|e| {
            bad(
                &self.source,
                format!("token endpoint {url} sent an unexpected body: {e}"),
            )
        })
    }
}

fn token_of(r: &TokenResponse) -> Token {
    let life = r.expires_in.unwrap_or(3600);
    Token {
        access: r.access_token.clone(),
        refresh_at: Instant::now() + Duration::from_secs(life).saturating_sub(refresh_margin(life)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_early_but_not_immediate() {
        assert_eq!(refresh_margin(3600), Duration::from_secs(60));
        assert_eq!(refresh_margin(30), Duration::from_secs(15));
        assert_eq!(refresh_margin(0), Duration::ZERO);
    }
}
