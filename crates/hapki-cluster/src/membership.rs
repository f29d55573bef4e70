//! Membership changes, made on the leader: a joining node is added as a
//! learner, promoted to voter while the cluster has fewer voters than its
//! target, and on removal a learner takes the place of a removed voter.

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::types::{NodeAddr, NodeId, Raft};
use crate::ProposeError;

/// Most nodes a cluster holds, voters and learners together.
pub const MAX_NODES: usize = 20;

/// A change of membership, carried to the leader when asked elsewhere.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a node as a non-voting learner; the leader starts replicating to it.
    AddLearner { id: NodeId, addr: NodeAddr },
    /// Makes a learner a voter if the cluster has fewer voters than `voters_target`.
    Promote { id: NodeId, voters_target: u8 },
    /// Removes a node; a learner is promoted if voters fall below `voters_target`.
    Remove { id: NodeId, voters_target: u8 },
}

pub use hapki_api::channel::MembershipOutcome;

fn refused(msg: impl Into<String>) -> ProposeError {
    ProposeError::Refused(msg.into())
}

fn raft_err(e: impl std::fmt::Display) -> ProposeError {
    ProposeError::Raft(e.to_string())
}

/// Applies `change` through `raft`, which must be the leader.
pub(crate) async fn apply(raft: &Raft, change: MembershipChange) -> Result<MembershipOutcome, ProposeError> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    let learners: Vec<NodeId> = nodes.difference(&voters).copied().collect();
    match change {
        MembershipChange::AddLearner { id, addr } => {
            if !nodes.contains(&id) && nodes.len() >= MAX_NODES {
                return Err(refused(format!(
                    "the cluster already has {} nodes, the most it may have; remove one with `hapki cluster nodes delete --id ID` first",
                    nodes.len()
                )));
            }
            if voters.contains(&id) {
                return Ok(MembershipOutcome {
                    voter: true,
                    promoted: None,
                });
            }
            raft.add_learner(id, addr, false).await.map_err(raft_err)?;
            Ok(MembershipOutcome::default())
        }
        MembershipChange::Promote { id, voters_target } => {
            if voters.contains(&id) {
                return Ok(MembershipOutcome {
                    voter: true,
                    promoted: None,
                });
            }
            if !nodes.contains(&id) {
                return Err(refused(format!("node {id:016x} is not a member")));
            }
            if voters.len() >= usize::from(voters_target) {
                return Ok(MembershipOutcome::default());
            }
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                .await
                .map_err(raft_err)?;
            Ok(MembershipOutcome {
                voter: true,
                promoted: None,
            })
        }
        MembershipChange::Remove { id, voters_target } => {
            if !nodes.contains(&id) {
                return Err(refused(format!(
                    "node {id:016x} is not a member; `hapki cluster nodes list` shows the members"
                )));
            }
            if !voters.contains(&id) {
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
                    .map_err(raft_err)?;
                return Ok(MembershipOutcome::default());
            }
            if voters.len() == 1 {
                return Err(refused(
                    "this is the cluster's only voter; it cannot be removed (use `hapki cluster delete` on it to reset it)",
                ));
            }
            let mut next: BTreeSet<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
            let promoted = learners
                .first()
                .copied()
                .filter(|_| next.len() < usize::from(voters_target));
            if let Some(l) = promoted {
                next.insert(l);
            }
            raft.change_membership(ChangeMembers::ReplaceAllVoters(next), false)
                .await
                .map_err(raft_err)?;
            Ok(MembershipOutcome { voter: false, promoted })
        }
    }
}
