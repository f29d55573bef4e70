//! Node configuration: parsed once from `node.toml` and flags into typed
//! structs, validated with errors that name the bad field, then passed down.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Everything a node needs to start. Every field is documented in docs/configuration.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its database, keys and snapshots.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// HTTPS API address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Plain-HTTP publication address (CA certificate, CRL, OCSP); empty disables it.
    #[serde(default = "default_http_listen")]
    pub http_listen: Option<SocketAddr>,
    /// Mutual-TLS cluster channel address (Raft, forwarding); none on a node that is never clustered.
    #[serde(default)]
    pub cluster_listen: Option<SocketAddr>,
    /// `host:port` at which other nodes reach this node's cluster channel (defaults to `cluster_listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Base URL that issued certificates name for CRL, OCSP and CA certificate
    /// (defaults to `http://<http_listen>`).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Extra DNS names or IPs for the node's TLS certificate.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// A human-friendly node name (defaults to the host name).
    #[serde(default)]
    pub node_name: Option<String>,
    /// Create a root CA on first start (what `--dev` does).
    #[serde(default)]
    pub init_root_ca: bool,
    /// Raft timings.
    #[serde(default)]
    pub raft: RaftConfig,
    /// How often CRLs are checked for renewal, in seconds.
    #[serde(default = "default_crl_check")]
    pub crl_check_secs: u64,
    /// Memory for the store's page cache, in MiB: what the node keeps of its store in
    /// memory, whatever the store's size.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
    /// Seconds without contact after which the leader raises an alarm about a member
    /// (a log line, and `BAD` in `cluster summary`).
    #[serde(default = "default_contact_alarm")]
    pub contact_alarm_secs: u64,
    /// Largest request body in bytes.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// A development node (`--dev`): forms its one-node cluster by itself on first start.
    #[serde(skip)]
    pub dev: bool,
}

/// Raft timings, in milliseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    #[serde(default = "default_election_min")]
    pub election_timeout_min_ms: u64,
    #[serde(default = "default_election_max")]
    pub election_timeout_max_ms: u64,
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: default_heartbeat(),
            election_timeout_min_ms: default_election_min(),
            election_timeout_max_ms: default_election_max(),
            snapshot_every: default_snapshot_every(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("hapki-data")
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8443".parse().expect("literal address")
}
fn default_http_listen() -> Option<SocketAddr> {
    Some("127.0.0.1:8080".parse().expect("literal address"))
}
fn default_crl_check() -> u64 {
    60
}
fn default_cache_mib() -> usize {
    16
}
fn default_contact_alarm() -> u64 {
    10
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_heartbeat() -> u64 {
    100
}
fn default_election_min() -> u64 {
    400
}
fn default_election_max() -> u64 {
    800
}
fn default_snapshot_every() -> u64 {
    20_000
}

impl Default for NodeConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

impl NodeConfig {
    /// Parses a TOML file; unknown or malformed fields are named in the error.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, String> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| format!("{source}: {e}"))?;
        cfg.validate().map_err(|e| format!("{source}: {e}"))?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.raft;
        if r.heartbeat_ms == 0 || r.election_timeout_min_ms <= r.heartbeat_ms {
            return Err("raft.election_timeout_min_ms must be greater than raft.heartbeat_ms (> 0)".into());
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err("raft.election_timeout_max_ms must be greater than raft.election_timeout_min_ms".into());
        }
        if self.max_body_bytes < 16 * 1024 {
            return Err("max_body_bytes must be at least 16384".into());
        }
        if let Some(a) = &self.advertise {
            if self.cluster_listen.is_none() {
                return Err("advertise needs cluster_listen".into());
            }
            if a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                return Err(format!("advertise '{a}' must be host:port"));
            }
        }
        if let Some(url) = &self.public_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!("public_url '{url}' must start with http:// or https://"));
            }
        }
        Ok(())
    }

    /// Where other nodes reach this node's cluster channel, if it has one.
    pub fn cluster_address(&self) -> Option<String> {
        self.advertise
            .clone()
            .or_else(|| self.cluster_listen.map(|a| a.to_string()))
    }

    /// The base URL for CDP and AIA in issued certificates.
    pub fn publication_base(&self) -> String {
        match (&self.public_url, self.http_listen) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(a)) => format!("http://{a}"),
            (None, None) => format!("https://{}", self.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let c = NodeConfig::default();
        assert_eq!(c.listen.port(), 8443);
        assert_eq!(c.publication_base(), "http://127.0.0.1:8080");
        let err = NodeConfig::from_toml("listne = \"x\"", "node.toml").unwrap_err();
        assert!(err.contains("listne"), "{err}");
        let err = NodeConfig::from_toml("[raft]\nheartbeat_ms = 500", "node.toml").unwrap_err();
        assert!(err.contains("election_timeout_min_ms"), "{err}");
        let err = NodeConfig::from_toml("public_url = \"ftp://x\"", "node.toml").unwrap_err();
        assert!(err.contains("public_url"), "{err}");
    }
}
