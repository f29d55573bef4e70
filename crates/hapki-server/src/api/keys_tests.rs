//! The key archive's routes, in process: archiving a key sent encrypted to the
//! transport certificate and one generated here, listing, and recovery with its
//! rules (approvals from others, one fetch by the requester, expiry). Every
//! refusal is checked for status, code and message, and leaves the state as it was.

use axum::http::{Method, StatusCode};
use base64::Engine;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_store::Role;
use serde_json::{json, Value};

use crate::testing::{refused, Answer, Api};

/// A key and a certificate the service issued for it.
async fn issued_with_key(api: &Api, token: &str, cn: &str) -> (SigningKey, String, String) {
    use hapki_domain::name::{San, SubjectSpec};
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let subject = SubjectSpec::parse(&format!("CN={cn}")).unwrap().to_name().unwrap();
    let der = hapki_domain::csr::build_csr(&key, &subject, &[San::parse(cn).unwrap()]).unwrap();
    let csr = hapki_domain::pem::encode(hapki_domain::pem::PemLabel::CertificateRequest, &der);
    let a = api
        .call(
            Method::POST,
            "/v1/certs",
            Some(token),
            Some(&json!({"csr": csr, "profile": "server"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let serial = a.body["serial"].as_str().unwrap().to_string();
    (key, a.body["certificate"].as_str().unwrap().to_string(), serial)
}

/// The PKCS#8 of `key` encrypted to the archive's transport certificate.
async fn encrypted(api: &Api, token: &str, pkcs8: &[u8]) -> String {
    let t = api.call(Method::GET, "/v1/keys/transport", Some(token), None).await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
    let der = hapki_domain::pem::certificates(t.body["certificate"].as_str().unwrap().as_bytes()).unwrap();
    let spki = der::Encode::to_der(&hapki_domain::issue::summarize(&der[0]).unwrap().spki).unwrap();
    hapki_domain::jwe::encrypt(&spki, pkcs8).unwrap()
}

async fn post(api: &Api, path: &str, token: &str, body: Value) -> Answer {
    api.call(Method::POST, path, Some(token), Some(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_archived_only_for_their_certificates_and_listed_to_whom_may_see_them() {
    let api = Api::new().await;
    let requester = api.token(Role::Requester).await;
    let other = api.token(Role::Requester).await;
    let agent = api.token(Role::Agent).await;
    let (key, cert, serial) = issued_with_key(&api, &requester, "kra.example.com").await;
    let (other_key, other_cert, _) = issued_with_key(&api, &other, "other.example.com").await;
    let pkcs8 = key.to_pkcs8().unwrap();
    let jwe = encrypted(&api, &requester, &pkcs8).await;
    let before = api.digest();

    let archive = |cert: &str, jwe: &str| json!({"certificate": cert, "encrypted_key": jwe});
    let cases: Vec<(&str, Answer, u16, &str, &str)> = vec![
        (
            "not a JWE",
            post(&api, "/v1/keys", &requester, archive(&cert, "a.b.c")).await,
            400,
            "invalid_input",
            "not a JWE in compact form",
        ),
        (
            "the key of another certificate",
            post(&api, "/v1/keys", &other, archive(&other_cert, &jwe)).await,
            400,
            "invalid_request",
            "its public key differs",
        ),
        (
            "a certificate of another requester",
            post(&api, "/v1/keys", &other, archive(&cert, &jwe)).await,
            403,
            "forbidden",
            "archives only the keys of certificates it asked for",
        ),
        (
            "encrypted to another key",
            post(
                &api,
                "/v1/keys",
                &requester,
                archive(&cert, &{
                    let stranger = SigningKey::generate(KeyType::Rsa2048).unwrap();
                    hapki_domain::jwe::encrypt(stranger.spki_der(), &pkcs8).unwrap()
                }),
            )
            .await,
            400,
            "invalid_input",
            "not encrypted to this archive",
        ),
        (
            "a certificate from elsewhere",
            post(
                &api,
                "/v1/keys",
                &requester,
                archive(&crate::testing::foreign_cert(), &jwe),
            )
            .await,
            404,
            "not_found",
            "was not issued by this cluster",
        ),
        (
            "an unknown field",
            post(
                &api,
                "/v1/keys",
                &requester,
                json!({"certificate": cert, "encrypted_key": jwe, "x": 1}),
            )
            .await,
            400,
            "invalid_request",
            "unknown field",
        ),
        (
            "an unknown filter",
            api.call(Method::GET, "/v1/keys?colour=red", Some(&agent), None).await,
            400,
            "invalid_request",
            "keys take subject, serial, by, source, limit",
        ),
        (
            "no token",
            api.call(Method::GET, "/v1/keys/transport", None, None).await,
            401,
            "unauthorized",
            "missing bearer token",
        ),
    ];
    for (case, answer, status, code, says) in &cases {
        refused(case, answer, *status, code, says);
    }
    assert_eq!(api.digest(), before, "the refusals changed nothing");

    let archived = post(&api, "/v1/keys", &requester, archive(&cert, &jwe)).await;
    assert_eq!(archived.status, StatusCode::CREATED, "{:?}", archived.body);
    assert_eq!(archived.body["serial"], serial.as_str());
    assert_eq!(archived.body["source"], "client");
    let again = post(&api, "/v1/keys", &requester, archive(&cert, &jwe)).await;
    refused("archived twice", &again, 409, "conflict", "already archived");

    // Generated here and archived with the certificate, in one step.
    let generated = post(
        &api,
        "/v1/certs/generate",
        &other,
        json!({"common_name": "gen.example.com", "sans": ["gen.example.com"], "profile": "server", "archive": true}),
    )
    .await;
    assert_eq!(generated.status, StatusCode::CREATED, "{:?}", generated.body);
    let generated_serial = generated.body["serial"].as_str().unwrap().to_string();

    // An agent sees every archived key; a requester only those of its own certificates.
    let all = api.call(Method::GET, "/v1/keys", Some(&agent), None).await;
    assert_eq!(all.body["keys"].as_array().unwrap().len(), 2, "{:?}", all.body);
    let own = api.call(Method::GET, "/v1/keys", Some(&other), None).await;
    let own: Vec<&str> = own.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["serial"].as_str().unwrap())
        .collect();
    assert_eq!(own, [generated_serial.as_str()]);
    let filtered = api
        .call(
            Method::GET,
            "/v1/keys?source=generated&subject=GEN.example",
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(
        filtered.body["keys"][0]["serial"],
        generated_serial.as_str(),
        "{:?}",
        filtered.body
    );
    drop(other_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_takes_approvals_from_others_and_releases_the_key_once_before_it_expires() {
    let api = &Api::new().await;
    let requester = api.token(Role::Requester).await;
    let asker = api.token(Role::Agent).await;
    let first = api.token(Role::Agent).await;
    let second = api.token(Role::Agent).await;
    let (key, cert, serial) = issued_with_key(api, &requester, "lost.example.com").await;
    let jwe = encrypted(api, &requester, &key.to_pkcs8().unwrap()).await;
    let a = post(
        api,
        "/v1/keys",
        &requester,
        json!({"certificate": cert, "encrypted_key": jwe}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);

    let before = api.digest();
    let ask = |token: String, body: Value| async move { post(api, "/v1/keys/recoveries", &token, body).await };
    refused(
        "a requester asks",
        &ask(requester.clone(), json!({"serial": serial, "reason": "lost"})).await,
        403,
        "forbidden",
        "may not recover archived keys",
    );
    refused(
        "no reason",
        &ask(asker.clone(), json!({"serial": serial, "reason": " "})).await,
        400,
        "invalid_request",
        "needs a reason",
    );
    refused(
        "no archived key",
        &ask(asker.clone(), json!({"serial": "01", "reason": "lost"})).await,
        404,
        "not_found",
        "no key is archived",
    );
    for (case, path, status, code, says) in [
        (
            "a malformed id",
            "/v1/keys/recoveries/zz",
            400,
            "invalid_request",
            "not a recovery request id",
        ),
        (
            "an unknown id",
            "/v1/keys/recoveries/0123456789abcdef",
            404,
            "not_found",
            "no recovery request",
        ),
    ] {
        refused(
            case,
            &api.call(Method::GET, path, Some(&asker), None).await,
            status,
            code,
            says,
        );
    }
    assert_eq!(api.digest(), before);

    let opened = ask(
        asker.clone(),
        json!({"serial": serial, "reason": "the laptop was lost"}),
    )
    .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    assert_eq!(
        (opened.body["status"].as_str(), opened.body["required"].as_u64()),
        (Some("pending"), Some(2))
    );
    let id = opened.body["id"].as_str().unwrap().to_string();
    let approve = |token: String| {
        let path = format!("/v1/keys/recoveries/{id}/approve");
        async move { post(api, &path, &token, json!({})).await }
    };
    let fetch = |token: String, password: &str| {
        let path = format!("/v1/keys/recoveries/{id}/fetch");
        let body = json!({"password": password});
        async move { post(api, &path, &token, body).await }
    };
    refused(
        "self-approval",
        &approve(asker.clone()).await,
        403,
        "forbidden",
        "may not approve it",
    );
    refused(
        "a requester approves",
        &approve(requester.clone()).await,
        403,
        "forbidden",
        "may not recover",
    );
    let one = approve(first.clone()).await;
    assert_eq!(one.body["approvals"].as_array().unwrap().len(), 1, "{:?}", one.body);
    refused(
        "approved twice",
        &approve(first.clone()).await,
        409,
        "conflict",
        "already",
    );
    refused(
        "one approval",
        &fetch(asker.clone(), "pw").await,
        409,
        "conflict",
        "has 1 of the 2 approvals",
    );
    approve(second.clone()).await;
    refused(
        "another token fetches",
        &fetch(first.clone(), "pw").await,
        403,
        "forbidden",
        "only the token that made",
    );
    refused(
        "no password",
        &fetch(asker.clone(), "").await,
        400,
        "invalid_request",
        "needs a password",
    );

    let got = fetch(asker.clone(), "recovered pw").await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    let p12 = base64::engine::general_purpose::STANDARD
        .decode(got.body["pkcs12"].as_str().unwrap())
        .unwrap();
    let opened = hapki_domain::pkcs12::read(&p12, "recovered pw").unwrap();
    let recovered = SigningKey::from_pkcs8(&opened.key_pkcs8).unwrap();
    assert_eq!(recovered.spki_der(), key.spki_der(), "the key is the certificate's");
    assert_eq!(opened.chain.len(), 2, "certificate and root");
    refused(
        "a second fetch",
        &fetch(asker.clone(), "pw").await,
        409,
        "conflict",
        "fetched already",
    );
    let listed = api.call(Method::GET, "/v1/keys/recoveries", Some(&first), None).await;
    assert_eq!(listed.body["recoveries"][0]["status"], "fetched", "{:?}", listed.body);

    // A request left too long expires: judged by the clock when each step is taken.
    let late = ask(asker.clone(), json!({"serial": serial, "reason": "again"})).await;
    let late_id = late.body["id"].as_str().unwrap().to_string();
    api.clock.advance(24 * 3600 + 1);
    let path = format!("/v1/keys/recoveries/{late_id}/approve");
    refused(
        "an expired request",
        &post(api, &path, &first, json!({})).await,
        409,
        "conflict",
        "expired",
    );
    let shown = api
        .call(
            Method::GET,
            &format!("/v1/keys/recoveries/{late_id}"),
            Some(&first),
            None,
        )
        .await;
    assert_eq!(shown.body["status"], "expired");
}
