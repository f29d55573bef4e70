//! `/v1/ca` and `/v1/crl`: issuers, their creation, import and certificate, the
//! default issuer, CRL rotation.

use hapki_domain::key::KeyType;
use serde::{Deserialize, Serialize};

/// `POST /v1/ca/root` and `POST /v1/ca/intermediate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootRequest {
    pub common_name: String,
    /// Other subject attributes, `O=Example, C=US`.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default = "default_ca_key")]
    pub key_type: KeyType,
    #[serde(default = "default_ca_days")]
    pub validity_days: u32,
    /// Make it the default issuer.
    #[serde(default)]
    pub default: bool,
}

fn default_ca_key() -> KeyType {
    KeyType::EcP256
}
fn default_ca_days() -> u32 {
    3650
}

/// `POST /v1/ca/import`: a PKCS#12 file holding an existing CA's key and chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The file, base64.
    pub pkcs12: String,
    pub password: String,
    #[serde(default)]
    pub default: bool,
}

/// The CSR of a new intermediate, to be signed by the parent CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntermediateCsr {
    pub id: String,
    pub csr: String,
}

/// `POST /v1/ca/{id}/certificate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallCertRequest {
    /// The intermediate's certificate, then its chain, PEM.
    pub certificate: String,
}

/// Where an issuer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssuerState {
    #[serde(rename = "active")]
    Active,
    #[serde(rename = "awaiting certificate")]
    AwaitingCertificate,
}

impl IssuerState {
    pub fn name(self) -> &'static str {
        match self {
            IssuerState::Active => "active",
            IssuerState::AwaitingCertificate => "awaiting certificate",
        }
    }
}

/// An issuer as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuerView {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub status: IssuerState,
    pub default: bool,
    /// None while an intermediate awaits its certificate.
    pub not_after: Option<u64>,
    pub crl_number: Option<u64>,
    pub certificate: Option<String>,
    pub chain: Vec<String>,
    pub csr: Option<String>,
    /// The issuer that takes over from this one, and when it becomes the default.
    #[serde(default)]
    pub successor: Option<String>,
    #[serde(default)]
    pub switch_at: Option<u64>,
    /// The issuer this one took over from.
    #[serde(default)]
    pub predecessor: Option<String>,
}

/// `POST /v1/ca/{id}/rotate`: a successor for the issuer, which becomes the default at `at`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// When the successor becomes the default (Unix seconds); now when absent.
    #[serde(default)]
    pub at: Option<u64>,
    /// The successor's validity; the predecessor's length when absent.
    #[serde(default)]
    pub validity_days: Option<u32>,
    /// The successor's key type; the predecessor's when absent.
    #[serde(default)]
    pub key_type: Option<KeyType>,
}

/// What `POST /v1/ca/{id}/rotate` made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rotated {
    pub from: String,
    pub to: String,
    /// When the successor becomes the default.
    pub at: u64,
    /// `signed by the old root`, `signed by <parent id>`, or `awaiting certificate`.
    pub signed: String,
    /// The successor's certificate (for a root: issued by the old root), then its chain.
    pub certificate: Option<String>,
    pub chain: Vec<String>,
    /// For a root: the successor's self-signed certificate, to add to trust stores.
    pub self_signed: Option<String>,
    /// For an intermediate whose parent is outside this cluster: the CSR to have signed,
    /// then `hapki ca install-cert --id <to>`.
    pub csr: Option<String>,
}

/// `GET /v1/ca`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuerList {
    pub issuers: Vec<IssuerView>,
}

/// `POST /v1/ca/{id}/default`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DefaultIssuer {
    pub default: String,
}

/// `POST /v1/crl/rotate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateCrlRequest {
    /// The default issuer when absent.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// What a CRL rotation answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrlRotated {
    pub issuer: String,
    pub crl_number: u64,
}

/// `POST /v1/ca/{id}/export` (admin): the issuer's signing key and certificate and its OCSP
/// signer's, for a clone (`ca import --pkcs12` on another cluster).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub password: String,
}

/// The exported file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Exported {
    pub id: String,
    /// The PKCS#12 file, base64.
    pub pkcs12: String,
    /// The friendly names of its entries (`caSigningCert <id>`, `ocspSigningCert <id>`).
    pub entries: Vec<String>,
}
