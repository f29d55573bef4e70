//! A Raft node: opens the log store and state machine over the node's database,
//! starts openraft and the group-commit proposer, and answers what the API needs
//! (propose, linearizable reads, status).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hapki_store::{Command, CommandResult, Store};
use openraft::{Config, SnapshotPolicy};
use tokio::sync::broadcast;

use crate::channel::ChannelNetwork;
use crate::log_store::LogStore;
use crate::proposer::Proposer;
use crate::state_machine::{Applied, StateMachine};
use crate::types::{NodeAddr, NodeId, Raft};
use crate::{ClusterError, ProposeError};

/// Raft timings and snapshot policy; the defaults suit a LAN.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log below the snapshot, so a briefly absent node needs no snapshot.
    pub keep_below_snapshot: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            snapshot_every: 20_000,
            keep_below_snapshot: 5_000,
        }
    }
}

/// What the API shows about this node's Raft state.
#[derive(Clone, Debug)]
pub struct RaftStatus {
    pub id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub is_leader: bool,
}

/// A running Raft node.
#[derive(Clone)]
pub struct ClusterNode {
    pub id: NodeId,
    raft: Raft,
    proposer: Proposer,
    sm: StateMachine,
    network: ChannelNetwork,
}

impl ClusterNode {
    /// Starts Raft over `store`, with snapshots under `data_dir/snapshots`.
    pub async fn start(
        store: Store,
        data_dir: &Path,
        id: NodeId,
        settings: &RaftSettings,
    ) -> Result<ClusterNode, ClusterError> {
        let config = Config {
            cluster_name: "hapki".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_below_snapshot,
            max_payload_entries: 64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let sm = StateMachine::new(store.clone(), data_dir.join("snapshots"))
            .map_err(|e| ClusterError::Io(format!("snapshot directory: {e}")))?;
        let network = ChannelNetwork::default();
        let raft = Raft::new(id, Arc::new(config), network.clone(), LogStore::new(store), sm.clone())
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let proposer = Proposer::start(raft.clone());
        Ok(ClusterNode {
            id,
            raft,
            proposer,
            sm,
            network,
        })
    }

    /// Makes this node a one-member cluster if it is not part of one yet.
    pub async fn bootstrap_single(&self, addr: NodeAddr) -> Result<(), ClusterError> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?
        {
            return Ok(());
        }
        let members = BTreeMap::from([(self.id, addr)]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Waits until some node is leader and this node has applied everything it knows to be committed.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let m = metrics.borrow();
                if m.current_leader.is_some()
                    && m.last_applied.map(|l| l.index) >= m.last_log_index.filter(|_| m.current_leader == Some(self.id))
                {
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
                return Err(ClusterError::Timeout("no leader was elected".into()));
            }
        }
    }

    /// Proposes a command through the group-commit batcher.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ProposeError> {
        self.proposer.propose(command).await
    }

    /// Returns once this node's replica reflects every write committed before the call
    /// (read-index through the leader).
    pub async fn linearizable(&self) -> Result<(), ProposeError> {
        self.raft.ensure_linearizable().await.map(|_| ()).map_err(|e| match e {
            openraft::error::RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                ProposeError::NotLeader {
                    leader: f.leader_id,
                    leader_api: f.leader_node.map(|n| n.api),
                }
            }
            other => ProposeError::Raft(other.to_string()),
        })
    }

    /// Applied commands, as they are applied.
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.sm.subscribe()
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        RaftStatus {
            id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            is_leader: m.current_leader == Some(self.id),
        }
    }

    /// The Raft handle, for the cluster channel server and membership changes.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The network, to give it this node's identity.
    pub fn network(&self) -> &ChannelNetwork {
        &self.network
    }

    /// Makes a cluster of the given members, this node among them (first start of a multi-node cluster).
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<(), ClusterError> {
        self.raft
            .initialize(members)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Stops Raft.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }
}
