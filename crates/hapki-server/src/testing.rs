//! The CA service and its HTTP API in process, for tests: a cluster of one
//! without Raft ([`LocalReplica`]), a store in a temporary directory, a root CA
//! with its OCSP signer and first CRL, an admin token, and requests sent to the
//! router with `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use hapki_cluster::Origin;
use hapki_domain::key::KeyType;
use hapki_domain::profile::builtin_profiles;
use hapki_store::{Command, Role, Settings, Store};
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::Caller;
use crate::clock::{ManualClock, Sources, SystemRandom};
use crate::datadir::DataDir;
use crate::pki::gates::MemberBuild;
use crate::pki::{Pki, RootRequest, TokenGrant};
use crate::replica::{LocalReplica, Replica};
use crate::trust::Keyring;

/// 2027-01-01T00:00:00Z.
pub const START: u64 = 1_798_761_600;

/// The body limit the in-process API runs with.
pub const MAX_BODY: usize = 64 * 1024;

/// A one-node service on `clock`, with a root CA (and its OCSP signer) and its first CRL.
pub async fn service(clock: Arc<ManualClock>) -> (tempfile::TempDir, Arc<Pki>, String) {
    service_with_members(clock, vec![MemberBuild::this_node(1, "test")]).await
}

/// [`service`] in a cluster whose members run `members`' builds: its state format is the
/// highest they all apply.
pub async fn service_with_members(
    clock: Arc<ManualClock>,
    members: Vec<MemberBuild>,
) -> (tempfile::TempDir, Arc<Pki>, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hapki.redb")).unwrap();
    let cluster = Arc::new(LocalReplica::new(store.clone()));
    let bootstrap = Command::Bootstrap {
        cluster_id: "test".into(),
        profiles: builtin_profiles(),
        settings: Settings::default(),
    };
    cluster.propose(&Origin::Node, bootstrap).await.unwrap();
    let data = DataDir::new(dir.path().to_path_buf());
    let root = crate::trust::root::open(&Default::default(), &data);
    let keyring = Keyring::open_or_create(&data, root).unwrap();
    let sources = Sources {
        clock,
        random: Arc::new(SystemRandom),
    };
    let pki = Pki::new(store, cluster, keyring, sources);
    pki.set_member_builds(members);
    pki.raise_format().await.unwrap();
    let root = pki
        .init_root(
            &Caller::node(),
            &RootRequest {
                common_name: "Test Root".into(),
                subject: None,
                key_type: KeyType::EcP256,
                validity_days: 3650,
                default: true,
            },
        )
        .await
        .unwrap();
    (dir, pki, root.id)
}

/// An answer: status, headers, and the body (JSON when it is JSON, else a string of it).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The error code of a refusal.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of a refusal.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// The HTTPS API of one service, called in process.
pub struct Api {
    /// Holds the store for as long as the API lives.
    _dir: tempfile::TempDir,
    pub pki: Arc<Pki>,
    pub root: String,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    router: Router,
    publication: Router,
}

impl Api {
    pub async fn new() -> Api {
        Self::with_members(vec![MemberBuild::this_node(1, "test")]).await
    }

    /// The API of a cluster whose members run `members`' builds (see [`service_with_members`]).
    pub async fn with_members(members: Vec<MemberBuild>) -> Api {
        let clock = ManualClock::new(START);
        let (dir, pki, root) = service_with_members(clock.clone(), members).await;
        let admin = pki
            .create_token(&Caller::node(), &TokenGrant::role(Role::Admin, "admin"))
            .await
            .unwrap()
            .token;
        // The first seal makes the audit key (and the internal CA that certifies it): wait
        // for it, so that what tests compare is not changed by it afterwards.
        for _ in 0..500 {
            let (head, sealed) = pki.reader().unwrap().audit_head().unwrap();
            if head.is_some_and(|(seq, _)| seq == sealed) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            pki.reader().unwrap().audit_key().unwrap().is_some(),
            "no audit key after 5 s"
        );
        Api {
            router: crate::api::router(pki.clone(), MAX_BODY),
            publication: crate::api::publication_router(pki.clone()),
            _dir: dir,
            pki,
            root,
            clock,
            admin,
        }
    }

    /// A new token of `role`.
    pub async fn token(&self, role: Role) -> String {
        self.token_with(TokenGrant::role(role, role.name())).await
    }

    /// A new token as `grant` says.
    pub async fn token_with(&self, grant: TokenGrant) -> String {
        self.pki.create_token(&Caller::node(), &grant).await.unwrap().token
    }

    /// The state digest but the audit log's (which records refused attempts too): a
    /// refusal leaves it as it was.
    pub fn digest(&self) -> String {
        self.pki.reader().unwrap().digest_without_audit().unwrap()
    }

    /// Sends `req` to the HTTPS API.
    pub async fn send(&self, req: Request<Body>) -> Answer {
        answer(self.router.clone().oneshot(req).await.unwrap()).await
    }

    /// Sends `req` to the plain-HTTP publication listener.
    pub async fn publish(&self, req: Request<Body>) -> Answer {
        answer(self.publication.clone().oneshot(req).await.unwrap()).await
    }

    /// A JSON request with `token` as bearer.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(b).unwrap())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    /// `GET path` as admin.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.admin), None).await
    }

    /// `PUT path` with `body` as admin.
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PUT, path, Some(&self.admin), Some(body)).await
    }

    /// `POST path` with `body` as admin.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(&self.admin), Some(body)).await
    }
}

async fn answer(resp: axum::response::Response) -> Answer {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap()
        .to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        body,
        bytes,
    }
}

/// Checks a refusal: status, code, a message containing `says`; returns the message.
#[track_caller]
pub fn refused(case: &str, a: &Answer, status: u16, code: &str, says: &str) -> String {
    assert_eq!(a.status.as_u16(), status, "{case}: {:?}", a.body);
    assert_eq!(a.code(), code, "{case}: {:?}", a.body);
    assert!(
        a.message().contains(says),
        "{case}: the message {:?} should say {says:?}",
        a.message()
    );
    a.message().to_string()
}

/// A CSR (PEM) for `cn` and `sans`, with a fresh key of `key`.
pub fn csr(key: KeyType, cn: &str, sans: &[&str]) -> String {
    hapki_domain::pem::encode(hapki_domain::pem::PemLabel::CertificateRequest, &csr_der(key, cn, sans))
}

/// The DER of [`csr`].
pub fn csr_der(key: KeyType, cn: &str, sans: &[&str]) -> Vec<u8> {
    use hapki_domain::name::{San, SubjectSpec};
    let key = hapki_domain::key::SigningKey::generate(key).unwrap();
    let subject = SubjectSpec::parse(&format!("CN={cn}")).unwrap().to_name().unwrap();
    let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
    hapki_domain::csr::build_csr(&key, &subject, &sans).unwrap()
}

/// A self-signed certificate (PEM) that no service issued.
pub fn foreign_cert() -> String {
    use hapki_domain::issue::{build_certificate, CertSpec};
    use hapki_domain::name::SubjectSpec;
    let key = hapki_domain::key::SigningKey::generate(KeyType::EcP256).unwrap();
    let subject = SubjectSpec::parse("CN=Elsewhere").unwrap().to_name().unwrap();
    let spec = CertSpec::self_signed_ca(
        hapki_domain::serial::Serial::from_u64(7),
        (START - 60, START + 86_400),
        subject,
        key.spki(),
        None,
    );
    let der = build_certificate(None, Some(&key), &spec).unwrap();
    hapki_domain::pem::encode(hapki_domain::pem::PemLabel::Certificate, &der)
}

/// Runs the real `openssl` with `args` in `dir`; returns (success, stdout + stderr).
pub fn openssl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
