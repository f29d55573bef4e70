//! What members answer other nodes on the cluster channel, beyond Raft: the
//! steps of a join (hello with the KEK, add as learner, promote, abort) and
//! each node's report for `cluster summary`. Every caller here presented a node
//! certificate of this cluster and is not a removed node.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hapki_cluster::channel::CallerNode;
use hapki_cluster::{MembershipChange, NodeAddr};
use hapki_store::NodeStanding;
use serde::{Deserialize, Serialize};

use super::summary::{report, NodeReport};
use super::Node;
use crate::api::VERSION;

/// Paths of the lifecycle routes on the cluster channel.
pub mod paths {
    pub const HELLO: &str = "/cluster/join/hello";
    pub const ADD: &str = "/cluster/join/add";
    pub const PROMOTE: &str = "/cluster/join/promote";
    pub const ABORT: &str = "/cluster/join/abort";
    pub const REPORT: &str = "/cluster/report";
    /// A member hands out the next KEK of a rotation.
    pub const KEK_OFFER: &str = "/cluster/kek/offer";
    /// A member that lacks the state's KEK asks another for it.
    pub const KEK_FETCH: &str = "/cluster/kek/fetch";
}

/// A KEK handed between members, inside the mutual-TLS channel only.
#[derive(Serialize, Deserialize)]
pub struct KekTransfer {
    pub id: u32,
    /// The KEK, hex.
    pub kek: String,
}

impl KekTransfer {
    pub fn new(id: u32, kek: &[u8; 32]) -> KekTransfer {
        KekTransfer {
            id,
            kek: hex::encode(kek),
        }
    }

    /// The KEK's bytes, if well formed.
    pub fn bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.kek).ok().and_then(|k| k.try_into().ok())
    }
}

/// A joining node introduces itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub addr: NodeAddr,
    pub version: String,
}

/// What a joining node needs before it can take part: the cluster's id and KEK.
#[derive(Serialize, Deserialize)]
pub struct Welcome {
    pub cluster_id: String,
    /// The cluster KEK, hex; it travels only inside the mutual-TLS channel.
    pub kek: String,
    /// Its number.
    pub kek_id: u32,
    pub version: String,
    pub voters_target: u8,
}

/// The routes, served next to Raft's on the channel.
pub fn routes(node: Arc<Node>) -> Router {
    Router::new()
        .route(paths::HELLO, post(hello))
        .route(paths::ADD, post(add))
        .route(paths::PROMOTE, post(promote))
        .route(paths::ABORT, post(abort))
        .route(paths::REPORT, post(node_report))
        .route(paths::KEK_OFFER, post(kek_offer))
        .route(paths::KEK_FETCH, post(kek_fetch))
        .route(crate::pki::CRL_PATH, post(build_crl))
        .with_state(node)
}

fn refuse(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// The major version of a `major.minor.patch` string.
pub fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

async fn hello(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(hello): Json<Hello>,
) -> Response {
    let Some(pki) = node.pki() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is not a ready member; ask another",
        );
    };
    if major(&hello.version) != major(VERSION) {
        tracing::warn!(
            "refused node {caller:016x} at join: its version {} and this cluster's {VERSION} differ in major version",
            hello.version
        );
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "the joining node runs hapki {} and the cluster runs {VERSION}: major versions must match; install a {}.x release on the joining node",
                hello.version,
                major(VERSION)
            ),
        );
    }
    let reader = match pki.reader() {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.message),
    };
    let admitted = matches!(reader.node(caller), Ok(Some(r)) if r.standing == NodeStanding::Admitted);
    if !admitted {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("node {caller:016x} was not admitted; sign its CSR with `hapki cluster nodes create --csr FILE`"),
        );
    }
    let settings = match reader.settings() {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!("node {caller:016x} ({}) is joining", hello.addr);
    Json(Welcome {
        cluster_id: reader.cluster_id().ok().flatten().unwrap_or_default(),
        kek: hex::encode(
            pki.keyring
                .kek_for_member(pki.keyring.current())
                .expect("the current KEK is held"),
        ),
        kek_id: pki.keyring.current(),
        version: VERSION.to_string(),
        voters_target: settings.voters_target,
    })
    .into_response()
}

async fn change(node: &Node, change: MembershipChange) -> Response {
    match node
        .cluster
        .change_membership(&hapki_cluster::Origin::Node, change)
        .await
    {
        Ok(outcome) => Json(outcome).into_response(),
        Err(hapki_cluster::ProposeError::Refused(m)) => refuse(StatusCode::CONFLICT, m),
        Err(hapki_cluster::ProposeError::Forbidden(m)) => refuse(StatusCode::FORBIDDEN, m),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn voters_target(node: &Node) -> u8 {
    node.pki()
        .and_then(|p| p.reader().ok())
        .and_then(|r| r.settings().ok())
        .map(|s| s.voters_target)
        .unwrap_or(3)
}

async fn add(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(addr): Json<NodeAddr>,
) -> Response {
    change(&node, MembershipChange::AddLearner { id: caller, addr }).await
}

async fn promote(State(node): State<Arc<Node>>, Extension(CallerNode(caller)): Extension<CallerNode>) -> Response {
    let voters_target = voters_target(&node);
    change(
        &node,
        MembershipChange::Promote {
            id: caller,
            voters_target,
        },
    )
    .await
}

async fn abort(State(node): State<Arc<Node>>, Extension(CallerNode(caller)): Extension<CallerNode>) -> Response {
    let voters_target = voters_target(&node);
    tracing::warn!("node {caller:016x} gave up joining; removing it");
    change(
        &node,
        MembershipChange::Remove {
            id: caller,
            voters_target,
        },
    )
    .await
}

async fn node_report(State(node): State<Arc<Node>>) -> Json<NodeReport> {
    Json(report(&node))
}

/// The CRL owner builds a CRL for a follower that took a revocation.
async fn build_crl(State(node): State<Arc<Node>>, Json(req): Json<crate::pki::CrlRequest>) -> Response {
    let Some(pki) = node.pki() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "this node is not a ready member");
    };
    if !node.cluster.status().is_leader {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node is no longer the leader; retry",
        );
    }
    match pki.refresh_crl(&req.issuer_id, req.needed_index).await {
        Ok(number) => Json(number).into_response(),
        Err(e) => refuse(e.status, e.message),
    }
}

/// Keeps the next KEK of a rotation that another member started; it seals nothing until the
/// rotation's command is applied.
async fn kek_offer(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(offer): Json<KekTransfer>,
) -> Response {
    let Some(pki) = node.pki() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "this node is not a ready member");
    };
    let Some(kek) = offer.bytes() else {
        return refuse(StatusCode::BAD_REQUEST, "the KEK is not 32 bytes of hex");
    };
    match pki.keyring.add(offer.id, kek) {
        Ok(()) => {
            tracing::info!("took KEK {} from node {caller:016x} for a rotation", offer.id);
            Json(()).into_response()
        }
        Err(e) => refuse(StatusCode::CONFLICT, e.to_string()),
    }
}

/// Hands a KEK this node holds to a member that lacks it (one that was away during a rotation).
async fn kek_fetch(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(id): Json<u32>,
) -> Response {
    let Some(pki) = node.pki() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "this node is not a ready member");
    };
    match pki.keyring.kek_for_member(id) {
        Some(kek) => {
            tracing::info!("handed KEK {id} to node {caller:016x}");
            Json(KekTransfer::new(id, &kek)).into_response()
        }
        None => refuse(StatusCode::NOT_FOUND, format!("this node does not hold KEK {id}")),
    }
}
