//! What every request leaves behind: an id (the client's `X-Request-Id` when it sends a
//! sane one, else a new one), returned in the `X-Request-Id` header; a tracing span that
//! carries it, the route and, for a write, the Raft log index that holds it, so every line
//! logged while the request runs names them; one access line at the end; and the request
//! counter and latency histogram, by route and status.
//!
//! [`observe`] wraps a whole listener. The route is only known inside the router that
//! matched it, which may be a fallback's: [`note_route`], layered on each router's routes,
//! writes it into a slot [`observe`] put in the request.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// The route a request matched, as the router that matched it knows it.
#[derive(Clone, Default)]
struct RouteSlot(Arc<Mutex<Option<String>>>);

/// The client's id when it is 1 to 64 of `A-Z a-z 0-9 . _ -`, else a new random one.
fn request_id(req: &Request) -> String {
    let sane =
        |v: &str| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(v) if sane(v) => v.to_string(),
        _ => {
            let mut bytes = [0u8; 8];
            crate::rand::fill(&mut bytes);
            hex::encode(bytes)
        }
    }
}

/// The middleware of a whole listener (`api` or `publication`).
pub async fn observe(State(listener): State<&'static str>, mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.method().clone();
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = tracing::field::Empty,
        log_index = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = slot
        .0
        .lock()
        .expect("route slot")
        .clone()
        .unwrap_or_else(|| "unmatched".into());
    let status = resp.status().as_u16();
    span.record("route", route.as_str());
    span.in_scope(|| {
        tracing::info!(
            status,
            ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "{method} {route} answered {status}"
        )
    });
    let labels = [
        ("listener", listener.to_string()),
        ("route", route),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!(crate::metrics::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(crate::metrics::HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Layered with `route_layer` on a router: tells [`observe`] which route matched.
pub async fn note_route(req: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        req.extensions().get::<MatchedPath>(),
        req.extensions().get::<RouteSlot>(),
    ) {
        *slot.0.lock().expect("route slot") = Some(path.as_str().to_string());
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/v1/things/{id}", get(|| async { "ok" }))
            .route_layer(axum::middleware::from_fn(note_route))
            .layer(axum::middleware::from_fn_with_state("api", observe))
    }

    async fn id_of(header: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get("/v1/things/7");
        if let Some(h) = header {
            req = req.header(REQUEST_ID, h);
        }
        let resp = app().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let id = resp.headers()[REQUEST_ID].to_str().unwrap().to_string();
        (resp.status(), id)
    }

    #[tokio::test]
    async fn a_sane_client_request_id_is_kept_and_anything_else_is_replaced() {
        assert_eq!(id_of(Some("lb-7f3a.2_x")).await, (StatusCode::OK, "lb-7f3a.2_x".into()));
        for bad in [Some("has space"), Some("quote\"d"), Some(&"x".repeat(65)), None] {
            let (status, id) = id_of(bad).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(id.len(), 16, "a new id for {bad:?}: {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        let (_, a) = id_of(None).await;
        let (_, b) = id_of(None).await;
        assert_ne!(a, b, "each request gets its own id");
    }
}
