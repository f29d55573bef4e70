//! Cluster views: `GET /v1/cluster/info` (this node, its members, and which
//! settings are replicated and which are node-local) and `GET /v1/cluster/nodes`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;

use super::json;
use super::sys::VERSION;
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::pki::Pki;

/// What every node holds, and what stays on each node (SPEC: data, replicated vs node-local).
const REPLICATED: &[&str] = &[
    "CA issuers (certificate, sealed key, OCSP signer)",
    "profiles",
    "issued certificates and revocations",
    "CRLs",
    "API tokens and roles",
    "cluster settings (publication URL, CRL and OCSP validity)",
    "the internal CA (sealed key)",
    "cluster membership",
];
const NODE_LOCAL: &[&str] = &[
    "node id, node name",
    "listen addresses (API, publication, cluster channel)",
    "the node's TLS certificates and keys (in memory)",
    "data directory and log settings",
    "root of trust: unseal.key and the sealed KEK",
    "Raft timings",
];

fn nodes(pki: &Pki) -> Vec<serde_json::Value> {
    let status = pki.cluster.status();
    pki.cluster
        .members()
        .into_iter()
        .map(|m| {
            json!({
                "id": format!("{:016x}", m.id),
                "name": m.addr.name,
                "api": m.addr.api,
                "cluster": m.addr.cluster,
                "role": if status.leader == Some(m.id) { "leader" } else if m.voter { "voter" } else { "learner" },
            })
        })
        .collect()
}

/// `GET /v1/cluster/info`.
pub async fn info(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let status = pki.cluster.status();
    let reader = pki.reader()?;
    Ok(json(json!({
        "cluster_id": reader.cluster_id()?,
        "node_id": format!("{:016x}", status.id),
        "leader": status.leader.map(|l| format!("{l:016x}")),
        "term": status.term,
        "applied_index": status.last_applied,
        "digest": reader.digest()?,
        "version": VERSION,
        "nodes": nodes(&pki),
        "replicated": REPLICATED,
        "node_local": NODE_LOCAL,
    })))
}

/// `GET /v1/cluster/nodes`.
pub async fn list(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    Ok(json(json!({ "nodes": nodes(&pki) })))
}
