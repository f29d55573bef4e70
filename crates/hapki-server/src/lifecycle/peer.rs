//! What members answer other nodes on the cluster channel, beyond Raft: the
//! steps of a join (hello with the KEK, add as learner, promote, abort) and
//! each node's report for `cluster summary`. Every caller here presented a node
//! certificate of this cluster and is not a removed node.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::routing::post;
use axum::{Json, Router};
use hapki_cluster::channel::CallerNode;
use hapki_cluster::{MembershipChange, NodeAddr};
use hapki_store::NodeStanding;

use super::summary::{report, NodeReport};
use super::Node;
use crate::api::VERSION;
use crate::error::ChannelError;

pub use hapki_api::channel::{paths, CrlRequest, Hello, KekTransfer, MembershipOutcome, NodeBuild, Refusal, Welcome};

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
        .route(paths::CRL, post(build_crl))
        .route(paths::BUILD, post(node_build))
        .with_state(node)
}

/// A member that is not ready answers every channel route with this.
fn not_ready() -> ChannelError {
    ChannelError(Refusal::Unavailable(
        "this node is not a ready member; ask another".into(),
    ))
}

/// The major version of a `major.minor.patch` string.
pub fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

async fn hello(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(hello): Json<Hello>,
) -> Result<Json<Welcome>, ChannelError> {
    let pki = node.pki().ok_or_else(not_ready)?;
    if major(&hello.version) != major(VERSION) {
        tracing::warn!(
            "refused node {caller:016x} at join: its version {} and this cluster's {VERSION} differ in major version",
            hello.version
        );
        return Err(ChannelError(Refusal::Conflict(format!(
            "the joining node runs hapki {} and the cluster runs {VERSION}: major versions must match; install a {}.x release on the joining node",
            hello.version,
            major(VERSION)
        ))));
    }
    let reader = pki.reader()?;
    let state_format = reader.state_format()?;
    if hello.max_format < state_format {
        return Err(ChannelError(Refusal::Conflict(format!(
            "the cluster is at state format {state_format}, and the joining node (hapki {}) applies up to \
             format {}: install hapki {} or later on it",
            hello.version,
            hello.max_format,
            hapki_store::format::first_release(state_format)
        ))));
    }
    let admitted = matches!(reader.node(caller)?, Some(r) if r.standing == NodeStanding::Admitted);
    if !admitted {
        return Err(ChannelError(Refusal::Forbidden(format!(
            "node {caller:016x} was not admitted; sign its CSR with `hapki cluster nodes create --csr FILE`"
        ))));
    }
    let settings = reader.settings()?;
    tracing::info!("node {caller:016x} ({}) is joining", hello.addr);
    Ok(Json(Welcome {
        cluster_id: reader.cluster_id()?.unwrap_or_default(),
        kek: hex::encode(
            pki.keyring
                .kek_for_member(pki.keyring.current())
                .expect("the current KEK is held"),
        ),
        kek_id: pki.keyring.current(),
        version: VERSION.to_string(),
        voters_target: settings.voters_target,
    }))
}

async fn change(node: &Node, change: MembershipChange) -> Result<Json<MembershipOutcome>, ChannelError> {
    let outcome = node
        .cluster
        .change_membership(&hapki_cluster::Origin::Node, change)
        .await?;
    Ok(Json(outcome))
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
) -> Result<Json<MembershipOutcome>, ChannelError> {
    change(&node, MembershipChange::AddLearner { id: caller, addr }).await
}

async fn promote(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
) -> Result<Json<MembershipOutcome>, ChannelError> {
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

async fn abort(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
) -> Result<Json<MembershipOutcome>, ChannelError> {
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
async fn build_crl(State(node): State<Arc<Node>>, Json(req): Json<CrlRequest>) -> Result<Json<u64>, ChannelError> {
    let pki = node.pki().ok_or_else(not_ready)?;
    if !node.cluster.status().is_leader {
        return Err(ChannelError(Refusal::Unavailable(
            "this node is no longer the leader; retry".into(),
        )));
    }
    Ok(Json(pki.refresh_crl(&req.issuer_id, req.needed_index).await?))
}

/// Keeps the next KEK of a rotation that another member started; it seals nothing until the
/// rotation's command is applied.
async fn kek_offer(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(offer): Json<KekTransfer>,
) -> Result<Json<()>, ChannelError> {
    let pki = node.pki().ok_or_else(not_ready)?;
    let kek = offer
        .bytes()
        .ok_or_else(|| ChannelError(Refusal::Invalid("the KEK is not 32 bytes of hex".into())))?;
    pki.keyring
        .add(offer.id, kek)
        .map_err(|e| ChannelError(Refusal::Conflict(e.to_string())))?;
    tracing::info!("took KEK {} from node {caller:016x} for a rotation", offer.id);
    Ok(Json(()))
}

/// Hands a KEK this node holds to a member that lacks it (one that was away during a rotation).
async fn kek_fetch(
    State(node): State<Arc<Node>>,
    Extension(CallerNode(caller)): Extension<CallerNode>,
    Json(id): Json<u32>,
) -> Result<Json<KekTransfer>, ChannelError> {
    let pki = node.pki().ok_or_else(not_ready)?;
    let kek = pki
        .keyring
        .kek_for_member(id)
        .ok_or_else(|| ChannelError(Refusal::NotFound(format!("this node does not hold KEK {id}"))))?;
    tracing::info!("handed KEK {id} to node {caller:016x}");
    Ok(Json(KekTransfer::new(id, &kek)))
}

/// This node's build, for the feature gates of the member that asks.
async fn node_build() -> Json<NodeBuild> {
    Json(NodeBuild {
        version: VERSION.to_string(),
        max_format: hapki_store::format::MAX,
    })
}
