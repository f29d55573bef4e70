//! ACME through the in-process API: a client's whole flow with http-01 and dns-01
//! validated against servers on loopback, the refusals of RFC 8555 with their error
//! types (and nothing changed), External Account Binding, key change, renewal
//! information, and the leader's second look at a forwarded request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hapki_domain::jws::test_client::{binding, TestKey};
use hapki_domain::jws::{b64, b64_encode, key_authorization, Jwk};
use hapki_domain::key::KeyType;
use hapki_store::acme::{requester, AcmeOp, AcmeRequest};
use hapki_store::{Command, Role};
use serde_json::{json, Value};

use super::Validation;
use crate::testing::{csr_der, Answer, Api};

const HOST: &str = "ca.test";

fn url(path: &str) -> String {
    format!("https://{HOST}/acme/server/{path}")
}

/// What the challenge servers answer: http-01 files by token, TXT records by name.
#[derive(Clone, Default)]
struct Responses {
    http: Arc<Mutex<HashMap<String, String>>>,
    txt: Arc<Mutex<HashMap<String, String>>>,
    /// Where tls-alpn-01 validation connects: free until a test starts a responder there.
    alpn_port: u16,
}

/// An HTTP server for http-01 and a DNS server that answers A 127.0.0.1 for every name
/// and the TXT records set in `Responses`, both on loopback.
async fn challenge_servers() -> (Responses, Validation) {
    let alpn_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let responses = Responses {
        alpn_port,
        ..Responses::default()
    };
    let http = responses.http.clone();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |axum::extract::Path(token): axum::extract::Path<String>| {
            let http = http.clone();
            async move {
                match http.lock().unwrap().get(&token) {
                    Some(v) => (StatusCode::OK, v.clone()),
                    None => (StatusCode::NOT_FOUND, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns: SocketAddr = socket.local_addr().unwrap();
    let txt = responses.txt.clone();
    tokio::spawn(async move {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::rdata::{A, TXT};
        use hickory_proto::rr::{RData, Record, RecordType};
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply.set_id(query.id()).set_message_type(MessageType::Response);
            reply.set_recursion_desired(true).set_recursion_available(true);
            for q in query.queries() {
                reply.add_query(q.clone());
                let name = q.name().to_ascii().trim_end_matches('.').to_string();
                match q.query_type() {
                    RecordType::A => {
                        reply.add_answer(Record::from_rdata(q.name().clone(), 1, RData::A(A::new(127, 0, 0, 1))));
                    }
                    RecordType::TXT => match txt.lock().unwrap().get(&name) {
                        Some(v) => {
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                1,
                                RData::TXT(TXT::new(vec![v.clone()])),
                            ));
                        }
                        None => {
                            reply.set_response_code(ResponseCode::NXDomain);
                        }
                    },
                    _ => {}
                }
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
        }
    });
    (
        responses,
        Validation {
            http01_port: http_port,
            tls_alpn01_port: alpn_port,
            dns_resolver: Some(dns),
        },
    )
}

/// An API with ACME validating against the challenge servers; `dev` directories need no EAB.
async fn acme_api(dev: bool) -> (Api, Responses) {
    // What the server's main does: http-01's client needs it.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let api = Api::new().await;
    let (responses, validation) = challenge_servers().await;
    api.pki.set_acme(validation, dev);
    (api, responses)
}

/// An ACME client of the in-process API.
struct Client<'a> {
    api: &'a Api,
    key: TestKey,
    kid: Option<String>,
    nonce: Option<String>,
}

impl<'a> Client<'a> {
    fn new(api: &'a Api, key: TestKey) -> Client<'a> {
        Client {
            api,
            key,
            kid: None,
            nonce: None,
        }
    }

    async fn send(&mut self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        let a = self.api.send(req).await;
        if let Some(n) = a.headers.get("replay-nonce") {
            self.nonce = Some(n.to_str().unwrap().to_string());
        }
        a
    }

    async fn fresh_nonce(&mut self) -> String {
        let a = self
            .send(Method::HEAD, "/acme/server/new-nonce", "application/jose+json", vec![])
            .await;
        assert_eq!(a.status, StatusCode::OK);
        // Handed out here, so not kept for the next request too.
        self.nonce = None;
        a.headers["replay-nonce"].to_str().unwrap().to_string()
    }

    /// The JWS of `payload` (None: POST-as-GET) for `path`, signed as this client signs.
    async fn jws(&mut self, path: &str, payload: Option<&Value>) -> Vec<u8> {
        let nonce = match self.nonce.take() {
            Some(n) => n,
            None => self.fresh_nonce().await,
        };
        let mut header = json!({"nonce": nonce, "url": url(path)});
        match &self.kid {
            Some(kid) => header["kid"] = kid.clone().into(),
            None => header["jwk"] = self.key.jwk(),
        }
        let payload = payload.map(|p| p.to_string().into_bytes()).unwrap_or_default();
        self.key.jws(header, &payload)
    }

    async fn post(&mut self, path: &str, payload: Option<&Value>) -> Answer {
        let body = self.jws(path, payload).await;
        self.send_jws(path, body).await
    }

    async fn send_jws(&mut self, path: &str, body: Vec<u8>) -> Answer {
        self.send(
            Method::POST,
            &format!("/acme/server/{path}"),
            "application/jose+json",
            body,
        )
        .await
    }

    async fn register(&mut self) -> Answer {
        let a = self
            .post(
                "new-account",
                Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@example.com"]})),
            )
            .await;
        assert!(a.status.is_success(), "{a:?}");
        self.kid = Some(a.headers[header::LOCATION].to_str().unwrap().to_string());
        a
    }

    fn jwk(&self) -> Jwk {
        Jwk::from_json(&self.key.jwk()).unwrap()
    }
}

/// The path of an absolute URL of the test directory.
fn path_of(u: &str) -> String {
    u.strip_prefix(&url(""))
        .unwrap_or_else(|| panic!("{u} is not of the directory"))
        .to_string()
}

fn problem(a: &Answer) -> String {
    a.body["type"].as_str().unwrap_or_default().to_string()
}

fn acme_error(a: &Answer, status: u16, kind: &str) {
    assert_eq!(a.status.as_u16(), status, "{a:?}");
    assert_eq!(problem(a), format!("urn:ietf:params:acme:error:{kind}"), "{a:?}");
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(
        a.headers.contains_key("replay-nonce"),
        "a refusal carries a fresh nonce"
    );
}

/// A new order for the one DNS name `name`: its answer, its authorization's path and that
/// authorization's challenge of type `kind`.
async fn one_name_order(client: &mut Client<'_>, name: &str, kind: &str) -> (Answer, String, Value) {
    let order = client
        .post(
            "new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{order:?}");
    let authz_url = path_of(order.body["authorizations"][0].as_str().unwrap());
    let authz = client.post(&authz_url, None).await;
    let challenge = challenge_of(&authz, kind);
    (order, authz_url, challenge)
}

/// The challenge of type `kind` an authorization offers.
fn challenge_of(authz: &Answer, kind: &str) -> Value {
    authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {authz:?}"))
        .clone()
}

/// An order for `names`, each authorization validated with `kind` through `responses`.
async fn validated_order(client: &mut Client<'_>, responses: &Responses, names: &[&str], kind: &str) -> Value {
    let ids: Vec<Value> = names.iter().map(|n| json!({"type": "dns", "value": n})).collect();
    let order = client.post("new-order", Some(&json!({"identifiers": ids}))).await;
    assert_eq!(order.status, StatusCode::CREATED, "{order:?}");
    assert_eq!(order.body["status"], "pending");
    let order_url = order.headers[header::LOCATION].to_str().unwrap().to_string();
    for authz_url in order.body["authorizations"].as_array().unwrap() {
        let authz = client.post(&path_of(authz_url.as_str().unwrap()), None).await;
        assert_eq!(authz.body["status"], "pending", "{authz:?}");
        let challenge = challenge_of(&authz, kind);
        let token = challenge["token"].as_str().unwrap();
        let key_authz = key_authorization(token, &client.jwk());
        let name = authz.body["identifier"]["value"].as_str().unwrap().to_string();
        match kind {
            "http-01" => {
                responses.http.lock().unwrap().insert(token.to_string(), key_authz);
            }
            _ => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authz.as_bytes());
                responses
                    .txt
                    .lock()
                    .unwrap()
                    .insert(format!("_acme-challenge.{name}"), b64_encode(digest.as_ref()));
            }
        }
        let done = client
            .post(&path_of(challenge["url"].as_str().unwrap()), Some(&json!({})))
            .await;
        assert_eq!(done.body["status"], "valid", "{done:?}");
        assert!(done.headers[header::LINK].to_str().unwrap().contains("rel=\"up\""));
    }
    let order = client.post(&path_of(&order_url), None).await;
    assert_eq!(order.body["status"], "ready", "{order:?}");
    order.body
}

fn finalize_payload(names: &[&str]) -> Value {
    let der = csr_der(KeyType::EcP256, names[0], names);
    json!({"csr": b64_encode(&der)})
}

#[tokio::test]
async fn a_client_orders_validates_over_http_and_finalizes_once() {
    let (api, responses) = acme_api(true).await;
    let dir = api
        .send(
            Request::get("/acme/directory")
                .header(header::HOST, HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(dir.body["newOrder"], url("new-order"), "{dir:?}");
    assert_eq!(dir.body["renewalInfo"], url("renewal-info"));
    assert_eq!(dir.body["meta"]["externalAccountRequired"], false);
    let mut client = Client::new(&api, TestKey::p256());
    let account = client.register().await;
    assert_eq!(account.status, StatusCode::CREATED);
    assert_eq!(account.body["status"], "valid");
    // The same key again: the same account, not a new one.
    let kid = client.kid.take().unwrap();
    let same = client
        .post("new-account", Some(&json!({"termsOfServiceAgreed": true})))
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.headers[header::LOCATION], kid.as_str());
    client.kid = Some(kid);

    let names = ["web.example.test", "www.example.test"];
    let order = validated_order(&mut client, &responses, &names, "http-01").await;
    let finalize = path_of(order["finalize"].as_str().unwrap());
    let certs_before = api.pki.reader().unwrap().cert_count().unwrap();
    let done = client.post(&finalize, Some(&finalize_payload(&names))).await;
    assert_eq!(done.body["status"], "valid", "{done:?}");
    let cert_url = done.body["certificate"].as_str().unwrap().to_string();
    // A finalize sent again (a retry after a lost answer) answers the same certificate.
    let retried = client.post(&finalize, Some(&finalize_payload(&names))).await;
    assert_eq!(retried.body["certificate"], cert_url.as_str(), "{retried:?}");
    assert_eq!(api.pki.reader().unwrap().cert_count().unwrap(), certs_before + 1);

    let chain = client.post(&path_of(&cert_url), None).await;
    assert_eq!(chain.status, StatusCode::OK);
    assert_eq!(chain.headers[header::CONTENT_TYPE], "application/pem-certificate-chain");
    let pems = hapki_domain::pem::certificates(&chain.bytes).unwrap();
    assert_eq!(pems.len(), 2, "the certificate and its issuer");
    let summary = hapki_domain::issue::summarize(&pems[0]).unwrap();
    let sans: Vec<String> = summary.sans.iter().map(|s| s.to_string()).collect();
    assert_eq!(sans, ["DNS:web.example.test", "DNS:www.example.test"]);
    let record = api.pki.reader().unwrap().cert(&summary.serial).unwrap().unwrap();
    assert_eq!(record.profile, "server");
    assert!(record.requested_by.unwrap().starts_with("acme:"));

    // Renewal information: the last third of its life; an operator's hint moves it to now.
    let key_id = api.pki.issuer(Some(&api.root)).unwrap().key_id.clone();
    let ari = super::objects::renewal_id(&key_id, &summary.serial);
    let info = api
        .send(
            Request::get(format!("/acme/server/renewal-info/{ari}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(info.status, StatusCode::OK, "{info:?}");
    assert_eq!(info.headers[header::RETRY_AFTER], "21600");
    let end = info.body["suggestedWindow"]["end"].as_str().unwrap().to_string();
    assert!(end > hapki_domain::time::rfc3339(api.pki.now() + 86_400), "{info:?}");
    let hint = api.post("/v1/acme/suggest-renewal", &json!({"issuer": api.root})).await;
    assert_eq!(hint.status, StatusCode::OK, "{hint:?}");
    let info = api
        .send(
            Request::get(format!("/acme/server/renewal-info/{ari}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(
        info.body["suggestedWindow"]["end"].as_str().unwrap() <= hapki_domain::time::rfc3339(api.pki.now()).as_str(),
        "{info:?}"
    );

    // The account revokes it; a second revocation is alreadyRevoked.
    let revoke = json!({"certificate": b64_encode(&pems[0]), "reason": 4});
    let r = client.post("revoke-cert", Some(&revoke)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let record = api.pki.reader().unwrap().cert(&summary.serial).unwrap().unwrap();
    assert_eq!(
        record.revoked.unwrap().reason,
        hapki_domain::revocation::RevocationReason::Superseded
    );
    acme_error(&client.post("revoke-cert", Some(&revoke)).await, 400, "alreadyRevoked");
    // Another account may not revoke what it did not order.
    let mut other = Client::new(&api, TestKey::ed25519());
    other.register().await;
    acme_error(&other.post("revoke-cert", Some(&revoke)).await, 403, "unauthorized");
    // Nor read its orders.
    let orders = client
        .post(
            &format!("{}/orders", path_of(client.kid.clone().unwrap().as_str())),
            None,
        )
        .await;
    assert_eq!(orders.body["orders"].as_array().unwrap().len(), 1, "{orders:?}");
    let kid = client.kid.clone().unwrap();
    acme_error(
        &other.post(&format!("{}/orders", path_of(&kid)), None).await,
        403,
        "unauthorized",
    );
}

#[tokio::test]
async fn dns01_validates_through_the_resolver_and_a_wrong_answer_fails_the_authorization() {
    let (api, responses) = acme_api(true).await;
    let mut client = Client::new(&api, TestKey::p384());
    client.register().await;
    let order = validated_order(&mut client, &responses, &["dns.example.test"], "dns-01").await;
    let done = client
        .post(
            &path_of(order["finalize"].as_str().unwrap()),
            Some(&finalize_payload(&["dns.example.test"])),
        )
        .await;
    assert_eq!(done.body["status"], "valid", "{done:?}");

    // A wrong TXT record: the authorization turns invalid with the reason, the order too.
    let (order, _, challenge) = one_name_order(&mut client, "bad.example.test", "dns-01").await;
    responses
        .txt
        .lock()
        .unwrap()
        .insert("_acme-challenge.bad.example.test".into(), "not-it".into());
    let failed = client
        .post(&path_of(challenge["url"].as_str().unwrap()), Some(&json!({})))
        .await;
    assert_eq!(failed.body["status"], "invalid", "{failed:?}");
    assert_eq!(
        failed.body["error"]["type"],
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let order = client
        .post(&path_of(order.headers[header::LOCATION].to_str().unwrap()), None)
        .await;
    assert_eq!(order.body["status"], "invalid");
    acme_error(
        &client
            .post(
                &path_of(order.body["finalize"].as_str().unwrap()),
                Some(&finalize_payload(&["bad.example.test"])),
            )
            .await,
        403,
        "orderNotReady",
    );
}

#[tokio::test]
async fn refusals_carry_their_acme_error_type_and_change_nothing() {
    let (api, responses) = acme_api(true).await;
    let mut client = Client::new(&api, TestKey::rsa());
    client.register().await;
    // Warm up: nonces and the secret exist before the digest is taken.
    let before = api.digest();

    let not_json = client.send_jws("new-order", b"{not json".to_vec()).await;
    acme_error(&not_json, 400, "malformed");
    let body = client.jws("new-order", Some(&json!({}))).await;
    let wrong_type = client
        .send(Method::POST, "/acme/server/new-order", "application/json", body)
        .await;
    acme_error(&wrong_type, 400, "malformed");

    // A payload swapped under a valid signature.
    let body = client
        .jws(
            "new-order",
            Some(&json!({"identifiers": [{"type": "dns", "value": "a.example.test"}]})),
        )
        .await;
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["payload"] = b64_encode(br#"{"identifiers":[{"type":"dns","value":"b.example.test"}]}"#).into();
    acme_error(
        &client.send_jws("new-order", v.to_string().into_bytes()).await,
        403,
        "unauthorized",
    );

    // The same request twice: the second nonce is spent.
    let kid = client.kid.clone().unwrap();
    let account_path = path_of(&kid);
    let body = client.jws(&account_path, None).await;
    assert_eq!(
        client.send_jws(&account_path, body.clone()).await.status,
        StatusCode::OK
    );
    acme_error(&client.send_jws(&account_path, body).await, 400, "badNonce");
    // A nonce this cluster did not make.
    let forged = client.key.jws(
        json!({"nonce": b64_encode(&[7; 40]), "url": url("new-order"), "kid": kid}),
        b"{}",
    );
    acme_error(&client.send_jws("new-order", forged).await, 400, "badNonce");
    // The header names another URL than the one posted to.
    let elsewhere = client.jws("new-account", Some(&json!({}))).await;
    acme_error(&client.send_jws("new-order", elsewhere).await, 403, "unauthorized");
    // A kid no account has.
    let nonce = client.fresh_nonce().await;
    let unknown = client.key.jws(
        json!({"nonce": nonce, "url": url("new-order"), "kid": url("acct/nobody")}),
        b"{}",
    );
    acme_error(&client.send_jws("new-order", unknown).await, 400, "accountDoesNotExist");
    // onlyReturnExisting for a key with no account.
    let mut stranger = Client::new(&api, TestKey::p256());
    acme_error(
        &stranger
            .post("new-account", Some(&json!({"onlyReturnExisting": true})))
            .await,
        400,
        "accountDoesNotExist",
    );
    // Identifiers the profile or ACME does not take.
    for (identifiers, kind) in [
        (
            json!([{"type": "email", "value": "a@example.test"}]),
            "unsupportedIdentifier",
        ),
        (
            json!([{"type": "dns", "value": "bad..example.test"}]),
            "rejectedIdentifier",
        ),
        (
            json!([{"type": "dns", "value": "*.wild.example.test"}]),
            "rejectedIdentifier",
        ),
        (json!([]), "malformed"),
    ] {
        let a = client
            .post("new-order", Some(&json!({"identifiers": identifiers})))
            .await;
        acme_error(&a, 400, kind);
    }
    // A CSR for other names than the order's, and a CSR that is not one.
    let order = validated_order(&mut client, &responses, &["c.example.test"], "http-01").await;
    let finalize = path_of(order["finalize"].as_str().unwrap());
    let digest_with_order = api.digest();
    acme_error(
        &client
            .post(&finalize, Some(&finalize_payload(&["d.example.test"])))
            .await,
        400,
        "badCSR",
    );
    acme_error(
        &client.post(&finalize, Some(&json!({"csr": "AAAA"}))).await,
        400,
        "badCSR",
    );
    assert_eq!(api.digest(), digest_with_order, "a refused finalize changes nothing");
    assert_ne!(before, digest_with_order);
    // An oversized body is refused before it is read.
    let huge = vec![b'a'; crate::testing::MAX_BODY + 1];
    assert_eq!(
        client.send_jws("new-order", huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // An account key that is no key.
    let nonce = client.fresh_nonce().await;
    let p = b64_encode(
        json!({"alg": "ES256", "nonce": nonce, "url": url("new-account"), "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}})
            .to_string()
            .as_bytes(),
    );
    let bad_key = json!({"protected": p, "payload": "", "signature": ""}).to_string();
    acme_error(
        &client.send_jws("new-account", bad_key.into_bytes()).await,
        400,
        "badPublicKey",
    );
    // The node still serves.
    assert_eq!(client.post(&account_path, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_external_account_binding_is_required_by_default_and_binds_one_account() {
    let (api, _responses) = acme_api(false).await;
    let mut client = Client::new(&api, TestKey::p256());
    acme_error(
        &client
            .post("new-account", Some(&json!({"termsOfServiceAgreed": true})))
            .await,
        400,
        "externalAccountRequired",
    );
    // Only a token that manages tokens makes EAB keys; only one that manages profiles
    // reads or changes a directory's settings.
    for role in [Role::Requester, Role::Agent] {
        let token = api.token(role).await;
        let a = api
            .call(
                Method::POST,
                "/v1/acme/eab",
                Some(&token),
                Some(&json!({"profile": "server"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}: {a:?}");
        let a = api
            .call(Method::GET, "/v1/acme/directories/server", Some(&token), None)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}: {a:?}");
        let a = api
            .call(
                Method::POST,
                "/v1/acme/suggest-renewal",
                Some(&token),
                Some(&json!({"issuer": api.root})),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{role:?}: {a:?}");
    }
    assert_eq!(
        api.post("/v1/acme/eab", &json!({"profile": "sub-ca"})).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.post("/v1/acme/eab", &json!({"profile": "server", "valid_days": 0}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let eab = api.post("/v1/acme/eab", &json!({"profile": "server"})).await;
    assert_eq!(eab.status, StatusCode::CREATED, "{eab:?}");
    let kid = eab.body["kid"].as_str().unwrap().to_string();
    let hmac_key = b64("hmac_key", eab.body["hmac_key"].as_str().unwrap()).unwrap();

    // A wrong HMAC key, then the right one; then the same key id for another account.
    let wrong = binding(&kid, b"not the key", &url("new-account"), &client.key.jwk());
    acme_error(
        &client
            .post("new-account", Some(&json!({"externalAccountBinding": wrong})))
            .await,
        403,
        "unauthorized",
    );
    let right = binding(&kid, &hmac_key, &url("new-account"), &client.key.jwk());
    let created = client
        .post("new-account", Some(&json!({"externalAccountBinding": right})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let mut second = Client::new(&api, TestKey::p256());
    let reused = binding(&kid, &hmac_key, &url("new-account"), &second.key.jwk());
    acme_error(
        &second
            .post("new-account", Some(&json!({"externalAccountBinding": reused})))
            .await,
        403,
        "unauthorized",
    );
    // A binding over another key than the account's.
    let third = TestKey::p256();
    let eab2 = api.post("/v1/acme/eab", &json!({"profile": "server"})).await;
    let kid2 = eab2.body["kid"].as_str().unwrap().to_string();
    let key2 = b64("hmac_key", eab2.body["hmac_key"].as_str().unwrap()).unwrap();
    let mismatched = binding(&kid2, &key2, &url("new-account"), &third.jwk());
    acme_error(
        &second
            .post("new-account", Some(&json!({"externalAccountBinding": mismatched})))
            .await,
        400,
        "malformed",
    );

    // The directory can be opened, and closed again.
    let set = api
        .put("/v1/acme/directories/server", &json!({"require_eab": false}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{set:?}");
    assert_eq!(set.body["require_eab"], false);
    assert_eq!(set.body["directory"], "https://localhost/acme/server/directory");
    assert_eq!(
        second.post("new-account", Some(&json!({}))).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_key_change_moves_the_account_to_the_new_key() {
    let (api, _responses) = acme_api(true).await;
    let mut client = Client::new(&api, TestKey::p256());
    client.register().await;
    let kid = client.kid.clone().unwrap();
    let new_key = TestKey::ed25519();
    let inner = new_key.jws(
        json!({"url": url("key-change"), "jwk": new_key.jwk()}),
        json!({"account": kid, "oldKey": client.key.jwk()})
            .to_string()
            .as_bytes(),
    );
    let inner: Value = serde_json::from_slice(&inner).unwrap();
    // An inner JWS naming another old key is refused.
    let forged = new_key.jws(
        json!({"url": url("key-change"), "jwk": new_key.jwk()}),
        json!({"account": kid, "oldKey": TestKey::p256().jwk()})
            .to_string()
            .as_bytes(),
    );
    let forged: Value = serde_json::from_slice(&forged).unwrap();
    acme_error(&client.post("key-change", Some(&forged)).await, 403, "unauthorized");
    // A key another account holds: 409 naming that account, and nothing changes.
    let mut holder = Client::new(&api, TestKey::p384());
    holder.register().await;
    let taken = holder.key.jws(
        json!({"url": url("key-change"), "jwk": holder.key.jwk()}),
        json!({"account": kid, "oldKey": client.key.jwk()})
            .to_string()
            .as_bytes(),
    );
    let taken: Value = serde_json::from_slice(&taken).unwrap();
    let clash = client.post("key-change", Some(&taken)).await;
    acme_error(&clash, 409, "malformed");
    assert_eq!(clash.headers[header::LOCATION], holder.kid.clone().unwrap().as_str());
    assert_eq!(client.post(&path_of(&kid), None).await.status, StatusCode::OK);
    let changed = client.post("key-change", Some(&inner)).await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    // The old key no longer signs for the account (nor with its algorithm); the new one does.
    acme_error(&client.post(&path_of(&kid), None).await, 400, "badSignatureAlgorithm");
    let mut renewed = Client::new(&api, new_key);
    renewed.kid = Some(kid.clone());
    assert_eq!(renewed.post(&path_of(&kid), None).await.status, StatusCode::OK);
    // Deactivated, it signs nothing more.
    let off = renewed
        .post(&path_of(&kid), Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(off.body["status"], "deactivated", "{off:?}");
    acme_error(&renewed.post(&path_of(&kid), None).await, 403, "unauthorized");
}

#[tokio::test]
async fn the_leader_verifies_a_forwarded_acme_write_again() {
    let (api, _responses) = acme_api(true).await;
    let mut client = Client::new(&api, TestKey::p256());
    client.register().await;
    let kid = client.kid.clone().unwrap();
    let account = kid.rsplit_once("/acct/").unwrap().1.to_string();
    let path = path_of(&kid);
    let body = client.jws(&path, Some(&json!({"contact": []}))).await;
    let dir = super::Directory {
        origin: format!("https://{HOST}"),
        profile: "server".into(),
    };
    let verified = api.pki.acme_verify(&dir, &url(&path), &body).await.unwrap();
    let command = |account: &str, nonce: [u8; 24], actor: &str| Command::Audited {
        meta: hapki_store::AuditMeta {
            at: 1,
            actor: Some(actor.to_string()),
            actor_name: "x".into(),
            node: 1,
        },
        command: Box::new(Command::Acme {
            request: AcmeRequest {
                nonce,
                at: 1,
                account: account.to_string(),
                op: AcmeOp::UpdateAccount {
                    contact: Some(vec![]),
                    deactivate: true,
                },
            },
        }),
    };
    let good = command(&account, verified.nonce, &requester(&account));
    api.pki.authorize_forwarded_acme(&body, &good).unwrap();
    let mut other_nonce = verified.nonce;
    other_nonce[23] ^= 1;
    let mut tampered: Value = serde_json::from_slice(&body).unwrap();
    tampered["payload"] = b64_encode(b"{}").into();
    for (case, body, cmd) in [
        (
            "another account",
            body.clone(),
            command("other", verified.nonce, &requester("other")),
        ),
        (
            "another nonce",
            body.clone(),
            command(&account, other_nonce, &requester(&account)),
        ),
        ("another actor", body.clone(), command(&account, verified.nonce, "t1")),
        ("a tampered body", tampered.to_string().into_bytes(), good.clone()),
        (
            "not audited",
            body.clone(),
            match &good {
                Command::Audited { command, .. } => *command.clone(),
                _ => unreachable!(),
            },
        ),
        ("not ACME", body.clone(), Command::RevokeToken { id: "x".into() }),
    ] {
        assert!(api.pki.authorize_forwarded_acme(&body, &cmd).is_err(), "{case}");
    }
    // A token never carries an ACME change.
    let inner = match &good {
        Command::Audited { command, .. } => *command.clone(),
        _ => unreachable!(),
    };
    let err = api.pki.authorize_forwarded(&api.admin, &inner).unwrap_err();
    assert!(err.to_string().contains("signed body"), "{err}");
}

#[tokio::test]
async fn a_request_signed_with_the_certificates_own_key_revokes_it() {
    let (api, responses) = acme_api(true).await;
    let mut client = Client::new(&api, TestKey::p256());
    client.register().await;
    let names = ["own.example.test"];
    let order = validated_order(&mut client, &responses, &names, "http-01").await;
    let key = hapki_domain::key::SigningKey::generate(KeyType::EcP256).unwrap();
    let subject = hapki_domain::name::SubjectSpec::parse("CN=own.example.test")
        .unwrap()
        .to_name()
        .unwrap();
    let san = hapki_domain::name::San::parse("own.example.test").unwrap();
    let csr = hapki_domain::csr::build_csr(&key, &subject, &[san]).unwrap();
    let done = client
        .post(
            &path_of(order["finalize"].as_str().unwrap()),
            Some(&json!({"csr": b64_encode(&csr)})),
        )
        .await;
    assert_eq!(done.body["status"], "valid", "{done:?}");
    let chain = client
        .post(&path_of(done.body["certificate"].as_str().unwrap()), None)
        .await;
    let der = hapki_domain::pem::certificates(&chain.bytes).unwrap().remove(0);
    let serial = hapki_domain::issue::summarize(&der).unwrap().serial;
    let revoke = json!({"certificate": b64_encode(&der), "reason": 1});

    // Another key given as jwk may not revoke it; nothing changes.
    let mut stranger = Client::new(&api, TestKey::p256());
    acme_error(&stranger.post("revoke-cert", Some(&revoke)).await, 403, "unauthorized");
    assert!(api
        .pki
        .reader()
        .unwrap()
        .cert(&serial)
        .unwrap()
        .unwrap()
        .revoked
        .is_none());

    // The certificate's key, with no account, may.
    let mut holder = Client::new(&api, TestKey::p256_from_pkcs8(&key.to_pkcs8().unwrap()));
    let body = holder.jws("revoke-cert", Some(&revoke)).await;
    let dir = super::Directory {
        origin: format!("https://{HOST}"),
        profile: "server".into(),
    };
    let verified = api.pki.acme_verify(&dir, &url("revoke-cert"), &body).await.unwrap();
    // What a leader checks when a member forwards it: the command must revoke that
    // certificate in its key's name, and the jwk must be that certificate's key.
    let command = |account: String, serial: hapki_domain::serial::Serial| Command::Audited {
        meta: hapki_store::AuditMeta {
            at: 1,
            actor: Some(requester(&account)),
            actor_name: "x".into(),
            node: 1,
        },
        command: Box::new(Command::Acme {
            request: AcmeRequest {
                nonce: verified.nonce,
                at: 1,
                account,
                op: AcmeOp::RevokeByCertKey {
                    serial,
                    reason: hapki_domain::revocation::RevocationReason::KeyCompromise,
                },
            },
        }),
    };
    let own = hapki_store::acme::cert_key_account(&serial);
    api.pki
        .authorize_forwarded_acme(&body, &command(own.clone(), serial))
        .unwrap();
    let other_serial = hapki_domain::serial::Serial::from_u64(99);
    for (case, cmd) in [
        ("in another name", command("acct1".into(), serial)),
        (
            "of another certificate",
            command(hapki_store::acme::cert_key_account(&other_serial), other_serial),
        ),
    ] {
        assert!(api.pki.authorize_forwarded_acme(&body, &cmd).is_err(), "{case}");
    }
    let stranger_body = stranger.jws("revoke-cert", Some(&revoke)).await;
    assert!(api
        .pki
        .authorize_forwarded_acme(&stranger_body, &command(own, serial))
        .is_err());

    // (acme_verify redeemed that nonce here; the request sent is signed anew.)
    let r = holder.post("revoke-cert", Some(&revoke)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let record = api.pki.reader().unwrap().cert(&serial).unwrap().unwrap();
    assert_eq!(
        record.revoked.unwrap().reason,
        hapki_domain::revocation::RevocationReason::KeyCompromise
    );
    acme_error(&holder.post("revoke-cert", Some(&revoke)).await, 400, "alreadyRevoked");
}

/// A tls-alpn-01 responder: real `openssl s_server` on `port` presenting a self-signed
/// certificate for `name` whose acmeIdentifier holds `digest` (RFC 8737), ALPN acme-tls/1.
fn alpn_responder(dir: &std::path::Path, port: u16, name: &str, digest: &[u8]) -> Responder {
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let (ok, out) = crate::testing::openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "alpn.key",
            "-out",
            "alpn.pem",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
            "-addext",
            &format!("1.3.6.1.5.5.7.1.31=critical,DER:0420{hex}"),
        ],
    );
    assert!(ok, "{out}");
    let responder = Responder(
        std::process::Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-alpn",
                "acme-tls/1",
                "-cert",
                "alpn.pem",
                "-key",
                "alpn.key",
                "-accept",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run openssl s_server"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return responder;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("openssl s_server did not listen on {port}");
}

/// A responder process, stopped and reaped when dropped (also when a test fails).
struct Responder(std::process::Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tls_alpn01_validates_against_openssl_s_server_and_a_wrong_certificate_fails() {
    let (api, responses) = acme_api(true).await;
    let work = tempfile::tempdir().unwrap();
    let port = responses.alpn_port;
    let mut client = Client::new(&api, TestKey::p256());
    client.register().await;
    for (name, right) in [("wrong.example.test", false), ("alpn.example.test", true)] {
        let (_, authz_url, challenge) = one_name_order(&mut client, name, "tls-alpn-01").await;
        let key_authz = key_authorization(challenge["token"].as_str().unwrap(), &client.jwk());
        let proof = if right { key_authz } else { format!("{key_authz}x") };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, proof.as_bytes());
        let server = alpn_responder(work.path(), port, name, digest.as_ref());
        let done = client
            .post(&path_of(challenge["url"].as_str().unwrap()), Some(&json!({})))
            .await;
        drop(server);
        if right {
            assert_eq!(done.body["status"], "valid", "{done:?}");
            let authz = client.post(&authz_url, None).await;
            assert_eq!(authz.body["status"], "valid", "{authz:?}");
        } else {
            assert_eq!(done.body["status"], "invalid", "{done:?}");
            assert_eq!(
                done.body["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
                "{done:?}"
            );
        }
    }
}
