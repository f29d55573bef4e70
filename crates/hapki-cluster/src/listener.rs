//! Serving HTTP connections within limits, for every listener of a node (the
//! HTTPS API, plain-HTTP publication, the cluster channel): a cap on open
//! connections, and deadlines for a request's headers, for an idle connection
//! and for a request's answer. Without them a client that trickles its headers
//! or keeps idle connections open holds a task and a file descriptor for as long
//! as it likes, and enough of them starve every listener of the process.
//! It names nothing of Raft: the server's listeners use it as the channel does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// What a listener allows: how many connections, and how long each may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; a connection over the cap is accepted and closed at once.
    pub max_connections: usize,
    /// Time a client has to send its first request's headers once the connection is up
    /// (after the TLS handshake); over HTTP/1.1 also each later request's headers, counted
    /// from the end of the answer before.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in progress once it has sent one.
    pub idle_timeout: Duration,
    /// Time from a request's headers to its answer; a request that takes longer is
    /// answered by the listener's own timeout answer.
    pub request_timeout: Duration,
}

/// Connections the cluster channel keeps open at most. A cluster has a handful of
/// nodes, each keeping one HTTP/2 connection to each peer (plus one while it joins);
/// its own cap keeps a flood on another listener from starving it, and this one
/// from starving them.
pub const CHANNEL_MAX_CONNECTIONS: usize = 256;

/// HTTP/2 pings on an open connection: a peer that leaves one unanswered this long is gone.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection closed for a deadline may take to say goodbye (an HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// At most one log line per this interval about refused connections or failed accepts.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A listening socket with its cap on open connections.
pub struct Listener {
    socket: TcpListener,
    /// The listener's name in log lines.
    name: &'static str,
    max: usize,
    permits: Arc<Semaphore>,
    refused: Throttle,
    failed: Throttle,
}

impl Listener {
    pub fn new(socket: TcpListener, name: &'static str, max_connections: usize) -> Self {
        Listener {
            socket,
            name,
            max: max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            refused: Throttle::default(),
            failed: Throttle::default(),
        }
    }

    /// The next connection that fits under the cap, with the permit that counts it: hold
    /// the permit until the connection ends. A connection over the cap is closed as soon
    /// as it is accepted, so a flood costs one descriptor for a moment, not one each.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        loop {
            let (tcp, peer) = match self.socket.accept().await {
                Ok(c) => c,
                Err(e) => {
                    if let Some(n) = self.failed.note() {
                        tracing::warn!("{}: accept failed ({n} times since the last report): {e}", self.name);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => return (tcp, peer, permit),
                Err(_) => {
                    drop(tcp);
                    if let Some(n) = self.refused.note() {
                        tracing::warn!(
                            "{}: refused {n} connection(s) since the last report: {} are open, the most allowed",
                            self.name,
                            self.max
                        );
                    }
                }
            }
        }
    }
}

/// Counts events and says when one is worth a log line: the first, then at most one per
/// [`WARN_EVERY`], each reporting how many happened since the last.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Serves HTTP/1.1 and HTTP/2 on `io` (a connection that is up, TLS included) with
/// `service` until the client leaves or a deadline of `limits` passes. `too_slow(timeout)`
/// is the answer to a request still unanswered after `limits.request_timeout`; the
/// handler is dropped then. Deadlines that close the connection come back as errors.
pub async fn serve_connection<IO, S>(
    io: IO,
    service: S,
    limits: &Limits,
    too_slow: fn(Duration) -> Response<Body>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let (activity, watch) = watch::channel(Activity {
        in_flight: 0,
        since: Instant::now(),
        served: false,
    });
    let activity = Arc::new(activity);
    let request_timeout = limits.request_timeout;
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let counted = InFlight::begin(activity.clone());
        let answer = service.clone().oneshot(req);
        async move {
            let resp = match tokio::time::timeout(request_timeout, answer).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => too_slow(request_timeout),
            };
            // The request counts until its answer is sent: the body holds the count.
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Counted {
                    body,
                    _counted: counted,
                })
            }))
        }
    });
    let builder = builder(limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let why = tokio::select! {
        ended = conn.as_mut() => return ended,
        why = quiet_too_long(watch, *limits) => why,
    };
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await.is_err() {
        tracing::debug!("a connection closed for a deadline did not finish within {CLOSE_GRACE:?}");
    }
    Err(why.into())
}

/// hyper with its timer, so that HTTP/1.1 header reads have a deadline and HTTP/2
/// connections are pinged.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// What a connection is doing, for its deadlines.
#[derive(Clone, Copy)]
struct Activity {
    /// Requests whose answer is not sent yet.
    in_flight: usize,
    /// When the connection came up, or its last answer was sent.
    since: Instant,
    /// Whether any request arrived yet.
    served: bool,
}

/// Waits until the connection has had no request in progress for too long: the header
/// timeout before its first request (which covers a client that sends nothing or
/// trickles, over HTTP/2 or before hyper knows the protocol), the idle timeout after.
async fn quiet_too_long(mut watch: watch::Receiver<Activity>, limits: Limits) -> String {
    loop {
        let seen = *watch.borrow_and_update();
        let deadline = (seen.in_flight == 0).then(|| match seen.served {
            false => (seen.since + limits.header_timeout, "no request headers"),
            true => (seen.since + limits.idle_timeout, "no new request"),
        });
        let changed = async {
            if watch.changed().await.is_err() {
                // The service is gone, so is the connection: the other branch ends.
                std::future::pending::<()>().await;
            }
        };
        match deadline {
            None => changed.await,
            Some((at, what)) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {
                        let waited = at.duration_since(seen.since);
                        return format!("closed: {what} within {} s", waited.as_secs_f32());
                    }
                    _ = changed => {}
                }
            }
        }
    }
}

/// One request in progress on a connection, from its headers to the end of its answer.
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn begin(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|a| {
            a.in_flight += 1;
            a.served = true;
        });
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.in_flight -= 1;
            a.since = Instant::now();
        });
    }
}

/// An answer's body that keeps its request counted until hyper has sent it (or dropped it).
struct Counted {
    body: Body,
    _counted: InFlight,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reported_once_per_interval_with_their_count() {
        let mut t = Throttle::default();
        assert_eq!(t.note(), Some(1));
        assert_eq!(t.note(), None);
        assert_eq!(t.note(), None);
        t.last = Some(Instant::now() - WARN_EVERY);
        assert_eq!(t.note(), Some(3));
    }

    #[tokio::test]
    async fn a_request_that_outlives_the_request_timeout_gets_the_timeout_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limits = Limits {
            max_connections: 1,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(200),
        };
        let slow = tower::service_fn(|_req: Request<Incoming>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Infallible>(Response::new(Body::from("too late")))
        });
        let too_slow = |_| {
            let mut resp = Response::new(Body::from("timeout"));
            *resp.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
            resp
        };
        let (mut client, server) = tokio::io::duplex(4096);
        let served = tokio::spawn(async move { serve_connection(server, slow, &limits, too_slow).await });
        let start = Instant::now();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write the request");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read the answer");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.ends_with("timeout"), "{answer}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        served
            .await
            .expect("the connection task")
            .expect("the connection ends cleanly");
    }
}
