//! The cluster channel: node-to-node traffic (Raft RPCs, snapshot chunks) over
//! mutual TLS. Both sides present node certificates issued by the cluster's
//! internal CA; a certificate from another CA is refused in the handshake, and a
//! node that is not a member, was removed, or presents another key than the one
//! recorded for its id is refused per request.

mod client;
mod pins;
mod server;
mod tls;

pub use client::{ChannelNetwork, PeerError};
pub use pins::Pins;
pub use server::{serve, CallerNode, ChannelState, CHANNEL_LIMITS};
pub use tls::{channel_key_of, node_id_from_cert, spki_key, NodeIdentity, NODE_URI_PREFIX};

/// Paths of the Raft RPCs on the cluster channel.
pub mod paths {
    pub const APPEND: &str = "/raft/append";
    pub const VOTE: &str = "/raft/vote";
    pub const SNAPSHOT: &str = "/raft/snapshot";
    /// A follower hands a command to the leader (any node serves writes).
    pub const PROPOSE: &str = "/cluster/propose";
    /// A follower asks the leader for a read index (linearizable reads anywhere).
    pub const READ_INDEX: &str = "/cluster/read-index";
    /// A member hands a membership change to the leader.
    pub const MEMBERSHIP: &str = "/cluster/membership";
}
