//! This node's identity on the cluster channel. Its key is made once (for the
//! CSR of a join, or by the first node of a new cluster), kept across restarts
//! sealed under the node's root of trust, and recorded by the cluster (SHA-256 of
//! its SPKI) when the node is admitted: members accept this node only with that
//! key, whatever certificate the internal CA could sign. The certificate for
//! the key is kept beside it and signed again for the same key when it nears
//! its end.

use std::sync::Arc;

use hapki_cluster::channel::{spki_key, NodeIdentity};
use hapki_cluster::Origin;
use hapki_domain::issue::summarize;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::pem::{certificates, encode, PemLabel};
use hapki_store::{Command, NodeRecord, NodeStanding};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::LifecycleError;
use super::{advertise_host, Node};
use crate::datadir::{write_public, DataDir};
use crate::pki::Pki;
use crate::tls::InternalCa;
use crate::trust::{self, RootOfTrust, CHANNEL_KEY_CONTEXT};

/// A certificate with less left than this is signed again at start.
const RENEW_BEFORE_SECS: u64 = 60 * 86_400;

/// The channel key and its certificate chain (node certificate, then the internal CA).
pub struct ChannelKey {
    pub key: SigningKey,
    pub chain: Vec<Vec<u8>>,
}

impl ChannelKey {
    /// What the cluster records for this key.
    pub fn recorded(&self) -> [u8; 32] {
        spki_key(self.key.spki_der())
    }

    /// Writes the key (sealed) and the chain to the data directory.
    pub fn save(&self, dir: &DataDir, root: &dyn RootOfTrust) -> Result<(), LifecycleError> {
        trust::seal_local(root, CHANNEL_KEY_CONTEXT, &self.key.to_pkcs8()?, &dir.channel_key())
            .map_err(|e| LifecycleError::internal(e.to_string()))?;
        let pem: String = self.chain.iter().map(|c| encode(PemLabel::Certificate, c)).collect();
        write_public(&dir.channel_cert(), pem.as_bytes())
            .map_err(|e| LifecycleError::internal(format!("cannot write {}: {e}", dir.channel_cert().display())))
    }

    /// The key and chain kept in the data directory, if the node has them.
    pub fn load(dir: &DataDir, root: &dyn RootOfTrust) -> Result<Option<ChannelKey>, LifecycleError> {
        let Some(pkcs8) = trust::open_local(root, CHANNEL_KEY_CONTEXT, &dir.channel_key())? else {
            return Ok(None);
        };
        let key = SigningKey::from_pkcs8(&pkcs8)?;
        let pem = std::fs::read(dir.channel_cert())
            .map_err(|e| LifecycleError::internal(format!("cannot read {}: {e}", dir.channel_cert().display())))?;
        let chain = certificates(&pem)?;
        Ok(Some(ChannelKey { key, chain }))
    }

    /// The identity the channel presents and trusts (the internal CA last in the chain).
    pub fn identity(&self) -> Result<NodeIdentity, LifecycleError> {
        let ca = self
            .chain
            .last()
            .ok_or_else(|| LifecycleError::internal("the channel certificate file holds no certificate"))?;
        Ok(NodeIdentity {
            chain: self.chain.iter().cloned().map(CertificateDer::from).collect(),
            key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_pkcs8()?))),
            ca: CertificateDer::from(ca.clone()),
        })
    }
}

impl Node {
    /// This node's channel identity: the kept key, with its certificate signed again when it
    /// nears its end or the chain no longer ends in the cluster's internal CA. The first node
    /// of a new cluster makes its key here and records it through the log.
    pub(super) async fn channel_identity(
        &self,
        pki: &Pki,
        internal: &InternalCa,
    ) -> Result<NodeIdentity, LifecycleError> {
        let advertised = self.cfg.cluster_address().unwrap_or_default();
        let host = advertise_host(&advertised);
        let mut kept = match ChannelKey::load(&self.dir, &*self.root())? {
            Some(k) => k,
            None => self.first_channel_key(pki, internal, host).await?,
        };
        let cert_end = kept
            .chain
            .first()
            .map(|c| summarize(c))
            .transpose()?
            .map(|s| s.not_after);
        let stale_ca = kept.chain.last() != Some(&internal.cert_der);
        if stale_ca || cert_end.is_none_or(|end| end < pki.now() + RENEW_BEFORE_SECS) {
            let cert = internal.channel_certificate(&self.name, self.id, host, kept.key.spki())?;
            kept.chain = vec![cert, internal.cert_der.clone()];
            kept.save(&self.dir, &*self.root())?;
            tracing::info!("signed this node's cluster-channel certificate again, for the same key");
        }
        kept.identity()
    }

    /// The channel key of a node that has none: only the sole member of a cluster (its first
    /// node) may make one and record it; any other node's key was recorded when it was admitted.
    async fn first_channel_key(
        &self,
        pki: &Pki,
        internal: &InternalCa,
        host: &str,
    ) -> Result<ChannelKey, LifecycleError> {
        let members = self.cluster.members();
        let alone = members.len() == 1 && members[0].id == self.id;
        if alone && !self.cluster.status().is_leader {
            // A one-node cluster restored from a backup: it elects itself first.
            let _ = self.cluster.wait_ready(std::time::Duration::from_secs(30)).await;
        }
        let sole = alone && self.cluster.status().is_leader;
        if !sole {
            return Err(LifecycleError::conflict(format!(
                "this node has no cluster-channel key ({} is missing), so members cannot recognise it; \
                 remove it from the cluster, reset it with `hapki cluster delete --force`, and join it again",
                self.dir.channel_key().display()
            )));
        }
        let key = SigningKey::generate(KeyType::EcP256)?;
        let cert = internal.channel_certificate(&self.name, self.id, host, key.spki())?;
        let kept = ChannelKey {
            key,
            chain: vec![cert, internal.cert_der.clone()],
        };
        kept.save(&self.dir, &*self.root())?;
        pki.propose(
            &Origin::Node,
            Command::AdmitNode {
                node: NodeRecord {
                    id: self.id,
                    name: self.name.clone(),
                    standing: NodeStanding::Admitted,
                    admitted_at: pki.now(),
                    removed_at: None,
                    channel_key: Some(kept.recorded()),
                },
            },
        )
        .await?;
        // A node that joins trusts only the nodes it records; the snapshot it receives is the
        // state as it is when sent, so it records this one.
        Ok(kept)
    }
}
