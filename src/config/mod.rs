//! The configuration tree: types, built-in defaults and validation.
//!
//! One serde tree with `deny_unknown_fields`; the doc comment on each field is the reference
//! for that key, and `config/gleaner.toml` is the annotated copy of [`Config::default`] (a
//! test keeps them equal). Loading and precedence (file < `GLEANER_*` env < CLI flags) live
//! in [`load`]; each component receives only its own sub-tree.

mod api;
mod harvest;
mod load;
mod secret;

pub use api::{jwks_url_ok, AuthConfig, LimitsConfig, OidcIssuer, ALLOWED_JWT_ALGORITHMS};
pub use harvest::HarvestConfig;
pub use load::{load, ConfigError, Overrides, DEFAULT_CONFIG_PATH};
pub use secret::Secret;

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

/// Replication of every database to object storage in Litestream's LTX format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicateConfig {
    /// Replicate control.db and every tenant database. When on, the replicator owns
    /// checkpoints (store.checkpoint_wal_bytes no longer applies).
    pub enabled: bool,
    /// Destination prefix: `file:///dir` or `s3://bucket/prefix`. Databases go to
    /// `<url>/control` and `<url>/tenants/<tenant>`.
    pub url: String,
    /// Optional second destination with the same layout (its own TXIDs and position).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_url: Option<String>,
    /// How often each open database's WAL is checked and new commits shipped, in ms.
    pub sync_interval_ms: u64,
    /// Uploads and downloads in flight at once, over all databases.
    pub upload_concurrency: usize,
    /// Attempts per upload (capped, jittered backoff between them) before a sync gives up
    /// until the next interval.
    pub upload_attempts: u32,
    /// Most WAL bytes captured into one L0 file; the rest goes into the next.
    pub sync_max_bytes: u64,
    /// PASSIVE checkpoint (after everything is shipped) once the WAL exceeds this.
    pub checkpoint_wal_bytes: u64,
    /// PASSIVE checkpoint at least this often (seconds) when something was shipped.
    pub checkpoint_interval_secs: u64,
    /// TRUNCATE checkpoint (after everything is shipped) once the WAL exceeds this.
    pub truncate_wal_bytes: u64,
    /// /readyz fails while some database's WAL exceeds this (shipping is stuck).
    pub max_wal_bytes: u64,
    /// /readyz fails while some commit is unshipped for longer than this (seconds).
    pub max_lag_secs: u64,
    /// Compaction intervals of levels 1, 2, 3, … in seconds (Litestream: 30, 300, 3600).
    pub level_intervals_secs: Vec<u64>,
    /// Write an L9 snapshot this often (seconds) when the database changed.
    pub snapshot_interval_secs: u64,
    /// Keep snapshots (and the files they make redundant) this long, in seconds.
    pub snapshot_retention_secs: u64,
    /// Keep L0 files this long after a level-1 file covers them, in seconds.
    pub l0_retention_secs: u64,
    /// At start, before listening: restore a missing control.db from the replica if one
    /// exists, then every tenant database control.db lists whose file is missing.
    pub restore_on_start: bool,
    /// Restore control.db's replica to a temporary file under `<data_dir>/.replicate` and
    /// check its integrity this often (seconds); 0 turns scheduled verification off.
    pub verify_interval_secs: u64,
    /// S3 settings (for `s3://` URLs).
    pub s3: S3Config,
}

impl Default for ReplicateConfig {
    fn default() -> Self {
        ReplicateConfig {
            enabled: false,
            url: String::new(),
            second_url: None,
            sync_interval_ms: 1000,
            upload_concurrency: 8,
            upload_attempts: 5,
            sync_max_bytes: 64 * 1024 * 1024,
            checkpoint_wal_bytes: 4 * 1024 * 1024,
            checkpoint_interval_secs: 60,
            truncate_wal_bytes: 256 * 1024 * 1024,
            max_wal_bytes: 1024 * 1024 * 1024,
            max_lag_secs: 60,
            level_intervals_secs: vec![30, 300, 3600],
            snapshot_interval_secs: 86_400,
            snapshot_retention_secs: 86_400,
            l0_retention_secs: 300,
            restore_on_start: true,
            verify_interval_secs: 0,
            s3: S3Config::default(),
        }
    }
}

/// How the S3 client computes request checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// Only where the API requires one: what most S3-compatible stores accept.
    WhenRequired,
    /// The SDK's default (CRC32 trailers on every upload); some stores reject it.
    WhenSupported,
}

/// S3 (and S3-compatible) client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Region to sign for.
    pub region: String,
    /// Endpoint URL for S3-compatible stores, e.g. `http://127.0.0.1:8333`; empty = AWS.
    pub endpoint: String,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible stores need.
    pub force_path_style: bool,
    /// Access key id; empty = the standard AWS chain (environment, profile, IMDS, …).
    pub access_key_id: String,
    /// Secret key. Prefer `secret_access_key_file` or `GLEANER_REPLICATE__S3__SECRET_ACCESS_KEY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// File holding the secret key (one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Server-side encryption: empty, `AES256` or `aws:kms`.
    pub sse: String,
    /// KMS key id for `aws:kms`; empty = the bucket's default key.
    pub sse_kms_key_id: String,
    /// Request checksums: `when_required` or `when_supported`.
    pub checksum: ChecksumMode,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            region: "us-east-1".into(),
            endpoint: String::new(),
            force_path_style: false,
            access_key_id: String::new(),
            secret_access_key: None,
            secret_access_key_file: None,
            sse: String::new(),
            sse_kms_key_id: String::new(),
            checksum: ChecksumMode::WhenRequired,
        }
    }
}

impl S3Config {
    /// The secret key from whichever of `secret_access_key` / `_file` is set.
    pub fn secret_key(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.secret_access_key_file {
            return Secret::from_file(path)
                .map(Some)
                .map_err(|e| ConfigError::SecretFile {
                    key: "replicate.s3.secret_access_key_file",
                    path: path.clone(),
                    reason: e.to_string(),
                });
        }
        Ok(self.secret_access_key.clone())
    }
}

/// One invalid value: the dotted key and what is expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: &'static str,
    pub expected: String,
}

impl Config {
    /// Range checks that serde's types cannot express.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &'static str, expected: &str| {
            if !ok {
                bad.push(Invalid {
                    key,
                    expected: expected.to_owned(),
                });
            }
        };
        let h = &self.http;
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
        let s = &self.store;
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
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "a tracing filter such as `info` or `info,gleaner::store=debug`",
        );
        let e = &self.log.otlp_endpoint;
        check(
            e.is_empty()
                || ((e.starts_with("http://") || e.starts_with("https://"))
                    && url::Url::parse(e).is_ok_and(|u| u.host_str().is_some())),
            "log.otlp_endpoint",
            "empty (no span export) or an http:// or https:// URL such as http://collector:4318/v1/traces",
        );
        check(
            (0.0..=1.0).contains(&self.log.otlp_sample_ratio),
            "log.otlp_sample_ratio",
            "a fraction from 0.0 to 1.0",
        );
        let r = &self.replicate;
        check(
            !r.enabled || r.url.starts_with("file://") || r.url.starts_with("s3://"),
            "replicate.url",
            "a file:///dir or s3://bucket/prefix URL when replication is enabled",
        );
        check(
            (10..=3_600_000).contains(&r.sync_interval_ms),
            "replicate.sync_interval_ms",
            "milliseconds from 10 to 3600000",
        );
        check(
            (1..=1024).contains(&r.upload_concurrency),
            "replicate.upload_concurrency",
            "a count from 1 to 1024",
        );
        check(
            (1..=100).contains(&r.upload_attempts),
            "replicate.upload_attempts",
            "a count from 1 to 100",
        );
        check(
            r.sync_max_bytes >= 1024 * 1024,
            "replicate.sync_max_bytes",
            "at least 1048576 bytes",
        );
        check(
            r.checkpoint_wal_bytes >= 64 * 1024 && r.checkpoint_wal_bytes <= r.truncate_wal_bytes,
            "replicate.checkpoint_wal_bytes",
            "at least 65536 bytes and at most replicate.truncate_wal_bytes",
        );
        check(
            r.truncate_wal_bytes <= r.max_wal_bytes,
            "replicate.truncate_wal_bytes",
            "at most replicate.max_wal_bytes",
        );
        check(
            r.level_intervals_secs.len() <= 8 && r.level_intervals_secs.iter().all(|&s| s > 0),
            "replicate.level_intervals_secs",
            "up to 8 intervals, each at least 1 second",
        );
        check(
            r.snapshot_interval_secs > 0,
            "replicate.snapshot_interval_secs",
            "at least 1 second",
        );
        check(
            matches!(r.s3.sse.as_str(), "" | "AES256" | "aws:kms"),
            "replicate.s3.sse",
            "empty, AES256 or aws:kms",
        );
        check(
            !(r.s3.secret_access_key.is_some() && r.s3.secret_access_key_file.is_some()),
            "replicate.s3.secret_access_key_file",
            "either secret_access_key or secret_access_key_file, not both",
        );
        check(
            self.cpu.threads <= 1024,
            "cpu.threads",
            "0 (one per core) to 1024",
        );
        check(
            (1..=1_000_000).contains(&self.cpu.max_queued),
            "cpu.max_queued",
            "a count from 1 to 1000000",
        );
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
