//! `hapki server`: builds the node configuration from `--config` and flags and runs the node.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use hapki_server::NodeConfig;

use super::{CliResult, Failure};

#[derive(Args)]
pub struct ServerArgs {
    /// A single development node: data in ./hapki-data, a root CA and an admin token on first start
    #[arg(long)]
    dev: bool,
    #[command(flatten)]
    node: NodeArgs,
    /// Log filter, e.g. info or hapki_server=debug [env: HAPKI_LOG]
    #[arg(long, default_value = "warn")]
    log: String,
    /// How log lines look: text, or one JSON object per line
    #[arg(long, value_enum, env = "HAPKI_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// What a node is configured with: `--config` and the flags that override it.
#[derive(Args)]
pub struct NodeArgs {
    /// Node configuration file (every field is in docs/configuration.md)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory [default: ./hapki-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTPS API address [default: 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Plain-HTTP publication address for CRL, OCSP and CA certificate [default: 127.0.0.1:8080]
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Mutual-TLS cluster channel address, e.g. 0.0.0.0:8444
    #[arg(long)]
    cluster_listen: Option<SocketAddr>,
    /// host:port at which other nodes reach this node's cluster channel [default: --cluster-listen]
    #[arg(long)]
    advertise: Option<String>,
    /// Base URL that issued certificates name for CRL, OCSP and CA certificate
    #[arg(long)]
    public_url: Option<String>,
    /// Node name shown in listings [default: host name]
    #[arg(long)]
    node_name: Option<String>,
    /// Serve Prometheus metrics at /metrics on the plain-HTTP listener (`metrics = true`)
    #[arg(long)]
    metrics: bool,
    /// Port ACME http-01 validation connects to on the identifier's host [default: 80]
    #[arg(long)]
    acme_http01_port: Option<u16>,
    /// Port ACME tls-alpn-01 validation connects to on the identifier's host [default: 443]
    #[arg(long)]
    acme_tls_alpn01_port: Option<u16>,
    /// DNS server (host:port) ACME dns-01 validation asks [default: the system's resolvers]
    #[arg(long)]
    acme_dns_resolver: Option<SocketAddr>,
    #[command(flatten)]
    root: super::node::RootOfTrustArgs,
}

impl NodeArgs {
    /// The configuration file named with `--config`, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// The node configuration: the file's, or the defaults, then the flags.
    pub fn config(self) -> Result<NodeConfig, Failure> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
                NodeConfig::from_toml(&text, &path.display().to_string()).map_err(Failure::usage)?
            }
            // Without a file, every field comes from its flag or its default.
            None => NodeConfig::default(),
        };
        if let Some(d) = self.data_dir {
            cfg.data_dir = d;
        }
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if let Some(h) = self.http_listen {
            cfg.http_listen = Some(h);
        }
        if let Some(c) = self.cluster_listen {
            cfg.cluster_listen = Some(c);
        }
        if let Some(a) = self.advertise {
            cfg.advertise = Some(a);
        }
        if let Some(u) = self.public_url {
            cfg.public_url = Some(u);
        }
        if let Some(n) = self.node_name {
            cfg.node_name = Some(n);
        }
        if self.metrics {
            cfg.metrics = true;
        }
        if let Some(p) = self.acme_tls_alpn01_port {
            cfg.acme_tls_alpn01_port = p;
        }
        if let Some(p) = self.acme_http01_port {
            cfg.acme_http01_port = p;
        }
        if let Some(r) = self.acme_dns_resolver {
            cfg.acme_dns_resolver = Some(r);
        }
        if let Some(root) = self.root.spec()? {
            cfg.root_of_trust = Some(root);
            cfg.unseal_key_file = None;
        }
        cfg.validate().map_err(Failure::usage)?;
        Ok(cfg)
    }
}

pub async fn run(args: ServerArgs) -> CliResult {
    let filter = std::env::var("HAPKI_LOG").unwrap_or_else(|_| args.log.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| Failure::usage(e.to_string()))?;
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        use tracing_subscriber::Layer;
        // hapki's own warnings and errors are also kept for `cluster summary`.
        let recent = hapki_server::recent::RecentErrors.with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target().starts_with("hapki")
        }));
        use hapki_server::logfmt::WithNode;
        let lines = match args.log_format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(WithNode {
                    inner: tracing_subscriber::fmt::format(),
                    json: false,
                })
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .json()
                .event_format(WithNode {
                    inner: tracing_subscriber::fmt::format()
                        .json()
                        .with_current_span(true)
                        .with_span_list(false)
                        .flatten_event(true),
                    json: true,
                })
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(lines.with_filter(filter))
            .with(recent)
            .init();
    }
    let mut cfg = args.node.config()?;
    if args.dev {
        cfg.init_root_ca = true;
        cfg.dev = true;
    }
    hapki_server::run(cfg)
        .await
        .map_err(|e| Failure::other(format!("{e:#}")))
}
