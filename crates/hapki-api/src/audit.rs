//! `/v1/audit`: the replicated audit log, read by page, exported as JSON lines, and
//! checked by the node; and the certificate that verifies its seals offline.

pub use hapki_domain::audit::{Fault, FaultKind, Record, Report, Seal};
use serde::{Deserialize, Serialize};

/// `GET /v1/audit?after=&limit=&action=&actor=&object=` (admin).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this position.
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only this action (`issue_cert`, `revoke`, `create_token`, ...).
    #[serde(default)]
    pub action: Option<String>,
    /// Only this token, by id or name (`node` for the cluster's own work).
    #[serde(default)]
    pub actor: Option<String>,
    /// Only records whose object contains this text (a serial, a token id, a profile).
    #[serde(default)]
    pub object: Option<String>,
}

/// A page of the audit log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditList {
    pub records: Vec<Record>,
    /// The last record's position (0 for an empty log).
    pub head: u64,
    /// The last position a seal covers.
    pub sealed_through: u64,
}

/// `GET /v1/audit/verify` (admin): the node's check of its whole log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditVerified {
    #[serde(flatten)]
    pub report: Report,
    /// The last record's position.
    pub head: u64,
}

/// `GET /v1/audit/certificate` (admin): the audit key's certificate (PEM), then the chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditCertificate {
    pub certificate: String,
    pub chain: Vec<String>,
}

/// One line of `GET /v1/audit/export` (admin, `application/jsonl`): first a header, then
/// every record with its position and every seal, in order of position.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportLine {
    Header {
        cluster_id: String,
        exported_at: String,
        head: u64,
    },
    Record {
        position: u64,
        record: Record,
    },
    Seal(Seal),
}
