//! The accept loop (plain TCP or TLS) and graceful shutdown.
//!
//! Every connection's IO is wrapped in [`JsonHeadErrors`], so the requests hyper itself
//! refuses get the documented JSON error too.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::head_errors::{Answers, JsonHeadErrors};
use crate::config::HttpConfig;
use crate::telemetry::metrics as m;

/// How serving ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight request finished.
    Clean,
    /// The shutdown timeout passed with requests still running; they were cut.
    TimedOut,
}

fn serve_io<I>(
    builder: &Builder<TokioExecutor>,
    io: I,
    router: Router,
    peer: SocketAddr,
    watcher: Watcher,
    answers: Arc<Answers>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The peer address reaches handlers (audit log) as axum's ConnectInfo.
    let svc = router.map_request(move |req: http::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = builder
        .serve_connection_with_upgrades(
            TokioIo::new(JsonHeadErrors::new(io, answers)),
            TowerToHyperService::new(svc),
        )
        .into_owned();
    let conn = watcher.watch(conn);
    async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` resolves,
/// then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: &HttpConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024);
    let builder = Arc::new(builder);
    let answers = Answers::new(super::middleware::security_headers(tls.is_some()));
    let acceptor = tls.map(TlsAcceptor::from);
    let handshake_timeout = Duration::from_millis(cfg.header_read_timeout_ms);
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let router = router.clone();
        let builder = Arc::clone(&builder);
        let acceptor = acceptor.clone();
        let answers = Arc::clone(&answers);
        metrics::gauge!(m::HTTP_CONNECTIONS_OPEN).increment(1.0);
        tokio::spawn(async move {
            match acceptor {
                None => serve_io(&builder, stream, router, peer, watcher, answers).await,
                // The handshake runs in the connection's task, bounded like a request head,
                // so a slow client cannot stall the accept loop.
                Some(acc) => {
                    match tokio::time::timeout(handshake_timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_io(&builder, tls, router, peer, watcher, answers).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            metrics::gauge!(m::HTTP_CONNECTIONS_OPEN).decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining in-flight requests");
    match tokio::time::timeout(
        Duration::from_millis(cfg.shutdown_timeout_ms),
        graceful.shutdown(),
    )
    .await
    {
        Ok(()) => Drained::Clean,
        Err(_) => {
            tracing::warn!(
                timeout_ms = cfg.shutdown_timeout_ms,
                "in-flight requests cut at shutdown timeout"
            );
            Drained::TimedOut
        }
    }
}
