//! Health (for load balancers, no auth) and status (with the state digest).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

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

fn node_view(cluster: &hapki_cluster::ClusterNode) -> serde_json::Value {
    let s = cluster.status();
    json!({
        "node_id": format!("{:016x}", s.id),
        "leader": s.leader.map(|l| format!("{l:016x}")),
        "is_leader": s.is_leader,
        "term": s.term,
        "applied_index": s.last_applied,
        "last_log_index": s.last_log_index,
        "version": VERSION,
    })
}

/// Query flags of `GET /v1/sys/health`, for load balancers that need other codes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthQuery {
    /// Code when the node serves reads and writes [200].
    okcode: Option<u16>,
    /// Code when the node serves reads but cannot reach a quorum for writes [429].
    noquorumcode: Option<u16>,
    /// Code when the node does not serve (not clustered, joining, killed) [503].
    notreadycode: Option<u16>,
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
            "not_ready",
            format!("the node is {}", phase.label()),
            code(q.notreadycode, StatusCode::SERVICE_UNAVAILABLE)?,
        )
    } else if !node.cluster.has_quorum() {
        (
            "no_quorum",
            "the node serves reads but cannot reach a majority of the cluster for writes".to_string(),
            code(q.noquorumcode, StatusCode::TOO_MANY_REQUESTS)?,
        )
    } else {
        (
            "ok",
            "the node serves reads and writes".to_string(),
            code(q.okcode, StatusCode::OK)?,
        )
    };
    let mut body = node_view(&node.cluster);
    body["status"] = json!(status);
    body["reason"] = json!(reason);
    body["phase"] = json!(phase.label());
    Ok((http, json(body)))
}

/// `GET /v1/sys/status`: health plus the state digest and counts.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let reader = pki.reader()?;
    let mut body = node_view(&pki.cluster);
    body["digest"] = json!(reader.digest()?);
    body["certificates"] = json!(reader.cert_count()?);
    body["issuers"] = json!(reader.issuers()?.len());
    body["cluster_id"] = json!(reader.cluster_id()?);
    Ok(json(body))
}
