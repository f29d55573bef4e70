//! The error body every refusal carries: `{"error": {"code", "message"}}`, plus
//! the request id under which the node logged an internal failure.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`invalid_request`, `not_found`, `no_quorum`, ...).
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Set on internal failures: the id the node's log has the details under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Codes a client acts on, not only shows.
pub mod codes {
    /// A node that has no cluster yet: waiting will not change that.
    pub const NOT_CLUSTERED: &str = "not_clustered";
    /// The node's root of trust cannot be reached: it cannot open any private key.
    pub const SEALED: &str = "sealed";
}
