//! The cluster channel: node-to-node traffic (Raft RPCs, snapshot chunks) over
//! mutual TLS. Both sides present node certificates issued by the cluster's
//! internal CA; a certificate from another CA is refused in the handshake, and a
//! node that is not a member, was removed, or presents another key than the one
//! recorded for its id is refused per request.

mod client;
mod pins;
mod server;
mod tls;

pub(crate) use client::refusal_of;
pub use client::{error_chain, ChannelNetwork, PeerError};
pub use pins::Pins;
pub use server::{serve, CallerNode, ChannelState, CHANNEL_LIMITS};
pub use tls::{channel_key_of, node_id_from_cert, spki_key, NodeIdentity, NODE_URI_PREFIX};

pub use hapki_api::channel::paths;
