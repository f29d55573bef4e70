//! `/v1/cluster/*`: a node's place in its cluster, forming and joining, the
//! members, the replicated settings, the summary, KEK rotation.

use serde::{Deserialize, Serialize};

/// How other nodes and clients reach a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub name: String,
    /// `host:port` of the HTTPS API.
    pub api: String,
    /// `host:port` of the mutual-TLS cluster channel.
    pub cluster: String,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (api {}, cluster {})", self.name, self.api, self.cluster)
    }
}

/// The join steps, in order.
pub const JOIN_STEPS: [&str; 5] = ["creating", "bootstrapping", "initial sync", "catching up", "completing"];

/// Where a node stands; every node reports it on `GET /v1/cluster/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// A fresh node: it serves only the cluster lifecycle until it forms or joins a cluster.
    NotClustered,
    /// Joining, at `step` of five; `done`/`total` measure the step where that means something.
    Joining {
        step: u8,
        name: String,
        detail: String,
        done: Option<u64>,
        total: Option<u64>,
    },
    Ready,
    /// A join failed and was undone as far as it could be; `cluster delete` resets the node.
    Killed {
        reason: String,
    },
    /// A join failed in a way whose effect on the cluster is not known.
    Unknown {
        reason: String,
    },
    /// The node's root of trust cannot be reached (token absent, PIN refused, key file
    /// missing): it holds no key it could sign with, tries again by itself, and serves
    /// nothing that needs one.
    Sealed {
        reason: String,
    },
}

impl Phase {
    /// How operators read it: `not clustered`, `joining: initial sync (3/5)`, `ready`, ...
    pub fn label(&self) -> String {
        match self {
            Phase::NotClustered => "not clustered".into(),
            Phase::Joining { step, name, .. } => format!("joining: {name} ({step}/5)"),
            Phase::Ready => "ready".into(),
            Phase::Killed { .. } => "killed".into(),
            Phase::Unknown { .. } => "unknown".into(),
            Phase::Sealed { .. } => "sealed".into(),
        }
    }

    /// Step `step` (1 to 5) of a join, just begun.
    pub fn joining(step: u8) -> Phase {
        Phase::Joining {
            step,
            name: JOIN_STEPS[usize::from(step.clamp(1, 5) - 1)].into(),
            detail: String::new(),
            done: None,
            total: None,
        }
    }
}

/// A phase the node went through, `after_ms` since it started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseChange {
    pub after_ms: u64,
    pub status: String,
}

/// `GET /v1/cluster/status` (no token).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node_id: String,
    pub name: String,
    /// The phase's label.
    pub status: String,
    pub phase: Phase,
    pub history: Vec<PhaseChange>,
    pub version: String,
    pub cluster_id: Option<String>,
    pub api: String,
    pub cluster: Option<String>,
    pub leader: Option<String>,
    pub applied_index: Option<u64>,
    /// `file` or `pkcs11`.
    #[serde(default)]
    pub root_of_trust: Option<String>,
}

/// `POST /v1/cluster/new`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterCreated {
    pub cluster_id: Option<String>,
    pub node_id: String,
    pub admin_token: String,
    pub admin_token_file: String,
    pub api_ca_file: String,
}

/// `POST /v1/cluster/csr`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeCsr {
    pub node_id: String,
    pub name: String,
    /// PEM.
    pub csr: String,
}

/// `POST /v1/cluster/join` on the joining node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// `host:port` of a member's cluster channel.
    pub member: String,
    /// The PEM bundle `cluster nodes create` returned: this node's certificate, then the cluster's internal CA.
    pub certificate: String,
}

/// What `POST /v1/cluster/join` answers: the join runs on; `status` follows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinStarted {
    pub node_id: String,
    pub status: String,
}

/// `POST /v1/cluster/delete`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    #[serde(default)]
    pub force: bool,
}

/// What `POST /v1/cluster/delete` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resetting {
    pub node_id: String,
    pub status: String,
    pub next: String,
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Leader,
    Voter,
    Learner,
}

impl MemberRole {
    pub fn name(self) -> &'static str {
        match self {
            MemberRole::Leader => "leader",
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        }
    }
}

/// A member as `cluster info` and `cluster nodes list` show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub api: String,
    pub cluster: String,
    pub role: MemberRole,
}

/// `GET /v1/cluster/nodes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberList {
    pub nodes: Vec<Member>,
}

/// `GET /v1/cluster/info`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub node_id: String,
    pub status: String,
    pub leader: Option<String>,
    pub term: u64,
    pub applied_index: Option<u64>,
    pub digest: String,
    pub version: String,
    pub voters_target: u8,
    pub nodes: Vec<Member>,
    /// What every node holds.
    pub replicated: Vec<String>,
    /// What stays on each node.
    pub node_local: Vec<String>,
}

/// `POST /v1/cluster/nodes`: a joining node's CSR to sign.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    pub csr: String,
}

/// What `cluster nodes create` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedNode {
    pub node_id: String,
    pub name: String,
    /// The node certificate then the internal CA, PEM: the file `cluster join --cert` takes.
    pub certificate: String,
    pub cluster_id: String,
    /// Cluster addresses of the members, any of which `cluster join --member` takes.
    pub members: Vec<String>,
}

/// `DELETE /v1/cluster/nodes/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRemoved {
    pub removed: String,
    /// A learner promoted to take the removed voter's place.
    pub promoted: Option<String>,
    pub next: String,
}

/// `GET /v1/cluster/settings`; `PUT` answers it too, with the learners it promoted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub voters_target: u8,
    pub serial_mode: String,
    pub serial_range: u64,
    pub publication_base_url: String,
    pub crl_validity_secs: u64,
    pub ocsp_validity_secs: u64,
    /// Approvals a key recovery needs, by tokens other than the requester's.
    #[serde(default)]
    pub recovery_approvals: u8,
    /// How long an expired certificate is kept before the tidy removes it.
    #[serde(default)]
    pub tidy_retention_secs: u64,
    /// Certificates per tidy batch.
    #[serde(default)]
    pub tidy_batch: u32,
    /// The share of the log's time (percent) a tidy may use.
    #[serde(default)]
    pub tidy_share_percent: u8,
    /// How often delta CRLs are published, in seconds; 0: none.
    #[serde(default)]
    pub delta_crl_secs: u64,
    /// Revoked certificates per CRL partition; 0: one CRL per issuer.
    #[serde(default)]
    pub crl_partition_size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promoted: Vec<String>,
}

/// `PUT /v1/cluster/settings`: the replicated settings to change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters_target: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_range: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_approvals: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tidy_retention_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tidy_batch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tidy_share_percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_crl_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_partition_size: Option<u64>,
}

/// What `cluster rotate-kek` did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rotation {
    pub from: u32,
    pub to: u32,
    /// Keys sealed anew: issuer keys, OCSP signer keys, the internal CA's key.
    pub keys: usize,
    /// Nodes that took the new KEK.
    pub nodes: usize,
}

/// One warning or error a node remembers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecentError {
    /// Seconds since the epoch.
    pub at: u64,
    pub level: String,
    pub message: String,
}

/// The leader's view of one follower.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FollowerView {
    pub id: String,
    pub matched: Option<u64>,
    pub lag_entries: u64,
    pub lag_bytes: u64,
    pub last_contact_ms: Option<u64>,
}

/// What one node says about itself; also `GET /v1/cluster/nodes/{id}` of the node asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: String,
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub role: String,
    pub version: String,
    /// The highest state format its build applies; `None` from builds that do not say.
    #[serde(default)]
    pub max_format: Option<u32>,
    pub api: String,
    pub cluster: String,
    pub term: u64,
    pub leader: Option<String>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub apply_rate: f64,
    pub digest: Option<String>,
    /// `file`, `pkcs11`.
    #[serde(default)]
    pub root_of_trust: String,
    pub recent_errors: Vec<RecentError>,
    /// Filled on the leader only.
    pub followers: Vec<FollowerView>,
}

/// A member as the summary shows it: its report, or why there is none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRow {
    pub id: String,
    pub name: String,
    pub address: String,
    pub status: String,
    pub role: String,
    pub version: Option<String>,
    /// The highest state format the node's build applies.
    #[serde(default)]
    pub max_format: Option<u32>,
    pub last_contact_ms: Option<u64>,
    pub matched_index: Option<u64>,
    pub lag_entries: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub applied_index: Option<u64>,
    pub apply_rate: Option<f64>,
    pub digest: Option<String>,
    /// `file`, `pkcs11`; unknown when the node did not answer.
    #[serde(default)]
    pub root_of_trust: Option<String>,
    pub errors: Vec<RecentError>,
    pub reason: Option<String>,
}

/// `GET /v1/cluster/summary`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub nodes: Vec<SummaryRow>,
    /// The state format the cluster runs at: commands of a higher one are refused until
    /// every member applies it, when it rises by itself.
    #[serde(default)]
    pub effective_format: u32,
    /// The highest format every member's build applies, when each answered.
    #[serde(default)]
    pub members_apply: Option<u32>,
    pub overall: String,
    pub computed_at: String,
}
