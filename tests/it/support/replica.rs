//! Replicas as both tools address them (a directory or an S3 prefix), `gleaner restore`
//! and `litestream restore` of them, and waiting for a replica to catch up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gleaner::replicate::client::ReplicaClient;

use super::db::content;
use super::peers::{ls_cmd, ACCESS_KEY, SECRET_KEY};
use super::process::{command, run};

#[derive(Clone, Debug)]
pub enum Backend {
    File(PathBuf),
    S3 {
        endpoint: String,
        bucket: String,
        path: String,
    },
}

impl Backend {
    pub fn gleaner_url(&self) -> String {
        match self {
            Backend::File(p) => format!("file://{}", p.display()),
            Backend::S3 {
                endpoint,
                bucket,
                path,
            } => format!(
                "s3://{bucket}/{path}?endpoint={endpoint}&region=us-east-1&force_path_style=true"
            ),
        }
    }

    pub fn litestream_url(&self) -> String {
        match self {
            Backend::File(p) => format!("file://{}", p.display()),
            Backend::S3 {
                endpoint,
                bucket,
                path,
            } => format!(
                "s3://{bucket}/{path}?endpoint={endpoint}&region=us-east-1&forcePathStyle=true"
            ),
        }
    }

    /// The `replica:` block of a litestream.yml.
    pub fn litestream_yaml(&self) -> String {
        match self {
            Backend::File(p) => format!(
                "    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
                p.display()
            ),
            Backend::S3 {
                endpoint,
                bucket,
                path,
            } => format!(
                "    replica:\n      type: s3\n      bucket: {bucket}\n      path: {path}\n      endpoint: {endpoint}\n      region: us-east-1\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}\n      sync-interval: 100ms\n"
            ),
        }
    }

    /// Environment both tools need (credentials for S3).
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Backend::File(_) => vec![],
            Backend::S3 { .. } => vec![
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                ("AWS_REGION", "us-east-1"),
            ],
        }
    }
}

/// `gleaner restore`; Ok(stderr) or Err(stderr).
pub fn gleaner_restore(b: &Backend, extra: &[&str], out: &Path) -> Result<String, String> {
    let mut c = command();
    c.arg("restore").args(extra).arg("-o").arg(out);
    c.arg(b.gleaner_url()).envs(b.env());
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if o.status.success() {
        Ok(err)
    } else {
        Err(err)
    }
}

/// `litestream restore`; Ok or Err(stderr).
pub fn litestream_restore(b: &Backend, extra: &[&str], out: &Path) -> Result<(), String> {
    let mut c = ls_cmd();
    c.arg("restore").args(extra).arg("-o").arg(out);
    c.arg(b.litestream_url()).envs(b.env());
    let o = run(c);
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// The TXID a `gleaner restore` reports ("... (txid 00000000000000xx, ...").
pub fn restored_txid(stderr: &str) -> u64 {
    let at = stderr.find("(txid ").expect("txid in restore output") + 6;
    u64::from_str_radix(&stderr[at..at + 16], 16).unwrap()
}

pub fn rfc3339(t: SystemTime) -> String {
    let ns = t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Waits until `gleaner restore` of `b` gives exactly `want` (a [`content`] fingerprint);
/// on timeout the panic says what the last attempt saw.
pub fn wait_replica(b: &Backend, want: &str, probe: &Path, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let _ = std::fs::remove_file(probe);
        let last = match gleaner_restore(b, &["--quiet"], probe) {
            Ok(_) if content(probe) == want => return,
            Ok(_) => "restored, but the content differs".to_string(),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last attempt: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The client options for the loopback S3 gateway at `endpoint`.
pub fn s3_options(endpoint: &str) -> gleaner::replicate::s3_client::S3Options {
    gleaner::replicate::s3_client::S3Options {
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        force_path_style: true,
        credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
        sse: None,
        sse_kms_key_id: None,
        checksum: gleaner::config::ChecksumMode::WhenRequired,
    }
}

/// The replica's own client (what `gleaner` lists and reads with), for tests that count or
/// decode its LTX files.
async fn client(b: &Backend) -> Box<dyn ReplicaClient> {
    match b {
        Backend::File(root) => Box::new(gleaner::replicate::file_client::FileClient::new(
            root.clone(),
        )),
        Backend::S3 {
            endpoint,
            bucket,
            path,
        } => {
            use gleaner::replicate::s3_client::{sdk_client, S3Client};
            let opts = s3_options(endpoint);
            Box::new(S3Client::new(sdk_client(&opts).await, bucket, path, &opts))
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// How many LTX files of `level` the replica holds (level 9: snapshots).
pub fn replica_files(b: &Backend, level: u8) -> usize {
    block_on(async { client(b).await.list(level).await.unwrap().len() })
}

/// Per level 0..=8 and 9 (snapshots): how many LTX files it holds and the highest TXID
/// among them (0 when empty).
pub fn replica_levels(b: &Backend) -> Vec<(u8, usize, u64)> {
    block_on(async {
        let c = client(b).await;
        let mut out = Vec::new();
        for level in (0..=8).chain([9]) {
            let files = c.list(level).await.unwrap();
            let max = files.iter().map(|f| f.max_txid).max().unwrap_or(0);
            out.push((level, files.len(), max));
        }
        out
    })
}

/// What a replica holds: LTX files, their bytes, the L9 snapshots among them, and the L0
/// files that carry every page of the database ("full" captures; the first L0 is always one).
#[derive(Debug, Default, Clone, Copy)]
pub struct Census {
    pub files: usize,
    pub bytes: u64,
    pub snapshots: usize,
    pub full_l0: usize,
}

/// Lists every level of `b` and decodes its L0 files (a full capture holds `commit` pages).
pub fn census(b: &Backend) -> Census {
    block_on(async {
        let c = client(b).await;
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let mut out = Census::default();
        for level in (0..=8).chain([9]) {
            for f in c.list(level).await.unwrap() {
                out.files += 1;
                out.bytes += f.size;
                out.snapshots += usize::from(level == 9);
                if level == 0 {
                    c.get_to_file(0, f.min_txid, f.max_txid, tmp.path())
                        .await
                        .unwrap();
                    let d =
                        gleaner::replicate::ltx::decode_file(&std::fs::read(tmp.path()).unwrap())
                            .unwrap();
                    // The lock page (at 1 GiB) is never stored.
                    let lock = (1u32 << 30) / d.header.page_size + 1;
                    let stored = d.header.commit - u32::from(d.header.commit >= lock);
                    if d.pages.len() as u32 == stored {
                        out.full_l0 += 1;
                    }
                }
            }
        }
        out
    })
}

/// `gleaner --config CFG replicate --db SRC --replica <b>` as a child with its stderr
/// collected line by line (the replicate command's tests read what it logs).
pub fn spawn_replicate(
    cfg: &Path,
    src: &Path,
    b: &Backend,
) -> (
    std::process::Child,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut cmd = command();
    cmd.arg("--config")
        .arg(cfg)
        .args(["replicate", "--db"])
        .arg(src)
        .args(["--replica", &b.gleaner_url()])
        .envs(b.env());
    super::process::stdio_piped(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let log = super::process::collect_stderr(&mut child);
    (child, log)
}
