//! `/v1/certs`: issue from a CSR, generate a key and certificate, get, list, revoke.

use hapki_domain::key::KeyType;
use serde::{Deserialize, Serialize};

/// `POST /v1/certs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// The CSR, PEM.
    pub csr: String,
    pub profile: String,
    /// Issuer id; the default issuer when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub validity_days: Option<u32>,
    /// Validity as a duration (`90s`, `12h`, `30d`), instead of `validity_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// `POST /v1/certs/generate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub sans: Vec<String>,
    pub profile: String,
    #[serde(default = "default_key")]
    pub key_type: KeyType,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub validity_days: Option<u32>,
    /// Validity as a duration (`90s`, `12h`, `30d`), instead of `validity_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// `pem` (default) or `pkcs12`: how the key is returned.
    #[serde(default)]
    pub format: Option<String>,
    /// Password of the PKCS#12 file.
    #[serde(default)]
    pub password: Option<String>,
    /// Keep the generated key in the key archive, sealed, for recovery.
    #[serde(default)]
    pub archive: bool,
}

fn default_key() -> KeyType {
    KeyType::EcP256
}

/// An issued certificate with its chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Issued {
    pub serial: String,
    pub issuer_id: String,
    pub profile: String,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
    /// PEM.
    pub certificate: String,
    /// Issuer certificate first, root last, PEM.
    pub chain: Vec<String>,
}

/// What `POST /v1/certs/generate` answers: the certificate and its key, in one of two forms.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Generated {
    #[serde(flatten)]
    pub issued: Issued,
    /// The key, PKCS#8 PEM (format `pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The PKCS#12 file, base64 (format `pkcs12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<String>,
}

/// Where a certificate stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertState {
    Valid,
    Revoked,
    Expired,
}

impl CertState {
    pub fn name(self) -> &'static str {
        match self {
            CertState::Valid => "valid",
            CertState::Revoked => "revoked",
            CertState::Expired => "expired",
        }
    }
}

/// A certificate as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertView {
    pub serial: String,
    pub issuer_id: String,
    pub profile: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub not_before: u64,
    pub not_after: u64,
    pub issued_at: u64,
    pub status: CertState,
    pub revoked_at: Option<u64>,
    pub revocation_reason: Option<String>,
    /// PEM; in single reads, not in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// `GET /v1/certs`: one page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertList {
    pub certs: Vec<CertView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

/// The query of `GET /v1/certs`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertQuery {
    /// Read through the leader: the answer reflects every write acknowledged before it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consistent: bool,
    /// `valid`, `revoked`, `expired` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san: Option<String>,
    /// `30d`, `12h`, `45m`, `90s` or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring_within: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The query of a single read: `consistent=true` reads through the leader.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub consistent: bool,
}

/// `POST /v1/certs/{serial}/revoke`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// An RFC 5280 reason (`keyCompromise`, `superseded`, ...); `unspecified` when absent.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a revocation answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoked {
    pub serial: String,
    pub reason: String,
    pub revoked_at: u64,
    /// The CRL that lists it.
    pub crl_number: u64,
}
