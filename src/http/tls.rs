//! TLS from PEM files, reloaded when they change.
//!
//! The server's rustls config resolves its certificate through [`TlsReloader`], which holds
//! the current `CertifiedKey` behind a lock. A task checks the files' modification times
//! and sizes every `http.tls_reload_secs`; when they change it loads both, checks that the
//! key matches the certificate, and swaps them in — new handshakes use the new certificate,
//! established connections keep theirs. A pair that fails to load is logged and the old one
//! kept, so a half-copied file never takes the server down. Crypto is rustls with ring.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read TLS key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS key {key} does not fit certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())))
}

#[derive(Debug)]
pub struct TlsReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<(Stamp, Stamp)>,
    provider: Arc<CryptoProvider>,
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    let k = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, k, provider).map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })
}

impl TlsReloader {
    /// Loads the pair once; an error here stops start-up.
    pub fn new(cert: &Path, key: &Path) -> Result<Arc<TlsReloader>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ck = load(cert, key, &provider)?;
        Ok(Arc::new(TlsReloader {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(Arc::new(ck)),
            stamps: RwLock::new((stamp(cert), stamp(key))),
            provider,
        }))
    }

    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Reloads if either file changed. Returns whether a new pair is in use.
    pub fn check(&self) -> bool {
        let now = (stamp(&self.cert_path), stamp(&self.key_path));
        let changed = self.stamps.read().map(|s| *s != now).unwrap_or(true);
        if !changed {
            return false;
        }
        match load(&self.cert_path, &self.key_path, &self.provider) {
            Ok(ck) => {
                if let Ok(mut c) = self.current.write() {
                    *c = Arc::new(ck);
                }
                if let Ok(mut s) = self.stamps.write() {
                    *s = now;
                }
                tracing::info!(cert = %self.cert_path.display(), "reloaded TLS certificate");
                true
            }
            Err(e) => {
                // Keep the stamps old so the next tick tries again (the files may be mid-copy).
                tracing::error!(error = %e, "TLS files changed but cannot be loaded; keeping the previous certificate");
                false
            }
        }
    }

    /// Polls for changes until the process ends.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                t.tick().await;
                let m = Arc::clone(&me);
                let _ = tokio::task::spawn_blocking(move || m.check()).await;
            }
        })
    }
}

impl ResolvesServerCert for TlsReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}
