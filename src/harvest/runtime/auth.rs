//! Source credentials at run time: secret references resolved, static headers, and OAuth2
//! token exchanges (client credentials, refresh token with rotation).
//!
//! Tokens are refreshed shortly before they expire and again when a request comes back
//! 401. Refreshes are serialised by the async mutex of the token's [`TokenScope`]: one
//! per run for an inline `auth`, one per (tenant, connection) in the whole process for a
//! connection (see `connections`), so a provider that rotates refresh tokens never sees
//! two refreshes racing with the same old token, however many sources share the grant. A
//! rotated refresh token is committed to the tenant database (its own write, fsync'd)
//! *before* the access token that came with it is used: if the process dies at any point,
//! the database holds the newest valid refresh token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;
use url::Url;

use super::fetch::{Fetcher, Request};
use super::token_slots::{Token, TokenSlot};
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

/// Where a credential's token lives.
pub(super) struct TokenScope {
    /// Its row in the tenant's `oauth_tokens`: the source id, or `connection:NAME`.
    pub(super) key: String,
    pub(super) slot: TokenSlot,
}

impl TokenScope {
    /// A source's own token (inline `auth`), shared by nothing else.
    pub(super) fn own(source: &str) -> TokenScope {
        TokenScope {
            key: source.to_owned(),
            slot: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }
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
    /// Names the source (and its connection) in errors.
    source: String,
    db: TenantDb,
    key: String,
    owner: [u8; 32],
    token: TokenSlot,
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

/// What identifies a token grant: a changed endpoint, client or seed is another grant.
fn owner_of(mode: &Mode) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    let mut part = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    match mode {
        Mode::ClientCredentials { token_url, form } => {
            part(token_url.as_str());
            for (k, v) in form {
                part(k);
                part(v);
            }
        }
        Mode::RefreshToken {
            token_url,
            client_id,
            client_secret,
            scopes,
            seed,
        } => {
            part(token_url.as_str());
            part(client_id);
            part(client_secret.as_deref().unwrap_or(""));
            part(&scopes.join(" "));
            part(seed);
        }
        Mode::None | Mode::Static(_) => {}
    }
    *h.finalize().as_bytes()
}

/// When to refresh a token that lives `secs`: a minute early, or halfway for short lives.
fn refresh_margin(secs: u64) -> Duration {
    Duration::from_secs((secs / 2).min(60))
}

impl SourceAuth {
    /// `source` names the credential's user in errors; `scope` is where its token lives.
    pub(super) async fn new(
        auth: Option<&Auth>,
        db: &TenantDb,
        tenant: &str,
        source: &str,
        scope: TokenScope,
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
            owner: owner_of(&mode),
            mode,
            source: source.to_owned(),
            db: db.clone(),
            key: scope.key,
            token: scope.slot,
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
                let mine = slot.as_ref().filter(|t| t.owner == self.owner);
                let fresh = mine.is_some_and(|t| Instant::now() < t.refresh_at);
                if !fresh {
                    let first = mine.is_none();
                    *slot = Some(self.obtain(fetcher, first).await?);
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

    /// After a 401: forget `used` so the next request gets a new token. False when another
    /// task already replaced it: the next request goes out with that fresher token, no
    /// refresh needed.
    pub async fn invalidate(&self, used: &str) -> bool {
        let mut slot = self.token.lock().await;
        match slot.as_mut() {
            Some(t) if t.access == used => {
                t.refresh_at = Instant::now();
                true
            }
            _ => false,
        }
    }

    async fn obtain(&self, fetcher: &Fetcher, first: bool) -> Result<Token, HarvestError> {
        match &self.mode {
            Mode::ClientCredentials { token_url, form } => {
                let r = self.token_request(fetcher, token_url, form.clone()).await?;
                Ok(token_of(&r, self.owner))
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
                    .oauth_token(&self.key)
                    .await?
                    .filter(|t| t.seed_hash == hash);
                // At the start of a run a stored, unexpired access token is reused.
                if first {
                    if let Some(t) = &stored {
                        if let (Some(a), Some(exp)) = (&t.access_token, t.expires_ms) {
                            let left = exp - crate::store::now_ms();
                            if left > 60_000 {
                                return Ok(Token {
                                    owner: self.owner,
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
                        &self.key,
                        OAuthTokenRow {
                            seed_hash: hash,
                            refresh_token: Some(r.refresh_token.clone().unwrap_or(current)),
                            access_token: Some(r.access_token.clone()),
                            expires_ms,
                        },
                    )
                    .await?;
                Ok(token_of(&r, self.owner))
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

fn token_of(r: &TokenResponse, owner: [u8; 32]) -> Token {
    let life = r.expires_in.unwrap_or(3600);
    Token {
        owner,
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
