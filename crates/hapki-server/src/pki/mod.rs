//! The CA service: everything the API does, on top of the local replica (reads)
//! and the Raft node (writes). Parsed CA keys, OCSP responders and profiles are
//! cached in memory and dropped when a command that changes them is applied.

pub mod acme;
mod archive;
pub mod audit;
pub mod authz;
pub mod backup;
mod ca;
mod certs;
mod crl;
pub mod crl_bytes;
mod error;
pub mod est;
pub mod gates;
mod issue;
mod ocsp;
pub mod ocsp_cache;
mod partitions;
mod profiles;
mod recovery;
mod rollover;
mod serials;
pub mod tidy;
mod tokens;
pub mod work;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use der::Decode;
use hapki_cluster::Origin;
use hapki_domain::issue::{summarize, IssuerView};
use hapki_domain::key::SigningKey;
use hapki_domain::ocsp::{IssuerHashes, Responder};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::profile::Profile;
use hapki_store::{Command, CommandResult, IssuerRecord, StateReader, Store};
use x509_cert::name::Name;

pub use acme::ACME_CONTEXT;
pub use archive::{archived_context, TRANSPORT_CONTEXT};
pub use audit::AUDIT_CONTEXT;
pub use ca::{ImportRequest, IntermediateCsr, RootRequest, BACKDATE_SECS};
pub use crl::{crl_loop, delta_loop, CrlRequest, CrlScheduler, CRL_PATH};
pub use error::PkiError;
pub use issue::{GenerateRequest, IssueRequest, Issued};
pub use ocsp::{Freshness, OcspAnswer};
pub use tidy::tidy_loop;
pub use tokens::{check_token, token_hash, NewToken, TokenGrant};

use crate::auth::Caller;
use crate::clock::Sources;
use crate::replica::Replica;
use crate::trust::Keyring;

/// An issuer ready to sign: its record with the key unwrapped and parsed once.
pub struct LoadedIssuer {
    pub record: IssuerRecord,
    pub subject: Name,
    pub key_id: Vec<u8>,
    pub key: SigningKey,
    pub hashes: IssuerHashes,
    pub responder: Option<Responder>,
}

impl LoadedIssuer {
    pub fn view(&self) -> IssuerView<'_> {
        IssuerView {
            subject: &self.subject,
            key_id: &self.key_id,
            key: &self.key,
        }
    }

    /// The issuer certificate followed by its chain, as PEM.
    pub fn chain_pem(&self) -> Vec<String> {
        std::iter::once(&self.record.cert_der)
            .chain(self.record.chain_der.iter())
            .map(|d| encode(PemLabel::Certificate, d))
            .collect()
    }
}

#[derive(Default)]
struct Caches {
    issuers: HashMap<String, Arc<LoadedIssuer>>,
    profiles: HashMap<String, Arc<Profile>>,
    default: Option<DefaultIssuer>,
}

/// The issuer that signs requests naming none, until a planned rollover's time.
struct DefaultIssuer {
    id: String,
    /// When a rollover from `id` is due: from then on the answer must be worked out again.
    until: Option<u64>,
}

/// The CA service of one node.
pub struct Pki {
    pub store: Store,
    pub cluster: Arc<dyn Replica>,
    pub keyring: Keyring,
    caches: RwLock<Caches>,
    generation: AtomicU64,
    pub crl: CrlScheduler,
    serials: serials::SerialAllocator,
    /// Where key generation and CSR checks run, off the async workers.
    pub work: work::Pools,
    sources: Sources,
    /// The key archive's transport key, once loaded.
    transport: RwLock<Option<Arc<archive::Transport>>>,
    audit_signer: RwLock<Option<Arc<audit::AuditSigner>>>,
    /// The members' builds, for the feature gates.
    builds: gates::Builds,
    /// Signed OCSP answers served again.
    ocsp_cache: ocsp_cache::OcspCache,
    /// The CRLs this node built from heads, complete and delta.
    crl_bytes: crl_bytes::CrlBytes,
    delta_bytes: crl_bytes::CrlBytes,
    partition_bytes: crl_bytes::CrlBytes,
    revoked_counts: partitions::RevokedCounts,
    tidy: tidy::TidyState,
    /// ACME's derived keys, nonces redeemed here, and how this node validates.
    acme: acme::AcmeState,
}

impl Pki {
    /// The service over `store` and `cluster`; it also becomes what the Raft node asks,
    /// as leader, whether a write another member forwards may be proposed. Its caches
    /// follow what is applied from then on.
    pub fn new(store: Store, cluster: Arc<dyn Replica>, keyring: Keyring, sources: Sources) -> Arc<Pki> {
        let pki = Arc::new(Pki {
            store,
            cluster,
            keyring,
            caches: RwLock::new(Caches::default()),
            generation: AtomicU64::new(0),
            crl: CrlScheduler::default(),
            serials: serials::SerialAllocator::default(),
            work: work::Pools::default(),
            sources,
            transport: RwLock::new(None),
            audit_signer: RwLock::new(None),
            builds: gates::Builds::default(),
            ocsp_cache: ocsp_cache::OcspCache::default(),
            crl_bytes: crl_bytes::CrlBytes::default(),
            delta_bytes: crl_bytes::CrlBytes::default(),
            partition_bytes: crl_bytes::CrlBytes::default(),
            revoked_counts: partitions::RevokedCounts::default(),
            tidy: tidy::TidyState::default(),
            acme: acme::AcmeState::default(),
        });
        pki.cluster.install_authorizer(Arc::new(authz::ForwardGuard {
            pki: Arc::downgrade(&pki),
        }));
        tokio::spawn(forget_on_change(pki.cluster.subscribe(), Arc::downgrade(&pki)));
        tokio::spawn(audit::seal_loop(pki.cluster.subscribe(), Arc::downgrade(&pki)));
        pki
    }

    /// Seconds since the epoch on the service's clock; read once per operation and passed down.
    pub fn now(&self) -> u64 {
        self.sources.clock.now()
    }

    /// `N` bytes from the service's randomness.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.sources.random.fill(&mut out);
        out
    }

    /// Where this node stands, the state digest and counts.
    pub fn status(&self, caller: &Caller) -> Result<hapki_api::sys::Status, PkiError> {
        caller.may(crate::auth::Action::ReadStatus)?;
        let reader = self.reader()?;
        Ok(hapki_api::sys::Status {
            raft: crate::replica::raft_view(self.cluster.as_ref()),
            digest: reader.digest()?,
            certificates: reader.cert_count()?,
            issuers: reader.issuers()?.len(),
            cluster_id: reader.cluster_id()?,
        })
    }

    /// A read view of the local replica.
    pub fn reader(&self) -> Result<StateReader, PkiError> {
        Ok(self.store.reader()?)
    }

    /// Proposes a command on behalf of `origin` and turns a refusal into an API error.
    /// Proposes `cmd` on behalf of `caller`, with a record of it in the audit log.
    pub async fn propose_as(&self, caller: &Caller, cmd: Command) -> Result<(), PkiError> {
        self.propose(&caller.origin(), self.audited(caller, cmd)).await
    }

    /// `cmd` with the audit stamp of `caller` on this node now.
    pub fn audited(&self, caller: &Caller, cmd: Command) -> Command {
        Command::Audited {
            meta: self.audit_meta(caller),
            command: Box::new(cmd),
        }
    }

    /// Who (`None` for the node itself), where and when, for an audit record.
    pub fn audit_meta(&self, caller: &Caller) -> hapki_store::AuditMeta {
        hapki_store::AuditMeta {
            at: self.now(),
            actor: (!caller.is_node()).then(|| caller.token_id.clone()),
            actor_name: caller.name.clone(),
            node: self.cluster.node_id(),
        }
    }

    /// Proposes, as the node, a command that sets something once: refused because it is
    /// set already (by another node, at the same moment) is success too.
    pub async fn propose_once(&self, cmd: Command) -> Result<(), PkiError> {
        match self.propose(&Origin::Node, cmd).await {
            Ok(())
            | Err(PkiError::Rejected {
                code: hapki_store::RejectCode::Conflict,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn propose(&self, origin: &Origin, cmd: Command) -> Result<(), PkiError> {
        self.check_format(&cmd)?;
        match self.cluster.propose(origin, cmd).await? {
            CommandResult::Applied | CommandResult::Replayed { .. } => Ok(()),
            CommandResult::Rejected { code, message } => Err(PkiError::Rejected { code, message }),
        }
    }

    /// Forgets cached issuers, profiles, OCSP answers and built CRLs; called when a command
    /// that changes them is applied, or a snapshot replaces the state.
    pub fn invalidate(&self) {
        self.ocsp_cache.clear();
        self.crl_bytes.clear();
        self.delta_bytes.clear();
        self.partition_bytes.clear();
        self.revoked_counts.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut c = self.caches.write().expect("cache lock");
        c.issuers.clear();
        c.profiles.clear();
        c.default = None;
    }

    /// A profile by name, from the cache or the replica.
    pub fn profile(&self, name: &str) -> Result<Arc<Profile>, PkiError> {
        if let Some(p) = self.caches.read().expect("cache lock").profiles.get(name) {
            return Ok(p.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let profile = self.reader()?.profile(name)?.ok_or_else(|| {
            PkiError::not_found(format!(
                "no profile named '{name}'; `hapki profile list` shows the profiles"
            ))
        })?;
        let profile = Arc::new(profile);
        let mut c = self.caches.write().expect("cache lock");
        if self.generation.load(Ordering::SeqCst) == generation {
            c.profiles.insert(name.to_string(), profile.clone());
        }
        Ok(profile)
    }

    /// An issuer by id (or the default one), with its key ready.
    pub fn issuer(&self, id: Option<&str>) -> Result<Arc<LoadedIssuer>, PkiError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => self.default_issuer_id()?,
        };
        if let Some(i) = self.caches.read().expect("cache lock").issuers.get(&id) {
            return Ok(i.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let record = self
            .reader()?
            .issuer(&id)?
            .ok_or_else(|| PkiError::not_found(format!("no issuer with id {id}; `hapki ca list` shows the issuers")))?;
        let loaded = Arc::new(self.load_issuer(record)?);
        let mut c = self.caches.write().expect("cache lock");
        if self.generation.load(Ordering::SeqCst) == generation {
            c.issuers.insert(id, loaded.clone());
        }
        Ok(loaded)
    }

    /// The id of the issuer that signs requests naming none, now: from the cache until a
    /// command changes the issuers or a planned rollover falls due.
    fn default_issuer_id(&self) -> Result<String, PkiError> {
        let now = self.now();
        if let Some(d) = &self.caches.read().expect("cache lock").default {
            if d.until.is_none_or(|at| now < at) {
                return Ok(d.id.clone());
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let reader = self.reader()?;
        let id = reader.default_issuer_at(now)?.ok_or(PkiError::NoCa)?;
        let until = reader
            .rollover_from(&id)?
            .filter(|r| !r.switched && r.at > now)
            .map(|r| r.at);
        let mut c = self.caches.write().expect("cache lock");
        if self.generation.load(Ordering::SeqCst) == generation {
            c.default = Some(DefaultIssuer { id: id.clone(), until });
        }
        Ok(id)
    }

    /// Every issuer that has its certificate, loaded.
    pub fn active_issuers(&self) -> Result<Vec<Arc<LoadedIssuer>>, PkiError> {
        let ids: Vec<String> = self
            .reader()?
            .issuers()?
            .into_iter()
            .filter(|i| i.is_active())
            .map(|i| i.id)
            .collect();
        ids.iter().map(|id| self.issuer(Some(id))).collect()
    }

    fn load_issuer(&self, record: IssuerRecord) -> Result<LoadedIssuer, PkiError> {
        if !record.is_active() {
            return Err(PkiError::conflict(format!(
                "issuer {} has no certificate yet; sign its CSR with the parent CA and run `hapki ca install-cert`",
                record.id
            )));
        }
        let pkcs8 = self
            .keyring
            .open(&format!("issuer-key:{}", record.id), &record.wrapped_key)?;
        let key = SigningKey::from_pkcs8(&pkcs8)?;
        let summary = summarize(&record.cert_der)?;
        let subject = Name::from_der(&summary.subject_der).map_err(|e| PkiError::internal(e.to_string()))?;
        let hashes = IssuerHashes::new(&summary.subject_der, summary.spki.subject_public_key.raw_bytes());
        let responder = match &record.ocsp {
            Some(o) => {
                let pkcs8 = self.keyring.open(&format!("ocsp-key:{}", record.id), &o.wrapped_key)?;
                Some(Responder::new(o.cert_der.clone(), SigningKey::from_pkcs8(&pkcs8)?)?)
            }
            None => None,
        };
        Ok(LoadedIssuer {
            key_id: summary.subject_key_id,
            subject,
            key,
            hashes,
            responder,
            record,
        })
    }
}

/// Parses `30d`, `12h`, `45m`, `90s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<u64, PkiError> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 86_400),
        Some('h') => (&s[..s.len() - 1], 3_600),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('s') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| PkiError::invalid(format!("'{s}' is not a duration like 30d, 12h or 3600")))
}

/// Drops the service's caches when a command changes what they hold, for as long as the
/// service lives.
async fn forget_on_change(mut applied: tokio::sync::broadcast::Receiver<hapki_cluster::Applied>, pki: Weak<Pki>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let got = applied.recv().await;
        let Some(pki) = pki.upgrade() else { return };
        let changes_caches = match got {
            Ok(a) => match a.command() {
                // A snapshot replaced the state: anything cached may be stale.
                None => true,
                Some(command) => {
                    // What OCSP answers were kept for a serial may have changed.
                    if let Some(serial) = match command {
                        Command::Revoke { serial, .. } => Some(serial),
                        Command::IssueCert { cert, .. } | Command::IssueAndArchive { cert, .. } => Some(&cert.serial),
                        _ => None,
                    } {
                        pki.ocsp_cache.forget(&serial.0);
                    }
                    if let Command::PublishCrlHead { head } = command {
                        pki.build_crl_soon(crl_bytes::Which::Complete, &head.issuer_id);
                    }
                    if let Command::Revoke { .. } = command {
                        pki.revoked_counts.clear();
                    }
                    if let Command::PublishDeltaHead { head } = command {
                        pki.build_crl_soon(crl_bytes::Which::Delta, &head.issuer_id);
                    }
                    if let Command::TidyExpired { tidy } = command {
                        for serial in &tidy.serials {
                            pki.ocsp_cache.forget(&serial.0);
                        }
                        for head in &tidy.crl_heads {
                            pki.build_crl_soon(crl_bytes::Which::Complete, &head.issuer_id);
                        }
                    }
                    matches!(
                        command,
                        Command::Bootstrap { .. }
                            | Command::AddIssuer { .. }
                            | Command::InstallIssuerCert { .. }
                            | Command::SetOcspSigner { .. }
                            | Command::SetDefaultIssuer { .. }
                            | Command::PutProfile { .. }
                            | Command::RotateKek { .. }
                            | Command::RotateKekWithArchive { .. }
                            | Command::RollOverIssuer { .. }
                            | Command::CompleteRollover { .. }
                            | Command::PutSettings { .. }
                    )
                }
            },
            // Missed some: any of them may have changed a cached thing.
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if changes_caches {
            pki.invalidate();
        }
    }
}

#[cfg(test)]
mod tests;
