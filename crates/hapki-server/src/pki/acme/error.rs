//! What an ACME operation refuses or fails with, in the error types of RFC 8555 §6.7
//! (and RFC 9773's `alreadyReplaced`). The status each is answered with is the API's
//! business (`api::acme`).

use hapki_domain::jws::JwsError;
use hapki_store::RejectCode;

use crate::pki::PkiError;

/// An ACME error type: `urn:ietf:params:acme:error:` and this name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AccountDoesNotExist,
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    ExternalAccountRequired,
    Connection,
    Dns,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RejectedIdentifier,
    ServerInternal,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    /// Not found: RFC 8555 has no type of its own; answered `malformed` with 404.
    NotFound,
    /// The cluster cannot take the write now (no leader): `serverInternal` with 503.
    Unavailable,
    /// The body is over the limit: `malformed` with 413.
    TooLarge,
    /// The request clashes with another object, named by the answer's Location (a key
    /// change to a key another account holds): `malformed` with 409.
    Conflict,
}

impl Kind {
    /// The name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AccountDoesNotExist => "accountDoesNotExist",
            Kind::AlreadyReplaced => "alreadyReplaced",
            Kind::AlreadyRevoked => "alreadyRevoked",
            Kind::BadCsr => "badCSR",
            Kind::BadNonce => "badNonce",
            Kind::BadPublicKey => "badPublicKey",
            Kind::BadRevocationReason => "badRevocationReason",
            Kind::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Kind::ExternalAccountRequired => "externalAccountRequired",
            Kind::Connection => "connection",
            Kind::Dns => "dns",
            Kind::IncorrectResponse => "incorrectResponse",
            Kind::InvalidContact => "invalidContact",
            Kind::Malformed | Kind::NotFound | Kind::TooLarge | Kind::Conflict => "malformed",
            Kind::OrderNotReady => "orderNotReady",
            Kind::RejectedIdentifier => "rejectedIdentifier",
            Kind::ServerInternal | Kind::Unavailable => "serverInternal",
            Kind::Unauthorized => "unauthorized",
            Kind::UnsupportedContact => "unsupportedContact",
            Kind::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }
}

/// An ACME refusal: its type and what to do about it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct AcmeError {
    pub kind: Kind,
    pub detail: String,
    /// The object the refusal names, answered as Location.
    pub location: Option<String>,
}

impl AcmeError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> AcmeError {
        AcmeError {
            kind,
            detail: detail.into(),
            location: None,
        }
    }
    /// The same refusal naming the object at `url`.
    pub fn at(self, url: String) -> AcmeError {
        AcmeError {
            location: Some(url),
            ..self
        }
    }
    pub fn malformed(detail: impl Into<String>) -> AcmeError {
        AcmeError::new(Kind::Malformed, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> AcmeError {
        AcmeError::new(Kind::Unauthorized, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> AcmeError {
        AcmeError::new(Kind::NotFound, detail)
    }

    /// The same refusal with `kind` in place of a domain error's generic one (`malformed`
    /// or `rejectedIdentifier`): a CSR's faults are `badCSR` at finalize.
    pub fn or_kind(self, kind: Kind) -> AcmeError {
        match self.kind {
            Kind::Malformed | Kind::RejectedIdentifier => AcmeError { kind, ..self },
            _ => self,
        }
    }
}

impl From<JwsError> for AcmeError {
    fn from(e: JwsError) -> Self {
        let kind = match &e {
            JwsError::Malformed(_) => Kind::Malformed,
            JwsError::BadAlgorithm(_) => Kind::BadSignatureAlgorithm,
            JwsError::BadKey(_) => Kind::BadPublicKey,
            JwsError::BadSignature(_) => Kind::Unauthorized,
        };
        AcmeError::new(kind, e.to_string())
    }
}

impl From<PkiError> for AcmeError {
    fn from(e: PkiError) -> Self {
        let detail = e.to_string();
        let kind = match &e {
            PkiError::Domain(hapki_domain::DomainError::Policy(_)) => Kind::RejectedIdentifier,
            PkiError::Domain(hapki_domain::DomainError::Invalid(_)) | PkiError::Invalid(_) => Kind::Malformed,
            PkiError::Rejected { code, .. } => match code {
                RejectCode::BadNonce => Kind::BadNonce,
                RejectCode::Forbidden => Kind::Unauthorized,
                RejectCode::NotFound => Kind::NotFound,
                RejectCode::Conflict | RejectCode::Invalid => Kind::Malformed,
            },
            PkiError::Forbidden(_) | PkiError::Unauthenticated(_) => Kind::Unauthorized,
            PkiError::NoProfile(_) | PkiError::NoIssuer(_) | PkiError::NoCertificate(_) | PkiError::NotFound(_) => {
                Kind::NotFound
            }
            PkiError::Conflict(_) => Kind::Malformed,
            PkiError::Propose(_) | PkiError::Busy(_) | PkiError::Unavailable(_) => Kind::Unavailable,
            PkiError::NoCa | PkiError::Store(_) | PkiError::Internal(_) | PkiError::Domain(_) => {
                tracing::error!("ACME request failed: {detail}");
                return AcmeError::new(Kind::ServerInternal, "the server failed; retry later");
            }
        };
        AcmeError::new(kind, detail)
    }
}

impl From<hapki_store::StoreError> for AcmeError {
    fn from(e: hapki_store::StoreError) -> Self {
        PkiError::from(e).into()
    }
}
