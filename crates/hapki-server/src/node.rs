//! Starting a node: listeners first (so a busy port fails fast), then the root
//! of trust, the store and Raft, the cluster's first state, the internal CA and
//! this node's TLS certificate, and on a dev node a root CA and admin token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hapki_cluster::{ClusterNode, NodeAddr, RaftSettings};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::profile::builtin_profiles;
use hapki_store::{Command, Role, Settings, Store};
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::datadir::{write_public, write_secret, DataDir};
use crate::pki::{crl_loop, Pki, RootRequest};
use crate::trust::Keyring;
use crate::{api, rand, serve, tls};

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let https = TcpListener::bind(cfg.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (HTTPS API); choose another with --listen",
            cfg.listen
        )
    })?;
    let http = match cfg.http_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (plain-HTTP publication); choose another with --http-listen")
        })?),
        None => None,
    };
    let cluster_listener = match cfg.cluster_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (cluster channel); choose another with --cluster-listen")
        })?),
        None => None,
    };
    let dir = DataDir::new(cfg.data_dir.clone());
    dir.create()
        .with_context(|| format!("cannot create the data directory {}", dir.root.display()))?;
    let node_id = node_id(&dir)?;
    let keyring = Keyring::open_or_create(&dir)?;
    let store = Store::open(&dir.db()).with_context(|| format!("cannot open {}", dir.db().display()))?;
    let settings = RaftSettings {
        heartbeat_ms: cfg.raft.heartbeat_ms,
        election_timeout_min_ms: cfg.raft.election_timeout_min_ms,
        election_timeout_max_ms: cfg.raft.election_timeout_max_ms,
        snapshot_every: cfg.raft.snapshot_every,
        ..RaftSettings::default()
    };
    let cluster = ClusterNode::start(store.clone(), &dir.root, node_id, &settings).await?;
    let node_name = cfg.node_name.clone().unwrap_or_else(hostname);
    let addr = NodeAddr {
        name: node_name.clone(),
        api: cfg.listen.to_string(),
        cluster: String::new(),
    };
    cluster.bootstrap_single(addr).await?;
    cluster.wait_ready(Duration::from_secs(30)).await?;

    let pki = Pki::new(store, cluster.clone(), keyring);
    tokio::spawn(watch_applied(pki.clone(), dir.clone()));
    if pki.reader()?.cluster_id()?.is_none() {
        let settings = Settings {
            publication_base_url: cfg.publication_base(),
            ..Settings::default()
        };
        let cluster_id = hex::encode(rand::bytes::<8>());
        pki.propose(Command::Bootstrap {
            cluster_id,
            profiles: builtin_profiles(),
            settings,
        })
        .await?;
    }

    let internal = tls::internal_ca(&pki).await?;
    write_public(
        &dir.api_ca_pem(),
        encode(PemLabel::Certificate, &internal.cert_der).as_bytes(),
    )?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        node_name.clone(),
    ];
    if !cfg.listen.ip().is_unspecified() {
        names.push(cfg.listen.ip().to_string());
    }
    names.extend(cfg.tls_names.iter().cloned());
    names.retain(|n| hapki_domain::name::San::parse(n).is_ok());
    let (chain, key) = internal.node_certificate(&node_name, &names)?;
    let tls_config = tls::server_config(chain, key)?;
    if let (Some(listener), Some(advertised)) = (cluster_listener, cfg.cluster_address()) {
        let host = advertised
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']))
            .unwrap_or("localhost");
        let identity = internal.node_identity(&node_name, node_id, host)?;
        cluster.network().set_identity(&identity).map_err(anyhow::Error::msg)?;
        let state = cluster.channel_state();
        tokio::spawn(async move {
            if let Err(e) = hapki_cluster::channel::serve(listener, identity, state).await {
                tracing::error!("the cluster channel stopped: {e}");
            }
        });
    }

    if cfg.init_root_ca && pki.reader()?.issuers()?.is_empty() {
        let req = RootRequest {
            common_name: "hapki Root CA".into(),
            subject: Some("O=hapki".into()),
            key_type: hapki_domain::key::KeyType::EcP256,
            validity_days: 3650,
            default: true,
        };
        let root = pki.init_root(&req).await?;
        pki.refresh_crl(&root.id, 0).await?;
        println!("Initialised root CA {} ({})", root.name, root.id);
    }
    write_ca_pem(&pki, &dir);
    let first_token = if pki.reader()?.tokens()?.is_empty() {
        let t = pki.create_token(Role::Admin, "initial admin", None).await?;
        write_secret(&dir.admin_token(), format!("{}\n", t.token).as_bytes())?;
        Some(t.token)
    } else {
        None
    };

    // The banner goes out before the listeners answer, so whoever sees the
    // node healthy can also read what it printed.
    banner(&cfg, &dir, node_id, first_token.as_deref());
    let router = api::router(pki.clone(), cfg.max_body_bytes);
    tokio::spawn(serve::serve_https(https, tls_config, router));
    if let Some(http) = http {
        tokio::spawn(serve::serve_http(http, api::publication_router(pki.clone())));
    }
    tokio::spawn(crl_loop(pki.clone(), Duration::from_secs(cfg.crl_check_secs.max(1))));

    shutdown_signal().await;
    println!("hapki: shutting down");
    cluster.shutdown().await?;
    pki.store.flush()?;
    Ok(())
}

fn banner(cfg: &NodeConfig, dir: &DataDir, node_id: u64, token: Option<&str>) {
    let root = dir.root.display();
    println!("hapki node {node_id:016x} is ready");
    println!("  API (HTTPS):      https://{}", cfg.listen);
    if let Some(h) = cfg.http_listen {
        println!("  CRL/OCSP (HTTP):  http://{h}");
    }
    if let Some(c) = cfg.cluster_address() {
        println!("  cluster channel:  {c} (mutual TLS)");
    }
    println!("  data directory:   {root}");
    if let Some(t) = token {
        println!();
        println!("Admin token (shown once, also written to {root}/admin-token):");
        println!("  {t}");
    }
    println!();
    println!("Use it from another terminal:");
    println!(
        "  export HAPKI_URL=https://{} HAPKI_CA_CERT={root}/api-ca.pem HAPKI_TOKEN=$(cat {root}/admin-token)",
        cfg.listen
    );
    println!("  hapki csr web CN:web.example.com subjectAltName:web.example.com");
    println!("  hapki cert issue --csr web.csr --profile server --out web.pem");
}

fn write_ca_pem(pki: &Pki, dir: &DataDir) {
    match pki.issuer(None) {
        Ok(issuer) => {
            if let Err(e) = write_public(&dir.ca_pem(), issuer.chain_pem().concat().as_bytes()) {
                tracing::warn!("cannot write {}: {e}", dir.ca_pem().display());
            }
        }
        Err(e) => tracing::debug!("no ca.pem yet: {}", e.message),
    }
}

/// Drops caches when their data changes and keeps `ca.pem` current.
async fn watch_applied(pki: Arc<Pki>, dir: DataDir) {
    let mut rx = pki.cluster.subscribe();
    loop {
        match rx.recv().await {
            Ok(applied) => match applied.command.as_ref() {
                Command::Bootstrap { .. }
                | Command::AddIssuer { .. }
                | Command::InstallIssuerCert { .. }
                | Command::SetOcspSigner { .. }
                | Command::SetDefaultIssuer { .. }
                | Command::PutProfile { .. } => {
                    pki.invalidate();
                    write_ca_pem(&pki, &dir);
                }
                _ => {}
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => pki.invalidate(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn node_id(dir: &DataDir) -> anyhow::Result<u64> {
    let path = dir.node_id();
    if !path.exists() {
        write_public(&path, format!("{:016x}\n", rand::id64()).as_bytes())?;
    }
    let text = std::fs::read_to_string(&path)?;
    u64::from_str_radix(text.trim(), 16).with_context(|| format!("{} does not hold a node id", path.display()))
}

fn hostname() -> String {
    std::fs::read_to_string(Path::new("/proc/sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hapki".into())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
