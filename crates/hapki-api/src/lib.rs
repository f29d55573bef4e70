//! The wire contract: the serde request and response types of every HTTP route
//! of the API and of every lifecycle message between nodes on the cluster
//! channel. The server's handlers answer with these types, the CLI sends and
//! reads them, and the console will too, so a shape is written once.
//!
//! Raft's own messages (append, vote, snapshot) are openraft's types, and a
//! forwarded write carries a store command; both live next to the code that
//! speaks them in `hapki-cluster`, encoded by the same codec as these.

pub mod acme;
pub mod audit;
pub mod backups;
pub mod ca;
pub mod certs;
pub mod channel;
pub mod cluster;
pub mod error;
pub mod keys;
pub mod node;
pub mod profiles;
pub mod sys;
pub mod tidy;
pub mod tokens;

pub use error::{ErrorBody, ErrorDetail};

/// A node id as the wire shows it: 16 hex digits.
pub fn node_id_hex(id: u64) -> String {
    format!("{id:016x}")
}
