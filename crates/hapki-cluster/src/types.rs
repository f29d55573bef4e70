//! The openraft type configuration: what a log entry carries (a batch of
//! commands), what applying it returns (one result per command), and how a node
//! is addressed.

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

pub use hapki_api::cluster::NodeAddr;

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
        SnapshotData = crate::snapshot::SnapshotData,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeAddr>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeAddr>;
pub type StorageError = openraft::StorageError<NodeId>;
