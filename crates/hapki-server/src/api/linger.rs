//! Reading the rest of a refused request's body before the answer goes out.
//! Requests are refused before their body is read when the token or the
//! content type is wrong; the client is then still sending, and over HTTP/2 the
//! server resets the stream as it answers, which some clients (curl 7.88)
//! report as a framing error instead of showing the answer.
//! [`discard`] also serves the 413 answer to an oversized body. Either way a
//! refused client is read for at most the body limit and [`LINGER`].

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
    discard(rest, max_body as u64).await;
    resp
}

/// Reads and throws away what a client still sends of `body`: at most `max_bytes` (the
/// body limit), for at most [`LINGER`], so that a refused client costs the node no more
/// than an accepted one. A client still sending past `max_bytes` is left unread, not cut
/// off, until [`LINGER`] is over: blocked in its write, it reads the answer meanwhile,
/// where a reset connection would show it a broken pipe instead.
pub async fn discard(mut body: Body, max_bytes: u64) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let drain = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > max_bytes {
                return Drained::OverLimit;
            }
        }
        Drained::Ended
    };
    match tokio::time::timeout_at(deadline, drain).await {
        Ok(Drained::Ended) => {}
        Ok(Drained::OverLimit) => {
            // Holding the body keeps the connection open (hyper reads no more of it);
            // dropping it at the deadline closes the connection.
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline).await;
                drop(body);
            });
        }
        Err(_) => tracing::debug!("stopped reading a refused body after {LINGER:?}"),
    }
}

/// How reading a refused body ended.
enum Drained {
    /// The client sent it all (or the connection failed).
    Ended,
    /// The client sent more than the body limit.
    OverLimit,
}
