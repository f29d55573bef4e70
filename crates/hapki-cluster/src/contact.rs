//! When this node last heard from each peer: a successful RPC to it, or any
//! authenticated request from it. The summary shows it as "last contact".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// Last successful exchange with each peer.
#[derive(Clone, Default)]
pub struct Contacts {
    seen: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl Contacts {
    /// Records an exchange with `peer` now.
    pub fn touch(&self, peer: NodeId) {
        self.seen.lock().expect("contacts lock").insert(peer, Instant::now());
    }

    /// How long ago this node last heard from `peer`, if ever since it started.
    pub fn since(&self, peer: NodeId) -> Option<Duration> {
        self.seen.lock().expect("contacts lock").get(&peer).map(|t| t.elapsed())
    }
}
