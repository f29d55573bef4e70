//! Reading the rest of a refused request's body before the answer goes out.
//! Requests are refused before their body is read when the token or the
//! content type is wrong; the client is then still sending, and over HTTP/2 the
//! server resets the stream as it answers, which some clients (curl 7.88)
//! report as a framing error instead of showing the answer.
//! [`discard`] also serves the 413 answer to an oversized body.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Frame, SizeHint};

/// Longest time spent reading what a refused request still sends.
const LINGER: Duration = Duration::from_secs(2);

/// A request body the handler reads through while this layer keeps a handle on it.
struct Shared(Arc<Mutex<Body>>);

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        poll_shared(&self.0, cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().map(|b| b.is_end_stream()).unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().map(|b| b.size_hint()).unwrap_or_default()
    }
}

fn poll_shared(body: &Mutex<Body>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
    match body.lock() {
        Ok(mut b) => Pin::new(&mut *b).poll_frame(cx),
        Err(_) => Poll::Ready(None),
    }
}

/// Passes the request on; when the answer is a refusal and the body was left unread,
/// reads and discards up to `max_body` bytes of it (for at most [`LINGER`]) first.
/// 413 answers are left alone: their layer has decided how much to read.
pub async fn finish_body(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = Arc::new(Mutex::new(body));
    let resp = next
        .run(Request::from_parts(parts, Body::new(Shared(body.clone()))))
        .await;
    let status = resp.status();
    if status.is_success() || status == StatusCode::PAYLOAD_TOO_LARGE {
        return resp;
    }
    let rest = match body.lock() {
        Ok(mut b) => std::mem::take(&mut *b),
        Err(_) => return resp,
    };
    discard(rest, max_body as u64, LINGER).await;
    resp
}

/// Reads and throws away what a client still sends of `body`: at most `max_bytes`,
/// for at most `within`.
pub async fn discard(mut body: Body, max_bytes: u64, within: Duration) {
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > max_bytes {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, drain).await;
}
