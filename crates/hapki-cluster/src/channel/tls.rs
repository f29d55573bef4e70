//! TLS configurations of the cluster channel. A node certificate names its node
//! id in a URI SAN `urn:hapki:node:<16 hex digits>`, which is how a server knows
//! which member is calling. A node dialing another checks the server's
//! certificate against the internal CA and then its key against the one the
//! node list records for the id it names.

use std::sync::Arc;

use der::Decode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::pins::Pins;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::types::NodeId;

/// The URI SAN prefix that carries a node id.
pub const NODE_URI_PREFIX: &str = "urn:hapki:node:";

/// A node's identity on the channel: its certificate chain and key, and the internal CA.
#[derive(Clone)]
pub struct NodeIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    pub ca: CertificateDer<'static>,
}

impl NodeIdentity {
    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| format!("internal CA certificate: {e}"))?;
        Ok(Arc::new(roots))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// Server side: a client certificate from the internal CA is required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, Self::provider())
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| format!("node certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Client side: the server must chain to the internal CA; we present our node certificate.
    /// HTTP/2 only: an RPC that openraft abandons at its deadline resets one stream and the
    /// connection lives on, so a slow peer is not also made to redo TLS handshakes.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| format!("node certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The key a peer presents, as the node list records it: SHA-256 of the certificate's
/// SubjectPublicKeyInfo (DER).
pub fn channel_key_of(cert_der: &[u8]) -> Option<[u8; 32]> {
    use der::Encode;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    Some(spki_key(&spki))
}

/// The channel key of a SubjectPublicKeyInfo (DER): its SHA-256.
pub fn spki_key(spki_der: &[u8]) -> [u8; 32] {
    hapki_domain::issue::sha256(spki_der)
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Checks a server's certificate as WebPKI does against the internal CA, then that the node it
/// names is trusted with the key it presents ([`super::pins`]).
struct PinnedServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pins: Pins,
}

impl std::fmt::Debug for PinnedServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedServerVerifier")
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let (Some(node), Some(key)) = (node_id_from_cert(end_entity), channel_key_of(end_entity)) else {
            return Err(rustls::Error::General("the server's certificate names no node".into()));
        };
        self.pins
            .check(node, &key)
            .map_err(|r| rustls::Error::General(r.to_string()))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl NodeIdentity {
    /// Client side as a member dials: the server must chain to the internal CA and present
    /// the key the node list records for it.
    pub fn pinned_client_config(&self, pins: Pins) -> Result<rustls::ClientConfig, String> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots()?, Self::provider())
            .build()
            .map_err(|e| format!("server verifier: {e}"))?;
        let mut config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServerVerifier { inner, pins }))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| format!("node certificate: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The node id a node certificate names, if any.
pub fn node_id_from_cert(der: &[u8]) -> Option<NodeId> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            continue;
        }
        let sans = SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
        for name in sans.0 {
            if let GeneralName::UniformResourceIdentifier(uri) = name {
                if let Some(hex) = uri.as_str().strip_prefix(NODE_URI_PREFIX) {
                    return u64::from_str_radix(hex, 16).ok();
                }
            }
        }
    }
    None
}
