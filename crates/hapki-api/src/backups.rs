//! `/v1/backups`: taking an encrypted backup of the whole state (the answer is the
//! backup file itself) and listing the backups the cluster recorded.

use serde::{Deserialize, Serialize};

/// `POST /v1/backups` (admin): the answer is the backup file, `application/octet-stream`,
/// with `Content-Length` and the headers [`ID_HEADER`] and [`INDEX_HEADER`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The backup key (`hbk_…`), chosen by the client, which the node uses for this file
    /// only and keeps nowhere.
    pub key: String,
    /// The backup key encrypted to a recipient's RSA key (a compact JWE, `RSA-OAEP-256`
    /// with `A256GCM`), carried in the file's header so that the recipient opens it.
    #[serde(default)]
    pub recipient: Option<String>,
    /// SHA-256 (hex) of the recipient's SubjectPublicKeyInfo, recorded with the backup.
    #[serde(default)]
    pub recipient_fingerprint: Option<String>,
}

/// The answer header naming the backup's id.
pub const ID_HEADER: &str = "x-hapki-backup-id";
/// The answer header naming the applied index the backup holds.
pub const INDEX_HEADER: &str = "x-hapki-backup-index";

/// One recorded backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupView {
    pub id: String,
    pub index: u64,
    pub digest: String,
    /// RFC 3339.
    pub taken_at: String,
    pub size: u64,
    pub sha256: String,
    pub certificates: u64,
    /// The token's name, or `schedule`.
    pub taken_by: String,
    /// The node that wrote it (16 hex digits).
    pub node: String,
    /// Where a scheduled backup was written on that node.
    pub file: Option<String>,
    pub recipient: Option<String>,
}

/// `GET /v1/backups` (admin).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupList {
    pub backups: Vec<BackupView>,
}
