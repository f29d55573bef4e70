//! OCSP answers served again (in process, requests made by real `openssl`): a nonce-less
//! request for one certificate gets the same signed bytes until half their validity has
//! passed (signed anew ahead of that), a revocation is answered at once, and a request with
//! a nonce is signed for it.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use hapki_domain::key::KeyType;
use serde_json::json;

use crate::testing::{csr, Api, START};

/// `openssl` with `args` in `dir`, which must succeed; its output.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = crate::testing::openssl(dir, args);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

async fn get(api: &Api, request: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(request);
    let path = format!(
        "/ocsp/{}",
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC)
    );
    let a = api.publish(Request::get(path).body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK);
    a.bytes
}

async fn post(api: &Api, request: &[u8]) -> Vec<u8> {
    let req = Request::post("/ocsp")
        .header(header::CONTENT_TYPE, "application/ocsp-request")
        .body(Body::from(request.to_vec()))
        .unwrap();
    api.publish(req).await.bytes
}

/// What `openssl ocsp` says of `response` to the request in `request` (a file).
fn status(dir: &Path, request: &str, response: &[u8]) -> String {
    std::fs::write(dir.join("resp.der"), response).unwrap();
    let at = (START + 600).to_string();
    openssl(
        dir,
        &[
            "ocsp",
            "-reqin",
            request,
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-CAfile",
            "ca.pem",
            "-attime",
            &at,
            "-validity_period",
            "100000000",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_less_answer_is_served_again_until_a_revocation_changes_it() {
    let api = Api::new().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csr = csr(KeyType::EcP256, "ocsp.example.com", &["ocsp.example.com"]);
    let issued = api.post("/v1/certs", &json!({"csr": csr, "profile": "server"})).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    std::fs::write(d.join("leaf.pem"), issued.body["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(d.join("ca.pem"), issued.body["chain"][0].as_str().unwrap()).unwrap();
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "plain.der",
        ],
    );
    openssl(
        d,
        &["ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-reqout", "nonce.der"],
    );
    let plain = std::fs::read(d.join("plain.der")).unwrap();
    let nonce = std::fs::read(d.join("nonce.der")).unwrap();

    let first = get(&api, &plain).await;
    let said = status(d, "plain.der", &first);
    assert!(said.contains("leaf.pem: good"), "{said}");
    api.clock.advance(60);
    assert_eq!(
        get(&api, &plain).await,
        first,
        "the same signed answer, not signed again"
    );
    assert_eq!(post(&api, &plain).await, first, "POST of the same request too");
    let with_nonce = post(&api, &nonce).await;
    assert_ne!(with_nonce, first, "a request with a nonce is signed for it");
    // openssl ends the request with its nonce: 16 random bytes, which the answer echoes.
    let value = &nonce[nonce.len() - 16..];
    assert!(
        with_nonce.windows(16).any(|w| w == value),
        "the answer echoes the nonce"
    );

    // At two fifths of its validity (an hour by default) the kept answer is still served,
    // and its successor is signed off that request, then served in its place.
    api.clock.advance(1_440 - 60);
    assert_eq!(get(&api, &plain).await, first, "still kept at two fifths");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let renewed = loop {
        let now = get(&api, &plain).await;
        if now != first {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the successor was never signed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status(d, "plain.der", &renewed).contains("leaf.pem: good"));
    // Past half the first one's validity, the successor is what is served: nothing waits.
    api.clock.advance(420);
    assert_eq!(get(&api, &plain).await, renewed, "the successor, kept");

    let serial = issued.body["serial"].as_str().unwrap();
    let revoked = api
        .post(
            &format!("/v1/certs/{serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    let now = get(&api, &plain).await;
    let said = status(d, "plain.der", &now);
    assert!(
        said.contains("leaf.pem: revoked"),
        "a revocation is answered at once: {said}"
    );
}
