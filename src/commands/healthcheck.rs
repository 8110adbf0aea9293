//! `gleaner healthcheck`: exit 0 only when the local server answers `GET /readyz` with 200.
//! Containers run it as their health check because a minimal image has no shell or curl.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::cli;
use crate::app::AppError;
use crate::config::{Config, Overrides};

#[derive(Args)]
pub struct HealthcheckArgs {
    /// host:port to check instead of http.listen from the configuration.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    timeout_ms: u64,
}

/// Any failure is exit 1: the container runtime only tells 0 from not 0.
pub fn run(config: Option<&Path>, a: HealthcheckArgs) -> ExitCode {
    let cfg = match cli::load(config, &Overrides::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let timeout = Duration::from_millis(a.timeout_ms);
    match cli::runtime().block_on(check(&cfg, a.addr.as_deref(), timeout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gleaner: {e}");
            ExitCode::from(1)
        }
    }
}

/// The address to check: `addr`, else `http.listen` (a wildcard reached through loopback).
fn target(cfg: &Config, addr: Option<&str>) -> String {
    if let Some(a) = addr {
        return a.to_owned();
    }
    let mut a = cfg.http.listen;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    a.to_string()
}

/// GETs `/readyz`; Ok only on 200.
async fn check(cfg: &Config, addr: Option<&str>, timeout: Duration) -> Result<(), AppError> {
    let addr = target(cfg, addr);
    let url = format!("http://{addr}/readyz");
    let fail = |reason: String| AppError::Unhealthy {
        url: url.clone(),
        reason,
    };
    let check = async {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| fail(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        let req = ::http::Request::get("/readyz")
            .header(::http::header::HOST, addr.as_str())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("request: {e}")))?;
        if resp.status() == ::http::StatusCode::OK {
            Ok(())
        } else {
            Err(fail(format!("status {}", resp.status())))
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| fail(format!("no answer within {} ms", timeout.as_millis())))?
}
