//! Authentication and authorization.
//!
//! A request presents `Authorization: Bearer <token>`, where the token is one of:
//! - an API key (`glk_…`, see [`keys`]): looked up by id (cached; the cache is invalidated on
//!   every change, see [`cache`]), its secret checked against the stored HMAC in constant
//!   time, then its revocation, expiry and rotation grace are checked;
//! - an OIDC JWT from a configured issuer (see [`oidc`]);
//! - the configured admin token (compared as a constant-time hash comparison).
//!
//! The result is a [`Principal`] (actor, role, tenant). The HTTP layer asks
//! [`Principal::authorize`] for the permission its endpoint declares, then [`RateLimits`],
//! and only then obtains the tenant's database. Audit entries for failures go through
//! [`Auth::audit_failure`], which is throttled per remote address so a flood of bad
//! requests cannot turn into a flood of writes.
//!
//! The server secret keys everything derived here (key hashes, cursor MACs, the audit
//! chain) through BLAKE3's key derivation with a distinct context per use.

pub mod cache;
pub mod keys;
pub mod limits;
pub mod meter;
pub mod oidc;
pub mod roles;

pub use keys::{KeyHasher, NewToken};
pub use limits::{Limited, RateInfo, RateLimits};
pub use roles::{Denied, Permission, Principal, Role};

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::config::{AuthConfig, ConfigError, LimitsConfig, Secret};
use crate::error::ErrorKind;
use crate::store::{ApiKeyRow, AuditEntry, AuditKey, KeyHashes, Store, StoreError, TenantDetails};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;
use cache::EpochCache;
use meter::Meter;
use oidc::{Oidc, OidcError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("invalid credentials")]
    Invalid,
    #[error("this API key is revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
    #[error("this API key's secret was replaced by a rotation and its grace period has ended")]
    Superseded,
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error("credentials cannot be checked right now: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Oidc(e) => e.kind(),
            AuthError::Store(e) => match e.kind() {
                ErrorKind::ShuttingDown => ErrorKind::ShuttingDown,
                _ => ErrorKind::Unavailable,
            },
            _ => ErrorKind::Unauthenticated,
        }
    }
}

/// Keys derived from the server secret, one per use.
#[derive(Clone)]
pub struct DerivedKeys {
    pub key_hmac: [u8; 32],
    pub cursor: [u8; 32],
    pub audit: AuditKey,
}

impl DerivedKeys {
    pub fn from_secret(secret: &Secret) -> Self {
        let s = secret.expose().as_bytes();
        DerivedKeys {
            key_hmac: blake3::derive_key("gleaner 2026 api-key hmac-sha256 key", s),
            cursor: blake3::derive_key("gleaner 2026 page cursor mac", s),
            audit: AuditKey(blake3::derive_key("gleaner 2026 audit chain", s)),
        }
    }
}

/// The server secret from config, env or file; else generated once into the data dir.
pub fn load_server_secret(cfg: &AuthConfig, data_dir: &Path) -> Result<Secret, ConfigError> {
    if let Some(s) = &cfg.secret {
        return Ok(s.clone());
    }
    let (path, key) = match &cfg.secret_file {
        Some(p) => (p.clone(), "auth.secret_file"),
        None => (data_dir.join("server.secret"), "store.data_dir"),
    };
    let fail = |reason: String| ConfigError::SecretFile {
        key,
        path: path.clone(),
        reason,
    };
    match Secret::from_file(&path) {
        Ok(s) if s.expose().len() >= 32 => Ok(s),
        Ok(_) => Err(fail("the secret must be at least 32 characters".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.secret_file.is_none() => {
            use base64::Engine;
            use ring::rand::SecureRandom;
            let mut b = [0u8; 32];
            ring::rand::SystemRandom::new()
                .fill(&mut b)
                .map_err(|_| fail("no randomness available".into()))?;
            let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            std::fs::create_dir_all(data_dir).map_err(|e| fail(e.to_string()))?;
            write_private(&path, &s).map_err(|e| fail(e.to_string()))?;
            tracing::warn!(path = %path.display(), "generated a server secret; back it up, or set auth.secret_file (keys and the audit chain depend on it)");
            Ok(Secret::new(s))
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

fn write_private(path: &Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(s.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[derive(Clone)]
struct CachedKey {
    row: ApiKeyRow,
    hashes: KeyHashes,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Audit writes for failures in flight at once; more are dropped (and counted).
const MAX_FAILURE_AUDITS_IN_FLIGHT: usize = 64;

pub struct Auth {
    admin_hash: Option<[u8; 32]>,
    store: Arc<Store>,
    hasher: KeyHasher,
    pub derived: DerivedKeys,
    keys: EpochCache<String, Option<Arc<CachedKey>>>,
    tenants: EpochCache<TenantId, Option<Arc<TenantDetails>>>,
    pub meter: Meter,
    oidc: Option<Oidc>,
    pub limits: RateLimits,
    failure_audits: DefaultKeyedRateLimiter<IpAddr>,
    failure_inflight: Arc<Semaphore>,
}

impl Auth {
    pub fn new(
        store: Arc<Store>,
        admin_token: Option<&Secret>,
        server_secret: &Secret,
        cfg: &AuthConfig,
        limits: &LimitsConfig,
    ) -> Result<Auth, OidcError> {
        let derived = DerivedKeys::from_secret(server_secret);
        let per_min =
            NonZeroU32::new(limits.audit_failures_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Auth {
            admin_hash: admin_token.map(|t| *blake3::hash(t.expose().as_bytes()).as_bytes()),
            store,
            hasher: KeyHasher::new(&derived.key_hmac),
            derived,
            keys: EpochCache::new(cfg.cache_entries),
            tenants: EpochCache::new(cfg.cache_entries),
            meter: Meter::default(),
            oidc: Oidc::new(cfg)?,
            limits: RateLimits::new(limits),
            failure_audits: RateLimiter::keyed(Quota::per_minute(per_min)),
            failure_inflight: Arc::new(Semaphore::new(MAX_FAILURE_AUDITS_IN_FLIGHT)),
        })
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    pub fn audit_key(&self) -> &AuditKey {
        &self.derived.audit
    }

    /// Authenticates from the raw `Authorization` header value, if any.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        use subtle::ConstantTimeEq;
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or(AuthError::Malformed)?;
        let token = std::str::from_utf8(token)
            .map_err(|_| AuthError::Malformed)?
            .trim();
        if token.is_empty() || token.len() > 16 * 1024 {
            return Err(AuthError::Malformed);
        }
        if let Some((id, secret)) = keys::parse(token) {
            return self.api_key(id, secret).await;
        }
        if Oidc::looks_like_jwt(token) {
            if let Some(o) = &self.oidc {
                return Ok(o.verify(token).await?);
            }
        }
        let expected = self.admin_hash.as_ref().ok_or(AuthError::Invalid)?;
        let got = blake3::hash(token.as_bytes());
        if bool::from(got.as_bytes().ct_eq(expected)) {
            Ok(Principal {
                actor: "admin-token".into(),
                role: Role::Admin,
                tenant: None,
                key_id: None,
            })
        } else {
            Err(AuthError::Invalid)
        }
    }

    async fn api_key(&self, id: &str, secret: &str) -> Result<Principal, AuthError> {
        let key = match self.keys.get(&id.to_owned()) {
            Ok(k) => k,
            Err(epoch) => {
                let k = self
                    .store
                    .api_key_for_auth(id)
                    .await?
                    .map(|(row, hashes)| Arc::new(CachedKey { row, hashes }));
                self.keys.fill(id.to_owned(), k.clone(), epoch);
                k
            }
        };
        // Check the secret first, so revocation and expiry are only revealed to holders.
        let key = key.ok_or(AuthError::Invalid)?;
        let now = now_ms();
        let current = self.hasher.verify(secret, &key.hashes.current);
        if !current {
            let previous = key
                .hashes
                .previous
                .as_ref()
                .is_some_and(|h| self.hasher.verify(secret, h));
            if !previous {
                return Err(AuthError::Invalid);
            }
            if key
                .row
                .previous_secret_valid_until_ms
                .is_none_or(|t| now >= t)
            {
                return Err(AuthError::Superseded);
            }
        }
        if key.row.revoked_ms.is_some() {
            return Err(AuthError::Revoked);
        }
        if key.row.expires_ms.is_some_and(|t| now >= t) {
            return Err(AuthError::Expired);
        }
        let role = Role::parse(&key.row.role).ok_or(AuthError::Invalid)?;
        let tenant = match &key.row.tenant {
            Some(t) => Some(TenantId::parse(t).map_err(|_| AuthError::Invalid)?),
            None if role == Role::Admin => None,
            None => return Err(AuthError::Invalid),
        };
        self.meter.key_used(id, now);
        Ok(Principal {
            actor: format!("key:{id}"),
            role,
            tenant,
            key_id: Some(id.to_owned()),
        })
    }

    /// The tenant's row (cached until it changes), or `None` if it does not exist.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Arc<TenantDetails>>, StoreError> {
        match self.tenants.get(id) {
            Ok(t) => Ok(t),
            Err(epoch) => {
                let t = match self.store.get_tenant_details(id).await {
                    Ok(t) => Some(Arc::new(t)),
                    Err(StoreError::TenantNotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                self.tenants.fill(id.clone(), t.clone(), epoch);
                Ok(t)
            }
        }
    }

    /// Call after a key changed (rotation, revocation), before answering the request.
    pub fn invalidate_key(&self, id: &str) {
        self.keys.invalidate(&id.to_owned());
    }

    /// Call after a tenant changed or was created or deleted (drops its keys too).
    pub fn invalidate_tenant(&self, id: &TenantId) {
        self.tenants.invalidate(id);
        let t = id.as_str();
        self.keys.invalidate_where(|_, v| {
            v.as_ref()
                .is_some_and(|k| k.row.tenant.as_deref() == Some(t))
        });
    }

    /// Records a failure (authentication, permission) in the audit log without delaying the
    /// answer, at most `limits.audit_failures_per_minute` per remote address.
    pub fn audit_failure(&self, entry: AuditEntry, remote: Option<IpAddr>) {
        let ip = remote.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if self.failure_audits.check_key(&ip).is_err() {
            metrics::counter!(m::AUDIT_SUPPRESSED_TOTAL).increment(1);
            return;
        }
        let Ok(permit) = Arc::clone(&self.failure_inflight).try_acquire_owned() else {
            metrics::counter!(m::AUDIT_SUPPRESSED_TOTAL).increment(1);
            return;
        };
        let store = Arc::clone(&self.store);
        let key = self.derived.audit.clone();
        tokio::spawn(async move {
            if let Err(e) = store.append_audit(&key, entry).await {
                tracing::warn!(error = %e, "cannot write audit entry for a failed request");
            }
            drop(permit);
        });
    }

    /// Periodic upkeep: flush counters, sweep limiter state.
    pub async fn upkeep(&self) {
        if let Err(e) = self.meter.flush(&self.store).await {
            tracing::warn!(error = %e, "cannot write usage counters; will retry");
        }
        self.limits.sweep();
        self.failure_audits.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_per_use_and_per_secret() {
        let a = DerivedKeys::from_secret(&Secret::new("a".repeat(32)));
        let b = DerivedKeys::from_secret(&Secret::new("b".repeat(32)));
        assert_ne!(a.key_hmac, a.cursor);
        assert_ne!(a.cursor, a.audit.0);
        assert_ne!(a.key_hmac, b.key_hmac);
    }

    #[test]
    fn server_secret_is_generated_once_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let cfg = AuthConfig::default();
        let s1 = load_server_secret(&cfg, d.path()).unwrap();
        let s2 = load_server_secret(&cfg, d.path()).unwrap();
        assert_eq!(s1.expose(), s2.expose());
        assert!(s1.expose().len() >= 32);
        let mode = std::fs::metadata(d.path().join("server.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let short = d.path().join("short");
        std::fs::write(&short, "x").unwrap();
        let cfg = AuthConfig {
            secret_file: Some(short),
            ..AuthConfig::default()
        };
        assert!(load_server_secret(&cfg, d.path()).is_err());
    }
}
