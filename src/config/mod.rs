//! The configuration tree: types, built-in defaults and validation (each section checks its
//! own keys; [`Config::validate`] gathers them).
//!
//! One serde tree with `deny_unknown_fields`; the doc comment on each field is the reference
//! for that key, and `config/gleaner.toml` is the annotated copy of [`Config::default`] (a
//! test keeps them equal). Loading and precedence (file < `GLEANER_*` env < CLI flags) live
//! in [`load`]; each component receives only its own sub-tree.

mod api;
mod harvest;
mod load;
mod replicate;
mod secret;

pub use api::{jwks_url_ok, AuthConfig, LimitsConfig, OidcIssuer, ALLOWED_JWT_ALGORITHMS};
pub use harvest::HarvestConfig;
pub use load::{load, ConfigError, Overrides, DEFAULT_CONFIG_PATH};
pub use replicate::{ChecksumMode, ReplicateConfig, S3Config};
pub use secret::{EnvSecretUnset, Secret};

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// SQLite's compiled-in ceiling for `mmap_size` (`SQLITE_MAX_MMAP_SIZE`, 0x7fff0000): larger
/// values are silently clamped, so the config refuses them instead.
pub const MAX_MMAP_BYTES: u64 = 0x7fff_0000;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub cpu: CpuConfig,
    pub replicate: ReplicateConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub harvest: HarvestConfig,
}

/// The HTTP API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port the API listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub max_body_bytes: u64,
    /// Most connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Time one request may take from head to response, in milliseconds.
    pub request_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may run before they are cut, in ms.
    pub shutdown_timeout_ms: u64,
    /// Bearer token with global admin rights. Prefer `admin_token_file` or the environment
    /// variable `GLEANER_HTTP__ADMIN_TOKEN` to keeping it in this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// File holding the admin token (one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// PEM certificate chain; with `tls_key_file` the API serves HTTPS only. Both files are
    /// re-read when they change, without a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// How often the TLS files are checked for changes, in seconds.
    pub tls_reload_secs: u64,
    /// Origins allowed to call the API from a browser (CORS); empty turns CORS off.
    /// `["*"]` allows any origin (credentials are then never allowed).
    pub cors_allowed_origins: Vec<String>,
    /// How long browsers may cache a CORS preflight answer, in seconds.
    pub cors_max_age_secs: u64,
    /// CSV exports prefix text cells starting with `=`, `+`, `-`, `@`, tab or CR with `'`
    /// so spreadsheets do not run them as formulas (OWASP CSV injection); a request can
    /// turn it off with `neutralize_formulas=false`.
    pub csv_neutralize_formulas: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            shutdown_timeout_ms: 20_000,
            admin_token: None,
            admin_token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_reload_secs: 5,
            cors_allowed_origins: Vec::new(),
            cors_max_age_secs: 600,
            csv_neutralize_formulas: true,
        }
    }
}

impl HttpConfig {
    /// Range checks of `[http]`.
    fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        let h = self;
        check(
            (1..=1 << 30).contains(&h.max_body_bytes),
            "http.max_body_bytes",
            "a size from 1 to 1073741824 bytes",
        );
        check(
            (1..=100_000).contains(&h.max_connections),
            "http.max_connections",
            "a count from 1 to 100000",
        );
        check(
            (100..=600_000).contains(&h.header_read_timeout_ms),
            "http.header_read_timeout_ms",
            "milliseconds from 100 to 600000",
        );
        check(
            (100..=3_600_000).contains(&h.request_timeout_ms),
            "http.request_timeout_ms",
            "milliseconds from 100 to 3600000",
        );
        check(
            h.shutdown_timeout_ms <= 3_600_000,
            "http.shutdown_timeout_ms",
            "milliseconds from 0 to 3600000",
        );
        check(
            !(h.admin_token.is_some() && h.admin_token_file.is_some()),
            "http.admin_token_file",
            "either admin_token or admin_token_file, not both",
        );
        check(
            h.admin_token
                .as_ref()
                .is_none_or(|t| t.expose().len() >= 16),
            "http.admin_token",
            "a token of at least 16 characters",
        );
        check(
            h.tls_cert_file.is_some() == h.tls_key_file.is_some(),
            "http.tls_key_file",
            "both tls_cert_file and tls_key_file, or neither",
        );
        check(
            (1..=3600).contains(&h.tls_reload_secs),
            "http.tls_reload_secs",
            "seconds from 1 to 3600",
        );
        check(
            h.cors_allowed_origins
                .iter()
                .all(|o| o == "*" || o.starts_with("http://") || o.starts_with("https://")),
            "http.cors_allowed_origins",
            "origins like \"https://app.example.com\", or \"*\"",
        );
    }
}

/// SQLite's `synchronous` setting for a class of databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: an acknowledged write survives power loss.
    Full,
    /// fsync only at checkpoints: survives a process crash, may lose the last commits on
    /// power loss.
    Normal,
}

/// The per-tenant SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory holding control.db and tenants/<tenant>.db.
    pub data_dir: PathBuf,
    /// `synchronous` for control.db (keys, tenants, audit).
    pub control_synchronous: Synchronous,
    /// `synchronous` for tenant databases.
    pub tenant_synchronous: Synchronous,
    /// Most tenant databases kept open at once; idle ones are closed first.
    pub max_open_tenants: usize,
    /// Close a tenant database after this many seconds without use.
    pub idle_close_secs: u64,
    /// Writes waiting for one database's writer before callers are made to wait.
    pub writer_queue: usize,
    /// Most writes grouped into one transaction.
    pub max_batch: usize,
    /// Reader threads per open database, each with its own read-only connection (started as
    /// concurrent reads need them).
    pub readers_per_db: usize,
    /// Bytes of each database its reader connections map into memory (SQLite's
    /// `mmap_size`) instead of copying pages in with `pread`; 0 = off. Saves CPU on reads,
    /// but a disk I/O error while reading a mapped page kills the process (SIGBUS) where
    /// `pread` would fail one request, and mapped pages show in the process's RSS.
    pub reader_mmap_bytes: u64,
    /// How long a connection waits for a lock held by another process, in milliseconds.
    pub busy_timeout_ms: u64,
    /// Run a PASSIVE checkpoint after a commit once the WAL is larger than this many bytes
    /// (used until replication takes over checkpoints).
    pub checkpoint_wal_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./gleaner-data"),
            control_synchronous: Synchronous::Full,
            tenant_synchronous: Synchronous::Full,
            max_open_tenants: 256,
            idle_close_secs: 300,
            writer_queue: 1024,
            max_batch: 512,
            readers_per_db: 4,
            reader_mmap_bytes: 0,
            busy_timeout_ms: 5_000,
            checkpoint_wal_bytes: 16 * 1024 * 1024,
        }
    }
}

impl StoreConfig {
    /// Range checks of `[store]`.
    fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        let s = self;
        check(
            !s.data_dir.as_os_str().is_empty(),
            "store.data_dir",
            "a directory path",
        );
        check(
            (1..=100_000).contains(&s.max_open_tenants),
            "store.max_open_tenants",
            "a count from 1 to 100000",
        );
        check(
            (1..=1_000_000).contains(&s.writer_queue),
            "store.writer_queue",
            "a count from 1 to 1000000",
        );
        check(
            (1..=100_000).contains(&s.max_batch),
            "store.max_batch",
            "a count from 1 to 100000",
        );
        check(
            (1..=64).contains(&s.readers_per_db),
            "store.readers_per_db",
            "a count from 1 to 64",
        );
        check(
            s.reader_mmap_bytes <= MAX_MMAP_BYTES,
            "store.reader_mmap_bytes",
            &format!("bytes from 0 (off) to {MAX_MMAP_BYTES} (SQLite's build limit)"),
        );
        check(
            s.busy_timeout_ms <= 600_000,
            "store.busy_timeout_ms",
            "milliseconds from 0 to 600000",
        );
        check(
            s.checkpoint_wal_bytes >= 64 * 1024,
            "store.checkpoint_wal_bytes",
            "at least 65536 bytes",
        );
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// Filter in tracing's EnvFilter syntax, e.g. `info` or `info,gleaner::store=debug`.
    pub level: String,
    /// OTLP/HTTP (protobuf) traces endpoint, e.g. `http://collector:4318/v1/traces`; empty =
    /// no span export. Spans: HTTP requests, harvest run → fetch → extract → store.
    pub otlp_endpoint: String,
    /// Fraction of traces exported when `otlp_endpoint` is set (0.0 to 1.0; a child follows
    /// its parent's decision).
    pub otlp_sample_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            otlp_endpoint: String::new(),
            otlp_sample_ratio: 1.0,
        }
    }
}

impl LogConfig {
    /// Range checks of `[log]`.
    fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        check(
            tracing_subscriber::EnvFilter::try_new(&self.level).is_ok(),
            "log.level",
            "a tracing filter such as `info` or `info,gleaner::store=debug`",
        );
        let e = &self.otlp_endpoint;
        check(
            e.is_empty()
                || ((e.starts_with("http://") || e.starts_with("https://"))
                    && url::Url::parse(e).is_ok_and(|u| u.host_str().is_some())),
            "log.otlp_endpoint",
            "empty (no span export) or an http:// or https:// URL such as http://collector:4318/v1/traces",
        );
        check(
            (0.0..=1.0).contains(&self.otlp_sample_ratio),
            "log.otlp_sample_ratio",
            "a fraction from 0.0 to 1.0",
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The bounded CPU pool for parsing, extraction, compression and LTX encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Worker threads; 0 means one per CPU core.
    pub threads: usize,
    /// Jobs queued or running at once before submitters wait.
    pub max_queued: usize,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            threads: 0,
            max_queued: 256,
        }
    }
}

impl CpuConfig {
    /// Range checks of `[cpu]`.
    fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        check(
            self.threads <= 1024,
            "cpu.threads",
            "0 (one per core) to 1024",
        );
        check(
            (1..=1_000_000).contains(&self.max_queued),
            "cpu.max_queued",
            "a count from 1 to 1000000",
        );
    }
}

/// One invalid value: the dotted key and what is expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: &'static str,
    pub expected: String,
}

/// The `check(ok, key, expected)` each section's `validate` calls: records `key` as invalid
/// unless `ok`.
fn checker(bad: &mut Vec<Invalid>) -> impl FnMut(bool, &'static str, &str) + '_ {
    move |ok, key, expected| {
        if !ok {
            bad.push(Invalid {
                key,
                expected: expected.to_owned(),
            });
        }
    }
}

impl Config {
    /// Range checks that serde's types cannot express, section by section.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut bad = Vec::new();
        self.http.validate(&mut bad);
        self.store.validate(&mut bad);
        self.log.validate(&mut bad);
        self.replicate.validate(&mut bad);
        self.cpu.validate(&mut bad);
        api::validate(&self.auth, &self.limits, &mut bad);
        self.harvest.validate(&mut bad);
        bad
    }

    /// The admin token from whichever of `admin_token` / `admin_token_file` is set.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.http.admin_token_file {
            let s = Secret::from_file(path).map_err(|e| ConfigError::SecretFile {
                key: "http.admin_token_file",
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if s.expose().len() < 16 {
                return Err(ConfigError::SecretFile {
                    key: "http.admin_token_file",
                    path: path.clone(),
                    reason: "the token must be at least 16 characters".into(),
                });
            }
            return Ok(Some(s));
        }
        Ok(self.http.admin_token.clone())
    }
}
