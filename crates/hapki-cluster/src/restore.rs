//! A cluster's state brought back from a backup into a fresh data directory: the
//! state-machine rows at the backup's index, and the Raft bookkeeping of a node that
//! installed a snapshot there, with itself as the only voter. Started, the node elects
//! itself and goes on from the next index; other nodes join it as they join any cluster,
//! receiving the snapshot this writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use hapki_store::codec::encode;
use hapki_store::tables::RAFT_META;
use hapki_store::Store;
use redb::ReadTransaction;

use crate::state_machine::StateMachine;
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

/// What is read through it is also written to `out`.
struct Tee<R> {
    inner: R,
    out: std::io::BufWriter<std::fs::File>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(&mut self.out, &buf[..n])?;
        Ok(n)
    }
}

/// Records `at` as the applied position inside `txn`, as the state machine does with
/// each entry it applies; for a replica that applies commands without Raft.
pub fn mark_applied(txn: &redb::WriteTransaction, at: AppliedAt) -> Result<(), BoxErr> {
    let log_id = LogId::new(openraft::CommittedLeaderId::new(at.term, at.leader), at.index);
    crate::state_machine::set_applied(txn, &log_id, None)
}

/// Fills the empty `store` with the snapshot read from `input` (see
/// [`hapki_store::import_state`]) as applied at `at`, with node `node` at `addr` the only
/// voter, and writes the current snapshot into `snapshot_dir`. Returns the rows read.
/// Nothing is committed unless the whole snapshot reads back whole.
pub fn restore(
    store: &Store,
    snapshot_dir: &Path,
    input: impl Read,
    at: AppliedAt,
    node: NodeId,
    addr: NodeAddr,
) -> Result<u64, BoxErr> {
    let log_id = LogId::new(openraft::CommittedLeaderId::new(at.term, at.leader), at.index);
    let membership = openraft::Membership::new(vec![BTreeSet::from([node])], BTreeMap::from([(node, addr)]));
    let stored = StoredMembership::new(Some(log_id), membership);
    let sm = StateMachine::new(store.clone(), snapshot_dir.to_path_buf())?;
    // The rows arrive in the snapshot format: kept as they are read, they are the node's
    // first snapshot, with no second pass over the store to write it.
    let tmp = snapshot_dir.join(format!("build-{}-{}-restore.tmp", at.term, at.index));
    let mut tee = Tee {
        inner: input,
        out: std::io::BufWriter::new(std::fs::File::create(&tmp)?),
    };
    let mut txn = store.db().begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    let rows = match hapki_store::import_state(&txn, &mut tee) {
        Ok(rows) => rows,
        Err(e) => {
            drop(tee);
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
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
    let file = tee.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    sm.publish(
        &tmp,
        &crate::types::SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: stored,
            snapshot_id: format!("{}-{}-{}", at.term, at.index, std::process::id()),
        },
    )?;
    Ok(rows)
}
