//! The `[replicate]` section: shipping every database to object storage in Litestream's
//! LTX format, its checkpoint and retention policy, and the `[replicate.s3]` client.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{checker, ConfigError, Invalid, Secret};

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
    /// How long closing a database (and so a shutdown, per database) keeps trying to ship
    /// its unshipped commits, even while the destination fails (milliseconds). What is
    /// still unshipped then is logged at error level and the process exits non-zero.
    pub shutdown_ship_timeout_ms: u64,
    /// Compaction intervals of levels 1, 2, 3, … in seconds (Litestream: 30, 300, 3600).
    pub level_intervals_secs: Vec<u64>,
    /// Write an L9 snapshot this often (seconds) when the database changed.
    pub snapshot_interval_secs: u64,
    /// Keep snapshots (and the files they make redundant) this long, in seconds.
    pub snapshot_retention_secs: u64,
    /// Keep L0 files this long after a level-1 file covers them, in seconds.
    pub l0_retention_secs: u64,
    /// At attach, compact level 1 at once (not after its interval) when at least this many
    /// L0 files lie above it, so processes living shorter than the interval still compact
    /// and restores stay short; 0 = off.
    pub startup_compact_l0_files: u64,
    /// At start, before listening: restore a missing control.db from the replica if one
    /// exists, then every tenant database control.db lists whose file is missing.
    pub restore_on_start: bool,
    /// Every this many seconds, restore the replicas of the next databases in rotation
    /// (control.db, then every tenant database) to a temporary file under
    /// `<data_dir>/.replicate/verify`, check integrity and the TXID against the live
    /// database; 0 turns scheduled verification off.
    pub verify_interval_secs: u64,
    /// Most databases verified per interval.
    pub verify_max_databases: usize,
    /// Most replica bytes downloaded per interval (the database that crosses it is the
    /// last of that pass; at least one database is verified per pass).
    pub verify_max_bytes: u64,
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
            shutdown_ship_timeout_ms: 30_000,
            level_intervals_secs: vec![30, 300, 3600],
            snapshot_interval_secs: 86_400,
            snapshot_retention_secs: 86_400,
            l0_retention_secs: 300,
            startup_compact_l0_files: 100,
            restore_on_start: true,
            verify_interval_secs: 60,
            verify_max_databases: 10,
            verify_max_bytes: 1024 * 1024 * 1024,
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

impl ReplicateConfig {
    /// Range checks of `[replicate]` and `[replicate.s3]`.
    pub(super) fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        let r = self;
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
            (1..=10_000).contains(&r.verify_max_databases),
            "replicate.verify_max_databases",
            "a count from 1 to 10000",
        );
        check(
            r.verify_max_bytes >= 1024 * 1024,
            "replicate.verify_max_bytes",
            "at least 1048576 bytes",
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
    }
}
