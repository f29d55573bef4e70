//! The API client: HTTPS to a list of node URLs tried in order (a connection
//! error or a 503 moves on to the next), a bearer token, and API errors turned
//! into typed failures with exit codes scripts can trust.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hapki_api::error::{codes, ErrorBody};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where and how to reach the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// More CA certificates (DER) to trust, e.g. the cluster's internal CA a joining node moves to.
    pub extra_roots: Vec<Vec<u8>>,
    /// How long to keep trying the URLs while they fail with connection errors or 503s.
    pub retry: Duration,
}

/// A failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {urls}: {detail}")]
    Unreachable { urls: String, detail: String },
    #[error("{message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The node answered with a body that is not what the route returns.
    #[error("{url} answered with a body this hapki cannot read ({detail}); are client and node the same version?")]
    Undecodable { url: String, detail: String },
}

impl ClientError {
    /// 2 bad usage or input, 3 not found, 4 not allowed, 5 conflict, 6 unreachable, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::Unreachable { .. } => 6,
            ClientError::Undecodable { .. } => 1,
            ClientError::Api { status, .. } => match *status {
                400 | 413 | 415 | 422 => 2,
                404 => 3,
                401 | 403 => 4,
                409 => 5,
                _ => 1,
            },
        }
    }
}

/// A connected client.
pub struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
    /// Whether a POST carries an `Idempotency-Key` (always, but for a benchmark's fill).
    idempotency_keys: bool,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        if cfg.urls.is_empty() {
            return Err(ClientError::Usage("no server URL: pass --url or set HAPKI_URL".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &cfg.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Usage(format!("cannot read --ca-cert {}: {e}", path.display())))?;
            let certs = hapki_domain::pem::certificates(&pem)
                .map_err(|e| ClientError::Usage(format!("--ca-cert {}: {e}", path.display())))?;
            for c in certs {
                roots
                    .add(rustls_pki_types::CertificateDer::from(c))
                    .map_err(|e| ClientError::Usage(format!("--ca-cert {}: {e}", path.display())))?;
            }
        } else if cfg.extra_roots.is_empty() && cfg.urls.iter().any(|u| u.starts_with("https://")) {
            return Err(ClientError::Usage(
                "no CA certificate to check the server with: pass --ca-cert <data-dir>/api-ca.pem or set HAPKI_CA_CERT"
                    .into(),
            ));
        }
        for der in &cfg.extra_roots {
            roots
                .add(rustls_pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| ClientError::Usage(format!("CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Usage(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            // Between two reads, not for the whole answer: a backup of a large store
            // streams for as long as it takes.
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        Ok(Client {
            http,
            cfg,
            idempotency_keys: true,
        })
    }

    /// This client, sending no `Idempotency-Key`: a retry may then issue twice. For filling
    /// a store in a benchmark as if its keys had been forgotten long ago.
    pub fn without_idempotency_keys(self) -> Client {
        Client {
            idempotency_keys: false,
            ..self
        }
    }

    /// Sends a request to the first URL that answers; returns its body as `R`.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let (url, resp) = self.respond(method, path, body).await?;
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
            urls: url.clone(),
            detail: error_chain(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Undecodable {
            url,
            detail: e.to_string(),
        })
    }

    /// Sends a request to the first URL that answers with success, and returns that URL
    /// and the answer, its body unread (for answers that are files, read as they come).
    pub async fn respond<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(String, reqwest::Response), ClientError> {
        let mut last = String::new();
        // One key for every attempt of this call, so a retry on another node never issues twice.
        let idempotency_key = (self.idempotency_keys && method == Method::POST).then(|| {
            use aws_lc_rs::rand::SecureRandom;
            let mut bytes = [0u8; 16];
            aws_lc_rs::rand::SystemRandom::new()
                .fill(&mut bytes)
                .expect("the system CSPRNG does not fail");
            hex::encode(bytes)
        });
        // Connection errors and 503s move on to the next URL; when every URL failed that way
        // the list is tried again until the retry budget is spent (a failover takes a moment).
        let deadline = std::time::Instant::now() + self.cfg.retry;
        let mut round = 0u32;
        loop {
            let mut transient = false;
            for base in &self.cfg.urls {
                let url = format!("{}{path}", base.trim_end_matches('/'));
                let mut req = self.http.request(method.clone(), &url);
                if let Some(t) = &self.cfg.token {
                    req = req.bearer_auth(t);
                }
                if let Some(k) = &idempotency_key {
                    req = req.header("Idempotency-Key", k);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let chain = error_chain(&e);
                        if chain.contains("invalid peer certificate") {
                            // Waiting will not make the certificate trusted.
                            last = format!(
                                "{url}: {chain}; the node's certificate does not chain to the CA given with \
                                 --ca-cert or HAPKI_CA_CERT: pass that node's <data-dir>/api-ca.pem"
                            );
                        } else {
                            last = format!("{url}: {chain}");
                            transient = true;
                        }
                        continue;
                    }
                };
                let status = resp.status();
                if status.is_success() {
                    return Ok((url, resp));
                }
                let bytes = resp.bytes().await.unwrap_or_default();
                let error = serde_json::from_slice::<ErrorBody>(&bytes).ok().map(|b| b.error);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    // A node that is not clustered will not become one by waiting.
                    transient |= error.as_ref().is_none_or(|e| e.code != codes::NOT_CLUSTERED);
                    last = match &error {
                        Some(e) => format!("{url}: 503 {} ({})", e.message, e.code),
                        None => format!("{url}: 503 {}", String::from_utf8_lossy(&bytes)),
                    };
                    continue;
                }
                let (code, message) = match error {
                    Some(e) => (e.code, e.message),
                    None => ("error".to_string(), String::from_utf8_lossy(&bytes).into_owned()),
                };
                return Err(ClientError::Api {
                    status: status.as_u16(),
                    code,
                    message,
                });
            }
            round += 1;
            let pause = pause_before(round);
            if !transient || std::time::Instant::now() + pause > deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Err(ClientError::Unreachable {
            urls: self.cfg.urls.join(","),
            detail: last,
        })
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call::<(), R>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call::<(), R>(Method::DELETE, path, None).await
    }
}

/// The pause before trying the whole list again for the `round`th time: short while a
/// failover is likely under way (an election takes well under a second), then a second so a
/// long outage is not hammered.
fn pause_before(round: u32) -> Duration {
    if round <= FAST_ROUNDS {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    }
}

/// Rounds of the list tried 0.1 s apart before the pause grows to 1 s: about two seconds.
const FAST_ROUNDS: u32 = 20;

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
