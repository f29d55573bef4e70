//! Health (for load balancers, no auth) and status (with the state digest).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hapki_api::node_id_hex;
use hapki_api::sys::{Health, HealthQuery, HealthState, RaftView, Status};

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

fn raft_view(cluster: &hapki_cluster::ClusterNode) -> RaftView {
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

/// `GET /v1/sys/health` (no token): 200 when the node serves reads and writes, 429 when it
/// serves reads but cannot reach a quorum, 503 when it is not ready; the body says why.
pub async fn health(
    State(node): State<Arc<crate::lifecycle::Node>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q: HealthQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
        ApiError::bad_request(format!(
            "bad query: {e}; health takes okcode, noquorumcode, notreadycode"
        ))
    })?;
    let code = |given: Option<u16>, default: StatusCode| -> Result<StatusCode, ApiError> {
        match given {
            None => Ok(default),
            Some(c) => StatusCode::from_u16(c)
                .ok()
                .filter(|s| (200..600).contains(&s.as_u16()))
                .ok_or_else(|| ApiError::bad_request(format!("{c} is not an HTTP status code (200-599)"))),
        }
    };
    let phase = node.phase();
    let (status, reason, http) = if phase != crate::lifecycle::Phase::Ready {
        (
            HealthState::NotReady,
            format!("the node is {}", phase.label()),
            code(q.notreadycode, StatusCode::SERVICE_UNAVAILABLE)?,
        )
    } else if !node.cluster.has_quorum() {
        (
            HealthState::NoQuorum,
            "the node serves reads but cannot reach a majority of the cluster for writes".to_string(),
            code(q.noquorumcode, StatusCode::TOO_MANY_REQUESTS)?,
        )
    } else {
        (
            HealthState::Ok,
            "the node serves reads and writes".to_string(),
            code(q.okcode, StatusCode::OK)?,
        )
    };
    let body = Health {
        raft: raft_view(&node.cluster),
        status,
        reason,
        phase: phase.label(),
    };
    Ok((http, json(body)))
}

/// `GET /v1/sys/status`: health plus the state digest and counts.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let reader = pki.reader()?;
    Ok(json(Status {
        raft: raft_view(&pki.cluster),
        digest: reader.digest()?,
        certificates: reader.cert_count()?,
        issuers: reader.issuers()?.len(),
        cluster_id: reader.cluster_id()?,
    }))
}
