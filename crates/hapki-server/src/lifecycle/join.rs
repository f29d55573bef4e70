//! Joining a cluster, on the joining node: `cluster csr` makes the node key and
//! CSR; `cluster join` takes the signed certificate and a member's cluster
//! address and goes through the five phases: creating (the node takes its
//! certificate and opens its channel), bootstrapping (the member hands over the
//! cluster KEK over mutual TLS and adds the node as a learner), initial sync
//! (the first snapshot or entries arrive), catching up (until the node has
//! applied the leader's read index) and completing (promotion to voter while
//! the cluster is under its voter target, then the CA service). A failure
//! after the cluster added the node asks it to remove the node again.

use std::sync::Arc;
use std::time::Duration;

use hapki_cluster::channel::{node_id_from_cert, NodeIdentity, NODE_URI_PREFIX};
use hapki_cluster::MembershipOutcome;
use hapki_domain::csr::build_csr;
use hapki_domain::issue::summarize;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{San, SubjectSpec};
use hapki_domain::pem::{certificates, encode, PemLabel};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::channel_key::ChannelKey;
use super::peer::{major, paths, Hello, Welcome};
use super::LifecycleError;
use super::{advertise_host, Node, Phase};
use crate::trust::Keyring;

pub use hapki_api::cluster::JoinRequest;

/// A checked join request, ready to run.
struct Ticket {
    member: String,
    identity: NodeIdentity,
    /// The key of this node's CSR and its certificate: its channel identity from now on.
    channel: ChannelKey,
}

const RPC_TIMEOUT: Duration = Duration::from_secs(30);
const SYNC_TIMEOUT: Duration = Duration::from_secs(900);

impl Node {
    /// `cluster csr`: a fresh key for this node (kept in memory) and a CSR naming the node id
    /// and the host other nodes dial.
    pub fn node_csr(&self) -> Result<String, LifecycleError> {
        let advertised = self.cfg.cluster_address().ok_or_else(no_channel)?;
        let key = SigningKey::generate(KeyType::EcP256)?;
        let subject = SubjectSpec::parse(&format!("O=hapki, CN={}", self.name))?.to_name()?;
        let mut sans = vec![San::Uri(format!("{NODE_URI_PREFIX}{:016x}", self.id))];
        if let Ok(host) = San::parse(advertise_host(&advertised)) {
            sans.push(host);
        }
        let csr = build_csr(&key, &subject, &sans)?;
        *self.pending_key.lock().expect("pending key lock") = Some(key);
        Ok(encode(PemLabel::CertificateRequest, &csr))
    }

    /// Checks a join request and starts it in the background; `GET /v1/cluster/status` follows it.
    pub fn start_join(self: &Arc<Self>, req: JoinRequest) -> Result<(), LifecycleError> {
        let guard = self.busy.clone().try_lock_owned().map_err(|_| LifecycleError::Busy)?;
        if self.pki().is_some() {
            return Err(LifecycleError::AlreadyClustered);
        }
        let ticket = self.ticket(req)?;
        self.set_phase(Phase::joining(1));
        let node = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(failure) = node.run_join(ticket).await {
                tracing::error!("join failed: {}", failure.reason());
                node.set_phase(failure.phase());
            }
        });
        Ok(())
    }

    fn ticket(&self, req: JoinRequest) -> Result<Ticket, LifecycleError> {
        let advertised = self.cfg.cluster_address().ok_or_else(no_channel)?;
        let key = self
            .pending_key
            .lock()
            .expect("pending key lock")
            .as_ref()
            .map(|k| k.to_pkcs8())
            .transpose()?
            .ok_or_else(|| {
                LifecycleError::conflict(
                    "this node has no pending key: run `hapki cluster csr` on it first (fulljoin does both)",
                )
            })?;
        let key = SigningKey::from_pkcs8(&key)?;
        let certs = certificates(req.certificate.as_bytes())
            .map_err(|e| LifecycleError::invalid(format!("the certificate file: {e}")))?;
        let [cert, ca, ..] = certs.as_slice() else {
            return Err(LifecycleError::invalid(
                "the certificate file must hold this node's certificate and then the cluster's internal CA, as `hapki cluster nodes create` writes it",
            ));
        };
        let summary = summarize(cert)?;
        if node_id_from_cert(cert) != Some(self.id) {
            return Err(LifecycleError::invalid(format!(
                "this certificate is not for this node (id {:016x}); sign this node's CSR (`hapki cluster csr`)",
                self.id
            )));
        }
        if der::Encode::to_der(&summary.spki).ok().as_deref() != Some(key.spki_der()) {
            return Err(LifecycleError::invalid(
                "this certificate does not match the key of this node's latest CSR; sign the latest CSR",
            ));
        }
        hapki_domain::issue::verify_issued_by(cert, ca)
            .map_err(|_| LifecycleError::invalid("the node certificate was not signed by the CA that follows it"))?;
        if req.member.trim().is_empty() || !req.member.contains(':') {
            return Err(LifecycleError::invalid(format!(
                "--member must be a member's cluster address, host:port (got '{}')",
                req.member
            )));
        }
        let _ = advertised;
        Ok(Ticket {
            member: req.member.trim().to_string(),
            identity: NodeIdentity {
                chain: vec![CertificateDer::from(cert.clone()), CertificateDer::from(ca.clone())],
                key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8()?))),
                ca: CertificateDer::from(ca.clone()),
            },
            channel: ChannelKey {
                key,
                chain: vec![cert.clone(), ca.clone()],
            },
        })
    }

    fn progress(&self, step: u8, detail: String, done: Option<u64>, total: Option<u64>) {
        let name = super::JOIN_STEPS[usize::from(step - 1)].to_string();
        let phase = Phase::Joining {
            step,
            name,
            detail,
            done,
            total,
        };
        let changed = !matches!(self.phase(), Phase::Joining { step: s, .. } if s == step);
        if changed {
            self.set_phase(phase);
        } else {
            *self.phase.write().expect("phase lock") = phase;
        }
    }

    async fn run_join(self: &Arc<Self>, ticket: Ticket) -> Result<(), JoinFailure> {
        let network = self.cluster.network().clone();
        // 1. creating: take the certificate and open the cluster channel.
        ticket
            .channel
            .save(&self.dir, &*self.root())
            .map_err(JoinFailure::before)?;
        self.start_channel(ticket.identity.clone())
            .map_err(JoinFailure::before)?;

        // 2. bootstrapping: the cluster's KEK, then membership as a learner.
        self.progress(2, format!("contacting {}", ticket.member), None, None);
        let hello = Hello {
            addr: self.addr(),
            version: crate::api::version(),
            max_format: hapki_store::format::MAX,
        };
        let welcome: Welcome = network
            .call_json(&ticket.member, paths::HELLO, &hello, RPC_TIMEOUT)
            .await
            .map_err(|e| JoinFailure::before(format!("the member at {} refused the join: {e}", ticket.member)))?;
        if major(&welcome.version) != major(&hello.version) {
            return Err(JoinFailure::before(format!(
                "the cluster runs hapki {} and this node {}: major versions must match",
                welcome.version, hello.version
            )));
        }
        let kek: [u8; 32] = hex::decode(&welcome.kek)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| JoinFailure::before("the member sent a malformed KEK"))?;
        let keyring = Keyring::install(&self.dir, self.root(), welcome.kek_id, kek)
            .map_err(|e| JoinFailure::before(e.to_string()))?;
        network
            .call_json::<_, MembershipOutcome>(&ticket.member, paths::ADD, &self.addr(), RPC_TIMEOUT)
            .await
            .map_err(|e| JoinFailure::before(format!("the cluster did not add this node: {e}")))?;

        // 3. initial sync: the cluster's state arrives (a snapshot, or the log from its start).
        self.progress(3, format!("cluster {}", welcome.cluster_id), None, None);
        let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
        loop {
            let has_state = self
                .store
                .reader()
                .ok()
                .and_then(|r| r.cluster_id().ok().flatten())
                .is_some();
            if has_state {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.after_add(&ticket, "no data arrived from the leader").await);
            }
            let s = self.cluster.status();
            let detail = match (self.cluster.snapshot_receiving(), self.cluster.snapshot_index()) {
                (Some(p), _) if p.installing => format!("installing the snapshot of {:.1} MB", p.bytes as f64 / 1e6),
                (Some(p), _) => format!(
                    "receiving the snapshot: {:.1} MB at {:.1} MB/s",
                    p.bytes as f64 / 1e6,
                    p.rate() / 1e6
                ),
                (None, Some(i)) => format!("snapshot up to entry {i} installed"),
                (None, None) => "waiting for the leader's snapshot or log".into(),
            };
            self.progress(3, detail, s.last_applied, None);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // 4. catching up: apply everything the leader had committed when we asked.
        self.catch_up(&ticket, 4, "applied", deadline).await?;

        // 5. completing: voter while the cluster is under its target, then the CA service.
        self.progress(5, "joining the voters if the cluster needs one".into(), None, None);
        let outcome: MembershipOutcome = match network
            .call_json(&ticket.member, paths::PROMOTE, &(), RPC_TIMEOUT)
            .await
        {
            Ok(o) => o,
            Err(e) => return Err(self.after_add(&ticket, &format!("promotion failed: {e}")).await),
        };
        // What the cluster wrote while this node caught up and was promoted, applied too:
        // the node is ready once it answers as the leader would.
        self.catch_up(&ticket, 5, "applied what was written while joining", deadline)
            .await?;
        if let Err(e) = self.activate(keyring).await {
            return Err(self
                .after_add(&ticket, &format!("cannot start the CA service: {}", e))
                .await);
        }
        tracing::info!(
            "joined cluster {} as a {}",
            welcome.cluster_id,
            if outcome.voter { "voter" } else { "learner" }
        );
        Ok(())
    }

    /// Waits until this node has applied everything the leader had committed when asked,
    /// showing it as step `step`.
    async fn catch_up(
        &self,
        ticket: &Ticket,
        step: u8,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), JoinFailure> {
        let target = match self.cluster.read_index().await {
            Ok(i) => i,
            Err(e) => {
                return Err(self
                    .after_add(ticket, &format!("cannot learn the leader's index: {e}"))
                    .await)
            }
        };
        loop {
            let applied = self.cluster.status().last_applied.unwrap_or(0);
            self.progress(
                step,
                format!("{what}: {applied} of {target}"),
                Some(applied),
                Some(target),
            );
            if applied >= target {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.after_add(ticket, "catching up took too long").await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// After the cluster added this node, a failure asks it to remove the node again.
    async fn after_add(&self, ticket: &Ticket, reason: &str) -> JoinFailure {
        let removed = self
            .cluster
            .network()
            .call_json::<_, MembershipOutcome>(&ticket.member, paths::ABORT, &(), RPC_TIMEOUT)
            .await;
        match removed {
            Ok(_) => JoinFailure::Killed(format!("{reason}; the cluster removed this node again")),
            Err(e) => JoinFailure::Unknown(format!(
                "{reason}; removing this node from the cluster failed too ({e}): remove it with `hapki cluster nodes delete --id {:016x}` on a member",
                self.id
            )),
        }
    }
}

fn no_channel() -> LifecycleError {
    LifecycleError::conflict(
        "this node has no cluster channel: start it with --cluster-listen (and --advertise if others reach it under another address)",
    )
}

/// Why a join stopped, and whether the cluster was left as it was.
enum JoinFailure {
    Killed(String),
    Unknown(String),
}

impl JoinFailure {
    fn before(reason: impl std::fmt::Display) -> JoinFailure {
        JoinFailure::Killed(reason.to_string())
    }

    fn reason(&self) -> &str {
        match self {
            JoinFailure::Killed(r) | JoinFailure::Unknown(r) => r,
        }
    }

    fn phase(self) -> Phase {
        match self {
            JoinFailure::Killed(reason) => Phase::Killed { reason },
            JoinFailure::Unknown(reason) => Phase::Unknown { reason },
        }
    }
}
