//! Challenge validation (RFC 8555 §8.3, §8.4), done by the node that receives the
//! client's go-ahead: `http-01` fetches the key authorization from the identifier's
//! host on the configured port, `dns-01` looks up the TXT record at
//! `_acme-challenge.<name>` through the configured resolver (which, when set, also
//! gives `http-01` the host's address, as a test or a split-horizon setup needs).

use std::net::{IpAddr, SocketAddr};
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

/// Where and how this node validates.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The port `http-01` connects to (80 unless a test or proxy says otherwise).
    pub http01_port: u16,
    /// The DNS server `dns-01` asks; the system's resolvers when `None`.
    pub dns_resolver: Option<SocketAddr>,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            http01_port: 80,
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
            let name = format!("{}.", identifier.value.trim_end_matches('.'));
            let ip = self
                .resolver()?
                .lookup_ip(name.as_str())
                .await
                .ok()
                .and_then(|found| found.iter().next())
                .ok_or_else(|| AcmeError::new(Kind::Dns, format!("{} has no address", identifier.value)))?;
            client = client.resolve(&identifier.value, SocketAddr::new(ip, self.http01_port));
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
}
