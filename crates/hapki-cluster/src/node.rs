//! A Raft node: opens the log store and state machine over the node's database,
//! starts openraft and the group-commit proposer, and answers what the API needs
//! (propose, linearizable reads, status).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hapki_api::channel::Refusal;
use hapki_store::{codec, Command, CommandResult, Store};
use openraft::{Config, SnapshotPolicy};
use tokio::sync::broadcast;

use crate::channel::{paths, ChannelNetwork};
use crate::log_store::LogStore;
use crate::membership::{MembershipChange, MembershipOutcome};
use crate::origin::{ForwardedChange, ForwardedCommand, Guard, Origin};
use crate::proposer::{Committed, Proposer};
use crate::state_machine::{Applied, StateMachine};
use crate::types::{NodeAddr, NodeId, Raft};
use crate::{ClusterError, ProposeError};

/// Longest wait for a write to commit before the caller is told to retry.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Raft timings and snapshot policy; the defaults suit a LAN.
#[derive(Clone, Debug)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after this many entries since the last one. The applied state is
    /// the snapshot, so taking one costs a flush; the log below it may then be purged.
    pub snapshot_every: u64,
    /// Entries kept in the log below the snapshot, so a briefly absent node needs no snapshot.
    pub keep_below_snapshot: u64,
}

impl RaftSettings {
    /// How recent contact must be to count: a leader holds a quorum when a majority of voters
    /// answered it within this window; a follower when it heard from the leader within it.
    pub fn quorum_window(&self) -> Duration {
        Duration::from_millis((self.election_timeout_max_ms * 2).max(1000))
    }

    /// How long a call for the leader (a forwarded write, a read index, a leader-only route)
    /// waits for one to be known before it fails with `NotLeader` (503 `no_leader` to a
    /// client): long enough for one election to finish, short enough that a client with other
    /// nodes to try is not held.
    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.election_timeout_max_ms * 2)
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 100,
            election_timeout_min_ms: 200,
            election_timeout_max_ms: 400,
            snapshot_every: 2_000,
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

/// What this node's Raft shows, for metrics.
#[derive(Clone, Debug, Default)]
pub struct RaftObserved {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The commit index this node last saved.
    pub commit_index: Option<u64>,
    /// Times the leader this node knows changed, since the process started.
    pub leader_changes: u64,
    pub snapshot_installs: u64,
}

/// A member of the cluster as this node's replica of the membership sees it.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: NodeId,
    pub addr: NodeAddr,
    pub voter: bool,
}

/// A running Raft node.
#[derive(Clone)]
pub struct ClusterNode {
    pub id: NodeId,
    quorum_window: Duration,
    leader_wait: Duration,
    raft: Raft,
    proposer: Proposer,
    sm: StateMachine,
    network: ChannelNetwork,
    store: Store,
    log: LogStore,
    guard: Guard,
    leader_changes: Arc<std::sync::atomic::AtomicU64>,
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
        let log = LogStore::open(store.clone(), &data_dir.join("raft-log"))
            .map_err(|e| ClusterError::Io(format!("raft log: {e}")))?;
        let raft = Raft::new(id, Arc::new(config), network.clone(), log.clone(), sm.clone())
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        network.pins.set(store.clone(), raft.clone());
        let proposer = Proposer::start(raft.clone());
        let leader_changes = Arc::<std::sync::atomic::AtomicU64>::default();
        tokio::spawn(count_leader_changes(raft.metrics(), leader_changes.clone()));
        Ok(ClusterNode {
            id,
            quorum_window: settings.quorum_window(),
            leader_wait: settings.leader_wait(),
            raft,
            proposer,
            sm,
            network,
            store,
            log,
            guard: Guard::default(),
            leader_changes,
        })
    }

    /// Installs what decides, on this node as leader, whether a write another member
    /// forwards may be proposed. Until it is installed, forwarded writes are refused.
    pub fn install_authorizer(&self, authorizer: Arc<dyn crate::origin::Authorizer>) {
        self.guard.install(authorizer);
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

    /// Proposes a command: through this node's group-commit batcher when it leads,
    /// otherwise forwarded over the cluster channel to the leader, which answers.
    ///
    /// A forwarded command returns once this node has applied it too, so whoever wrote
    /// through this node reads their write from it. A forwarded command carries `origin`,
    /// which the leader checks again before it proposes; on the leader itself the caller
    /// has checked it.
    pub async fn propose(&self, origin: &Origin, command: Command) -> Result<CommandResult, ProposeError> {
        if !self.has_quorum() {
            return Err(ProposeError::NoQuorum(
                "this node cannot reach a majority of the cluster; retry on another node".into(),
            ));
        }
        if self.status().is_leader {
            // A leader that loses its majority mid-write would wait for it indefinitely.
            return match tokio::time::timeout(COMMIT_TIMEOUT, self.proposer.propose(command)).await {
                Ok(r) => r.map(|c| {
                    record_log_index(c.index);
                    c.result
                }),
                Err(_) => Err(ProposeError::NoQuorum(format!(
                    "the write was not committed within {} s (the cluster may have lost its majority); it may still be applied, so retry with the same Idempotency-Key",
                    COMMIT_TIMEOUT.as_secs()
                ))),
            };
        }
        let forwarded = ForwardedCommand {
            origin: origin.clone(),
            command,
        };
        let committed: Committed = match self.forward(paths::PROPOSE, &forwarded).await {
            // Leadership moved between our look and the leader's: one more try, wherever it is now.
            Err(ProposeError::NotLeader { .. }) => self.forward(paths::PROPOSE, &forwarded).await?,
            other => other?,
        };
        record_log_index(committed.index);
        if let Err(e) = self
            .raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(committed.index), "forwarded write")
            .await
        {
            tracing::warn!("a forwarded write is committed but not yet applied here: {e}");
        }
        Ok(committed.result)
    }

    /// Returns once this node's replica reflects every write committed before the call:
    /// the leader confirms its read index, and this node waits until it has applied it.
    pub async fn linearizable(&self) -> Result<(), ProposeError> {
        let index = self.read_index().await?;
        self.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| ProposeError::Raft(format!("waiting for the read index: {e}")))
    }

    /// The leader's commit index, confirmed by a quorum: every write acknowledged before the
    /// call is at or below it.
    pub async fn read_index(&self) -> Result<u64, ProposeError> {
        if self.status().is_leader {
            Ok(self
                .raft
                .ensure_linearizable()
                .await
                .map_err(ProposeError::from_read)?
                .map(|l| l.index)
                .unwrap_or(0))
        } else {
            self.forward::<(), u64>(paths::READ_INDEX, &()).await
        }
    }

    /// Sends a request to the current leader over the cluster channel.
    async fn forward<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
    ) -> Result<Resp, ProposeError> {
        let addr = self.remote_leader().await?;
        let http = self
            .network
            .http()
            .ok_or_else(|| ProposeError::LeaderUnreachable("this node has no cluster identity".into()))?;
        let body = codec::encode(req);
        let resp = http
            .post(format!("https://{}{path}", addr.cluster))
            .timeout(Duration::from_secs(30))
            .body(body)
            .send()
            .await
            .map_err(|e| ProposeError::LeaderUnreachable(format!("{}: {e}", addr.cluster)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ProposeError::LeaderUnreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(match crate::channel::refusal_of(&bytes) {
                Refusal::Removed(m) => ProposeError::Removed(m),
                other => ProposeError::LeaderUnreachable(format!("the leader refused ({status}): {other}")),
            });
        }
        codec::decode::<Result<Resp, ProposeError>>(&bytes)
            .map_err(|e| ProposeError::LeaderUnreachable(format!("undecodable answer: {e}")))?
    }

    /// Calls a JSON route of the leader's cluster channel (routes the server adds next to Raft's).
    pub async fn call_leader_json<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, ProposeError> {
        let addr = self.remote_leader().await?;
        self.network
            .call_json(&addr.cluster, path, req, timeout)
            .await
            .map_err(|e| ProposeError::LeaderUnreachable(format!("{}: {e}", addr.cluster)))
    }

    /// The addresses of the current leader when it is another node, waiting up to
    /// [`RaftSettings::leader_wait`] for one to be known; `NotLeader` naming this node when it
    /// leads, or naming none when no election finished in time.
    async fn remote_leader(&self) -> Result<NodeAddr, ProposeError> {
        let (leader, addr) = self.wait_for_leader(self.leader_wait).await?;
        if leader == self.id {
            return Err(ProposeError::NotLeader {
                leader: Some(self.id),
                leader_api: None,
            });
        }
        Ok(addr)
    }

    /// The current leader and its address, waiting up to `timeout` for one to be known.
    async fn wait_for_leader(&self, timeout: Duration) -> Result<(NodeId, NodeAddr), ProposeError> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let m = metrics.borrow();
                if let Some(leader) = m.current_leader {
                    if let Some(addr) = m.membership_config.membership().get_node(&leader) {
                        return Ok((leader, addr.clone()));
                    }
                }
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
                return Err(ProposeError::NotLeader {
                    leader: None,
                    leader_api: None,
                });
            }
        }
    }

    /// The state the cluster channel's server needs.
    pub fn channel_state(&self) -> crate::channel::ChannelState {
        crate::channel::ChannelState {
            raft: self.raft.clone(),
            proposer: self.proposer.clone(),
            store: self.store.clone(),
            contacts: self.network.contacts.clone(),
            guard: self.guard.clone(),
            sm: self.sm.clone(),
        }
    }

    /// Changes the membership on the leader, forwarding the change (with its origin, which the
    /// leader checks) when this node does not lead.
    pub async fn change_membership(
        &self,
        origin: &Origin,
        change: MembershipChange,
    ) -> Result<MembershipOutcome, ProposeError> {
        if self.status().is_leader {
            return crate::membership::apply(&self.raft, change).await;
        }
        let forwarded = ForwardedChange {
            origin: origin.clone(),
            change,
        };
        self.forward(paths::MEMBERSHIP, &forwarded).await
    }

    /// Whether this node has been given a membership (it was initialized or joined).
    pub async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// On the leader: the last log index each node is known to hold.
    pub fn replication(&self) -> Option<BTreeMap<NodeId, Option<u64>>> {
        let m = self.raft.metrics().borrow().clone();
        m.replication
            .map(|r| r.into_iter().map(|(id, log)| (id, log.map(|l| l.index))).collect())
    }

    /// Bytes of the log entries after `index` that this node holds (what a peer at `index` lacks).
    pub fn log_bytes_after(&self, index: Option<u64>) -> u64 {
        self.log.bytes_after(index)
    }

    /// The index of the latest snapshot this node holds, if any.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().snapshot.map(|l| l.index)
    }

    /// The snapshot this node is receiving from the leader, if any: bytes so far and rate.
    pub fn snapshot_receiving(&self) -> Option<crate::snapshot::ReceiveProgress> {
        self.sm.receiving().progress()
    }

    /// Applied commands, as they are applied.
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.sm.subscribe()
    }

    /// Whether this node is in contact with a quorum: as leader, a majority of voters (itself
    /// included) answered it within the quorum window; otherwise it heard from a leader within it.
    pub fn has_quorum(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let recent =
            |id: &NodeId| *id == self.id || self.network.contacts.since(*id).is_some_and(|d| d < self.quorum_window);
        match m.current_leader {
            Some(leader) if leader == self.id => {
                let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
                voters.iter().filter(|v| recent(v)).count() * 2 > voters.len()
            }
            Some(leader) => recent(&leader),
            None => false,
        }
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

    /// Term, leader, indices and counters, for metrics.
    pub fn observed(&self) -> RaftObserved {
        let m = self.raft.metrics().borrow().clone();
        let commit_index = self.log.commit_index();
        RaftObserved {
            term: m.current_term,
            leader: m.current_leader,
            is_leader: m.current_leader == Some(self.id),
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            commit_index,
            leader_changes: self.leader_changes.load(std::sync::atomic::Ordering::Relaxed),
            snapshot_installs: self.sm.snapshot_installs(),
        }
    }

    /// The members of the cluster, voters first.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut out: Vec<Member> = membership
            .nodes()
            .map(|(id, addr)| Member {
                id: *id,
                addr: addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        out.sort_by_key(|m| (!m.voter, m.id));
        out
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

/// Counts each change of the leader this node knows (to another node, or to none), until
/// Raft stops.
async fn count_leader_changes(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, NodeAddr>>,
    changes: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut last = metrics.borrow().current_leader;
    while metrics.changed().await.is_ok() {
        let now = metrics.borrow().current_leader;
        if now != last {
            changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            last = now;
        }
    }
}

/// Names, on the span of the request being served (its `log_index` field), the log entry
/// that carried its write; outside a request span this does nothing.
fn record_log_index(index: u64) {
    tracing::Span::current().record("log_index", index);
}
