//! `/v1/keys/*`: the key archive. Its transport certificate (clients encrypt a
//! key to it before they send it), archiving a key, listing archived keys, and
//! recovering one with M-of-N approvals as a password-protected PKCS#12.

use serde::{Deserialize, Serialize};

/// `GET /v1/keys/transport`: the certificate to encrypt archived keys to (an RSA key the
/// cluster's internal CA certifies), then the internal CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransportCert {
    pub certificate: String,
    pub chain: Vec<String>,
    /// How the key must be sent: a JWE in compact form, `RSA-OAEP-256` with `A256GCM`.
    pub format: String,
}

/// `POST /v1/keys`: archives the key of a certificate this cluster issued.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRequest {
    /// The certificate (PEM) whose key this is.
    pub certificate: String,
    /// The private key as PKCS#8 DER, encrypted to the transport certificate: a compact JWE.
    pub encrypted_key: String,
}

/// One archived key, as listed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchivedKeyView {
    pub serial: String,
    pub subject: String,
    pub issuer_id: String,
    pub profile: String,
    /// RFC 3339.
    pub archived_at: String,
    /// The token that archived it: its id and name.
    pub archived_by: String,
    pub archived_by_name: String,
    /// `generated` (by `cert generate --archive`) or `client` (sent with `key archive`).
    pub source: String,
}

/// `GET /v1/keys?subject=&serial=&by=&source=&limit=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchivedKeyList {
    pub keys: Vec<ArchivedKeyView>,
}

/// The query of `GET /v1/keys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Substring of the subject, case-insensitive.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    /// Archived by this token id.
    #[serde(default)]
    pub by: Option<String>,
    /// `generated` or `client`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `POST /v1/keys/recoveries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequestBody {
    pub serial: String,
    pub reason: String,
}

/// One approval of a recovery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalView {
    pub token_id: String,
    pub token_name: String,
    pub at: String,
}

/// A recovery request as every node shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryView {
    pub id: String,
    pub serial: String,
    pub subject: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_by_name: String,
    pub requested_at: String,
    pub expires_at: String,
    /// `pending`, `approved`, `fetched` or `expired`.
    pub status: String,
    pub required: u8,
    pub approvals: Vec<ApprovalView>,
    pub fetched_at: Option<String>,
}

/// `GET /v1/keys/recoveries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryList {
    pub recoveries: Vec<RecoveryView>,
}

/// `POST /v1/keys/recoveries/{id}/fetch`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// The password of the PKCS#12 file to make.
    pub password: String,
}

/// The recovered key: a PKCS#12 file (key, certificate and chain), base64.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recovered {
    pub id: String,
    pub serial: String,
    pub pkcs12: String,
}
