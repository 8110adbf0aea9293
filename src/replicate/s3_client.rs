//! `s3://` replicas through aws-sdk-s3: `<prefix>/<level as 4 hex digits>/<min>-<max>.ltx`,
//! each PUT carrying `litestream-timestamp` metadata (RFC 3339 with nanoseconds, UTC) so
//! Litestream's point-in-time restore sees the header time.
//!
//! The HTTP stack is hyper 1 + rustls 0.23 with ring (aws-smithy-http-client), with no
//! legacy hyper 0.14 / rustls 0.21 in the tree. SDK errors are converted here, once, into
//! [`ClientError`] naming the operation, the key and the bucket.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use tokio::io::AsyncWriteExt;

use crate::config::{ChecksumMode, S3Config};
use crate::replicate::client::{ClientError, ClientFuture, LtxObject, ReplicaClient};
use crate::replicate::ltx::{level_prefix, ltx_object_path, parse_file_name, Backend};

/// Metadata key Litestream reads for an object's creation time.
pub const TIMESTAMP_METADATA: &str = "litestream-timestamp";

/// What an `s3://` destination needs besides bucket and prefix.
#[derive(Debug, Clone)]
pub struct S3Options {
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    /// Static credentials; `None` uses the standard AWS chain.
    pub credentials: Option<(String, String)>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub checksum: ChecksumMode,
}

impl S3Options {
    pub fn from_config(c: &S3Config) -> Result<Self, crate::config::ConfigError> {
        let secret = c.secret_key()?;
        let credentials = match (c.access_key_id.is_empty(), secret) {
            (false, Some(s)) => Some((c.access_key_id.clone(), s.expose().to_owned())),
            _ => None,
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(S3Options {
            region: c.region.clone(),
            endpoint: opt(&c.endpoint),
            force_path_style: c.force_path_style,
            credentials,
            sse: opt(&c.sse),
            sse_kms_key_id: opt(&c.sse_kms_key_id),
            checksum: c.checksum,
        })
    }
}

/// One bucket and prefix; cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct S3Client {
    client: aws_sdk_s3::Client,
    bucket: String,
    root: String,
    sse: Option<(ServerSideEncryption, Option<String>)>,
}

/// Builds an SDK client: our HTTP stack, region, endpoint, credentials, checksum mode.
pub async fn sdk_client(o: &S3Options) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(o.region.clone()));
    if let Some((ak, sk)) = &o.credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            ak.clone(),
            sk.clone(),
            None,
            None,
            "gleaner-config",
        ));
    }
    let shared = loader.load().await;
    let (req, resp) = match o.checksum {
        ChecksumMode::WhenRequired => (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        ),
        ChecksumMode::WhenSupported => (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        ),
    };
    let mut b = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(o.force_path_style)
        .request_checksum_calculation(req)
        .response_checksum_validation(resp);
    if let Some(ep) = &o.endpoint {
        b = b.endpoint_url(ep);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

impl S3Client {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, root: &str, o: &S3Options) -> Self {
        let sse = o
            .sse
            .as_deref()
            .map(|s| (ServerSideEncryption::from(s), o.sse_kms_key_id.clone()));
        S3Client {
            client,
            bucket: bucket.to_owned(),
            root: root.trim_matches('/').to_owned(),
            sse,
        }
    }

    /// The same bucket with `sub` appended to the prefix.
    pub fn at(&self, sub: &str) -> S3Client {
        let mut c = self.clone();
        let sub = sub.trim_matches('/');
        c.root = match (c.root.is_empty(), sub.is_empty()) {
            (true, _) => sub.to_owned(),
            (false, true) => c.root,
            (false, false) => format!("{}/{}", c.root, sub),
        };
        c
    }

    fn key(&self, level: u8, min: u64, max: u64) -> String {
        ltx_object_path(Backend::S3, &self.root, level, min, max)
    }

    fn err<E, R>(&self, op: &'static str, target: &str, e: SdkError<E, R>) -> ClientError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        let target = format!("s3://{}/{}", self.bucket, target);
        let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
        match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("");
                let status = se.raw().status();
                match code {
                    "NoSuchBucket" => ClientError::NoBucket {
                        op,
                        target,
                        bucket: self.bucket.clone(),
                    },
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken" => ClientError::AccessDenied {
                        op,
                        target,
                        bucket: self.bucket.clone(),
                        detail: code.to_owned(),
                    },
                    "NoSuchKey" | "NotFound" => ClientError::NotFound { op, target },
                    "SlowDown" | "RequestTimeout" | "ServiceUnavailable" | "InternalError" => {
                        ClientError::Unavailable { op, target, detail }
                    }
                    _ if status == 403 || status == 401 => ClientError::AccessDenied {
                        op,
                        target,
                        bucket: self.bucket.clone(),
                        detail: format!("HTTP {status}"),
                    },
                    _ if status == 404 => ClientError::NotFound { op, target },
                    _ if status >= 500 || status == 429 => {
                        ClientError::Unavailable { op, target, detail }
                    }
                    _ => ClientError::Rejected { op, target, detail },
                }
            }
            SdkError::ConstructionFailure(_) => ClientError::Rejected { op, target, detail },
            _ => ClientError::Unavailable { op, target, detail },
        }
    }
}

/// Status code of a raw response, for error classification.
pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

fn to_system_time(dt: &aws_sdk_s3::primitives::DateTime) -> SystemTime {
    let secs = dt.secs();
    let base = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    };
    base + Duration::from_nanos(u64::from(dt.subsec_nanos()))
}

/// `2026-11-21T23:16:16.030000000Z`
pub fn rfc3339_nanos(ms: i64) -> String {
    let ns = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    (ns >= 0).then(|| UNIX_EPOCH + Duration::from_nanos(ns as u64))
}

impl S3Client {
    async fn list_level(&self, level: u8) -> Result<Vec<LtxObject>, ClientError> {
        let prefix = format!("{}/", level_prefix(Backend::S3, &self.root, level));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.err("list", &prefix, e))?;
            for o in r.contents() {
                let Some(key) = o.key() else { continue };
                let Some(name) = key.strip_prefix(&prefix) else {
                    continue;
                };
                let Some((min, max)) = parse_file_name(name) else {
                    continue;
                };
                let t = o.last_modified().map_or(UNIX_EPOCH, to_system_time);
                out.push(LtxObject {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    created_at: t,
                    listed_at: t,
                });
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by_key(|o| (o.min_txid, o.max_txid));
        Ok(out)
    }

    /// The `litestream-timestamp` metadata of one object (a HEAD request).
    pub async fn created_at(
        &self,
        level: u8,
        min: u64,
        max: u64,
    ) -> Result<Option<SystemTime>, ClientError> {
        let key = self.key(level, min, max);
        let r = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.err("head", &key, e))?;
        Ok(r.metadata()
            .and_then(|m| m.get(TIMESTAMP_METADATA))
            .and_then(|s| parse_rfc3339(s)))
    }
}

impl ReplicaClient for S3Client {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }

    fn object_name(&self, level: u8, min: u64, max: u64) -> String {
        format!("s3://{}/{}", self.bucket, self.key(level, min, max))
    }

    fn list(&self, level: u8) -> ClientFuture<'_, Vec<LtxObject>> {
        Box::pin(self.list_level(level))
    }

    fn list_detailed(&self, level: u8) -> ClientFuture<'_, Vec<LtxObject>> {
        Box::pin(async move {
            let mut v = self.list_level(level).await?;
            // Litestream's point-in-time plan uses the metadata timestamp; fetch it with
            // bounded concurrency.
            use futures_util::stream::{self, StreamExt, TryStreamExt};
            let times: Vec<Option<SystemTime>> = stream::iter(v.iter().copied())
                .map(|o| async move { self.created_at(o.level, o.min_txid, o.max_txid).await })
                .buffered(16)
                .try_collect()
                .await?;
            for (o, t) in v.iter_mut().zip(times) {
                if let Some(t) = t {
                    o.created_at = t;
                }
            }
            Ok(v)
        })
    }

    fn get_to_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        dest: &'a Path,
    ) -> ClientFuture<'a, u64> {
        Box::pin(async move {
            let key = self.key(level, min, max);
            let r = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.err("get", &key, e))?;
            let io = |source| ClientError::Io {
                op: "write",
                path: dest.to_path_buf(),
                source,
            };
            let mut f = tokio::fs::File::create(dest).await.map_err(io)?;
            let mut body = r.body.into_async_read();
            let n =
                tokio::io::copy(&mut body, &mut f)
                    .await
                    .map_err(|e| ClientError::Unavailable {
                        op: "get",
                        target: format!("s3://{}/{}", self.bucket, key),
                        detail: e.to_string(),
                    })?;
            f.flush().await.map_err(io)?;
            Ok(n)
        })
    }

    fn get_prefix(&self, level: u8, min: u64, max: u64, len: usize) -> ClientFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let key = self.key(level, min, max);
            let r = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .range(format!("bytes=0-{}", len.saturating_sub(1)))
                .send()
                .await
                .map_err(|e| self.err("get", &key, e))?;
            let b = r
                .body
                .collect()
                .await
                .map_err(|e| ClientError::Unavailable {
                    op: "get",
                    target: format!("s3://{}/{}", self.bucket, key),
                    detail: e.to_string(),
                })?
                .into_bytes();
            Ok(b.slice(..b.len().min(len)).to_vec())
        })
    }

    fn put_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        src: &'a Path,
        timestamp_ms: i64,
    ) -> ClientFuture<'a, ()> {
        Box::pin(async move {
            let key = self.key(level, min, max);
            let body = ByteStream::from_path(src)
                .await
                .map_err(|e| ClientError::Io {
                    op: "read",
                    path: src.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(body)
                .content_type("application/octet-stream")
                .metadata(TIMESTAMP_METADATA, rfc3339_nanos(timestamp_ms));
            if let Some((sse, kms)) = &self.sse {
                req = req.server_side_encryption(sse.clone());
                if let Some(k) = kms {
                    req = req.ssekms_key_id(k);
                }
            }
            req.send().await.map_err(|e| self.err("put", &key, e))?;
            Ok(())
        })
    }

    fn delete(&self, level: u8, files: Vec<(u64, u64)>) -> ClientFuture<'_, ()> {
        Box::pin(async move {
            // One DELETE per key: DeleteObjects needs a Content-MD5 or checksum header that
            // several S3-compatible stores handle differently.
            for (min, max) in files {
                let key = self.key(level, min, max);
                match self
                    .client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) => match self.err("delete", &key, e) {
                        ClientError::NotFound { .. } => {}
                        other => return Err(other),
                    },
                }
            }
            Ok(())
        })
    }
}

/// Shared handle, for building per-database clients.
pub type SharedS3 = Arc<S3Client>;
