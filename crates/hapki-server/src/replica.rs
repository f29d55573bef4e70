//! What the CA service needs of the cluster, as one small trait: propose a
//! write, wait for a linearizable read, say where this node stands, hear what
//! was applied, ask the leader for a CRL. The node implements it with its Raft
//! node; tests implement it with [`LocalReplica`], which applies each command
//! at once to a store of its own through the same deterministic state machine,
//! so the whole API runs in process without Raft.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hapki_api::channel::{paths, CrlRequest};
use hapki_api::node_id_hex;
use hapki_api::sys::RaftView;
use hapki_cluster::{Applied, Authorizer, ClusterNode, NodeId, Origin, ProposeError, RaftStatus};
use hapki_store::{Command, CommandResult};
use tokio::sync::broadcast;

/// A boxed future, so the trait can be used as `dyn Replica`.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The cluster, as the CA service sees it.
pub trait Replica: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> NodeId;
    /// Where this node stands in Raft.
    fn status(&self) -> RaftStatus;
    /// Whether this node reaches a majority (serves writes).
    fn has_quorum(&self) -> bool;
    /// Proposes `command` on behalf of `origin`; done once it is applied here.
    fn propose<'a>(&'a self, origin: &'a Origin, command: Command) -> Fut<'a, Result<CommandResult, ProposeError>>;
    /// Waits until this replica holds every write acknowledged before the call.
    fn linearizable(&self) -> Fut<'_, Result<(), ProposeError>>;
    /// Commands as they are applied on this node.
    fn subscribe(&self) -> broadcast::Receiver<Applied>;
    /// Asks the leader to build a CRL (a follower may not publish one itself).
    fn crl_from_leader(&self, req: CrlRequest) -> Fut<'_, Result<u64, ProposeError>>;
    /// What the leader asks before it proposes a write another member forwarded.
    fn install_authorizer(&self, authorizer: Arc<dyn Authorizer>);
}

impl Replica for ClusterNode {
    fn node_id(&self) -> NodeId {
        self.id
    }

    fn status(&self) -> RaftStatus {
        ClusterNode::status(self)
    }

    fn has_quorum(&self) -> bool {
        ClusterNode::has_quorum(self)
    }

    fn propose<'a>(&'a self, origin: &'a Origin, command: Command) -> Fut<'a, Result<CommandResult, ProposeError>> {
        Box::pin(ClusterNode::propose(self, origin, command))
    }

    fn linearizable(&self) -> Fut<'_, Result<(), ProposeError>> {
        Box::pin(ClusterNode::linearizable(self))
    }

    fn subscribe(&self) -> broadcast::Receiver<Applied> {
        ClusterNode::subscribe(self)
    }

    fn crl_from_leader(&self, req: CrlRequest) -> Fut<'_, Result<u64, ProposeError>> {
        Box::pin(async move {
            self.call_leader_json::<_, u64>(paths::CRL, &req, Duration::from_secs(30))
                .await
        })
    }

    fn install_authorizer(&self, authorizer: Arc<dyn Authorizer>) {
        ClusterNode::install_authorizer(self, authorizer)
    }
}

/// Where `replica`'s node stands, as the API shows it.
pub fn raft_view(replica: &dyn Replica) -> RaftView {
    let s = replica.status();
    RaftView {
        node_id: node_id_hex(s.id),
        leader: s.leader.map(node_id_hex),
        is_leader: s.is_leader,
        term: s.term,
        applied_index: s.last_applied,
        last_log_index: s.last_log_index,
        version: crate::version::VERSION.to_string(),
    }
}

#[cfg(test)]
pub use local::LocalReplica;

#[cfg(test)]
mod local {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use super::*;
    use hapki_store::Store;

    /// A cluster of one without Raft: each command is applied to `store` when proposed, in
    /// order, by the state machine every node runs.
    pub struct LocalReplica {
        store: Store,
        index: AtomicU64,
        applying: Mutex<()>,
        applied: broadcast::Sender<Applied>,
    }

    impl LocalReplica {
        pub fn new(store: Store) -> LocalReplica {
            LocalReplica {
                store,
                index: AtomicU64::new(0),
                applying: Mutex::new(()),
                applied: broadcast::channel(1024).0,
            }
        }

        fn apply(&self, command: Command) -> Result<CommandResult, ProposeError> {
            let _one_at_a_time = self.applying.lock().expect("apply lock");
            let fail = |e: hapki_store::StoreError| ProposeError::Raft(e.to_string());
            let txn = self.store.begin_apply().map_err(fail)?;
            let result = hapki_store::apply(&txn, &command).map_err(fail)?;
            let index = self.index.load(Ordering::SeqCst) + 1;
            let at = hapki_cluster::restore::AppliedAt {
                term: 1,
                leader: self.node_id(),
                index,
            };
            hapki_cluster::restore::mark_applied(&txn, at).map_err(|e| ProposeError::Raft(e.to_string()))?;
            txn.commit().map_err(|e| ProposeError::Raft(e.to_string()))?;
            self.index.store(index, Ordering::SeqCst);
            if result == CommandResult::Applied {
                let _ = self.applied.send(Applied {
                    index,
                    command: Some(Arc::new(command)),
                });
            }
            Ok(result)
        }
    }

    impl Replica for LocalReplica {
        fn node_id(&self) -> NodeId {
            1
        }

        fn status(&self) -> RaftStatus {
            let index = self.index.load(Ordering::SeqCst);
            RaftStatus {
                id: 1,
                leader: Some(1),
                term: 1,
                last_log_index: Some(index),
                last_applied: Some(index),
                is_leader: true,
            }
        }

        fn has_quorum(&self) -> bool {
            true
        }

        fn propose<'a>(
            &'a self,
            _origin: &'a Origin,
            command: Command,
        ) -> Fut<'a, Result<CommandResult, ProposeError>> {
            Box::pin(async move { self.apply(command) })
        }

        fn linearizable(&self) -> Fut<'_, Result<(), ProposeError>> {
            Box::pin(async { Ok(()) })
        }

        fn subscribe(&self) -> broadcast::Receiver<Applied> {
            self.applied.subscribe()
        }

        fn crl_from_leader(&self, _req: CrlRequest) -> Fut<'_, Result<u64, ProposeError>> {
            Box::pin(async { Err(ProposeError::Raft("a cluster of one is its own leader".into())) })
        }

        fn install_authorizer(&self, _authorizer: Arc<dyn Authorizer>) {}
    }
}
