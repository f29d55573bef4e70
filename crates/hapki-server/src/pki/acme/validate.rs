//! Challenge validation (RFC 8555 §8.3, §8.4, RFC 8737), done by the node that receives
//! the client's go-ahead: `http-01` fetches the key authorization from the identifier's
//! host on the configured port, `dns-01` looks up the TXT record at
//! `_acme-challenge.<name>` through the configured resolver (which, when set, also
//! gives `http-01` and `tls-alpn-01` the host's address, as a test or a split-horizon
//! setup needs), `tls-alpn-01` opens TLS with ALPN `acme-tls/1` to the host and checks
//! the certificate it presents.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use hapki_cluster::channel::error_chain;
use hapki_domain::jws::b64_encode;
use hapki_store::acme::Identifier;

use super::error::{AcmeError, Kind};

/// How long one validation may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a challenge response read: a key authorization is about 90 bytes.
const MAX_BODY: usize = 4096;
/// The ALPN protocol of `tls-alpn-01`.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier (RFC 8737 §6.1).
const ACME_IDENTIFIER: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

/// Where and how this node validates.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The port `http-01` connects to (80 unless a test or proxy says otherwise).
    pub http01_port: u16,
    /// The port `tls-alpn-01` connects to (443 unless a test or proxy says otherwise).
    pub tls_alpn01_port: u16,
    /// The DNS server `dns-01` asks; the system's resolvers when `None`.
    pub dns_resolver: Option<SocketAddr>,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            http01_port: 80,
            tls_alpn01_port: 443,
            dns_resolver: None,
        }
    }
}

impl Validation {
    /// Checks challenge `kind` of `identifier` against the key authorization.
    pub async fn check(
        &self,
        kind: &str,
        identifier: &Identifier,
        token: &str,
        key_authz: &str,
    ) -> Result<(), AcmeError> {
        match kind {
            "http-01" => self.http01(identifier, token, key_authz).await,
            "dns-01" => self.dns01(identifier, key_authz).await,
            "tls-alpn-01" => self.tls_alpn01(identifier, key_authz).await,
            other => Err(AcmeError::malformed(format!("no challenge of type {other}"))),
        }
    }

    async fn http01(&self, identifier: &Identifier, token: &str, key_authz: &str) -> Result<(), AcmeError> {
        let host = match identifier.value.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => identifier.value.clone(),
        };
        let url = format!("http://{host}:{}/.well-known/acme-challenge/{token}", self.http01_port);
        let mut client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(10));
        if let (Some(_), "dns") = (self.dns_resolver, identifier.kind.as_str()) {
            // The configured resolver names the host's address too, as it does for dns-01.
            let addr = self.address(&identifier.value, self.http01_port).await?;
            client = client.resolve(&identifier.value, addr);
        }
        let client = client
            .build()
            .map_err(|e| AcmeError::new(Kind::ServerInternal, e.to_string()))?;
        let connection =
            |e: reqwest::Error| AcmeError::new(Kind::Connection, format!("fetching {url}: {}", error_chain(&e)));
        let mut answer = client.get(&url).send().await.map_err(connection)?;
        if !answer.status().is_success() {
            return Err(AcmeError::unauthorized(format!(
                "{url} answered {}; serve the key authorization there",
                answer.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(connection)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(AcmeError::unauthorized(format!(
                    "{url} answered more than {MAX_BODY} bytes"
                )));
            }
        }
        let got = String::from_utf8_lossy(&body);
        if got.trim_end() != key_authz {
            return Err(AcmeError::new(
                Kind::IncorrectResponse,
                format!("{url} answered '{}', not the key authorization", got.trim_end()),
            ));
        }
        Ok(())
    }

    /// The resolver validation asks: the configured one, or the system's.
    fn resolver(&self) -> Result<hickory_resolver::TokioResolver, AcmeError> {
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
        use hickory_resolver::name_server::TokioConnectionProvider;
        use hickory_resolver::Resolver;

        let mut opts = ResolverOpts::default();
        opts.timeout = TIMEOUT / 2;
        opts.attempts = 2;
        opts.cache_size = 0;
        let builder = match self.dns_resolver {
            Some(server) => Resolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => Resolver::builder_tokio()
                .map_err(|e| AcmeError::new(Kind::ServerInternal, format!("the system's DNS settings: {e}")))?,
        };
        Ok(builder.with_options(opts).build())
    }

    async fn dns01(&self, identifier: &Identifier, key_authz: &str) -> Result<(), AcmeError> {
        if identifier.kind != "dns" {
            return Err(AcmeError::malformed("dns-01 validates DNS names only"));
        }
        let resolver = self.resolver()?;
        let name = format!("_acme-challenge.{}.", identifier.value.trim_end_matches('.'));
        let expected = b64_encode(digest::digest(&digest::SHA256, key_authz.as_bytes()).as_ref());
        let lookup = resolver
            .txt_lookup(name.as_str())
            .await
            .map_err(|e| AcmeError::new(Kind::Dns, format!("looking up TXT {name}: {e}")))?;
        let found: Vec<String> = lookup
            .iter()
            .map(|txt| {
                txt.txt_data()
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<String>()
            })
            .collect();
        if found.iter().any(|t| t == &expected) {
            Ok(())
        } else {
            Err(AcmeError::new(
                Kind::IncorrectResponse,
                format!("TXT {name} holds {found:?}, not '{expected}'"),
            ))
        }
    }

    async fn tls_alpn01(&self, identifier: &Identifier, key_authz: &str) -> Result<(), AcmeError> {
        if identifier.kind != "dns" {
            return Err(AcmeError::malformed("tls-alpn-01 validates DNS names only here"));
        }
        let name = identifier.value.trim_end_matches('.').to_string();
        let addr = self.address(&name, self.tls_alpn01_port).await?;
        let server_name = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|_| AcmeError::malformed(format!("{name} is not a name to connect to")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| AcmeError::new(Kind::ServerInternal, e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let at = format!("{name} at {addr}");
        let connection = |e: std::io::Error| AcmeError::new(Kind::Connection, format!("TLS to {at}: {e}"));
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
        };
        let tls = tokio::time::timeout(TIMEOUT, handshake)
            .await
            .map_err(|_| AcmeError::new(Kind::Connection, format!("TLS to {at}: no answer within {TIMEOUT:?}")))?
            .map_err(connection)?;
        let (_, session) = tls.get_ref();
        if session.alpn_protocol() != Some(ACME_TLS_ALPN) {
            return Err(AcmeError::unauthorized(format!(
                "{at} did not negotiate the ALPN protocol acme-tls/1; serve the challenge certificate for it"
            )));
        }
        let cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| AcmeError::unauthorized(format!("{at} sent no certificate")))?;
        check_challenge_certificate(cert.as_ref(), &name, key_authz)
            .map_err(|why| AcmeError::new(Kind::IncorrectResponse, format!("the certificate of {at} {why}")))
    }

    /// The address of `name` on `port`: through the configured resolver, else the system's.
    async fn address(&self, name: &str, port: u16) -> Result<SocketAddr, AcmeError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let no_address = || AcmeError::new(Kind::Dns, format!("{name} has no address"));
        if self.dns_resolver.is_some() {
            let ip = self
                .resolver()?
                .lookup_ip(format!("{name}.").as_str())
                .await
                .ok()
                .and_then(|found| found.iter().next())
                .ok_or_else(no_address)?;
            return Ok(SocketAddr::new(ip, port));
        }
        tokio::net::lookup_host((name, port))
            .await
            .ok()
            .and_then(|mut found| found.next())
            .ok_or_else(no_address)
    }
}

/// RFC 8737 §3: the certificate names `name` as its only subjectAltName and carries a
/// critical acmeIdentifier extension holding the SHA-256 of the key authorization.
fn check_challenge_certificate(der: &[u8], name: &str, key_authz: &str) -> Result<(), String> {
    use der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;

    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("does not decode: {e}"))?;
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let san = extensions
        .iter()
        .find(|e| e.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID)
        .ok_or("has no subjectAltName")?;
    let san =
        SubjectAltName::from_der(san.extn_value.as_bytes()).map_err(|e| format!("has a bad subjectAltName: {e}"))?;
    match san.0.as_slice() {
        [GeneralName::DnsName(n)] if n.as_str().eq_ignore_ascii_case(name) => {}
        _ => return Err(format!("must name {name} as its only subjectAltName")),
    }
    let id = extensions
        .iter()
        .find(|e| e.extn_id == ACME_IDENTIFIER)
        .ok_or("has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)")?;
    if !id.critical {
        return Err("has an acmeIdentifier extension that is not critical".into());
    }
    let digest = digest::digest(&digest::SHA256, key_authz.as_bytes());
    let expected = der::asn1::OctetString::new(digest.as_ref())
        .and_then(|o| der::Encode::to_der(&o))
        .map_err(|e| e.to_string())?;
    if id.extn_value.as_bytes() != expected.as_slice() {
        return Err("holds another acmeIdentifier than the SHA-256 of the key authorization".into());
    }
    Ok(())
}

/// Accepts whatever certificate a tls-alpn-01 responder presents (it is self-signed by
/// design, and judged by [`check_challenge_certificate`]), while still checking that the
/// TLS 1.3 handshake is signed by that certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls_pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "tls-alpn-01 is validated over TLS 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        // The key from the certificate as it is: the challenge certificate carries a critical
        // extension that certificate path checks (webpki) rightly refuse.
        use der::{Decode, Encode};
        let bad = |e: der::Error| rustls::Error::General(format!("the challenge certificate: {e}"));
        let cert = x509_cert::Certificate::from_der(cert.as_ref()).map_err(bad)?;
        let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(bad)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &rustls_pki_types::SubjectPublicKeyInfoDer::from(spki),
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
