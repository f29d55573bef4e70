//! What the CA service refuses or fails with. Every operation of [`Pki`](super::Pki)
//! returns this; it says what happened, never which HTTP status that is: the
//! mapping to the wire is `crate::error`'s.

use hapki_cluster::ProposeError;
use hapki_domain::DomainError;
use hapki_store::{RejectCode, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The input broke a rule of the PKI (a malformed CSR, a name the profile forbids).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The local replica failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not get through the cluster.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The state machine refused the command.
    #[error("{message}")]
    Rejected { code: RejectCode, message: String },
    /// The request carries no valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token may not do this, or not to this object.
    #[error("{0}")]
    Forbidden(String),
    #[error("no profile named '{0}'; `hapki profile list` shows the profiles")]
    NoProfile(String),
    #[error("no issuer with id {0}; `hapki ca list` shows the issuers")]
    NoIssuer(String),
    #[error("there is no CA yet; create one with `hapki ca init` or import one with `hapki ca import`")]
    NoCa,
    #[error("no certificate with serial {0}")]
    NoCertificate(String),
    /// Something else asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the state (already revoked, already installed, expired issuer).
    #[error("{0}")]
    Conflict(String),
    /// The caller has too much work running; it may retry once some ends.
    #[error("{0}")]
    Busy(String),
    /// The node cannot do this now; a retry (here or elsewhere) may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of this node; its text goes to the log only.
    #[error("{0}")]
    Internal(String),
}

impl PkiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        PkiError::Invalid(message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        PkiError::Forbidden(message.into())
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        PkiError::Unauthenticated(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        PkiError::Conflict(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        PkiError::NotFound(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        PkiError::Unavailable(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        PkiError::Internal(message.into())
    }
}
