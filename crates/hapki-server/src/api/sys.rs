//! Status (with the state digest) and the version every node reports. Health, which
//! answers for the node in every phase, is the lifecycle's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use hapki_api::node_id_hex;
use hapki_api::sys::{RaftView, Status};

use super::json;
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::pki::Pki;

/// The version every node reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version this node announces when it joins. Debug builds take
/// `HAPKI_TEST_ANNOUNCED_VERSION` instead, so tests can show that a node of another
/// major version is refused without building a second release.
pub fn version() -> String {
    if cfg!(debug_assertions) {
        if let Ok(v) = std::env::var("HAPKI_TEST_ANNOUNCED_VERSION") {
            return v;
        }
    }
    VERSION.to_string()
}

pub fn raft_view(cluster: &dyn crate::replica::Replica) -> RaftView {
    let s = cluster.status();
    RaftView {
        node_id: node_id_hex(s.id),
        leader: s.leader.map(node_id_hex),
        is_leader: s.is_leader,
        term: s.term,
        applied_index: s.last_applied,
        last_log_index: s.last_log_index,
        version: VERSION.to_string(),
    }
}

/// `GET /v1/sys/status`: health plus the state digest and counts.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let reader = pki.reader()?;
    Ok(json(Status {
        raft: raft_view(pki.cluster.as_ref()),
        digest: reader.digest()?,
        certificates: reader.cert_count()?,
        issuers: reader.issuers()?.len(),
        cluster_id: reader.cluster_id()?,
    }))
}
