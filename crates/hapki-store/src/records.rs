//! What the state machine stores: issuers, certificates, revocations, tokens,
//! CRLs. Records are plain data encoded with [`crate::codec`]; profiles are JSON
//! because they are edited by hand and carry optional fields.

use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_domain::wrap::Wrapped;
use serde::{Deserialize, Serialize};

/// A CA that issues certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerRecord {
    /// Short stable id: hex of the first 8 bytes of the key id.
    pub id: String,
    /// Subject as text, for listings.
    pub name: String,
    pub key_type: String,
    /// The CA certificate; empty while an intermediate waits for its certificate.
    pub cert_der: Vec<u8>,
    /// The certificates above this one, nearest first, up to the root.
    pub chain_der: Vec<Vec<u8>>,
    /// The CSR of an intermediate that waits for its certificate.
    pub csr_der: Vec<u8>,
    /// The CA key, PKCS#8 sealed under the cluster key-encryption key.
    pub wrapped_key: Wrapped,
    /// The delegated OCSP responder of this issuer.
    pub ocsp: Option<OcspSignerRecord>,
    pub created_at: u64,
    pub not_after: u64,
}

impl IssuerRecord {
    /// Whether the issuer has its certificate and can sign.
    pub fn is_active(&self) -> bool {
        !self.cert_der.is_empty()
    }
}

/// A delegated OCSP signing certificate and its sealed key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcspSignerRecord {
    pub cert_der: Vec<u8>,
    pub wrapped_key: Wrapped,
}

/// The cluster's internal CA: it issues node certificates for the HTTPS API and
/// the cluster channel, and is never offered to users as an issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalCaRecord {
    pub cert_der: Vec<u8>,
    pub wrapped_key: Wrapped,
}

/// A revocation of one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: u64,
    pub reason: RevocationReason,
}

/// An issued certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: Serial,
    pub issuer_id: String,
    pub profile: String,
    pub der: Vec<u8>,
    pub subject: String,
    pub common_name: Option<String>,
    /// SANs as text (`DNS:a.example.com`).
    pub sans: Vec<String>,
    pub not_before: u64,
    pub not_after: u64,
    pub issued_at: u64,
    pub revoked: Option<Revocation>,
    /// Id of the token whose request issued it (a requester reads only its own).
    pub requested_by: Option<String>,
}

/// Roles a token can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Issue, revoke, read; no CA, profile or token management.
    Agent,
    /// Issue and read its own requests.
    Requester,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Requester => "requester",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            "requester" => Ok(Role::Requester),
            _ => Err(format!("unknown role '{s}'; use admin, agent or requester")),
        }
    }
}

/// An API token; only its SHA-256 is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short public id (first 8 bytes of the hash, hex), for listing and revoking.
    pub id: String,
    pub hash: [u8; 32],
    pub role: Role,
    pub name: String,
    pub created_at: u64,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    /// Profiles the token may issue with; empty means any its role allows.
    pub profiles: Vec<String>,
    /// Issuers the token may issue from; empty means any.
    pub issuers: Vec<String>,
}

/// Where a node stands with the cluster, as far as the replicated state knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStanding {
    /// Its certificate was signed (`cluster nodes create`); it may call the cluster channel to join.
    Admitted,
    /// It was removed; its certificates are refused from then on.
    Removed,
}

/// A node the cluster certified, and whether it was removed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: u64,
    pub name: String,
    pub standing: NodeStanding,
    /// When the node certificate was signed.
    pub admitted_at: u64,
    /// When it was removed.
    pub removed_at: Option<u64>,
    /// SHA-256 of the public key (SPKI DER) the node presents on the cluster channel:
    /// the channel accepts this node only with this key.
    pub channel_key: Option<[u8; 32]>,
}

/// An issuer's keys sealed under a new KEK, for a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrappedIssuer {
    pub id: String,
    pub key: Wrapped,
    /// Its OCSP signer's key, when it has one.
    pub ocsp: Option<Wrapped>,
}

/// The latest CRL of an issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlRecord {
    pub issuer_id: String,
    pub number: u64,
    pub this_update: u64,
    pub next_update: u64,
    pub entries: u64,
    pub der: Vec<u8>,
}

/// Replicated cluster settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Base URL of the plain-HTTP publication listener (CDP and AIA point here).
    pub publication_base_url: String,
    /// How long a CRL is valid; it is regenerated well before.
    pub crl_validity_secs: u64,
    /// How long an OCSP response may be cached by relying parties.
    pub ocsp_validity_secs: u64,
    /// How many voters the cluster keeps (3 or 5); nodes beyond it join as learners.
    pub voters_target: u8,
    /// How serial numbers are chosen.
    pub serial_mode: SerialMode,
    /// In sequential mode, how many serials a node leases at a time.
    pub serial_range: u64,
}

/// How serial numbers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SerialMode {
    /// 126 random bits per certificate (the default).
    Random,
    /// Increasing numbers from ranges each node leases through the log.
    Sequential,
}

impl SerialMode {
    pub fn name(self) -> &'static str {
        match self {
            SerialMode::Random => "random",
            SerialMode::Sequential => "sequential",
        }
    }
}

/// A range of serials `[start, end)` leased to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialLease {
    pub start: u64,
    pub end: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            publication_base_url: "http://127.0.0.1:8080".into(),
            crl_validity_secs: 24 * 3600,
            ocsp_validity_secs: 3600,
            voters_target: 3,
            serial_mode: SerialMode::Random,
            serial_range: 1000,
        }
    }
}

/// A u32 kept big-endian in `sm_meta` under `key` (`schema_version`, `kek_id`).
pub(crate) fn decode_u32(key: &str, bytes: &[u8]) -> Result<u32, crate::StoreError> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| crate::StoreError::Corrupt(format!("{key} is not 4 bytes")))
}
