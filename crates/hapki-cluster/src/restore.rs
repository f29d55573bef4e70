//! A cluster's state brought back from a backup into a fresh data directory: the
//! state-machine rows at the backup's index, and the Raft bookkeeping of a node that
//! installed a snapshot there, with itself as the only voter. Started, the node elects
//! itself and goes on from the next index; other nodes join it as they join any cluster,
//! receiving the restored state as their snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use hapki_store::codec::encode;
use hapki_store::tables::RAFT_META;
use hapki_store::Store;
use redb::ReadTransaction;

use crate::types::{LogId, NodeAddr, NodeId, StoredMembership};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// The log position a state was applied up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedAt {
    pub term: u64,
    /// The node that led in `term`.
    pub leader: NodeId,
    pub index: u64,
}

/// Where the state `txn` sees was applied up to, if anywhere.
pub fn applied_at(txn: &ReadTransaction) -> Result<Option<AppliedAt>, BoxErr> {
    let (applied, _) = crate::state_machine::applied_in(txn)?;
    Ok(applied.map(|l| AppliedAt {
        term: l.leader_id.term,
        leader: l.leader_id.node_id,
        index: l.index,
    }))
}

/// Records `at` as the applied position inside `txn`, as the state machine does with
/// each entry it applies; for a replica that applies commands without Raft.
pub fn mark_applied(txn: &redb::WriteTransaction, at: AppliedAt) -> Result<(), BoxErr> {
    let log_id = LogId::new(openraft::CommittedLeaderId::new(at.term, at.leader), at.index);
    crate::state_machine::set_applied(txn, &log_id, None)
}

/// Fills the empty `store` with the snapshot read from `input` (see
/// [`hapki_store::import_state`]) as applied at `at`, with node `node` at `addr` the only
/// voter: the state is the node's first snapshot. Returns the rows read. Nothing is
/// committed unless the whole snapshot reads back whole.
pub fn restore(store: &Store, input: impl Read, at: AppliedAt, node: NodeId, addr: NodeAddr) -> Result<u64, BoxErr> {
    let log_id = LogId::new(openraft::CommittedLeaderId::new(at.term, at.leader), at.index);
    let membership = openraft::Membership::new(vec![BTreeSet::from([node])], BTreeMap::from([(node, addr)]));
    let stored = StoredMembership::new(Some(log_id), membership);
    let mut txn = store.db().begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    let rows = hapki_store::import_state(&txn, input)?;
    crate::state_machine::set_applied(&txn, &log_id, Some(&stored))?;
    {
        let mut meta = txn.open_table(RAFT_META)?;
        meta.insert("last_purged", encode(&log_id).as_slice())?;
        meta.insert("committed", encode(&Some(log_id)).as_slice())?;
        // A term past the backup's: this node's first election then leads a term that no
        // leader of the old cluster held, whatever the two nodes' ids.
        let vote: crate::types::Vote = openraft::Vote::new(at.term + 1, node);
        meta.insert("vote", encode(&vote).as_slice())?;
    }
    txn.commit()?;
    Ok(rows)
}
