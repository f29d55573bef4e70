//! TLS for the HTTPS API. The cluster's internal CA (replicated, key sealed
//! under the KEK, never offered as an issuer) signs each node's server
//! certificate at start-up; that key lives only in memory. Clients trust the
//! internal CA through `<data-dir>/api-ca.pem`. It also signs the certificates
//! of the nodes' cluster-channel keys, which the channel trusts only for the
//! key recorded for each node.

use std::sync::Arc;

use hapki_cluster::channel::NODE_URI_PREFIX;
use hapki_domain::issue::{build_certificate, summarize, CertSpec, IssuerView, Publication};
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{name_from_der, San, SubjectSpec};
use hapki_domain::profile::{ExtKeyUsage, KeyUsageBit};
use hapki_domain::serial::Serial;
use hapki_store::{Command, InternalCaRecord};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::pki::PkiError;
use crate::pki::{Pki, BACKDATE_SECS};
use crate::rand;

const INTERNAL_CA_DAYS: u64 = 20 * 365;
const NODE_CERT_DAYS: u64 = 365;

/// The internal CA with its key unsealed.
pub struct InternalCa {
    pub cert_der: Vec<u8>,
    key: SigningKey,
    /// The time it signs at: the service's clock when it was loaded.
    now: u64,
}

/// Loads the internal CA, creating it on a new cluster.
pub async fn internal_ca(pki: &Pki) -> Result<InternalCa, PkiError> {
    if pki.reader()?.internal_ca()?.is_none() {
        let key = SigningKey::generate(KeyType::EcP256)?;
        let now = pki.now();
        let cluster = pki.reader()?.cluster_id()?.unwrap_or_default();
        let subject = SubjectSpec::parse(&format!("O=hapki, OU=cluster {cluster}, CN=hapki internal CA"))?.to_name()?;
        let validity = (now - BACKDATE_SECS, now + INTERNAL_CA_DAYS * 86_400);
        let spec = CertSpec::self_signed_ca(
            Serial::from_random(pki.random()),
            validity,
            subject,
            key.spki(),
            Some(0),
        );
        let cert_der = build_certificate(None, Some(&key), &spec)?;
        let record = InternalCaRecord {
            cert_der,
            wrapped_key: pki.keyring.seal("internal-ca-key", &key.to_pkcs8()?),
        };
        // Another start may have raced us to it; either way one internal CA exists afterwards.
        if let Err(e) = pki
            .propose(&hapki_cluster::Origin::Node, Command::SetInternalCa { ca: record })
            .await
        {
            let raced = matches!(
                e,
                PkiError::Rejected {
                    code: hapki_store::RejectCode::Conflict,
                    ..
                } | PkiError::Propose(hapki_cluster::ProposeError::Refused(_))
            );
            if !raced {
                return Err(e);
            }
        }
    }
    let record = pki
        .reader()?
        .internal_ca()?
        .ok_or_else(|| PkiError::internal("internal CA vanished"))?;
    let key = SigningKey::from_pkcs8(&pki.keyring.open("internal-ca-key", &record.wrapped_key)?)?;
    Ok(InternalCa {
        cert_der: record.cert_der,
        key,
        now: pki.now(),
    })
}

impl InternalCa {
    /// A throwaway CA held only in memory, for the HTTPS certificate of a node that
    /// is not clustered yet (clients trust it through `api-ca.pem` until the node
    /// joins and the cluster's internal CA replaces it).
    pub fn ephemeral(node_id: u64) -> Result<InternalCa, PkiError> {
        let key = SigningKey::generate(KeyType::EcP256)?;
        // Not clustered yet: there is no service, so no clock but the system's.
        let now = crate::clock::system_now();
        let subject =
            SubjectSpec::parse(&format!("O=hapki, CN=hapki node {node_id:016x} (not clustered)"))?.to_name()?;
        let spec = CertSpec::self_signed_ca(
            Serial::from_random(rand::bytes()),
            (now - BACKDATE_SECS, now + NODE_CERT_DAYS * 86_400),
            subject,
            key.spki(),
            Some(0),
        );
        let cert_der = build_certificate(None, Some(&key), &spec)?;
        Ok(InternalCa { cert_der, key, now })
    }

    /// Signs a node certificate (server and client authentication) for the key in `spki`.
    pub fn sign_node(
        &self,
        node_name: &str,
        sans: Vec<San>,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Result<Vec<u8>, PkiError> {
        self.sign(
            &format!("O=hapki, CN={node_name}"),
            sans,
            spki,
            vec![KeyUsageBit::DigitalSignature],
            vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
            NODE_CERT_DAYS,
        )
    }

    /// Signs the key archive's transport certificate for the RSA key in `spki`: clients
    /// encrypt the keys they archive to it.
    pub fn transport_certificate(
        &self,
        cluster_id: &str,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Result<Vec<u8>, PkiError> {
        self.sign(
            &format!("O=hapki, OU=cluster {cluster_id}, CN=hapki key archive transport"),
            Vec::new(),
            spki,
            vec![KeyUsageBit::KeyEncipherment],
            Vec::new(),
            INTERNAL_CA_DAYS,
        )
    }

    /// The certificate of the audit log's signing key.
    pub fn audit_certificate(&self, cluster_id: &str, spki: SubjectPublicKeyInfoOwned) -> Result<Vec<u8>, PkiError> {
        self.sign(
            &format!("O=hapki, OU=cluster {cluster_id}, CN=hapki audit signing"),
            Vec::new(),
            spki,
            vec![KeyUsageBit::DigitalSignature, KeyUsageBit::ContentCommitment],
            Vec::new(),
            INTERNAL_CA_DAYS,
        )
    }

    fn sign(
        &self,
        subject: &str,
        sans: Vec<San>,
        spki: SubjectPublicKeyInfoOwned,
        key_usage: Vec<KeyUsageBit>,
        ext_key_usage: Vec<ExtKeyUsage>,
        days: u64,
    ) -> Result<Vec<u8>, PkiError> {
        let summary = summarize(&self.cert_der)?;
        let issuer = name_from_der(&summary.subject_der)?;
        let view = IssuerView {
            subject: &issuer,
            key_id: &summary.subject_key_id,
            key: &self.key,
        };
        let now = self.now;
        let spec = CertSpec {
            serial: Serial::from_random(rand::bytes()),
            not_before: now - BACKDATE_SECS,
            not_after: (now + days * 86_400).min(summary.not_after),
            subject: SubjectSpec::parse(subject)?.to_name()?,
            spki,
            sans,
            key_usage,
            ext_key_usage,
            ca: false,
            path_len: None,
            name_constraints: None,
            ocsp_no_check: false,
            publication: Publication::default(),
        };
        Ok(build_certificate(Some(&view), None, &spec)?)
    }

    /// Issues this node's TLS certificate for `names` (DNS names or IPs); returns (chain, key).
    pub fn node_certificate(
        &self,
        node_name: &str,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        let key = SigningKey::generate(KeyType::EcP256)?;
        let mut sans = Vec::new();
        for n in names {
            let san = San::parse(n)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        let cert = self.sign_node(node_name, sans, key.spki())?;
        let chain = vec![CertificateDer::from(cert), CertificateDer::from(self.cert_der.clone())];
        Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8()?))))
    }
}

impl InternalCa {
    /// A cluster-channel certificate for this node's channel key `spki`: it names the node id
    /// (`urn:hapki:node:<id>`) and the host other nodes dial.
    pub fn channel_certificate(
        &self,
        node_name: &str,
        node_id: u64,
        host: &str,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Result<Vec<u8>, PkiError> {
        let mut sans = vec![
            San::parse("localhost")?,
            San::Uri(format!("{NODE_URI_PREFIX}{node_id:016x}")),
        ];
        if let Ok(h) = San::parse(host) {
            sans.push(h);
        }
        self.sign_node(node_name, sans, spki)
    }
}

/// The HTTPS listener's certificate, replaceable while the node runs: a fresh
/// node serves one from its throwaway CA, and swaps in one from the cluster's
/// internal CA when it forms or joins a cluster.
#[derive(Debug)]
pub struct CertSlot {
    current: std::sync::RwLock<Arc<CertifiedKey>>,
}

impl CertSlot {
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<CertSlot>, PkiError> {
        Ok(Arc::new(CertSlot {
            current: std::sync::RwLock::new(certified(chain, key)?),
        }))
    }

    /// Serves `chain` from the next handshake on.
    pub fn replace(&self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<(), PkiError> {
        *self.current.write().expect("cert lock") = certified(chain, key)?;
        Ok(())
    }
}

fn certified(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<CertifiedKey>, PkiError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| PkiError::internal(format!("TLS certificate: {e}")))
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").clone())
    }
}

/// A rustls server configuration for the API (HTTP/2 and HTTP/1.1) serving the slot's
/// certificate. A client may show a certificate (EST re-enrollment): the handshake
/// proves it holds the key, and the EST service takes the certificate only if it is one
/// this cluster issued, unrevoked and unexpired; nothing else looks at it.
pub fn server_config(slot: Arc<CertSlot>) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(OptionalClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::internal(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(slot);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Asks for a client certificate without requiring one, and checks only that the client
/// signed the handshake with the certificate's key: which certificates count is the EST
/// service's decision, against the replicated state.
#[derive(Debug)]
struct OptionalClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a TLS connection showed, for the requests on it: the client's certificate and
/// the channel binding (RFC 9266 `tls-exporter`).
pub fn client_tls(conn: &rustls::ServerConnection) -> crate::pki::est::ClientTls {
    let channel_binding = conn
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .ok();
    crate::pki::est::ClientTls {
        certificate: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec()),
        channel_binding,
    }
}
