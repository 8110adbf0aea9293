//! `gleaner serve` as a child process: started with JSON logs on a free loopback port, its
//! bound address read from the log, stopped with a signal and a deadline. Also the
//! environments the tests start it with.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::process::{command, wait_exit};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The server secret (`auth.secret`) for tests that create API keys.
pub const AUTH_SECRET: (&str, &str) = (
    "GLEANER_AUTH__SECRET",
    "test-server-secret-0123456789abcdef",
);

/// Rate limits lifted: tests that write as fast as they can (rate limiting is tested
/// elsewhere).
pub const NO_RATE_LIMITS: [(&str, &str); 4] = [
    ("GLEANER_LIMITS__KEY_REQUESTS_PER_SECOND", "100000"),
    ("GLEANER_LIMITS__KEY_BURST", "100000"),
    ("GLEANER_LIMITS__TENANT_REQUESTS_PER_SECOND", "100000"),
    ("GLEANER_LIMITS__TENANT_BURST", "100000"),
];

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Log lines before "listening" (start-up: migrations, sweeps, restores).
    startup: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `gleaner serve` with JSON logs on 127.0.0.1:0 and waits for "listening".
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::spawn(Self::command(data_dir, extra, env), data_dir)
    }

    /// The `gleaner serve` command [`Server::start`] runs (JSON logs, 127.0.0.1:0 unless
    /// `extra` or `env` names a listen address).
    pub fn command(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--log-format")
            .arg("json")
            .arg("--data-dir")
            .arg(data_dir);
        if !extra.contains(&"--listen") && !env.iter().any(|(k, _)| *k == "GLEANER_HTTP__LISTEN") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `gleaner serve` with only the admin token set.
    pub fn start_admin(data_dir: &Path) -> Server {
        Self::start(data_dir, &[], &[("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)])
    }

    pub fn spawn(mut cmd: Command, data_dir: &Path) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gleaner");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["message"] == "listening" {
                            break v["addr"].as_str().unwrap().parse().unwrap();
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "gleaner did not report listening; log:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            startup: seen,
            log: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, sig: i32) {
        super::process::signal(&self.child, sig);
    }

    /// Waits for exit with a deadline; kills and panics if it does not come.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        wait_exit(&mut self.child, within)
    }

    /// Log lines written before the server reported "listening".
    pub fn startup_log(&self) -> &[String] {
        &self.startup
    }

    /// Log lines received so far.
    pub fn drain_log(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts gleaner with `extra_toml` appended to a config that lifts rate limits.
pub fn start(dir: &Path, extra_toml: &str) -> Server {
    let cfg = dir.join("gleaner-test.toml");
    let data = dir.join("data");
    // `extra_toml` continues the [limits] section until it opens its own.
    let limits = if extra_toml.contains("key_requests_per_second") {
        ""
    } else {
        "key_requests_per_second = 0\ntenant_requests_per_second = 0\n"
    };
    // Tests send many bad credentials from one address on purpose.
    let failures = if extra_toml.contains("auth_failures_per_minute") {
        ""
    } else {
        "auth_failures_per_minute = 0\n"
    };
    std::fs::write(&cfg, format!("[limits]\n{limits}{failures}{extra_toml}\n")).unwrap();
    Server::start(
        &data,
        &["--config", cfg.to_str().unwrap()],
        &[("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN), AUTH_SECRET],
    )
}
