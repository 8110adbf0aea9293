//! Web sites on loopback for harvest tests: any axum router on a free port, the bundled
//! sample site (`gleaner::demo`), and its `/_control/...` switches.

use std::net::SocketAddr;

/// Serves `router` on 127.0.0.1 (a port the kernel picks: this process binds it at once,
/// so the gap tests/it/support/ports.rs guards against does not exist) for the runtime's
/// lifetime.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    addr
}

/// The sample site with `entities` registry entries.
pub async fn sample_site(entities: u32) -> SocketAddr {
    serve(gleaner::demo::router(entities)).await
}

/// Flips one of the sample site's switches (`revision/1`, `session-pages/4`, ...).
pub async fn control(site: SocketAddr, path: &str) {
    let st = reqwest::Client::new()
        .post(format!("http://{site}/_control/{path}"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, 204, "{path}");
}
