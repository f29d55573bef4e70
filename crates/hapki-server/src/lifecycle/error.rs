//! What the node's lifecycle (forming, joining, admitting, removing, resetting,
//! rotating the KEK) refuses or fails with. Like the CA service's errors it says
//! what happened; `crate::error` maps it to the wire.

use hapki_cluster::{ClusterError, ProposeError};
use hapki_domain::DomainError;
use hapki_store::StoreError;

use crate::pki::PkiError;
use crate::trust::TrustError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The CA service refused or failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Raft could not be started, bootstrapped or stopped.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("this node is already part of a cluster; `hapki cluster info` shows which")]
    AlreadyClustered,
    #[error(
        "this node is not clustered yet: make it a cluster with `hapki cluster new`, or join one with `hapki cluster join`"
    )]
    NotClustered,
    #[error("another cluster operation is running on this node; wait for it (`hapki cluster status`)")]
    Busy,
    #[error(
        "this node has no cluster channel: start it with --cluster-listen (and --advertise if others reach it under another address)"
    )]
    NoChannel,
    /// The bootstrap token of a fresh node is missing or wrong.
    #[error("{0}")]
    BootstrapToken(String),
    /// The request is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// Something asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with where the node or cluster stands.
    #[error("{0}")]
    Conflict(String),
    /// Another member could not be reached or did not take part; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The node's root of trust cannot be reached, so it holds no key to sign with.
    #[error("this node is sealed: {0}; it unseals by itself once its root of trust is back (or `hapki node unseal`); other nodes of the cluster can serve meanwhile")]
    Sealed(String),
    /// A fault of this node; its text goes to the log only.
    #[error("{0}")]
    Internal(String),
}

impl LifecycleError {
    pub fn invalid(message: impl Into<String>) -> Self {
        LifecycleError::Invalid(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        LifecycleError::Conflict(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        LifecycleError::Unavailable(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        LifecycleError::Internal(message.into())
    }
}

impl From<TrustError> for LifecycleError {
    fn from(e: TrustError) -> Self {
        match e {
            TrustError::Unavailable(m) => LifecycleError::Sealed(m),
            other => LifecycleError::Internal(other.to_string()),
        }
    }
}

impl From<DomainError> for LifecycleError {
    fn from(e: DomainError) -> Self {
        LifecycleError::Pki(e.into())
    }
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> Self {
        LifecycleError::Pki(e.into())
    }
}

impl From<ProposeError> for LifecycleError {
    fn from(e: ProposeError) -> Self {
        LifecycleError::Pki(e.into())
    }
}
