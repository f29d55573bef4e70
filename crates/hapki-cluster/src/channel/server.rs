//! The channel's server: accepts mutual-TLS connections, learns the caller's
//! node id from its certificate, refuses callers that are not members (or
//! joining) and callers whose key is not the one recorded for their id, and
//! hands Raft RPCs to openraft. A forwarded write is proposed only after the
//! node's authorizer accepts its origin. Bodies are [`hapki_store::codec`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hapki_api::channel::Refusal;
use hapki_store::{codec, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::paths;
use super::tls::{channel_key_of, node_id_from_cert, NodeIdentity};
use crate::contact::Contacts;
use crate::listener::{serve_connection, Limits, Listener, CHANNEL_MAX_CONNECTIONS};
use crate::membership::{self, MembershipOutcome};
use crate::origin::{ForwardedChange, ForwardedCommand, Guard};
use crate::proposer::Proposer;
use crate::types::{NodeId, Raft};
use crate::ProposeError;

/// The channel's limits. The header deadline is the API's default; the idle one outlasts
/// the 60 s for which the channel's client keeps an idle connection (client.rs), so this
/// server never closes one the client is about to reuse; a request gets ten minutes, as
/// RPCs carry proposals that wait for a commit and whole snapshots (which a body limit of
/// 64 MiB does not cover: their route reads the body as a stream).
pub const CHANNEL_LIMITS: Limits = Limits {
    max_connections: CHANNEL_MAX_CONNECTIONS,
    header_timeout: Duration::from_secs(10),
    idle_timeout: Duration::from_secs(120),
    request_timeout: Duration::from_secs(600),
};

/// What the channel server needs.
#[derive(Clone)]
pub struct ChannelState {
    pub raft: Raft,
    /// The leader's batcher, for commands forwarded by followers.
    pub proposer: Proposer,
    /// The replica, for the nodes the cluster admitted or removed.
    pub store: Store,
    /// When each peer was last heard from.
    pub contacts: Contacts,
    /// Decides whether a forwarded write may be proposed.
    pub guard: Guard,
    /// Where a snapshot streamed by the leader is received and installed.
    pub sm: crate::StateMachine,
}

/// The node id of the peer that made a request, from its certificate; routes
/// added by [`serve`]'s caller read it as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct CallerNode(pub NodeId);

impl ChannelState {
    /// Whether a caller naming `caller` with the channel key `channel_key` may call (see
    /// [`super::pins`]).
    fn allowed(&self, caller: NodeId, channel_key: &[u8; 32]) -> Result<(), Refusal> {
        super::pins::check(&self.store, &self.raft, caller, channel_key)
    }
}

/// Serves the cluster channel on `listener` within `limits` (see [`CHANNEL_LIMITS`]) until the
/// task is dropped.
///
/// `extra` adds routes of the caller's own (they find the calling node in a
/// [`CallerNode`] extension).
pub async fn serve(
    listener: TcpListener,
    identity: NodeIdentity,
    state: ChannelState,
    extra: Router,
    limits: Limits,
) -> Result<(), String> {
    let acceptor = TlsAcceptor::from(identity.server_config()?);
    let router = Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::PROPOSE, post(propose))
        .route(paths::READ_INDEX, post(read_index))
        .route(paths::MEMBERSHIP, post(membership))
        .with_state(state.clone())
        .merge(extra)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
    let mut listener = Listener::new(listener, "cluster channel", limits.max_connections);
    loop {
        let (tcp, peer, permit) = listener.accept().await;
        let (acceptor, router, state) = (acceptor.clone(), router.clone(), state.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!("cluster channel: refused {peer}: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("cluster channel: refused {peer}: TLS handshake timed out");
                    return;
                }
            };
            let presented = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let caller = presented.and_then(|c| node_id_from_cert(c.as_ref()));
            let key = presented.and_then(|c| channel_key_of(c.as_ref()));
            let (Some(caller), Some(key)) = (caller, key) else {
                tracing::warn!("cluster channel: refused {peer}: its certificate names no node");
                return;
            };
            let service = tower::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let router = router.clone();
                let state = state.clone();
                async move {
                    if let Err(why) = state.allowed(caller, &key) {
                        tracing::warn!("cluster channel: refused {peer}: {why}");
                        let answer = (StatusCode::FORBIDDEN, axum::Json(why));
                        return Ok::<_, std::convert::Infallible>(answer.into_response());
                    }
                    state.contacts.touch(caller);
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(CallerNode(caller));
                    router.oneshot(req).await
                }
            });
            if let Err(e) = serve_connection(tls, service, &limits, too_slow).await {
                tracing::debug!("cluster channel: connection from {peer} ended: {e}");
            }
        });
    }
}

/// The answer to a request still unanswered after the request timeout.
fn too_slow(timeout: Duration) -> Response {
    let why = format!("the request did not finish within {} s", timeout.as_secs());
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    codec::decode(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable RPC body: {e}")).into_response())
}

fn encode<T: Serialize>(value: &T) -> Response {
    (StatusCode::OK, codec::encode(value)).into_response()
}

async fn append(State(s): State<ChannelState>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => encode(&s.raft.append_entries(rpc).await),
        Err(r) => r,
    }
}

async fn vote(State(s): State<ChannelState>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => encode(&s.raft.vote(rpc).await),
        Err(r) => r,
    }
}

/// A snapshot streamed by the leader: received into a file, then installed by openraft
/// (which checks the leader's vote first).
async fn snapshot(State(s): State<ChannelState>, body: axum::body::Body) -> Response {
    let path = s.sm.incoming_path();
    let progress = s.sm.receiving();
    progress.start();
    let answer = match crate::snapshot::receive(progress, &path, body).await {
        Ok((vote, meta)) => {
            progress.installing();
            let snapshot = openraft::storage::Snapshot {
                meta,
                snapshot: Box::new(crate::snapshot::SnapshotData::Received(crate::snapshot::ReceivedFile(
                    path,
                ))),
            };
            // Installed or refused (an older vote), the file goes with the snapshot.
            encode(&s.raft.install_full_snapshot(vote, snapshot).await)
        }
        Err(why) => (StatusCode::BAD_REQUEST, format!("snapshot not received: {why}")).into_response(),
    };
    progress.finish();
    answer
}

async fn propose(
    State(s): State<ChannelState>,
    Extension(CallerNode(from)): Extension<CallerNode>,
    body: Bytes,
) -> Response {
    let forwarded: ForwardedCommand = match decode(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(why) = s.guard.command(from, &forwarded.origin, &forwarded.command) {
        tracing::warn!(
            "cluster channel: refused a forwarded {} from node {from:016x}: {why}",
            forwarded.command.kind()
        );
        return encode(&Err::<crate::proposer::Committed, _>(ProposeError::Forbidden(why)));
    }
    // Only the leader's own batcher proposes; a forwarded command is never forwarded again.
    let result: Result<crate::proposer::Committed, ProposeError> = s.proposer.propose(forwarded.command).await;
    encode(&result)
}

async fn read_index(State(s): State<ChannelState>) -> Response {
    let result: Result<u64, ProposeError> = match s.raft.ensure_linearizable().await {
        Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
        Err(e) => Err(ProposeError::from_read(e)),
    };
    encode(&result)
}

async fn membership(
    State(s): State<ChannelState>,
    Extension(CallerNode(from)): Extension<CallerNode>,
    body: Bytes,
) -> Response {
    let forwarded: ForwardedChange = match decode(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(why) = s.guard.membership(from, &forwarded.origin, &forwarded.change) {
        tracing::warn!("cluster channel: refused a forwarded membership change from node {from:016x}: {why}");
        return encode(&Err::<MembershipOutcome, _>(ProposeError::Forbidden(why)));
    }
    let result: Result<MembershipOutcome, ProposeError> = membership::apply(&s.raft, forwarded.change).await;
    encode(&result)
}
