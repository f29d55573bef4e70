//! Bad input against the whole HTTPS API and the publication listener, in
//! process: every refusal has its status, its error code and a message a person
//! can act on, and leaves the state digest exactly as it was; the service still
//! issues afterwards. Odd CSRs and PKCS#12 files are built here with hapki's own
//! PKI code; what only openssl or the CLI can make stays in `tests/bad_input.rs`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hapki_domain::key::{KeyType, SigningKey};
use hapki_store::Role;
use serde_json::{json, Value};

use crate::pki::TokenGrant;
use crate::testing::{csr, csr_der, refused, Api};

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A self-signed CA and its key in a PKCS#12 file under `password`, base64.
fn ca_pkcs12(password: &str) -> (String, String) {
    use base64::Engine;
    use hapki_domain::issue::{build_certificate, CertSpec};
    use hapki_domain::name::SubjectSpec;
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let subject = SubjectSpec::parse("CN=Imported CA").unwrap().to_name().unwrap();
    let now = crate::testing::START;
    let spec = CertSpec::self_signed_ca(
        hapki_domain::serial::Serial::from_u64(7),
        (now - 60, now + 30 * 86_400),
        subject,
        key.spki(),
        None,
    );
    let cert = build_certificate(None, Some(&key), &spec).unwrap();
    let p12 = hapki_domain::pkcs12::write(
        "Imported CA",
        &key.to_pkcs8().unwrap(),
        std::slice::from_ref(&cert),
        password,
    )
    .unwrap();
    (
        base64::engine::general_purpose::STANDARD.encode(p12),
        pem("CERTIFICATE", &cert),
    )
}

fn issue(csr: &str, profile: &str) -> Value {
    json!({"csr": csr, "profile": profile})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_clearly_and_change_nothing() {
    let api = Api::new().await;

    // --- Setup: everything that legitimately changes the state happens first. ---
    let good_csr = csr(KeyType::EcP256, "good.example.com", &["good.example.com"]);
    let first = api.post("/v1/certs", &issue(&good_csr, "server")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let revoked_serial = first.body["serial"].as_str().unwrap().to_string();
    let revoked = api
        .post(
            &format!("/v1/certs/{revoked_serial}/revoke"),
            &json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    let second = api.post("/v1/certs", &issue(&good_csr, "server")).await;
    let valid_serial = second.body["serial"].as_str().unwrap().to_string();
    let mut corp = api.get("/v1/profiles/server").await.body;
    corp["name"] = "corp-only".into();
    corp["san"]["allowed_domains"] = json!(["corp.example"]);
    assert_eq!(api.post("/v1/profiles", &corp).await.status, StatusCode::CREATED);

    let outside_csr = csr(KeyType::EcP256, "www.other.org", &["www.other.org"]);
    let wild_csr = csr(
        KeyType::EcP256,
        "www.example.com",
        &["www.example.com", "*.example.com"],
    );
    let mallory_csr = csr(KeyType::EcP256, "mallory", &[]);
    let mut der = csr_der(KeyType::EcP256, "tamper.example.com", &[]);
    let at = der
        .windows(b"tamper.example.com".len())
        .position(|w| w == b"tamper.example.com")
        .unwrap();
    der[at] = b'd'; // "damper.example.com": the subject no longer matches the signature
    let tampered_csr = pem("CERTIFICATE REQUEST", &der);
    let (p12, imported_pem) = ca_pkcs12("right");

    let before = api.digest();
    let mut cases = 0;
    macro_rules! case {
        ($name:expr, $answer:expr, $status:expr, $code:expr, $says:expr) => {{
            cases += 1;
            refused($name, &$answer, $status, $code, $says)
        }};
    }

    // --- CSRs that are not CSRs, or not honest ones. ---
    let post = |path: &str, body: Value| {
        let api = &api;
        let path = path.to_string();
        async move { api.post(&path, &body).await }
    };
    case!(
        "text that is not PEM as CSR",
        post("/v1/certs", issue("hello, I am a CSR", "server")).await,
        400,
        "invalid_input",
        "no PEM block found"
    );
    case!(
        "PEM block with broken base64 as CSR",
        post(
            "/v1/certs",
            issue(
                "-----BEGIN CERTIFICATE REQUEST-----\nnot*base64!\n-----END CERTIFICATE REQUEST-----\n",
                "server"
            )
        )
        .await,
        400,
        "invalid_input",
        "not valid base64"
    );
    case!(
        "PEM block of garbage DER as CSR",
        post(
            "/v1/certs",
            issue(&pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x05garbage"), "server")
        )
        .await,
        400,
        "invalid_input",
        "not a valid PKCS#10 request"
    );
    case!(
        "a certificate instead of a CSR",
        post(
            "/v1/certs",
            issue(first.body["certificate"].as_str().unwrap(), "server")
        )
        .await,
        400,
        "invalid_input",
        "CERTIFICATE REQUEST"
    );
    case!(
        "empty CSR",
        post("/v1/certs", issue("", "server")).await,
        400,
        "invalid_input",
        "no PEM block found"
    );
    case!(
        "CSR with a byte of the subject flipped",
        post("/v1/certs", issue(&tampered_csr, "server")).await,
        400,
        "invalid_input",
        "signature does not verify"
    );
    case!(
        "SAN outside the profile's allowed domains",
        post("/v1/certs", issue(&outside_csr, "corp-only")).await,
        400,
        "policy_violation",
        "outside the allowed domains (corp.example)"
    );
    case!(
        "wildcard SAN on the server profile",
        post("/v1/certs", issue(&wild_csr, "server")).await,
        400,
        "policy_violation",
        "wildcard names are not allowed"
    );
    case!(
        "unknown profile",
        post("/v1/certs", issue(&good_csr, "no-such-profile")).await,
        404,
        "not_found",
        "no profile named 'no-such-profile'"
    );
    case!(
        "db-client CSR with CN other than postgres",
        post("/v1/certs", issue(&mallory_csr, "db-client")).await,
        400,
        "policy_violation",
        "issues only CN=postgres"
    );
    case!(
        "validity_days beyond the profile maximum",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "validity_days": 826})
        )
        .await,
        400,
        "policy_violation",
        "validity of 1 s to 825 days; 826 days were asked for"
    );
    case!(
        "ttl beyond the profile maximum",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "ttl": "19801h"})
        )
        .await,
        400,
        "policy_violation",
        "71283600 s was asked for"
    );
    case!(
        "ttl that is no duration",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "ttl": "soon"})
        )
        .await,
        400,
        "invalid_request",
        "is not a duration"
    );
    case!(
        "ttl and validity_days both",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "ttl": "1h", "validity_days": 1})
        )
        .await,
        400,
        "invalid_request",
        "not both"
    );
    case!(
        "validity_days of zero",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "validity_days": 0})
        )
        .await,
        400,
        "policy_violation",
        "0 days were asked for"
    );
    case!(
        "unknown issuer on issue",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "issuer": "00000000deadbeef"})
        )
        .await,
        404,
        "not_found",
        "no issuer with id 00000000deadbeef"
    );

    // --- Bodies that are not the JSON the endpoint takes. ---
    let raw = |content_type: Option<&'static str>, body: String| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/certs")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin));
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        req.body(Body::from(body)).unwrap()
    };
    case!(
        "10 MB body",
        post("/v1/certs", issue(&"A".repeat(10 * 1024 * 1024), "server")).await,
        413,
        "too_large",
        "too large"
    );
    case!(
        "invalid JSON",
        api.send(raw(Some("application/json"), "{\"csr\": \"x\", \"profile\": ".into()))
            .await,
        400,
        "invalid_request",
        "not valid JSON"
    );
    case!(
        "JSON with a wrong field type",
        post("/v1/certs", json!({"csr": 42, "profile": "server"})).await,
        400,
        "invalid_request",
        "invalid type: integer `42`, expected a string"
    );
    case!(
        "JSON with an unknown field",
        post(
            "/v1/certs",
            json!({"csr": good_csr, "profile": "server", "validity": 30})
        )
        .await,
        400,
        "invalid_request",
        "unknown field `validity`"
    );
    case!(
        "JSON missing a required field",
        post("/v1/certs", json!({"csr": good_csr})).await,
        400,
        "invalid_request",
        "missing field `profile`"
    );
    case!(
        "missing Content-Type",
        api.send(raw(None, issue(&good_csr, "server").to_string())).await,
        415,
        "unsupported_media_type",
        "Content-Type: application/json"
    );
    case!(
        "Content-Type text/plain",
        api.send(raw(Some("text/plain"), issue(&good_csr, "server").to_string()))
            .await,
        415,
        "unsupported_media_type",
        "Content-Type: application/json"
    );

    // --- Certificates by serial: get, revoke, list. ---
    let unknown_serial = "4000000000000000000000000000abcd";
    case!(
        "unknown serial on GET",
        api.get(&format!("/v1/certs/{unknown_serial}")).await,
        404,
        "not_found",
        "no certificate with serial 4000000000000000000000000000abcd"
    );
    case!(
        "malformed serial on GET",
        api.get("/v1/certs/not-a-serial").await,
        400,
        "invalid_input",
        "serial 'not-a-serial' is not hexadecimal"
    );
    case!(
        "serial longer than 20 octets",
        api.get(&format!("/v1/certs/{}", "7f".repeat(21))).await,
        400,
        "invalid_input",
        "longer than 20 octets"
    );
    case!(
        "revoke an unknown serial",
        post(
            &format!("/v1/certs/{unknown_serial}/revoke"),
            json!({"reason": "keyCompromise"})
        )
        .await,
        404,
        "not_found",
        "no certificate with serial"
    );
    case!(
        "revoke twice",
        post(
            &format!("/v1/certs/{revoked_serial}/revoke"),
            json!({"reason": "keyCompromise"})
        )
        .await,
        409,
        "conflict",
        "is already revoked (superseded"
    );
    case!(
        "unknown revocation reason",
        post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            json!({"reason": "boredom"})
        )
        .await,
        400,
        "invalid_input",
        "unknown revocation reason 'boredom'; use one of unspecified, keyCompromise"
    );
    case!(
        "certificateHold reason",
        post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            json!({"reason": "certificateHold"})
        )
        .await,
        400,
        "invalid_input",
        "revocation in hapki is permanent"
    );
    case!(
        "revoke body with an unknown field",
        post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            json!({"reasons": "keyCompromise"})
        )
        .await,
        400,
        "invalid_request",
        "unknown field `reasons`"
    );
    case!(
        "list with a bad status filter",
        api.get("/v1/certs?status=bogus").await,
        400,
        "invalid_request",
        "status 'bogus' is not valid, revoked, expired or all"
    );
    case!(
        "list with limit=0",
        api.get("/v1/certs?limit=0").await,
        400,
        "invalid_request",
        "limit must be between 1 and 1000"
    );
    case!(
        "list with a bad duration",
        api.get("/v1/certs?expiring_within=soon").await,
        400,
        "invalid_request",
        "'soon' is not a duration"
    );
    case!(
        "list with a cursor that is not one",
        api.get("/v1/certs?after=zz").await,
        400,
        "invalid_request",
        "'zz' is not a next_after this listing returned"
    );
    case!(
        "list by name with a serial as the cursor",
        api.get("/v1/certs?san=web.example.com&after=0a").await,
        400,
        "invalid_request",
        "after is the next_after of a listing with other filters"
    );
    case!(
        "list with an unknown query parameter",
        api.get("/v1/certs?colour=red").await,
        400,
        "invalid_request",
        "unknown field `colour`"
    );

    // --- Endpoints and methods that do not exist. ---
    case!(
        "unknown endpoint",
        api.get("/v1/nothing-here").await,
        404,
        "not_found",
        "no such endpoint"
    );
    case!(
        "unknown endpoint without a token",
        api.call(Method::GET, "/v2/certs", None, None).await,
        404,
        "not_found",
        "no such endpoint"
    );
    let wrong = api.call(Method::DELETE, "/v1/certs", Some(&api.admin), None).await;
    let allow = wrong
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    case!(
        "wrong method on a known endpoint",
        wrong,
        405,
        "method_not_allowed",
        "does not take DELETE"
    );
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "405 names the methods: {allow:?}"
    );

    // --- Profiles. ---
    let mut renamed = corp.clone();
    renamed["name"] = "other-name".into();
    case!(
        "profile update whose body name differs from the URL",
        api.put("/v1/profiles/corp-only", &renamed).await,
        400,
        "invalid_request",
        "the body names profile 'other-name' but the URL names 'corp-only'"
    );
    let mut weak = corp.clone();
    weak["name"] = "weak-rsa".into();
    weak["keys"]["rsa_min_bits"] = json!(1024);
    case!(
        "profile with rsa_min_bits 1024",
        post("/v1/profiles", weak).await,
        400,
        "invalid_input",
        "rsa_min_bits must be at least 2048"
    );
    let mut typo = corp.clone();
    typo["name"] = "typo".into();
    let san = typo["san"].as_object_mut().unwrap();
    san.remove("allowed_domains");
    san.insert("alowed_domains".into(), json!(["corp.example"]));
    case!(
        "profile with a misspelt policy field",
        post("/v1/profiles", typo).await,
        400,
        "invalid_request",
        "unknown field `alowed_domains`"
    );
    case!(
        "create a profile that exists",
        post("/v1/profiles", corp.clone()).await,
        409,
        "conflict",
        "profile 'corp-only' already exists"
    );
    let mut ghost = corp.clone();
    ghost["name"] = "ghost".into();
    case!(
        "update a profile that does not exist",
        api.put("/v1/profiles/ghost", &ghost).await,
        404,
        "not_found",
        "no profile named 'ghost'"
    );
    let mut spaced = corp.clone();
    spaced["name"] = "has spaces".into();
    case!(
        "profile with a bad name",
        post("/v1/profiles", spaced).await,
        400,
        "invalid_input",
        "the name must be 1-64 letters"
    );

    // --- CA management. ---
    case!(
        "install a certificate on an unknown issuer id",
        post(
            "/v1/ca/0123456789abcdef/certificate",
            json!({"certificate": imported_pem})
        )
        .await,
        404,
        "not_found",
        "no issuer with id 0123456789abcdef"
    );
    case!(
        "PKCS#12 import with garbage base64",
        post(
            "/v1/ca/import",
            json!({"pkcs12": "!!! not base64 !!!", "password": "right"})
        )
        .await,
        400,
        "invalid_request",
        "pkcs12 must be the file's bytes in base64"
    );
    case!(
        "PKCS#12 import with a wrong password",
        post("/v1/ca/import", json!({"pkcs12": p12, "password": "wrong"})).await,
        400,
        "invalid_input",
        "wrong password or damaged file"
    );
    case!(
        "make an unknown issuer the default",
        api.call(Method::POST, "/v1/ca/0123456789abcdef/default", Some(&api.admin), None)
            .await,
        404,
        "not_found",
        "no issuer with id 0123456789abcdef"
    );
    case!(
        "root CA with zero validity",
        post("/v1/ca/root", json!({"common_name": "Zero", "validity_days": 0})).await,
        400,
        "invalid_request",
        "validity_days must be between 1 and 36500"
    );
    case!(
        "root CA with an unknown key type",
        post("/v1/ca/root", json!({"common_name": "Odd", "key_type": "dsa-512"})).await,
        400,
        "invalid_request",
        "dsa-512"
    );

    // --- Generated keys and tokens. ---
    case!(
        "generate in an unknown format",
        post(
            "/v1/certs/generate",
            json!({"common_name": "g.example.com", "profile": "server", "format": "jks"})
        )
        .await,
        400,
        "invalid_request",
        "format 'jks' is not pem or pkcs12"
    );
    case!(
        "generate PKCS#12 without a password",
        post(
            "/v1/certs/generate",
            json!({"common_name": "g.example.com", "profile": "server", "format": "pkcs12"})
        )
        .await,
        400,
        "invalid_request",
        "needs a password"
    );
    case!(
        "token with an unknown role",
        post("/v1/tokens", json!({"role": "superuser"})).await,
        400,
        "invalid_request",
        "superuser"
    );
    case!(
        "token with a zero ttl",
        post("/v1/tokens", json!({"role": "agent", "ttl": "0s"})).await,
        400,
        "invalid_request",
        "ttl must be more than zero"
    );
    case!(
        "revoke an unknown token",
        api.call(Method::DELETE, "/v1/tokens/0000000000000000", Some(&api.admin), None)
            .await,
        404,
        "not_found",
        "no token with id 0000000000000000"
    );

    // --- The plain-HTTP publication listener. ---
    let plain = |method: Method, path: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/ocsp-request")
            .body(Body::from(body))
            .unwrap()
    };
    case!(
        "CA certificate of an unknown issuer",
        api.publish(plain(Method::GET, "/v1/issuers/0123456789abcdef/ca.pem", vec![]))
            .await,
        404,
        "not_found",
        "no issuer with id 0123456789abcdef"
    );
    case!(
        "API endpoint on the publication listener",
        api.publish(plain(Method::GET, "/v1/certs", vec![])).await,
        404,
        "not_found",
        "the API is served over HTTPS"
    );
    let malformed = [0x30, 0x03, 0x0a, 0x01, 0x01];
    for (case, req) in [
        (
            "OCSP POST of garbage",
            plain(Method::POST, "/ocsp", b"this is not an OCSP request".to_vec()),
        ),
        (
            "OCSP GET of non-base64",
            plain(Method::GET, "/ocsp/%25%25not-base64%25%25", vec![]),
        ),
        (
            "OCSP POST of 100 KB",
            plain(Method::POST, "/ocsp", vec![0x30; 100 * 1024]),
        ),
    ] {
        let a = api.publish(req).await;
        assert_eq!(a.status, StatusCode::OK, "{case}: OCSP errors are OCSP responses");
        assert_eq!(a.headers[header::CONTENT_TYPE], "application/ocsp-response", "{case}");
        assert_eq!(a.bytes, malformed, "{case}: malformedRequest, nothing else");
        cases += 1;
    }
    case!(
        "wrong method on the OCSP endpoint",
        api.publish(plain(Method::PUT, "/ocsp", vec![])).await,
        405,
        "method_not_allowed",
        "does not take PUT"
    );

    // --- Nothing was stored, and the service still works. ---
    assert_eq!(api.digest(), before, "bad requests changed the stored data");
    assert!(cases >= 50, "{cases} cases");
    let after = api
        .post(
            "/v1/certs",
            &issue(
                &csr(KeyType::EcP256, "after.example.com", &["after.example.com"]),
                "server",
            ),
        )
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{:?}", after.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_expired_revoked_and_weak_tokens_are_refused() {
    let api = Api::new().await;
    let csr = csr(KeyType::EcP256, "t.example.com", &["t.example.com"]);
    let short = api
        .pki
        .create_token(
            &crate::auth::Caller::node(),
            &TokenGrant {
                ttl_secs: Some(1),
                ..TokenGrant::role(Role::Agent, "agent for bad input")
            },
        )
        .await
        .unwrap();
    let requester = api.token(Role::Requester).await;
    let doomed = api.token(Role::Agent).await;
    let doomed_id = api.pki.authenticate(&doomed).unwrap().id;
    let gone = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{doomed_id}"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK);
    api.clock.advance(2);

    let before = api.digest();
    let status_with = |authorization: Option<String>| {
        let mut req = Request::builder().uri("/v1/sys/status");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        api.send(req.body(Body::empty()).unwrap())
    };
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    refused(
        "missing token",
        &status_with(None).await,
        401,
        "unauthorized",
        "missing bearer token",
    );
    refused(
        "wrong token",
        &status_with(bearer("hapki_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await,
        401,
        "unauthorized",
        "not valid on this cluster",
    );
    refused(
        "token with a wrong prefix",
        &status_with(bearer(&api.admin.replacen("hapki_", "vault_", 1))).await,
        401,
        "unauthorized",
        "not a hapki token",
    );
    refused(
        "Authorization that is not Bearer",
        &status_with(Some(format!("Basic {}", api.admin))).await,
        401,
        "unauthorized",
        "must be `Bearer <token>`",
    );
    let msg = refused(
        "expired token",
        &status_with(bearer(&short.token)).await,
        401,
        "unauthorized",
        "expired at",
    );
    assert!(msg.contains(&short.id), "names the token: {msg}");
    refused(
        "revoked token",
        &status_with(bearer(&doomed)).await,
        401,
        "unauthorized",
        "has been revoked",
    );
    refused(
        "requester token listing tokens",
        &api.call(Method::GET, "/v1/tokens", Some(&requester), None).await,
        403,
        "forbidden",
        "a requester token may not manage tokens",
    );
    refused(
        "requester token creating a root CA",
        &api.call(
            Method::POST,
            "/v1/ca/root",
            Some(&requester),
            Some(&json!({"common_name": "Rogue"})),
        )
        .await,
        403,
        "forbidden",
        "a requester token may not manage CAs",
    );
    refused(
        "requester token revoking",
        &api.call(
            Method::POST,
            "/v1/certs/4000/revoke",
            Some(&requester),
            Some(&json!({})),
        )
        .await,
        403,
        "forbidden",
        "a requester token may not revoke certificates",
    );
    refused(
        "issuing with a revoked token",
        &api.call(Method::POST, "/v1/certs", Some(&doomed), Some(&issue(&csr, "server")))
            .await,
        401,
        "unauthorized",
        "has been revoked",
    );
    assert_eq!(api.digest(), before, "refused tokens changed the stored data");
    // The requester token still issues, as its role allows.
    let ok = api
        .call(
            Method::POST,
            "/v1/certs",
            Some(&requester),
            Some(&issue(&csr, "server")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
}
