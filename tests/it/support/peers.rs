//! The replication peers, started as child processes: litestream (the format's reference
//! implementation) and SeaweedFS's `weed` as an S3 gateway on loopback with an identity
//! config. A missing tool fails the test with the install command; nothing is skipped
//! silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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
        let ports = [(); 9].map(|_| super::ports::free_port());
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

    /// Freezes the server (SIGSTOP): connections open but nothing answers, the outage
    /// that holds a request until its timeout instead of refusing it.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            super::process::signal(c, libc::SIGSTOP);
        }
    }

    /// Lets a paused server run again.
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            super::process::signal(c, libc::SIGCONT);
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

    /// The replica at `path` in `bucket` of this gateway.
    pub fn backend(&self, bucket: &str, path: &str) -> super::replica::Backend {
        super::replica::Backend::S3 {
            endpoint: self.endpoint.clone(),
            bucket: bucket.into(),
            path: path.into(),
        }
    }

    pub fn options(&self) -> gleaner::replicate::s3_client::S3Options {
        super::replica::s3_options(&self.endpoint)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
