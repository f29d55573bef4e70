//! Serving the routers: HTTPS with rustls (each handshake in its own task, with
//! a deadline) and plain HTTP for publication, each listener within its own
//! [`Limits`]: a cap on open connections and deadlines for headers, idleness
//! and answers, so that a flood or a slow client on one listener leaves the
//! others answering.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::RequestError;

pub use hapki_cluster::listener::Limits;
use hapki_cluster::listener::{serve_connection, Listener};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` over TLS on `listener` within `limits` until the task is dropped.
pub async fn serve_https(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: Router, limits: Limits) {
    let acceptor = TlsAcceptor::from(tls);
    let mut listener = Listener::new(listener, "HTTPS API", limits.max_connections);
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            // Each request on the connection carries what its handshake showed.
            let facts = crate::tls::client_tls(tls.get_ref().1);
            let service = tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(facts.clone());
                tower::ServiceExt::oneshot(router.clone(), req)
            });
            if let Err(e) = serve_connection(tls, service, &limits, too_slow).await {
                tracing::debug!("connection from {peer} ended: {e}");
            }
        });
    }
}

/// Serves `router` over plain HTTP on `listener` within `limits` until the task is dropped.
pub async fn serve_http(listener: TcpListener, router: Router, limits: Limits) {
    let mut listener = Listener::new(listener, "plain-HTTP listener", limits.max_connections);
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            if let Err(e) = serve_connection(tcp, router, &limits, too_slow).await {
                tracing::debug!("plain-HTTP connection from {peer} ended: {e}");
            }
        });
    }
}

/// The answer to a request still unanswered after the request timeout.
fn too_slow(timeout: Duration) -> Response {
    RequestError::Timeout(timeout.as_secs()).into_response()
}
