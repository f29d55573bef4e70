//! The only crate that names openraft: the type configuration, the redb log
//! store, the state-machine adapter over hapki-store, group commit of proposals,
//! and the node that ties them together.

// openraft's StorageError is large and its signatures are fixed by the traits we implement.
#![allow(clippy::result_large_err)]

pub mod channel;
mod contact;
pub mod listener;
mod log_store;
pub mod membership;
mod node;
pub mod origin;
mod proposer;
pub mod restore;
pub mod snapshot;
mod state_machine;
pub mod types;
pub mod upgrade;

pub use contact::Contacts;
pub use log_store::LogStore;
pub use membership::{MembershipChange, MembershipOutcome, MAX_NODES};
pub use node::{ClusterNode, Member, RaftObserved, RaftSettings, RaftStatus};
pub use origin::{Authorizer, Origin};
pub use state_machine::{Applied, StateMachine};
pub use types::{NodeAddr, NodeId};

/// Why a proposal did not produce a result.
#[derive(Clone, Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        leader: Option<NodeId>,
        leader_api: Option<String>,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("the leader cannot be reached: {0}")]
    LeaderUnreachable(String),
    /// The leader refused the change; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// This node is cut off from a majority: it serves reads, not writes.
    #[error("{0}")]
    NoQuorum(String),
    /// The leader refused a forwarded write: its origin may not make it.
    #[error("{0}")]
    Forbidden(String),
    /// The cluster removed this node: members refuse it on the channel.
    #[error("{0}")]
    Removed(String),
}

impl ProposeError {
    pub(crate) fn from_read(
        e: openraft::error::RaftError<NodeId, openraft::error::CheckIsLeaderError<NodeId, NodeAddr>>,
    ) -> Self {
        match e {
            openraft::error::RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                ProposeError::NotLeader {
                    leader: f.leader_id,
                    leader_api: f.leader_node.map(|n| n.api),
                }
            }
            other => ProposeError::Raft(other.to_string()),
        }
    }
}

/// Why a node could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("raft configuration: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("I/O: {0}")]
    Io(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod encoding_tests;
