//! `/v1/tidy`: the expiry tidy's policy, what it last did and what waits for it, and a
//! run started now.

use serde::{Deserialize, Serialize};

/// `GET /v1/tidy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TidyStatus {
    /// Certificates expired longer ago than this are removed.
    pub retention_secs: u64,
    /// Certificates per batch.
    pub batch: u32,
    /// The share of the log's time (percent) a tidy may use.
    pub share_percent: u8,
    /// How often the leader looks for work, in seconds.
    pub every_secs: u64,
    /// What waits now: certificates that expired before `expired_before`.
    pub pending: u64,
    pub expired_before: u64,
    /// The latest batch, if any ran.
    pub last: Option<TidyBatch>,
    /// Idempotency keys the cluster remembers: about two days of writes (each is forgotten
    /// by the tidy a day after its day ends).
    #[serde(default)]
    pub idempotency_keys: u64,
}

/// What one tidy batch removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TidyBatch {
    /// Seconds since the epoch.
    pub at: u64,
    pub expired_before: u64,
    pub removed: u64,
    /// Of `removed`, how many were revoked and left their issuer's CRL.
    pub revoked: u64,
    /// Every certificate tidy has removed from the cluster.
    pub total_removed: u64,
}

/// `POST /v1/tidy`: run batches now, up to `max_batches` (until nothing waits when absent).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TidyRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batches: Option<u32>,
}

/// What `POST /v1/tidy` did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TidyReport {
    pub batches: u32,
    pub removed: u64,
    pub revoked: u64,
    /// What still waits (more batches, when `max_batches` stopped the run).
    pub pending: u64,
    /// Idempotency keys forgotten because their window had passed.
    #[serde(default)]
    pub keys_forgotten: u64,
    /// Whether more keys wait to be forgotten (when `max_batches` stopped the run).
    #[serde(default)]
    pub keys_pending: bool,
    /// Issuers that got a new CRL because revoked certificates left it.
    pub crls: Vec<String>,
}
