//! The openraft type configuration: what a log entry carries (a batch of
//! commands), what applying it returns (one result per command), and how a node
//! is addressed.

use std::fmt;

use hapki_store::{Command, CommandResult};
use serde::{Deserialize, Serialize};

/// A log entry's payload: commands proposed together, applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub commands: Vec<Command>,
}

/// The results of a batch, one per command, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    pub results: Vec<CommandResult>,
}

/// How other nodes and clients reach a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub name: String,
    /// `host:port` of the HTTPS API.
    pub api: String,
    /// `host:port` of the mutual-TLS cluster channel.
    pub cluster: String,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (api {}, cluster {})", self.name, self.api, self.cluster)
    }
}

/// Node ids are random 64-bit numbers chosen when a node's data directory is created.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// hapki's Raft types.
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        NodeId = NodeId,
        Node = NodeAddr,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
pub type StorageError = openraft::StorageError<NodeId>;
