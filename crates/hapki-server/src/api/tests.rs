//! The HTTPS API in process: each request goes to the router with `oneshot`,
//! over the CA service on a cluster of one without Raft. Every refusal has its
//! status, the JSON error shape and a message to act on, and leaves the state
//! digest as it was.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hapki_domain::key::KeyType;
use hapki_store::Role;
use serde_json::json;

use crate::testing::{csr, refused, Api, MAX_BODY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_request_issues_and_reads_back() {
    let api = Api::new().await;
    let csr = csr(KeyType::EcP256, "www.example.com", &["www.example.com"]);
    let issued = api.post("/v1/certs", &json!({"csr": csr, "profile": "server"})).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    let serial = issued.body["serial"].as_str().unwrap();
    let got = api.get(&format!("/v1/certs/{serial}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["status"], "valid");
    assert_eq!(got.body["certificate"], issued.body["certificate"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_before_anything_happens() {
    let api = Api::new().await;
    let before = api.digest();
    // (case, content type, body, status, code, what the message says)
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "not JSON",
            Some("application/json"),
            b"{nope".to_vec(),
            400,
            "invalid_request",
            "not valid JSON",
        ),
        (
            "no content type",
            None,
            br#"{"csr":"x","profile":"server"}"#.to_vec(),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "text/plain",
            Some("text/plain"),
            br#"{"csr":"x","profile":"server"}"#.to_vec(),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            "missing profile",
            Some("application/json"),
            br#"{"csr":"x"}"#.to_vec(),
            400,
            "invalid_request",
            "profile",
        ),
        (
            "unknown field",
            Some("application/json"),
            br#"{"csr":"x","profile":"server","color":"red"}"#.to_vec(),
            400,
            "invalid_request",
            "color",
        ),
        (
            "wrong type",
            Some("application/json"),
            br#"{"csr":7,"profile":"server"}"#.to_vec(),
            400,
            "invalid_request",
            "does not fit",
        ),
        (
            "not PEM",
            Some("application/json"),
            br#"{"csr":"hello","profile":"server"}"#.to_vec(),
            400,
            "invalid_input",
            "PEM",
        ),
    ];
    for (case, content_type, body, status, code, says) in cases {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/certs")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin));
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        let a = api.send(req.body(Body::from(body)).unwrap()).await;
        refused(case, &a, status, code, says);
    }
    // Over the body limit: the JSON 413, whatever the route.
    let big = vec![b'a'; MAX_BODY + 1];
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/certs")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .unwrap();
    refused("oversized", &api.send(req).await, 413, "too_large", "too large");
    assert_eq!(api.digest(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_valid_token_is_refused() {
    let api = Api::new().await;
    let before = api.digest();
    let revoked = api.token(Role::Agent).await;
    let id = api.pki.authenticate(&revoked).unwrap().id;
    let gone = api
        .call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&api.admin), None)
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    let before_after_revoke = api.digest();
    assert_ne!(before, before_after_revoke);
    for (case, token, says) in [
        ("no token", None, "missing bearer token"),
        ("not a hapki token", Some("abc"), "not a hapki token"),
        (
            "unknown token",
            Some("hapki_0000000000000000000000000000000000000000"),
            "not valid on this cluster",
        ),
        ("revoked token", Some(revoked.as_str()), "has been revoked"),
    ] {
        let a = api.call(Method::GET, "/v1/certs", token, None).await;
        refused(case, &a, 401, "unauthorized", says);
    }
    // The clock passes a short-lived token's end: refused from then on.
    let grant = crate::pki::TokenGrant {
        ttl_secs: Some(60),
        ..crate::pki::TokenGrant::role(Role::Agent, "short")
    };
    let short = api.token_with(grant).await;
    assert_eq!(
        api.call(Method::GET, "/v1/certs", Some(&short), None).await.status,
        StatusCode::OK
    );
    api.clock.advance(60);
    refused(
        "expired token",
        &api.call(Method::GET, "/v1/certs", Some(&short), None).await,
        401,
        "unauthorized",
        "expired",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weaker_token_is_refused_what_its_role_does_not_allow() {
    let api = Api::new().await;
    let requester = api.token(Role::Requester).await;
    let agent = api.token(Role::Agent).await;
    let before = api.digest();
    let root = json!({"common_name": "Rogue Root"});
    for (case, token, method, path, body) in [
        (
            "requester creates a CA",
            &requester,
            Method::POST,
            "/v1/ca/root",
            Some(&root),
        ),
        ("agent creates a CA", &agent, Method::POST, "/v1/ca/root", Some(&root)),
        ("agent lists tokens", &agent, Method::GET, "/v1/tokens", None),
        (
            "requester lists certificates",
            &requester,
            Method::GET,
            "/v1/certs",
            None,
        ),
        (
            "agent rotates the CRL",
            &requester,
            Method::POST,
            "/v1/crl/rotate",
            Some(&json!({})),
        ),
    ] {
        let a = api.call(method, path, Some(token), body).await;
        refused(case, &a, 403, "forbidden", "may not");
    }
    let csr = csr(KeyType::EcP256, "Rogue CA", &[]);
    for (case, token) in [("requester", &requester), ("agent", &agent)] {
        let a = api
            .call(
                Method::POST,
                "/v1/certs",
                Some(token),
                Some(&json!({"csr": csr, "profile": "sub-ca"})),
            )
            .await;
        refused(case, &a, 403, "forbidden", "only an admin token");
    }
    assert_eq!(api.digest(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let api = Api::new().await;
    refused(
        "no route",
        &api.get("/v1/nothing").await,
        404,
        "not_found",
        "no such endpoint",
    );
    let a = api.call(Method::DELETE, "/v1/certs", Some(&api.admin), None).await;
    refused("wrong method", &a, 405, "method_not_allowed", "does not take DELETE");
    let a = api
        .publish(Request::builder().uri("/v1/certs").body(Body::empty()).unwrap())
        .await;
    refused(
        "API on the publication listener",
        &a,
        404,
        "not_found",
        "publishes only",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publication_listener_serves_the_ca_and_its_crl_without_a_token() {
    let api = Api::new().await;
    let get = |path: String| Request::builder().uri(path).body(Body::empty()).unwrap();
    let ca = api.publish(get(format!("/v1/issuers/{}/ca.der", api.root))).await;
    assert_eq!(ca.status, StatusCode::OK);
    let summary = hapki_domain::issue::summarize(&ca.bytes).unwrap();
    assert!(summary.subject.contains("Test Root"), "{}", summary.subject);
    let crl = api.publish(get(format!("/v1/issuers/{}/crl", api.root))).await;
    assert_eq!(crl.status, StatusCode::OK);
    assert_eq!(crl.headers[header::CONTENT_TYPE], "application/pkix-crl");
    assert_eq!(crl.bytes.first(), Some(&0x30), "a DER CRL");
    let a = api.publish(get("/v1/issuers/nope/crl".into())).await;
    refused("unknown issuer", &a, 404, "not_found", "nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_reads_itself_and_nothing_of_other_tokens() {
    let api = Api::new().await;
    let grant = crate::pki::TokenGrant {
        profiles: vec!["server".into()],
        ..crate::pki::TokenGrant::role(Role::Requester, "web team")
    };
    let requester = api.token_with(grant).await;
    let id = api.pki.authenticate(&requester).unwrap().id;
    let me = api.call(Method::GET, "/v1/tokens/self", Some(&requester), None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["role"], "requester");
    assert_eq!(me.body["name"], "web team");
    assert_eq!(me.body["profiles"], json!(["server"]));
    assert!(
        !me.body.to_string().contains(&requester),
        "the secret is never answered"
    );
    let admin = api.get("/v1/tokens/self").await;
    assert_eq!(admin.body["role"], "admin");
    assert_ne!(admin.body["id"], me.body["id"]);

    refused(
        "no token",
        &api.call(Method::GET, "/v1/tokens/self", None, None).await,
        401,
        "unauthorized",
        "missing bearer token",
    );
    // The route reads; it revokes nothing and lists no other token.
    let delete = api
        .call(Method::DELETE, "/v1/tokens/self", Some(&requester), None)
        .await;
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
    refused(
        "requester lists tokens",
        &api.call(Method::GET, "/v1/tokens", Some(&requester), None).await,
        403,
        "forbidden",
        "",
    );
    api.call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(&api.admin), None)
        .await;
    refused(
        "revoked token",
        &api.call(Method::GET, "/v1/tokens/self", Some(&requester), None).await,
        401,
        "unauthorized",
        "has been revoked",
    );
}
