//! Starting a node: listeners first (so a busy port fails fast), then the store
//! and Raft; then a node that has a cluster resumes it, a dev node forms one
//! (root CA and admin token included), and a fresh configured node waits
//! `not clustered` with a bootstrap token.

use anyhow::Context;
use hapki_api::node::RootOfTrustSpec;
use hapki_cluster::{ClusterNode, RaftSettings};
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::datadir::{write_public, DataDir};
use crate::lifecycle::Node;
use crate::{rand, serve, tls};

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    if cfg.metrics {
        crate::metrics::install();
    }
    // The node's id first, so that every log line names it.
    let dir = DataDir::new(cfg.data_dir.clone());
    dir.create()
        .with_context(|| format!("cannot create the data directory {}", dir.root.display()))?;
    let node_id = node_id(&dir)?;
    crate::logfmt::set_node(node_id);
    let open_files = raise_open_file_limit();
    let (https_limits, http_limits) = cfg.limits.listeners(open_files);
    tracing::info!(
        "connection caps: HTTPS API {}, plain HTTP {}, cluster channel {}",
        https_limits.max_connections,
        http_limits.max_connections,
        cfg.limits.channel().max_connections
    );
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
    let root_spec = crate::trust::root::resolve(cfg.configured_root().as_ref(), &dir)?;
    let dir = match &root_spec {
        RootOfTrustSpec::File { key_file } => dir.with_unseal_key(key_file.clone()),
        RootOfTrustSpec::Pkcs11 { .. } => dir,
    };
    let root = crate::trust::root::open(&root_spec, &dir);
    let store = crate::upgrade::open_store(&dir, cfg.cache_mib.max(1) * 1024 * 1024)
        .with_context(|| format!("cannot open {}", dir.db().display()))?;
    let settings = RaftSettings {
        heartbeat_ms: cfg.raft.heartbeat_ms,
        election_timeout_min_ms: cfg.raft.election_timeout_min_ms,
        election_timeout_max_ms: cfg.raft.election_timeout_max_ms,
        snapshot_every: cfg.raft.snapshot_every,
        keep_below_snapshot: cfg.raft.keep_below_snapshot,
    };
    let cluster = ClusterNode::start(store.clone(), &dir.root, node_id, &settings).await?;
    let node = Node::new(
        cfg.clone(),
        dir.clone(),
        node_id,
        store.clone(),
        cluster.clone(),
        root,
        cluster_listener,
    )?;

    let mut first_token = None;
    if cluster.is_initialized().await? {
        node.resume().await?;
    } else if cfg.dev {
        first_token = Some(node.form_new().await?);
    } else {
        node.prepare_bootstrap_token()?;
    }

    // The banner goes out before the listeners answer, so whoever sees the
    // node healthy can also read what it printed.
    banner(&node, first_token.as_deref());
    let tls_config = tls::server_config(node.cert_slot())?;
    tokio::spawn(serve::serve_https(
        https,
        tls_config,
        crate::lifecycle::https_app(node.clone()),
        https_limits,
    ));
    if let Some(http) = http {
        tokio::spawn(serve::serve_http(
            http,
            crate::lifecycle::http_app(node.clone()),
            http_limits,
        ));
    }

    shutdown_signal().await;
    println!("hapki: shutting down");
    cluster.shutdown().await?;
    store.flush()?;
    Ok(())
}

fn banner(node: &Node, token: Option<&str>) {
    let cfg = &node.cfg;
    let root = node.dir.root.display();
    println!("hapki node {:016x} is ready ({})", node.id, node.phase().label());
    println!("  API (HTTPS):      https://{}", cfg.listen);
    if let Some(h) = cfg.http_listen {
        println!("  CRL/OCSP (HTTP):  http://{h}");
    }
    if let Some(c) = cfg.cluster_address() {
        println!("  cluster channel:  {c} (mutual TLS)");
    }
    println!("  data directory:   {root}");
    let client = format!(
        "export HAPKI_URL=https://{} HAPKI_CA_CERT={root}/api-ca.pem",
        cfg.listen
    );
    if let crate::lifecycle::Phase::Sealed { reason } = node.phase() {
        println!();
        println!("This node is sealed: {reason}");
        println!("It tries again by itself; once its root of trust is back it serves. To try at once:");
        println!("  {client} HAPKI_TOKEN=<an admin token of the cluster>");
        println!("  hapki node unseal");
        return;
    }
    if node.pki().is_none() {
        println!();
        println!("This node is not clustered. Its bootstrap token is in {root}/bootstrap-token.");
        println!("Start a new cluster here, or join an existing one:");
        println!("  {client} HAPKI_TOKEN=$(cat {root}/bootstrap-token)");
        println!("  hapki cluster new");
        println!(
            "  hapki cluster fulljoin --member https://MEMBER:8443 --newnode https://{} --newnode-token-file {root}/bootstrap-token",
            cfg.listen
        );
        return;
    }
    if let Some(t) = token {
        println!();
        println!("Admin token (shown once, also written to {root}/admin-token):");
        println!("  {t}");
    }
    println!();
    println!("Use it from another terminal:");
    if node.dir.admin_token().exists() {
        println!("  {client} HAPKI_TOKEN=$(cat {root}/admin-token)");
    } else {
        println!("  {client} HAPKI_TOKEN=<an admin token of the cluster>");
    }
    println!("  hapki csr web CN:web.example.com subjectAltName:web.example.com");
    println!("  hapki cert issue --csr web.csr --profile server --out web.pem");
}

/// Raises the soft limit on open files to the hard one where the system allows, and
/// returns the soft limit in force: the listeners' default caps are shares of it.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!("cannot read the open-file limit ({e}); sizing the connection caps for 1024");
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                "raised the open-file limit from {} to {}",
                limit.rlim_cur,
                raised.rlim_cur
            );
            limit.rlim_cur = raised.rlim_cur;
        } else {
            let e = std::io::Error::last_os_error();
            tracing::warn!(
                "cannot raise the open-file limit from {} to its maximum {} ({e})",
                limit.rlim_cur,
                limit.rlim_max
            );
        }
    } else {
        tracing::info!("the open-file limit is {}", limit.rlim_cur);
    }
    if limit.rlim_cur < 1024 {
        tracing::warn!(
            "the open-file limit is {}: few connections fit; raise it (ulimit -n, LimitNOFILE=)",
            limit.rlim_cur
        );
    }
    limit.rlim_cur
}

/// This node's Raft id, chosen when its data directory is first used.
pub(crate) fn node_id(dir: &DataDir) -> anyhow::Result<u64> {
    let path = dir.node_id();
    if !path.exists() {
        write_public(&path, format!("{:016x}\n", rand::id64()).as_bytes())?;
    }
    let text = std::fs::read_to_string(&path)?;
    u64::from_str_radix(text.trim(), 16).with_context(|| format!("{} does not hold a node id", path.display()))
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
