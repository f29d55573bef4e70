//! `/v1/sys`: health (for load balancers, no token) and status (with the state digest).

use serde::{Deserialize, Serialize};

/// The node's place in Raft, part of health and status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RaftView {
    pub node_id: String,
    pub leader: Option<String>,
    pub is_leader: bool,
    pub term: u64,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub version: String,
}

/// What health says, in a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Serves reads and writes.
    Ok,
    /// Serves reads; cannot reach a majority for writes.
    NoQuorum,
    /// Does not serve (not clustered, joining, killed).
    NotReady,
    /// Its root of trust cannot be reached: it opens no key until it unseals.
    Sealed,
}

/// `GET /v1/sys/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    #[serde(flatten)]
    pub raft: RaftView,
    pub status: HealthState,
    pub reason: String,
    /// The node's phase, as `cluster status` labels it.
    pub phase: String,
}

/// The query of `GET /v1/sys/health`, for load balancers that need other codes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// Code when the node serves reads and writes [200].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okcode: Option<u16>,
    /// Code when the node serves reads but cannot reach a quorum for writes [429].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noquorumcode: Option<u16>,
    /// Code when the node does not serve (not clustered, joining, killed) [503].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notreadycode: Option<u16>,
    /// Code when the node is sealed [503].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealedcode: Option<u16>,
}

/// `GET /v1/sys/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    #[serde(flatten)]
    pub raft: RaftView,
    pub digest: String,
    pub certificates: u64,
    pub issuers: usize,
    pub cluster_id: Option<String>,
}
