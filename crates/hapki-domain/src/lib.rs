//! hapki's PKI logic, free of I/O: keys, CSRs, names, profiles and policy,
//! certificate building, CRLs, OCSP, PKCS#12 and key wrapping. Times, serials
//! and nonces are passed in by the caller, so the same inputs give the same
//! to-be-signed bytes.

pub mod audit;
pub mod backup;
pub mod crl;
pub mod csr;
mod error;
pub mod issue;
pub mod jwe;
pub mod jws;
pub mod key;
pub mod name;
pub mod ocsp;
pub mod oids;
pub mod pem;
pub mod pkcs12;
pub mod pkcs7;
pub mod policy;
pub mod profile;
pub mod revocation;
pub mod serial;
pub mod successor;
pub mod time;
pub mod wrap;

pub use error::DomainError;
