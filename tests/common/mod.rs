//! Shared helpers for integration tests: start the real `gleaner` binary on a free
//! loopback port, read its JSON log for the bound address, and stop it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gleaner")
}

/// A command with a clean environment (no stray GLEANER_* from the caller).
pub fn command() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GLEANER_") {
            c.env_remove(k);
        }
    }
    c
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `gleaner serve` with JSON logs on 127.0.0.1:0 and waits for "listening".
    pub fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
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
        Self::spawn(cmd, data_dir)
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
            log: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit with a deadline; kills and panics if it does not come.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gleaner did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Asserts the response is the JSON error shape and returns (code, message).
pub async fn json_error(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.expect("JSON error body");
    let code = v["error"]["code"].as_str().expect("error.code").to_owned();
    let msg = v["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (status, code, msg)
}
