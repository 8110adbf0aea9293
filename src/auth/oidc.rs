//! OIDC bearer tokens: JWTs verified against each configured issuer's JWKS.
//!
//! The issuer is chosen by the token's (unverified) `iss`, then everything is checked
//! against that issuer's configuration only: the header's `alg` must be one the issuer is
//! pinned to (never `none`, never an HMAC algorithm, so a public key can never be used as an
//! HMAC secret), the key is taken from the issuer's own JWKS by `kid` and must be of the
//! family that `alg` needs, and `jku`, `x5u`, `jwk` and `x5c` headers are ignored. Then
//! signature, `iss`, `aud`, `exp` and `nbf` (with the issuer's leeway) are checked by
//! `jsonwebtoken`, and the configured claims give the tenant and role.
//!
//! JWKS are fetched with reqwest (rustls, no redirects, size-capped), cached, refreshed every
//! `auth.jwks_refresh_secs`, and refetched when a token names an unknown `kid` — at most once
//! per `auth.jwks_min_refetch_secs` per issuer, so random `kid`s cannot make us hammer the
//! issuer. A failed refresh keeps the keys we had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::roles::{Principal, Role};
use crate::config::{AuthConfig, OidcIssuer};
use crate::error::ErrorKind;
use crate::tenant::TenantId;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("JWT is malformed: {0}")]
    Malformed(String),
    #[error("JWT issuer is not trusted by this server")]
    UnknownIssuer,
    #[error("JWT algorithm {0} is not accepted for this issuer")]
    Algorithm(String),
    #[error("JWT key id {0:?} is not in the issuer's key set")]
    UnknownKey(Option<String>),
    #[error("JWT rejected: {0}")]
    Rejected(String),
    #[error("JWT claim `{claim}`: {reason}")]
    Claim { claim: String, reason: String },
    #[error("issuer's key set could not be fetched: {0}")]
    Fetch(String),
}

impl OidcError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // No keys at all because the issuer is unreachable: the caller may retry.
            OidcError::Fetch(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthenticated,
        }
    }
}

struct Keys {
    keys: Arc<Vec<Jwk>>,
    fetched: Option<Instant>,
}

struct Issuer {
    cfg: OidcIssuer,
    algorithms: Vec<Algorithm>,
    keys: RwLock<Keys>,
    fetching: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
}

pub struct Oidc {
    issuers: HashMap<String, Issuer>,
    http: reqwest::Client,
    refresh: Duration,
    min_refetch: Duration,
}

fn parse_alg(s: &str) -> Option<Algorithm> {
    Some(match s {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Whether a JWK may verify `alg`: right key type (never a symmetric key), right curve, and
/// the JWK's own `alg`, when present, equal to it.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::{EllipticCurve, KeyAlgorithm};
    let family_ok = match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let alg_ok = match jwk.common.key_algorithm {
        None => true,
        Some(ka) => matches!(
            (ka, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::RS384, Algorithm::RS384)
                | (KeyAlgorithm::RS512, Algorithm::RS512)
                | (KeyAlgorithm::PS256, Algorithm::PS256)
                | (KeyAlgorithm::PS384, Algorithm::PS384)
                | (KeyAlgorithm::PS512, Algorithm::PS512)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
                | (KeyAlgorithm::ES384, Algorithm::ES384)
                | (KeyAlgorithm::EdDSA, Algorithm::EdDSA)
        ),
    };
    family_ok && alg_ok
}

#[derive(serde::Deserialize)]
struct Peek {
    iss: Option<String>,
}

impl Oidc {
    /// `None` when no issuer is configured.
    pub fn new(cfg: &AuthConfig) -> Result<Option<Oidc>, OidcError> {
        if cfg.oidc.is_empty() {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.jwks_fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OidcError::Fetch(e.to_string()))?;
        let mut issuers = HashMap::new();
        for i in &cfg.oidc {
            let algorithms = i.algorithms.iter().filter_map(|a| parse_alg(a)).collect();
            issuers.insert(
                i.issuer.clone(),
                Issuer {
                    cfg: i.clone(),
                    algorithms,
                    keys: RwLock::new(Keys {
                        keys: Arc::new(Vec::new()),
                        fetched: None,
                    }),
                    fetching: tokio::sync::Mutex::new(()),
                    last_attempt: Mutex::new(None),
                },
            );
        }
        Ok(Some(Oidc {
            issuers,
            http,
            refresh: Duration::from_secs(cfg.jwks_refresh_secs),
            min_refetch: Duration::from_secs(cfg.jwks_min_refetch_secs),
        }))
    }

    /// Whether a bearer token looks like a JWT (three base64url parts, JSON header).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
    }

    async fn fetch(&self, issuer: &Issuer) -> Result<(), OidcError> {
        let resp = self
            .http
            .get(&issuer.cfg.jwks_url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Fetch(format!("{}: {e}", issuer.cfg.jwks_url)))?;
        if !resp.status().is_success() {
            return Err(OidcError::Fetch(format!(
                "{}: status {}",
                issuer.cfg.jwks_url,
                resp.status()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(OidcError::Fetch("JWKS document too large".into()));
        }
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| OidcError::Fetch(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(OidcError::Fetch("JWKS document too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Fetch(format!("JWKS is not a key set: {e}")))?;
        let keys: Vec<Jwk> = set
            .keys
            .into_iter()
            .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
            .collect();
        tracing::info!(issuer = %issuer.cfg.issuer, keys = keys.len(), "fetched JWKS");
        let mut w = issuer.keys.write().unwrap_or_else(|e| e.into_inner());
        *w = Keys {
            keys: Arc::new(keys),
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    /// Fetches if allowed: when `forced` (unknown kid) at most once per `min_refetch`,
    /// otherwise when the keys are older than `refresh` or absent.
    async fn maybe_fetch(&self, issuer: &Issuer, forced: bool) -> Result<(), OidcError> {
        let _one = issuer.fetching.lock().await;
        let now = Instant::now();
        let fetched = issuer
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .fetched;
        let stale = fetched.is_none_or(|t| now.duration_since(t) >= self.refresh);
        let due = {
            let mut last = issuer
                .last_attempt
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let recent_attempt = last.is_some_and(|t| now.duration_since(t) < self.min_refetch);
            let due = if forced {
                !recent_attempt
            } else {
                stale && !recent_attempt
            };
            if due {
                *last = Some(now);
            }
            due
        };
        if !due {
            return Ok(());
        }
        self.fetch(issuer).await
    }

    fn find(issuer: &Issuer, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
        let keys = Arc::clone(&issuer.keys.read().unwrap_or_else(|e| e.into_inner()).keys);
        let fits = |k: &&Jwk| key_fits(k, alg);
        match kid {
            Some(kid) => keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .find(fits)
                .cloned(),
            // Without a kid, only an unambiguous key set is usable.
            None => {
                let mut it = keys.iter().filter(fits);
                match (it.next(), it.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        }
    }

    /// Verifies `token` and maps its claims to a principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, OidcError> {
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| OidcError::Malformed(format!("header: {e}")))?;
        let raw = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| OidcError::Malformed("payload is not base64url".into()))?;
        let peek: Peek = serde_json::from_slice(&raw)
            .map_err(|_| OidcError::Malformed("payload is not a JSON object".into()))?;
        let iss = peek.iss.ok_or(OidcError::UnknownIssuer)?;
        let issuer = self.issuers.get(&iss).ok_or(OidcError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(OidcError::Algorithm(format!("{:?}", header.alg)));
        }
        self.maybe_fetch(issuer, false).await.or_else(|e| {
            // A failed scheduled refresh is fine while we still have keys.
            let have = !issuer
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .is_empty();
            if have {
                tracing::warn!(issuer = %iss, error = %e, "JWKS refresh failed; using cached keys");
                Ok(())
            } else {
                Err(e)
            }
        })?;
        let kid = header.kid.as_deref();
        let jwk = match Self::find(issuer, kid, header.alg) {
            Some(k) => k,
            None => {
                if let Err(e) = self.maybe_fetch(issuer, true).await {
                    tracing::warn!(issuer = %iss, error = %e, "JWKS refetch for unknown kid failed");
                }
                Self::find(issuer, kid, header.alg)
                    .ok_or_else(|| OidcError::UnknownKey(header.kid.clone()))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Rejected(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = issuer.cfg.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_audience(&[issuer.cfg.audience.as_str()]);
        v.set_issuer(&[issuer.cfg.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            OidcError::Rejected(match e.kind() {
                K::InvalidSignature => "signature does not verify".into(),
                K::ExpiredSignature => "token has expired".into(),
                K::ImmatureSignature => "token is not valid yet (nbf)".into(),
                K::InvalidAudience => "audience does not match".into(),
                K::InvalidIssuer => "issuer does not match".into(),
                K::MissingRequiredClaim(c) => format!("missing claim `{c}`"),
                other => format!("{other:?}"),
            })
        })?;
        self.principal(issuer, &data.claims)
    }

    fn principal(
        &self,
        issuer: &Issuer,
        claims: &serde_json::Value,
    ) -> Result<Principal, OidcError> {
        let claim = |name: &str| claims.get(name).and_then(|v| v.as_str());
        let bad = |claim: &str, reason: &str| OidcError::Claim {
            claim: claim.to_owned(),
            reason: reason.to_owned(),
        };
        let sub = claim("sub").ok_or_else(|| bad("sub", "must be a string"))?;
        let rc = &issuer.cfg.role_claim;
        let role = claim(rc)
            .and_then(Role::parse)
            .ok_or_else(|| bad(rc, "must be one of admin, tenant-admin, editor, reader"))?;
        let actor = format!("jwt:{}#{}", issuer.cfg.issuer, sub);
        if role == Role::Admin {
            if !issuer.cfg.allow_admin {
                return Err(bad(rc, "this issuer may not grant the admin role"));
            }
            return Ok(Principal {
                actor,
                role,
                tenant: None,
                key_id: None,
            });
        }
        let tc = &issuer.cfg.tenant_claim;
        let tenant = claim(tc)
            .ok_or_else(|| bad(tc, "must be a tenant id"))
            .and_then(|t| TenantId::parse(t).map_err(|e| bad(tc, &e.to_string())))?;
        Ok(Principal {
            actor,
            role,
            tenant: Some(tenant),
            key_id: None,
        })
    }
}
