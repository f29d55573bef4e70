//! A node's life in its cluster: `not clustered` on a fresh data directory,
//! then a one-node cluster (`cluster new`) or a member (`cluster join`, through
//! five phases), `ready`, and back to fresh on `cluster delete`. Owns the
//! phase every node reports, the bootstrap token of a fresh node, the
//! pending key of `cluster csr`, and turning the CA service on once the node
//! has a cluster.

mod admit;
pub mod channel_key;
mod error;
mod gates;
mod join;
mod peer;
mod rate;
mod reset;
mod rotate;
mod routes;
mod seal;
pub mod summary;

pub use error::LifecycleError;
pub use routes::{http_app, https_app};

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use hapki_cluster::{ClusterNode, NodeAddr};
use hapki_domain::key::SigningKey;
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::profile::builtin_profiles;
use hapki_store::{Command, Role, Settings, Store};
use tokio::net::TcpListener;

use crate::auth::Caller;
use crate::config::NodeConfig;
use crate::datadir::{write_public, write_secret, DataDir};
use crate::pki::{crl_loop, delta_loop, tidy_loop, Pki, RootRequest};
use crate::tls::{self, CertSlot, InternalCa};
use crate::trust::{Keyring, RootOfTrust};
use crate::{api, rand};

pub use admit::{SettingsChange, SignedNode};
pub use join::JoinRequest;
pub use rate::ApplyRate;
pub use rotate::Rotation;

pub use hapki_api::cluster::{Phase, PhaseChange, JOIN_STEPS};

/// A running node and its place in a cluster.
pub struct Node {
    pub cfg: NodeConfig,
    pub dir: DataDir,
    pub id: u64,
    pub name: String,
    pub store: Store,
    pub cluster: ClusterNode,
    /// What seals this node's KEK and channel key until the CA service runs (then its
    /// keyring's root is the one in use; a migration changes both).
    root: RwLock<Arc<dyn RootOfTrust>>,
    cert: Arc<CertSlot>,
    phase: RwLock<Phase>,
    pki: OnceLock<Arc<Pki>>,
    routers: OnceLock<(Router, Router)>,
    /// SHA-256 of the bootstrap token while the node is not clustered.
    bootstrap: RwLock<Option<[u8; 32]>>,
    /// The key of `cluster csr`, kept in memory until the join uses it.
    pending_key: Mutex<Option<SigningKey>>,
    cluster_listener: Mutex<Option<TcpListener>>,
    /// The phases this node went through since it started, with milliseconds since start.
    history: Mutex<Vec<(u64, String)>>,
    started: std::time::Instant,
    /// One lifecycle operation (new, join, delete) at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
    pub apply_rate: ApplyRate,
}

impl Node {
    /// Builds the node around an opened store and Raft node; decides nothing yet.
    pub fn new(
        cfg: NodeConfig,
        dir: DataDir,
        id: u64,
        store: Store,
        cluster: ClusterNode,
        root: Arc<dyn RootOfTrust>,
        cluster_listener: Option<TcpListener>,
    ) -> Result<Arc<Node>, LifecycleError> {
        let name = node_name(&cfg);
        let ephemeral = InternalCa::ephemeral(id)?;
        let (chain, key) = ephemeral.node_certificate(&name, &api_names(&cfg, &name))?;
        let node = Arc::new(Node {
            cert: CertSlot::new(chain, key)?,
            cfg,
            dir,
            id,
            name,
            store,
            cluster,
            root: RwLock::new(root),
            phase: RwLock::new(Phase::NotClustered),
            pki: OnceLock::new(),
            routers: OnceLock::new(),
            bootstrap: RwLock::new(None),
            pending_key: Mutex::new(None),
            cluster_listener: Mutex::new(cluster_listener),
            history: Mutex::new(Vec::new()),
            started: std::time::Instant::now(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            apply_rate: ApplyRate::default(),
        });
        tokio::spawn(rate::sample(node.clone()));
        // Until the node has a cluster, clients trust its throwaway CA.
        let path = node.dir.api_ca_pem();
        write_public(&path, encode(PemLabel::Certificate, &ephemeral.cert_der).as_bytes()).map_err(file_err(&path))?;
        Ok(node)
    }

    /// The HTTPS listener's certificate slot.
    pub fn cert_slot(&self) -> Arc<CertSlot> {
        self.cert.clone()
    }

    pub fn phase(&self) -> Phase {
        self.phase.read().expect("phase lock").clone()
    }

    fn set_phase(&self, phase: Phase) {
        tracing::info!("node {:016x}: {}", self.id, phase.label());
        metrics::counter!(crate::metrics::PHASE_CHANGES, "phase" => crate::metrics::phase_kind(&phase)).increment(1);
        self.history
            .lock()
            .expect("history lock")
            .push((self.started.elapsed().as_millis() as u64, phase.label()));
        *self.phase.write().expect("phase lock") = phase;
    }

    /// The phases this node went through since it started, in order.
    pub fn history(&self) -> Vec<PhaseChange> {
        self.history
            .lock()
            .expect("history lock")
            .iter()
            .map(|(ms, label)| PhaseChange {
                after_ms: *ms,
                status: label.clone(),
            })
            .collect()
    }

    /// The root of trust that seals this node's KEK and channel key.
    pub fn root(&self) -> Arc<dyn RootOfTrust> {
        match self.pki() {
            Some(pki) => pki.keyring.root(),
            None => self.root.read().expect("root lock").clone(),
        }
    }

    /// Why the node serves none of the CA's routes: it has no cluster, or it is sealed.
    pub fn unserved(&self) -> LifecycleError {
        match self.phase() {
            Phase::Sealed { reason } => LifecycleError::Sealed(reason),
            _ => LifecycleError::NotClustered,
        }
    }

    /// The CA service, once the node has a cluster.
    pub fn pki(&self) -> Option<Arc<Pki>> {
        self.pki.get().cloned()
    }

    /// The full routers (HTTPS API, plain-HTTP publication), once the node has a cluster.
    pub fn routers(&self) -> Option<&(Router, Router)> {
        self.routers.get()
    }

    /// How other nodes and clients reach this node.
    pub fn addr(&self) -> NodeAddr {
        NodeAddr {
            name: self.name.clone(),
            api: self.cfg.listen.to_string(),
            cluster: self.cfg.cluster_address().unwrap_or_default(),
        }
    }

    /// Writes a fresh node's one-time bootstrap token (0600), or keeps the one it has.
    pub fn prepare_bootstrap_token(&self) -> Result<(), LifecycleError> {
        let path = self.dir.bootstrap_token();
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = format!("hbt_{}", hex::encode(rand::bytes::<24>()));
                write_secret(&path, format!("{t}\n").as_bytes()).map_err(file_err(&path))?;
                t
            }
        };
        *self.bootstrap.write().expect("bootstrap lock") = Some(crate::pki::token_hash(&token));
        Ok(())
    }

    /// Checks the bootstrap token of a node that is not clustered yet.
    pub fn check_bootstrap_token(&self, presented: Option<&str>) -> Result<(), LifecycleError> {
        let Some(expected) = *self.bootstrap.read().expect("bootstrap lock") else {
            return Err(LifecycleError::AlreadyClustered);
        };
        let presented = presented.ok_or_else(|| {
            LifecycleError::BootstrapToken(
                "this node is not clustered yet: pass its bootstrap token (the file bootstrap-token in its data directory)"
                    .into(),
            )
        })?;
        let hash = crate::pki::token_hash(presented);
        if aws_lc_rs::constant_time::verify_slices_are_equal(&hash, &expected).is_err() {
            return Err(LifecycleError::BootstrapToken(
                "wrong bootstrap token; a fresh node's token is in the file bootstrap-token in its data directory"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Starts a node whose data directory already holds a cluster: opens the KEK and
    /// turns the CA service on, or stays sealed until its root of trust can be reached.
    pub async fn resume(self: &Arc<Self>) -> anyhow::Result<()> {
        match self.unseal_now().await {
            Ok(()) => Ok(()),
            Err(LifecycleError::Sealed(reason)) => {
                tracing::warn!("this node starts sealed: {reason}");
                // It cannot reach the others without its channel key: no elections meanwhile,
                // which would only raise its term.
                self.cluster.raft().runtime_config().elect(false);
                self.set_phase(Phase::Sealed { reason });
                tokio::spawn(seal::retry(self.clone()));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `cluster new` (and a dev node's first start): a one-node cluster with this node
    /// as its only voter, the cluster's first state, and an admin token.
    pub async fn form_new(self: &Arc<Self>) -> Result<String, LifecycleError> {
        let _busy = self.busy.try_lock().map_err(|_| LifecycleError::Busy)?;
        if self.cluster.is_initialized().await.map_err(LifecycleError::Cluster)? {
            return Err(LifecycleError::AlreadyClustered);
        }
        let keyring = Keyring::open_or_create(&self.dir, self.root())?;
        self.cluster
            .bootstrap_single(self.addr())
            .await
            .map_err(LifecycleError::Cluster)?;
        self.cluster
            .wait_ready(Duration::from_secs(30))
            .await
            .map_err(LifecycleError::Cluster)?;
        let settings = Settings {
            publication_base_url: self.cfg.publication_base(),
            ..Settings::default()
        };
        let bootstrap = Command::Bootstrap {
            cluster_id: hex::encode(rand::bytes::<8>()),
            profiles: builtin_profiles(),
            settings,
        };
        if let hapki_store::CommandResult::Rejected { message, .. } =
            self.cluster.propose(&hapki_cluster::Origin::Node, bootstrap).await?
        {
            return Err(LifecycleError::conflict(message));
        }
        let pki = self.activate(keyring).await?;
        if self.cfg.init_root_ca && pki.reader()?.issuers()?.is_empty() {
            let req = RootRequest {
                common_name: "hapki Root CA".into(),
                subject: Some("O=hapki".into()),
                key_type: hapki_domain::key::KeyType::EcP256,
                validity_days: 3650,
                default: true,
            };
            let root = pki.init_root(&Caller::node(), &req).await?;
            println!("Initialised root CA {} ({})", root.name, root.id);
            write_ca_pem(&pki, &self.dir);
        }
        let token = pki
            .create_token(
                &Caller::node(),
                &crate::pki::TokenGrant::role(Role::Admin, "initial admin"),
            )
            .await?;
        let path = self.dir.admin_token();
        write_secret(&path, format!("{}\n", token.token).as_bytes()).map_err(file_err(&path))?;
        Ok(token.token)
    }

    /// Turns the CA service on over a replica that belongs to a cluster: the internal CA,
    /// this node's certificates (HTTPS and cluster channel), and the full API.
    async fn activate(self: &Arc<Self>, keyring: Keyring) -> Result<Arc<Pki>, LifecycleError> {
        let pki = Pki::new(
            self.store.clone(),
            Arc::new(self.cluster.clone()),
            keyring,
            crate::clock::Sources::system(),
        );
        pki.set_acme(
            crate::pki::acme::Validation {
                http01_port: self.cfg.acme_http01_port,
                tls_alpn01_port: self.cfg.acme_tls_alpn01_port,
                dns_resolver: self.cfg.acme_dns_resolver,
            },
            self.cfg.dev,
        );
        self.sync_kek(&pki).await?;
        tokio::spawn(watch_applied(self.clone(), pki.clone()));
        let internal = tls::internal_ca(&pki).await?;
        let (chain, key) = internal.node_certificate(&self.name, &api_names(&self.cfg, &self.name))?;
        self.cert.replace(chain, key)?;
        let path = self.dir.api_ca_pem();
        write_public(&path, encode(PemLabel::Certificate, &internal.cert_der).as_bytes()).map_err(file_err(&path))?;
        if self.cfg.cluster_address().is_some() {
            let identity = self.channel_identity(&pki, &internal).await?;
            self.start_channel(identity)?;
        }
        write_ca_pem(&pki, &self.dir);
        let _ = self.pki.set(pki.clone());
        let _ = self.routers.set((
            api::router(pki.clone(), self.cfg.max_body_bytes),
            api::publication_router(pki.clone()),
        ));
        tokio::spawn(crl_loop(
            pki.clone(),
            Duration::from_secs(self.cfg.crl_check_secs.max(1)),
        ));
        tokio::spawn(delta_loop(pki.clone()));
        tokio::spawn(tidy_loop(
            pki.clone(),
            Duration::from_secs(self.cfg.tidy_check_secs.max(1)),
        ));
        if let Some(backup) = self.cfg.backup.clone() {
            tokio::spawn(crate::backups::schedule(pki.clone(), backup));
        }
        tokio::spawn(gates::run(self.clone()));
        *self.bootstrap.write().expect("bootstrap lock") = None;
        let _ = std::fs::remove_file(self.dir.bootstrap_token());
        self.set_phase(Phase::Ready);
        Ok(pki)
    }

    /// Gives the cluster channel this node's identity and starts serving it (once).
    fn start_channel(self: &Arc<Self>, identity: hapki_cluster::channel::NodeIdentity) -> Result<(), LifecycleError> {
        self.cluster
            .network()
            .set_identity(&identity)
            .map_err(LifecycleError::internal)?;
        let Some(listener) = self.cluster_listener.lock().expect("listener lock").take() else {
            return Ok(());
        };
        let state = self.cluster.channel_state();
        let extra = peer::routes(self.clone());
        let limits = self.cfg.limits.channel();
        tokio::spawn(async move {
            if let Err(e) = hapki_cluster::channel::serve(listener, identity, state, extra, limits).await {
                tracing::error!("the cluster channel stopped: {e}");
            }
        });
        Ok(())
    }
}

fn file_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LifecycleError {
    let path = path.display().to_string();
    move |e| LifecycleError::internal(format!("cannot write {path}: {e}"))
}

/// The host part of `host:port`, without IPv6 brackets.
fn advertise_host(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or("localhost")
}

/// Names for the HTTPS certificate: loopback, the node name, the listen address, `tls_names`.
fn api_names(cfg: &NodeConfig, node_name: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        node_name.to_string(),
    ];
    if !cfg.listen.ip().is_unspecified() {
        names.push(cfg.listen.ip().to_string());
    }
    names.extend(cfg.tls_names.iter().cloned());
    names.retain(|n| hapki_domain::name::San::parse(n).is_ok());
    names
}

pub(crate) fn write_ca_pem(pki: &Pki, dir: &DataDir) {
    match pki.issuer(None) {
        Ok(issuer) => {
            if let Err(e) = write_public(&dir.ca_pem(), issuer.chain_pem().concat().as_bytes()) {
                tracing::warn!("cannot write {}: {e}", dir.ca_pem().display());
            }
        }
        Err(e) => tracing::debug!("no ca.pem yet: {}", e),
    }
}

/// Keeps `ca.pem` current and moves the keyring to the KEK a rotation names (the service
/// drops its own caches).
async fn watch_applied(node: Arc<Node>, pki: Arc<Pki>) {
    let mut rx = pki.cluster.subscribe();
    loop {
        match rx.recv().await {
            Ok(applied) => match applied.command() {
                // A snapshot replaced the state: anything may have changed.
                None => resync(&node, &pki, "a snapshot").await,
                Some(
                    Command::Bootstrap { .. }
                    | Command::AddIssuer { .. }
                    | Command::InstallIssuerCert { .. }
                    | Command::SetOcspSigner { .. }
                    | Command::SetDefaultIssuer { .. }
                    | Command::PutProfile { .. },
                ) => {
                    // The service drops its caches on its own too; this one must not read a stale issuer.
                    pki.invalidate();
                    write_ca_pem(&pki, &node.dir);
                }
                Some(Command::RotateKek { .. } | Command::RotateKekWithArchive { .. }) => {
                    if let Err(e) = node.sync_kek(&pki).await {
                        tracing::error!("after a KEK rotation: {}", e);
                    }
                    pki.invalidate();
                    pki.forget_audit_signer();
                }
                _ => {}
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync(&node, &pki, "missed commands").await,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// After changes this node was not told of one by one (`what`): the keyring follows the
/// KEK the state names, the service's caches and audit signer are dropped, `ca.pem` is
/// written again.
async fn resync(node: &Node, pki: &Pki, what: &str) {
    if let Err(e) = node.sync_kek(pki).await {
        tracing::error!("checking the KEK after {what}: {}", e);
    }
    pki.invalidate();
    pki.forget_audit_signer();
    write_ca_pem(pki, &node.dir);
}

/// The name a node goes by: `node_name`, else the host name.
pub(crate) fn node_name(cfg: &NodeConfig) -> String {
    cfg.node_name.clone().unwrap_or_else(hostname)
}

fn hostname() -> String {
    std::fs::read_to_string(std::path::Path::new("/proc/sys/kernel/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hapki".into())
}
