//! Node configuration: parsed once from `node.toml` and flags into typed
//! structs, validated with errors that name the bad field, then passed down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hapki_api::node::RootOfTrustSpec;
use serde::Deserialize;

use crate::serve::Limits;
use hapki_cluster::listener::CHANNEL_MAX_CONNECTIONS;

/// Everything a node needs to start. Every field is documented in docs/configuration.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its database, keys and snapshots.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The node's unseal key, when not `<data_dir>/unseal.key`: the older spelling of
    /// `key_file` in `[root_of_trust]`.
    #[serde(default)]
    pub unseal_key_file: Option<PathBuf>,
    /// What seals this node's KEK and channel key: a key file or an AES key on a PKCS#11
    /// token. Unset: what the data directory records, else a key file.
    #[serde(default)]
    pub root_of_trust: Option<RootOfTrustSpec>,
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
    /// How often the leader looks for expired certificates to tidy, in seconds.
    #[serde(default = "default_tidy_check")]
    pub tidy_check_secs: u64,
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
    /// Caps on connections and deadlines for the HTTPS API and plain-HTTP listeners.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Scheduled backups, taken by whichever node leads.
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    /// Serve Prometheus metrics at `/metrics` on the plain-HTTP listener (`--metrics`).
    #[serde(default)]
    pub metrics: bool,
    /// The port ACME `http-01` validation connects to on the identifier's host
    /// (`--acme-http01-port`).
    #[serde(default = "default_http01_port")]
    pub acme_http01_port: u16,
    /// The port ACME `tls-alpn-01` validation connects to on the identifier's host
    /// (`--acme-tls-alpn01-port`).
    #[serde(default = "default_tls_alpn01_port")]
    pub acme_tls_alpn01_port: u16,
    /// The DNS server ACME `dns-01` validation asks, `host:port`; the system's resolvers
    /// when absent (`--acme-dns-resolver`).
    #[serde(default)]
    pub acme_dns_resolver: Option<SocketAddr>,
    /// A development node (`--dev`): forms its one-node cluster by itself on first start.
    #[serde(skip)]
    pub dev: bool,
}

fn default_http01_port() -> u16 {
    80
}

fn default_tls_alpn01_port() -> u16 {
    443
}

/// `[backup]`: backups the leader takes on a schedule, encrypted to a recipient's RSA key
/// (no one is there to be shown a key), into `dir` on the leader, keeping the newest `keep`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// How often, e.g. `24h`, `30m` or a number of seconds.
    pub every: String,
    /// Where the leader writes them (every node that may lead needs it).
    pub dir: PathBuf,
    /// How many scheduled backups to keep in `dir`.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// The RSA public key or certificate (PEM) each backup's key is encrypted to.
    pub recipient: PathBuf,
}

impl BackupConfig {
    /// The interval in seconds.
    pub fn every_secs(&self) -> Result<u64, String> {
        match crate::pki::parse_duration(&self.every) {
            Ok(0) | Err(_) => Err(format!(
                "backup.every '{}' must be a duration like 24h, 30m or 3600 (more than 0)",
                self.every
            )),
            Ok(n) => Ok(n),
        }
    }
}

fn default_keep() -> usize {
    7
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
    /// Log entries kept below a snapshot: a node less far behind catches up from the log,
    /// one further behind is sent the snapshot.
    #[serde(default = "default_keep_below_snapshot")]
    pub keep_below_snapshot: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            heartbeat_ms: default_heartbeat(),
            election_timeout_min_ms: default_election_min(),
            election_timeout_max_ms: default_election_max(),
            snapshot_every: default_snapshot_every(),
            keep_below_snapshot: default_keep_below_snapshot(),
        }
    }
}

/// The `[limits]` of the HTTPS API and plain-HTTP listeners: how many connections each
/// keeps open, and how long a client may take, so that slow or idle clients cannot hold
/// the node's file descriptors. The cluster channel keeps its own deadlines (it carries
/// snapshots and waits for commits); only its connection cap is set here.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open connections on the HTTPS API; by default a share of the open-file limit
    /// ([`default_max_connections`]).
    #[serde(default)]
    pub max_connections_https: Option<usize>,
    /// Open connections on the plain-HTTP listener; by default as for the HTTPS API.
    #[serde(default)]
    pub max_connections_http: Option<usize>,
    /// Open connections on the cluster channel (256 by default, room for 20 nodes' pools).
    #[serde(default)]
    pub max_connections_cluster: Option<usize>,
    /// Seconds a client has to send a request's headers.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a request may take to be answered.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections_https: None,
            max_connections_http: None,
            max_connections_cluster: None,
            header_timeout_secs: default_header_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            request_timeout_secs: default_request_timeout(),
        }
    }
}

impl LimitsConfig {
    /// The limits of the HTTPS API and of the plain-HTTP listener, in a process that may
    /// keep `open_files` descriptors open.
    pub fn listeners(&self, open_files: u64) -> (Limits, Limits) {
        let with_cap = |cap: Option<usize>| Limits {
            max_connections: cap.unwrap_or_else(|| default_max_connections(open_files)),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        };
        (
            with_cap(self.max_connections_https),
            with_cap(self.max_connections_http),
        )
    }

    /// The limits of the cluster channel.
    pub fn channel(&self) -> Limits {
        Limits {
            max_connections: self
                .max_connections_cluster
                .unwrap_or(hapki_cluster::listener::CHANNEL_MAX_CONNECTIONS),
            ..hapki_cluster::channel::CHANNEL_LIMITS
        }
    }

    fn validate(&self) -> Result<(), String> {
        let caps = [
            ("max_connections_https", self.max_connections_https),
            ("max_connections_http", self.max_connections_http),
            ("max_connections_cluster", self.max_connections_cluster),
        ];
        for (field, cap) in caps {
            if cap == Some(0) {
                return Err(format!("limits.{field} must be at least 1"));
            }
        }
        let secs = [
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
        ];
        for (field, value) in secs {
            if value == 0 || value > MAX_TIMEOUT_SECS {
                return Err(format!("limits.{field} must be between 1 and {MAX_TIMEOUT_SECS}"));
            }
        }
        Ok(())
    }
}

/// The default cap on each of the HTTPS API and plain-HTTP listeners: a quarter of the
/// open-file limit (at least 128) is left to the store, Raft and outgoing connections,
/// the cluster channel's own cap is set aside, and the two listeners share the rest,
/// each between 32 and 16,384.
pub fn default_max_connections(open_files: u64) -> usize {
    let kept = (open_files / 4).max(128) + CHANNEL_MAX_CONNECTIONS as u64;
    let share = open_files.saturating_sub(kept) / 2;
    usize::try_from(share).unwrap_or(usize::MAX).clamp(32, 16_384)
}

/// The longest deadline `[limits]` takes: a day.
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_request_timeout() -> u64 {
    60
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
fn default_tidy_check() -> u64 {
    crate::pki::tidy::DEFAULT_EVERY.as_secs()
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
// The Raft defaults are the cluster crate's, written once there.
fn default_heartbeat() -> u64 {
    hapki_cluster::RaftSettings::default().heartbeat_ms
}
fn default_election_min() -> u64 {
    hapki_cluster::RaftSettings::default().election_timeout_min_ms
}
fn default_election_max() -> u64 {
    hapki_cluster::RaftSettings::default().election_timeout_max_ms
}
fn default_snapshot_every() -> u64 {
    hapki_cluster::RaftSettings::default().snapshot_every
}
fn default_keep_below_snapshot() -> u64 {
    hapki_cluster::RaftSettings::default().keep_below_snapshot
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
        self.limits.validate()?;
        if let Some(a) = &self.advertise {
            if self.cluster_listen.is_none() {
                return Err("advertise needs cluster_listen".into());
            }
            if a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                return Err(format!("advertise '{a}' must be host:port"));
            }
        }
        if self.unseal_key_file.is_some() && self.root_of_trust.is_some() {
            return Err("unseal_key_file and [root_of_trust] both name the root of trust: keep [root_of_trust] (key_file says where a key file is)".into());
        }
        if let Some(b) = &self.backup {
            b.every_secs()?;
            if b.keep == 0 {
                return Err("backup.keep must be at least 1".into());
            }
            let pem =
                std::fs::read(&b.recipient).map_err(|e| format!("backup.recipient {}: {e}", b.recipient.display()))?;
            hapki_domain::backup::recipient_key(&pem)
                .map_err(|e| format!("backup.recipient {}: {e}", b.recipient.display()))?;
        }
        if let Some(url) = &self.public_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!("public_url '{url}' must start with http:// or https://"));
            }
        }
        Ok(())
    }

    /// The root of trust the configuration names, if it names one.
    pub fn configured_root(&self) -> Option<RootOfTrustSpec> {
        self.root_of_trust.clone().or_else(|| {
            self.unseal_key_file
                .clone()
                .map(|p| RootOfTrustSpec::File { key_file: Some(p) })
        })
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
        let err = NodeConfig::from_toml("[limits]\nheader_timeout_secs = 0", "node.toml").unwrap_err();
        assert!(err.contains("limits.header_timeout_secs"), "{err}");
        let err = NodeConfig::from_toml("[limits]\nmax_connections_http = 0", "node.toml").unwrap_err();
        assert!(err.contains("limits.max_connections_http"), "{err}");
        let err = NodeConfig::from_toml("[limits]\nidle_secs = 5", "node.toml").unwrap_err();
        assert!(err.contains("idle_secs"), "{err}");
    }

    #[test]
    fn listener_limits_come_from_the_config_or_the_open_file_limit() {
        let c = NodeConfig::from_toml("[limits]\nmax_connections_http = 500\nidle_timeout_secs = 5", "t").unwrap();
        let (https, http) = c.limits.listeners(20_000);
        assert_eq!((https.max_connections, http.max_connections), (7_372, 500));
        assert_eq!(http.idle_timeout, Duration::from_secs(5));
        assert_eq!(https.header_timeout, Duration::from_secs(10));
        assert_eq!(https.request_timeout, Duration::from_secs(60));
        // The listeners' shares, the channel's cap and the headroom fit in the limit.
        for open_files in [1_024u64, 4_096, 20_000, 65_536] {
            let cap = default_max_connections(open_files) as u64;
            assert!(
                2 * cap + CHANNEL_MAX_CONNECTIONS as u64 + open_files / 4 <= open_files,
                "{open_files}"
            );
        }
        assert_eq!(default_max_connections(1 << 20), 16_384);
        assert_eq!(default_max_connections(256), 32);
    }
}
