//! On whose behalf a write is made. A write that a follower forwards to the
//! leader carries its origin (the client's bearer token, or the node itself),
//! and the leader asks the [`Authorizer`] the server installed before it
//! proposes: a member's certificate alone never authorizes a write.

use std::sync::{Arc, OnceLock};

use hapki_store::Command;
use serde::{Deserialize, Serialize};

use crate::membership::MembershipChange;
use crate::types::NodeId;

/// Who asked for a write.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// A client's request, with the bearer token it presented; the leader checks the token
    /// and its role again. It travels only inside the mutual-TLS channel.
    Client { token: String },
    /// The node itself, with no client behind it: serial leases, CRLs, the internal CA,
    /// the steps of a join. Only the kinds of write members make are accepted this way.
    Node,
    /// A client's ACME request, with its signed body: the leader verifies the signature
    /// and the nonce again and checks that the command is what the body asks.
    Acme { jws: Vec<u8> },
    /// An EST re-enrollment, with the client certificate it showed (DER): the leader checks
    /// that it is valid and that the new certificate is its successor.
    Est { certificate: Vec<u8> },
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Client { .. } => f.write_str("Client { token: <redacted> }"),
            Origin::Node => f.write_str("Node"),
            Origin::Acme { .. } => f.write_str("Acme"),
            Origin::Est { .. } => f.write_str("Est"),
        }
    }
}

/// A command a follower forwards to the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedCommand {
    pub origin: Origin,
    pub command: Command,
}

/// A membership change a member forwards to the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardedChange {
    pub origin: Origin,
    pub change: MembershipChange,
}

/// Decides on the leader whether a forwarded write may be proposed.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether `origin`, forwarded by member `from`, may propose `command`; the error says why not.
    fn command(&self, from: NodeId, origin: &Origin, command: &Command) -> Result<(), String>;
    /// Whether `origin`, forwarded by member `from`, may change the membership so.
    fn membership(&self, from: NodeId, origin: &Origin, change: &MembershipChange) -> Result<(), String>;
}

/// The authorizer of a node, installed once the service that knows tokens is up. Until
/// then every forwarded write is refused.
#[derive(Clone, Default)]
pub struct Guard(Arc<OnceLock<Arc<dyn Authorizer>>>);

impl Guard {
    /// Installs the authorizer; a second call keeps the first.
    pub fn install(&self, authorizer: Arc<dyn Authorizer>) {
        let _ = self.0.set(authorizer);
    }

    pub(crate) fn command(&self, from: NodeId, origin: &Origin, command: &Command) -> Result<(), String> {
        match self.0.get() {
            Some(a) => a.command(from, origin, command),
            None => Err("this node is not ready to take forwarded writes yet; retry".into()),
        }
    }

    pub(crate) fn membership(&self, from: NodeId, origin: &Origin, change: &MembershipChange) -> Result<(), String> {
        match self.0.get() {
            Some(a) => a.membership(from, origin, change),
            None => Err("this node is not ready to take forwarded changes yet; retry".into()),
        }
    }
}
