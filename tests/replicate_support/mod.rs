//! Shared helpers for the replication tests: the peer binaries (litestream, SeaweedFS's
//! `weed`), a SeaweedFS S3 gateway on loopback with an identity config, replica backends
//! (file and S3) with the URLs both tools take, and database content fingerprints.
//! Missing tools fail the test with the install command; nothing is skipped silently.
//! A test file that includes this module includes `ports` too (the S3 server's ports).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

pub const ACCESS_KEY: &str = "gleanertestkey";
pub const SECRET_KEY: &str = "gleanertestsecret0123456789";

fn tool(env: &str, rel: &str, install: &str) -> PathBuf {
    let p = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(rel),
    };
    assert!(
        p.is_file(),
        "{} not found: run `{install}` (or set {env})",
        p.display()
    );
    p
}

pub fn litestream() -> PathBuf {
    tool(
        "GLEANER_LITESTREAM",
        ".tools/venv/bin/litestream",
        "bash scripts/install-litestream.sh",
    )
}

pub fn weed() -> PathBuf {
    tool(
        "GLEANER_WEED",
        ".tools/venv/bin/weed",
        "bash scripts/install-s3.sh",
    )
}

/// `gleaner` with a clean environment (no stray GLEANER_* or AWS_* from the caller).
pub fn gleaner() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gleaner"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GLEANER_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn ls_cmd() -> Command {
    let mut c = Command::new(litestream());
    // litestream 0.5.17 refuses to build its S3 client when AWS_CA_BUNDLE is set.
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("run command")
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// SeaweedFS S3 gateway.

pub struct S3Server {
    child: Option<Child>,
    dir: PathBuf,
    ports: [u16; 9],
    pub endpoint: String,
    log: PathBuf,
}

impl S3Server {
    /// Starts `weed server -s3` on loopback with an identity (access key + secret) and
    /// waits until the gateway answers.
    pub fn start(dir: &Path) -> S3Server {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let cfg = dir.join("s3.json");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"identities":[{{"name":"gleaner","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let ports = [(); 9].map(|_| crate::ports::free_port());
        let mut s = S3Server {
            child: None,
            dir: dir.to_path_buf(),
            ports,
            endpoint: format!("http://127.0.0.1:{}", ports[6]),
            log: dir.join("weed.log"),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let p = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(weed())
            .args([
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-dir={}", self.dir.join("data").display()),
                &format!("-master.port={}", p[0]),
                &format!("-master.port.grpc={}", p[1]),
                &format!("-volume.port={}", p[2]),
                &format!("-volume.port.grpc={}", p[3]),
                &format!("-filer.port={}", p[4]),
                &format!("-filer.port.grpc={}", p[5]),
                "-s3",
                &format!("-s3.port={}", p[6]),
                &format!("-s3.port.grpc={}", p[7]),
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                &format!("-metricsPort={}", p[8]),
                &format!("-s3.config={}", self.dir.join("s3.json").display()),
                "-master.volumeSizeLimitMB=64",
                "-volume.max=16",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", p[6]);
        let log = self.log.clone();
        let within = Duration::from_secs(60);
        let deadline = Instant::now() + within;
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                let mut b = [0u8; 12];
                if s.read_exact(&mut b).is_ok() && b.starts_with(b"HTTP/1.") {
                    break;
                }
            }
            // weed exits on a fatal start-up error (a port taken, say): say so at once
            // instead of waiting out the deadline.
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "SeaweedFS S3 gateway did not start ({}); log:\n{}",
                match exited {
                    Some(st) => format!("weed exited: {st}"),
                    None => format!("no answer within {within:?}"),
                },
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGKILL: an outage, not a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Creates a bucket through the S3 API (signed), retrying while the filer settles.
    pub fn create_bucket(&self, name: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = self.options();
        rt.block_on(async {
            let c = gleaner::replicate::s3_client::sdk_client(&opts).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match c.create_bucket().bucket(name).send().await {
                    Ok(_) => break,
                    Err(e) => {
                        let msg = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
                        if msg.contains("BucketAlreadyOwnedByYou")
                            || msg.contains("BucketAlreadyExists")
                        {
                            break;
                        }
                        assert!(Instant::now() < deadline, "create bucket {name}: {msg}");
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
            }
        });
    }

    pub fn options(&self) -> gleaner::replicate::s3_client::S3Options {
        gleaner::replicate::s3_client::S3Options {
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
            force_path_style: true,
            credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
            sse: None,
            sse_kms_key_id: None,
            checksum: gleaner::config::ChecksumMode::WhenRequired,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Replica backends as both tools spell them.

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
    let mut c = gleaner();
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

// ---------------------------------------------------------------------------------------
// Database content.

/// Read-only connection: never checkpoints or deletes the WAL on close.
pub fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Fingerprint of every user table's rows (tables Litestream adds are ignored).
pub fn content(path: &Path) -> String {
    let c = open_ro(path);
    let mut tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_litestream%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    let mut h = blake3::Hasher::new();
    for t in tables {
        h.update(t.as_bytes());
        // Rows are hashed in sorted order, so tables without a rowid (WITHOUT ROWID)
        // hash the same way as the rest.
        let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        let mut lines = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            let mut line = String::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                line.push_str(&format!("{v:?}\u{1f}"));
            }
            lines.push(line);
        }
        lines.sort();
        for l in lines {
            h.update(l.as_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

pub fn integrity(path: &Path) -> String {
    open_ro(path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Reads a child's stderr lines into a shared buffer (for failure messages).
pub fn collect_stderr(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(err) = child.stderr.take() {
        let b = buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                b.lock().unwrap().push(line);
            }
        });
    }
    buf
}

pub fn stdio_piped(c: &mut Command) {
    c.stdout(Stdio::null()).stderr(Stdio::piped());
}

pub fn signal(child: &Child, sig: i32) {
    unsafe { libc::kill(child.id() as i32, sig) };
}

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
