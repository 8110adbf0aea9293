//! Replica URLs and destinations: `file:///dir` and
//! `s3://bucket/prefix?endpoint=…&region=…&force_path_style=true` (Litestream's
//! `forcePathStyle` spelling is accepted too). Query parameters override `[replicate.s3]`.
//! A destination hands out one client per database sub-path (`control`, `tenants/<id>`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::S3Config;
use crate::replicate::client::{ClientError, ReplicaClient};
use crate::replicate::file_client::FileClient;
use crate::replicate::s3_client::{sdk_client, S3Client, S3Options};

/// Where replicas go.
#[derive(Clone)]
pub enum Destination {
    File(PathBuf),
    S3(S3Client),
}

impl Destination {
    /// The client for one database under this destination.
    pub fn at(&self, sub: &str) -> Arc<dyn ReplicaClient> {
        match self {
            Destination::File(root) => {
                let mut p = root.clone();
                for part in sub.split('/').filter(|s| !s.is_empty()) {
                    p.push(part);
                }
                Arc::new(FileClient::new(p))
            }
            Destination::S3(c) => Arc::new(c.at(sub)),
        }
    }
}

fn bad(url: &str, reason: impl Into<String>) -> ClientError {
    ClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "yes")
}

/// Parses a replica URL and builds its destination.
pub async fn open_destination(url: &str, s3: &S3Config) -> Result<Destination, ClientError> {
    if let Some(rest) = url.strip_prefix("file://") {
        let path = percent_decode(rest).ok_or_else(|| bad(url, "bad percent-encoding"))?;
        if !path.starts_with('/') {
            return Err(bad(url, "a file URL needs an absolute path: file:///dir"));
        }
        return Ok(Destination::File(PathBuf::from(path)));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(bad(url, "expected file:///dir or s3://bucket/prefix"));
    };
    let (loc, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = loc.split_once('/').unwrap_or((loc, ""));
    if bucket.is_empty() {
        return Err(bad(url, "missing bucket name"));
    }
    let mut opts = S3Options::from_config(s3).map_err(|e| bad(url, e.to_string()))?;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| bad(url, format!("bad value for {k}")))?;
        match k {
            "endpoint" => opts.endpoint = Some(v),
            "region" => opts.region = v,
            "force_path_style" | "forcePathStyle" => opts.force_path_style = truthy(&v),
            "sse" => opts.sse = Some(v),
            _ => return Err(bad(url, format!("unknown parameter {k:?}"))),
        }
    }
    let client = sdk_client(&opts).await;
    let prefix = percent_decode(prefix).ok_or_else(|| bad(url, "bad percent-encoding"))?;
    Ok(Destination::S3(S3Client::new(
        client, bucket, &prefix, &opts,
    )))
}

/// The client for a URL naming one database's replica (CLI `restore`, `verify`, `replicate`).
pub async fn open_client(url: &str, s3: &S3Config) -> Result<Arc<dyn ReplicaClient>, ClientError> {
    Ok(open_destination(url, s3).await?.at(""))
}
