//! The channel's server: accepts mutual-TLS connections, learns the caller's
//! node id from its certificate, refuses callers that are not members (or
//! joining), and hands Raft RPCs to openraft. Bodies are bincode.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hapki_store::{NodeStanding, Store};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::paths;
use super::tls::{node_id_from_cert, NodeIdentity};
use crate::contact::Contacts;
use crate::membership::{self, MembershipChange, MembershipOutcome};
use crate::proposer::Proposer;
use crate::types::{NodeId, Raft};
use crate::ProposeError;

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
}

/// The node id of the peer that made a request, from its certificate; routes
/// added by [`serve`]'s caller read it as a request extension.
#[derive(Clone, Copy, Debug)]
pub struct CallerNode(pub NodeId);

impl ChannelState {
    /// A caller with a certificate of this cluster's CA may call unless it was removed, when it is
    /// a member or was admitted to join, or when this node knows no membership yet (it is joining
    /// and about to hear from the leader).
    fn allowed(&self, caller: NodeId) -> Result<(), String> {
        let record = self
            .store
            .reader()
            .and_then(|r| r.node(caller))
            .map_err(|e| format!("cannot read the node list: {e}"))?;
        match record.map(|r| r.standing) {
            Some(NodeStanding::Removed) => return Err(format!("node {caller:016x} was removed from this cluster")),
            Some(NodeStanding::Admitted) => return Ok(()),
            None => {}
        }
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let mut nodes = membership.nodes().peekable();
        if nodes.peek().is_none() || nodes.any(|(id, _)| *id == caller) {
            Ok(())
        } else {
            Err(format!("node {caller:016x} is not a member of this cluster"))
        }
    }
}

/// Serves the cluster channel on `listener` until the task is dropped.
///
/// `extra` adds routes of the caller's own (they find the calling node in a
/// [`CallerNode`] extension).
pub async fn serve(
    listener: TcpListener,
    identity: NodeIdentity,
    state: ChannelState,
    extra: Router,
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
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cluster channel: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router, state) = (acceptor.clone(), router.clone(), state.clone());
        tokio::spawn(async move {
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
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| node_id_from_cert(c.as_ref()));
            let Some(caller) = caller else {
                tracing::warn!("cluster channel: refused {peer}: its certificate names no node");
                return;
            };
            let service = tower::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let router = router.clone();
                let state = state.clone();
                async move {
                    if let Err(why) = state.allowed(caller) {
                        tracing::warn!("cluster channel: refused {peer}: {why}");
                        return Ok::<_, std::convert::Infallible>((StatusCode::FORBIDDEN, why).into_response());
                    }
                    state.contacts.touch(caller);
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(CallerNode(caller));
                    router.oneshot(req).await
                }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await
            {
                tracing::debug!("cluster channel: connection from {peer} ended: {e}");
            }
        });
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    bincode::deserialize(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable RPC body: {e}")).into_response())
}

fn encode<T: Serialize>(value: &T) -> Response {
    match bincode::serialize(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
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

async fn snapshot(State(s): State<ChannelState>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => encode(&s.raft.install_snapshot(rpc).await),
        Err(r) => r,
    }
}

async fn propose(State(s): State<ChannelState>, body: Bytes) -> Response {
    let command: hapki_store::Command = match decode(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Only the leader's own batcher proposes; a forwarded command is never forwarded again.
    let result: Result<crate::proposer::Committed, ProposeError> = s.proposer.propose(command).await;
    encode(&result)
}

async fn read_index(State(s): State<ChannelState>) -> Response {
    let result: Result<u64, ProposeError> = match s.raft.ensure_linearizable().await {
        Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
        Err(e) => Err(ProposeError::from_read(e)),
    };
    encode(&result)
}

async fn membership(State(s): State<ChannelState>, body: Bytes) -> Response {
    let change: MembershipChange = match decode(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result: Result<MembershipOutcome, ProposeError> = membership::apply(&s.raft, change).await;
    encode(&result)
}
