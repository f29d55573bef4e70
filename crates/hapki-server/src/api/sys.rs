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

fn node_view(pki: &Pki) -> serde_json::Value {
    let s = pki.cluster.status();
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

/// `GET /v1/sys/health`: 200 when the node serves reads and writes, 503 otherwise.
pub async fn health(State(pki): State<Arc<Pki>>) -> impl IntoResponse {
    let mut body = node_view(&pki);
    let ready = pki.cluster.status().leader.is_some();
    body["status"] = json!(if ready { "ok" } else { "no_leader" });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, json(body))
}

/// `GET /v1/sys/status`: health plus the state digest and counts.
pub async fn status(State(pki): State<Arc<Pki>>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.may(Action::ReadStatus)?;
    let reader = pki.reader()?;
    let mut body = node_view(&pki);
    body["digest"] = json!(reader.digest()?);
    body["certificates"] = json!(reader.cert_count()?);
    body["issuers"] = json!(reader.issuers()?.len());
    body["cluster_id"] = json!(reader.cluster_id()?);
    Ok(json(body))
}
