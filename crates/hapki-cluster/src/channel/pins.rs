//! Which peers the channel trusts: a node the replicated node list records,
//! not removed, presenting the key recorded for it when it was admitted. Both
//! sides ask: the server of each caller, the client of each server it dials.
//! A node that knows no membership yet (it is joining) has no list to ask and
//! takes the internal CA's word.

use std::sync::{Arc, OnceLock};

use hapki_api::channel::Refusal;
use hapki_store::{NodeStanding, Store};

use crate::types::{NodeId, Raft};

/// Whether `node` presenting the channel key `key` (SHA-256 of its SPKI) is trusted.
pub(crate) fn check(store: &Store, raft: &Raft, node: NodeId, key: &[u8; 32]) -> Result<(), Refusal> {
    let record = store
        .reader()
        .and_then(|r| r.node(node))
        .map_err(|e| Refusal::Internal(format!("cannot read the node list: {e}")))?;
    match record {
        Some(r) if r.standing == NodeStanding::Removed => Err(Refusal::Removed(format!(
            "node {node:016x} was removed from this cluster"
        ))),
        Some(r) => match r.channel_key {
            Some(k) if k == *key => Ok(()),
            Some(_) => Err(Refusal::NotTrusted(format!(
                "node {node:016x} presented a key other than the one recorded for it when it was admitted"
            ))),
            None => Err(Refusal::NotTrusted(format!(
                "no channel key is recorded for node {node:016x}"
            ))),
        },
        None => {
            let metrics = raft.metrics().borrow().clone();
            if metrics.membership_config.membership().nodes().next().is_none() {
                Ok(())
            } else {
                Err(Refusal::NotTrusted(format!(
                    "node {node:016x} is not a member of this cluster"
                )))
            }
        }
    }
}

/// The node list and Raft handle the client side checks servers against, set once Raft runs.
#[derive(Clone, Default)]
pub struct Pins(Arc<OnceLock<(Store, Raft)>>);

impl Pins {
    pub(crate) fn set(&self, store: Store, raft: Raft) {
        let _ = self.0.set((store, raft));
    }

    /// Whether a server naming `node` with `key` is trusted (not before Raft runs).
    pub(crate) fn check(&self, node: NodeId, key: &[u8; 32]) -> Result<(), Refusal> {
        match self.0.get() {
            Some((store, raft)) => check(store, raft, node, key),
            None => Err(Refusal::Unavailable("the node list is not open yet".into())),
        }
    }
}
