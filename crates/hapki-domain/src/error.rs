//! The one error type of the domain crate. Variants say who is at fault:
//! the input (`Invalid`), the profile's policy (`Policy`), or the machine (`Crypto`, `Encoding`).

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed: not DER, bad signature, unsupported algorithm.
    #[error("{0}")]
    Invalid(String),
    /// The input is well formed but the profile does not allow it.
    #[error("{0}")]
    Policy(String),
    /// The crypto library refused an operation that should have worked.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    /// Encoding our own structure failed; a bug, not bad input.
    #[error("DER encoding failed: {0}")]
    Encoding(#[from] der::Error),
}

impl DomainError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        DomainError::Invalid(msg.into())
    }
    pub(crate) fn policy(msg: impl Into<String>) -> Self {
        DomainError::Policy(msg.into())
    }
}
