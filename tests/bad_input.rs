//! Bad input against a real dev node: every refusal has the right HTTP status,
//! the JSON error shape with a message a person can act on, and leaves the
//! stored data exactly as it was (same state digest); the node keeps serving.
//! Odd CSRs and PKCS#12 files are made with the tools a user would use: the
//! hapki CLI and openssl.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use common::refusals::{der_pem, hapki_csr, pem_der, Api};
use common::{openssl, serial_of, stderr, Node};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::json;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// Runs openssl and requires success.
fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed: {out}");
    out
}

#[test]
fn bad_requests_are_refused_clearly_and_change_nothing() {
    let node = Node::start();
    let work = node.work().to_path_buf();
    let api = Api::new(&node);

    // --- Setup: everything that legitimately changes the state happens first. ---
    let good_csr = hapki_csr(&node, "good", &["--cn", "good.example.com"]);
    let first = api.ok(
        api.post("/v1/certs", &json!({"csr": good_csr, "profile": "server"})),
        201,
    );
    let revoked_serial = first["serial"].as_str().expect("serial").to_string();
    api.ok(
        api.post(
            &format!("/v1/certs/{revoked_serial}/revoke"),
            &json!({"reason": "superseded"}),
        ),
        200,
    );
    let second = api.ok(
        api.post("/v1/certs", &json!({"csr": good_csr, "profile": "server"})),
        201,
    );
    let valid_serial = second["serial"].as_str().expect("serial").to_string();

    let mut corp = api.ok(api.get("/v1/profiles/server"), 200);
    corp["name"] = "corp-only".into();
    corp["san"]["allowed_domains"] = json!(["corp.example"]);
    api.ok(api.post("/v1/profiles", &corp), 201);

    // CSRs made the way a user would.
    let outside_csr = hapki_csr(&node, "outside", &["--cn", "www.other.org"]);
    let wild_csr = hapki_csr(&node, "wild", &["--cn", "www.example.com", "--san", "*.example.com"]);
    let mallory_csr = hapki_csr(&node, "mallory", &["--cn", "mallory"]);
    let tamper_pem = hapki_csr(&node, "tamper", &["--cn", "tamper.example.com"]);
    let mut der = pem_der(&tamper_pem);
    let at = der
        .windows(b"tamper.example.com".len())
        .position(|w| w == b"tamper.example.com")
        .expect("CN in the CSR");
    der[at] = b'd'; // "damper.example.com": the subject no longer matches the signature
    let tampered_csr = der_pem("CERTIFICATE REQUEST", &der);
    let (ok, out) = openssl(&work, &["req", "-in", "tamper.csr", "-noout", "-verify"]);
    assert!(ok, "the untouched CSR verifies with openssl: {out}");
    std::fs::write(work.join("tampered.csr"), &tampered_csr).expect("write");
    let (ok, out) = openssl(&work, &["req", "-in", "tampered.csr", "-noout", "-verify"]);
    assert!(
        !ok || out.to_ascii_lowercase().contains("fail"),
        "openssl agrees the tampered CSR is bad: {out}"
    );

    openssl_ok(
        &work,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-subj",
            "/CN=x.example.com",
            "-keyout",
            "rsa1024.key",
            "-out",
            "rsa1024.csr",
        ],
    );
    let rsa1024_csr = read(&work, "rsa1024.csr");

    // A CA certificate and key in a PKCS#12 file protected by "right".
    openssl_ok(
        &work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=Imported CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-keyout",
            "imp.key",
            "-out",
            "imp.pem",
        ],
    );
    openssl_ok(
        &work,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "imp.key",
            "-in",
            "imp.pem",
            "-passout",
            "pass:right",
            "-out",
            "imp.p12",
        ],
    );
    let p12 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(work.join("imp.p12")).expect("p12"));

    let before = node.digest();
    let started = Instant::now();

    // --- CSRs that are not CSRs, or not honest ones. ---
    let issue = |csr: &str, profile: &str| json!({"csr": csr, "profile": profile});
    api.refused(
        "text that is not PEM as CSR",
        api.post("/v1/certs", &issue("hello, I am a CSR", "server")),
        400,
        "invalid_input",
        "no PEM block found",
    );
    api.refused(
        "PEM block with broken base64 as CSR",
        api.post(
            "/v1/certs",
            &issue(
                "-----BEGIN CERTIFICATE REQUEST-----\nnot*base64!\n-----END CERTIFICATE REQUEST-----\n",
                "server",
            ),
        ),
        400,
        "invalid_input",
        "not valid base64",
    );
    api.refused(
        "PEM block of garbage DER as CSR",
        api.post(
            "/v1/certs",
            &issue(
                &der_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x05garbage"),
                "server",
            ),
        ),
        400,
        "invalid_input",
        "not a valid PKCS#10 request",
    );
    api.refused(
        "a certificate instead of a CSR",
        api.post("/v1/certs", &issue(first["certificate"].as_str().unwrap(), "server")),
        400,
        "invalid_input",
        "CERTIFICATE REQUEST",
    );
    api.refused(
        "empty CSR",
        api.post("/v1/certs", &issue("", "server")),
        400,
        "invalid_input",
        "no PEM block found",
    );
    api.refused(
        "CSR with a byte of the subject flipped",
        api.post("/v1/certs", &issue(&tampered_csr, "server")),
        400,
        "invalid_input",
        "signature does not verify",
    );
    api.refused(
        "RSA-1024 CSR made by openssl",
        api.post("/v1/certs", &issue(&rsa1024_csr, "server")),
        400,
        "policy_violation",
        "does not accept a RSA 1024 key",
    );
    api.refused(
        "SAN outside the profile's allowed domains",
        api.post("/v1/certs", &issue(&outside_csr, "corp-only")),
        400,
        "policy_violation",
        "outside the allowed domains (corp.example)",
    );
    api.refused(
        "wildcard SAN on the server profile",
        api.post("/v1/certs", &issue(&wild_csr, "server")),
        400,
        "policy_violation",
        "wildcard names are not allowed",
    );
    api.refused(
        "unknown profile",
        api.post("/v1/certs", &issue(&good_csr, "no-such-profile")),
        404,
        "not_found",
        "no profile named 'no-such-profile'",
    );
    api.refused(
        "db-client CSR with CN other than postgres",
        api.post("/v1/certs", &issue(&mallory_csr, "db-client")),
        400,
        "policy_violation",
        "issues only CN=postgres",
    );
    api.refused(
        "validity_days beyond the profile maximum",
        api.post(
            "/v1/certs",
            &json!({"csr": good_csr, "profile": "server", "validity_days": 826}),
        ),
        400,
        "policy_violation",
        "validity of 1 to 825 days",
    );
    api.refused(
        "validity_days of zero",
        api.post(
            "/v1/certs",
            &json!({"csr": good_csr, "profile": "server", "validity_days": 0}),
        ),
        400,
        "policy_violation",
        "0 were asked for",
    );
    api.refused(
        "unknown issuer on issue",
        api.post(
            "/v1/certs",
            &json!({"csr": good_csr, "profile": "server", "issuer": "00000000deadbeef"}),
        ),
        404,
        "not_found",
        "no issuer with id 00000000deadbeef",
    );

    // --- Bodies that are not the JSON the endpoint takes. ---
    let huge = "A".repeat(10 * 1024 * 1024);
    api.refused(
        "10 MB body",
        api.post("/v1/certs", &json!({"csr": huge, "profile": "server"})),
        413,
        "too_large",
        "too large",
    );
    api.refused(
        "invalid JSON",
        api.admin(reqwest::Method::POST, "/v1/certs")
            .header(CONTENT_TYPE, "application/json")
            .body("{\"csr\": \"x\", \"profile\": "),
        400,
        "invalid_request",
        "not valid JSON",
    );
    api.refused(
        "JSON with a wrong field type",
        api.post("/v1/certs", &json!({"csr": 42, "profile": "server"})),
        400,
        "invalid_request",
        "invalid type: integer `42`, expected a string",
    );
    api.refused(
        "JSON with an unknown field",
        api.post(
            "/v1/certs",
            &json!({"csr": good_csr, "profile": "server", "validity": 30}),
        ),
        400,
        "invalid_request",
        "unknown field `validity`",
    );
    api.refused(
        "JSON missing a required field",
        api.post("/v1/certs", &json!({"csr": good_csr})),
        400,
        "invalid_request",
        "missing field `profile`",
    );
    api.refused(
        "missing Content-Type",
        api.admin(reqwest::Method::POST, "/v1/certs")
            .body(issue(&good_csr, "server").to_string()),
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    );
    api.refused(
        "Content-Type text/plain",
        api.admin(reqwest::Method::POST, "/v1/certs")
            .header(CONTENT_TYPE, "text/plain")
            .body(issue(&good_csr, "server").to_string()),
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    );

    // --- Certificates by serial: get, revoke, list. ---
    let unknown_serial = "4000000000000000000000000000abcd";
    api.refused(
        "unknown serial on GET",
        api.get(&format!("/v1/certs/{unknown_serial}")),
        404,
        "not_found",
        "no certificate with serial 4000000000000000000000000000abcd",
    );
    api.refused(
        "malformed serial on GET",
        api.get("/v1/certs/not-a-serial"),
        400,
        "invalid_input",
        "serial 'not-a-serial' is not hexadecimal",
    );
    api.refused(
        "serial longer than 20 octets",
        api.get(&format!("/v1/certs/{}", "7f".repeat(21))),
        400,
        "invalid_input",
        "longer than 20 octets",
    );
    api.refused(
        "revoke an unknown serial",
        api.post(
            &format!("/v1/certs/{unknown_serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        ),
        404,
        "not_found",
        "no certificate with serial",
    );
    api.refused(
        "revoke twice",
        api.post(
            &format!("/v1/certs/{revoked_serial}/revoke"),
            &json!({"reason": "keyCompromise"}),
        ),
        409,
        "conflict",
        "is already revoked (superseded",
    );
    api.refused(
        "unknown revocation reason",
        api.post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            &json!({"reason": "boredom"}),
        ),
        400,
        "invalid_input",
        "unknown revocation reason 'boredom'; use one of unspecified, keyCompromise",
    );
    api.refused(
        "certificateHold reason",
        api.post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            &json!({"reason": "certificateHold"}),
        ),
        400,
        "invalid_input",
        "revocation in hapki is permanent",
    );
    api.refused(
        "revoke body with an unknown field",
        api.post(
            &format!("/v1/certs/{valid_serial}/revoke"),
            &json!({"reasons": "keyCompromise"}),
        ),
        400,
        "invalid_request",
        "unknown field `reasons`",
    );
    api.refused(
        "list with a bad status filter",
        api.get("/v1/certs?status=bogus"),
        400,
        "invalid_request",
        "status 'bogus' is not valid, revoked, expired or all",
    );
    api.refused(
        "list with limit=0",
        api.get("/v1/certs?limit=0"),
        400,
        "invalid_request",
        "limit must be between 1 and 1000",
    );
    api.refused(
        "list with a bad duration",
        api.get("/v1/certs?expiring_within=soon"),
        400,
        "invalid_request",
        "'soon' is not a duration",
    );
    api.refused(
        "list with an unknown query parameter",
        api.get("/v1/certs?colour=red"),
        400,
        "invalid_request",
        "unknown field `colour`",
    );

    // --- Endpoints and methods that do not exist. ---
    api.refused(
        "unknown endpoint",
        api.get("/v1/nothing-here"),
        404,
        "not_found",
        "no such endpoint",
    );
    api.refused(
        "unknown endpoint without a token",
        api.client.get(api.url("/v2/certs")),
        404,
        "not_found",
        "no such endpoint",
    );
    api.refused(
        "wrong method on a known endpoint",
        api.admin(reqwest::Method::DELETE, "/v1/certs"),
        405,
        "method_not_allowed",
        "does not take DELETE",
    );
    let resp = api.admin(reqwest::Method::DELETE, "/v1/certs").send().expect("DELETE");
    let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "405 names the methods: {allow:?}"
    );

    // --- Profiles. ---
    let mut renamed = corp.clone();
    renamed["name"] = "other-name".into();
    api.refused(
        "profile update whose body name differs from the URL",
        api.admin(reqwest::Method::PUT, "/v1/profiles/corp-only").json(&renamed),
        400,
        "invalid_request",
        "the body names profile 'other-name' but the URL names 'corp-only'",
    );
    let mut weak = corp.clone();
    weak["name"] = "weak-rsa".into();
    weak["keys"]["rsa_min_bits"] = json!(1024);
    api.refused(
        "profile with rsa_min_bits 1024",
        api.post("/v1/profiles", &weak),
        400,
        "invalid_input",
        "rsa_min_bits must be at least 2048",
    );
    let mut typo = corp.clone();
    typo["name"] = "typo".into();
    let san = typo["san"].as_object_mut().expect("san");
    san.remove("allowed_domains");
    san.insert("alowed_domains".into(), json!(["corp.example"]));
    api.refused(
        "profile with a misspelt policy field",
        api.post("/v1/profiles", &typo),
        400,
        "invalid_request",
        "unknown field `alowed_domains`",
    );
    api.refused(
        "create a profile that exists",
        api.post("/v1/profiles", &corp),
        409,
        "conflict",
        "profile 'corp-only' already exists",
    );
    let mut ghost = corp.clone();
    ghost["name"] = "ghost".into();
    api.refused(
        "update a profile that does not exist",
        api.admin(reqwest::Method::PUT, "/v1/profiles/ghost").json(&ghost),
        404,
        "not_found",
        "no profile named 'ghost'",
    );
    api.refused(
        "profile with a bad name",
        api.post("/v1/profiles", &{
            let mut p = corp.clone();
            p["name"] = "has spaces".into();
            p
        }),
        400,
        "invalid_input",
        "the name must be 1-64 letters",
    );

    // --- CA management. ---
    api.refused(
        "install a certificate on an unknown issuer id",
        api.post(
            "/v1/ca/0123456789abcdef/certificate",
            &json!({"certificate": read(&work, "imp.pem")}),
        ),
        404,
        "not_found",
        "no issuer with id 0123456789abcdef",
    );
    api.refused(
        "PKCS#12 import with garbage base64",
        api.post(
            "/v1/ca/import",
            &json!({"pkcs12": "!!! not base64 !!!", "password": "right"}),
        ),
        400,
        "invalid_request",
        "pkcs12 must be the file's bytes in base64",
    );
    api.refused(
        "PKCS#12 import with a wrong password",
        api.post("/v1/ca/import", &json!({"pkcs12": p12, "password": "wrong"})),
        400,
        "invalid_input",
        "wrong password or damaged file",
    );
    api.refused(
        "make an unknown issuer the default",
        api.admin(reqwest::Method::POST, "/v1/ca/0123456789abcdef/default"),
        404,
        "not_found",
        "no issuer with id 0123456789abcdef",
    );
    api.refused(
        "root CA with zero validity",
        api.post("/v1/ca/root", &json!({"common_name": "Zero", "validity_days": 0})),
        400,
        "invalid_request",
        "validity_days must be between 1 and 36500",
    );
    api.refused(
        "root CA with an unknown key type",
        api.post("/v1/ca/root", &json!({"common_name": "Odd", "key_type": "dsa-512"})),
        400,
        "invalid_request",
        "dsa-512",
    );

    // --- Generated keys and tokens. ---
    api.refused(
        "generate in an unknown format",
        api.post(
            "/v1/certs/generate",
            &json!({"common_name": "g.example.com", "profile": "server", "format": "jks"}),
        ),
        400,
        "invalid_request",
        "format 'jks' is not pem or pkcs12",
    );
    api.refused(
        "generate PKCS#12 without a password",
        api.post(
            "/v1/certs/generate",
            &json!({"common_name": "g.example.com", "profile": "server", "format": "pkcs12"}),
        ),
        400,
        "invalid_request",
        "needs a password",
    );
    api.refused(
        "token with an unknown role",
        api.post("/v1/tokens", &json!({"role": "superuser"})),
        400,
        "invalid_request",
        "superuser",
    );
    api.refused(
        "token with a zero ttl",
        api.post("/v1/tokens", &json!({"role": "agent", "ttl": "0s"})),
        400,
        "invalid_request",
        "ttl must be more than zero",
    );
    api.refused(
        "revoke an unknown token",
        api.admin(reqwest::Method::DELETE, "/v1/tokens/0000000000000000"),
        404,
        "not_found",
        "no token with id 0000000000000000",
    );

    // --- The plain-HTTP publication listener. ---
    let plain = &api.client; // speaks plain http:// as well
    api.refused(
        "CA certificate of an unknown issuer over HTTP",
        plain.get(format!("{}/v1/issuers/0123456789abcdef/ca.pem", node.http_url())),
        404,
        "not_found",
        "no issuer with id 0123456789abcdef",
    );
    api.refused(
        "API endpoint on the publication listener",
        plain.get(format!("{}/v1/certs", node.http_url())),
        404,
        "not_found",
        "the API is served over HTTPS",
    );
    let resp = plain
        .post(format!("{}/ocsp", node.http_url()))
        .header(CONTENT_TYPE, "application/ocsp-request")
        .body(&b"this is not an OCSP request"[..])
        .send()
        .expect("OCSP POST");
    assert_eq!(resp.status().as_u16(), 200, "OCSP errors are OCSP responses");
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/ocsp-response")
    );
    let der = resp.bytes().expect("OCSP body").to_vec();
    assert_eq!(der, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest, nothing else");
    std::fs::write(work.join("garbage.ocsp"), &der).expect("write");
    // openssl reads the response and reports the responder's refusal (exiting 1).
    let (_, text) = openssl(&work, &["ocsp", "-respin", "garbage.ocsp", "-resp_text"]);
    assert!(text.contains("Responder Error: malformedrequest (1)"), "{text}");
    api.cases
        .borrow_mut()
        .push("OCSP POST of garbage over HTTP: 200 malformedRequest".into());
    let resp = plain
        .get(format!("{}/ocsp/%25%25not-base64%25%25", node.http_url()))
        .send()
        .expect("OCSP GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().expect("body").as_ref(), [0x30, 0x03, 0x0a, 0x01, 0x01]);
    api.cases
        .borrow_mut()
        .push("OCSP GET of non-base64 over HTTP: 200 malformedRequest".into());

    let resp = plain
        .post(format!("{}/ocsp", node.http_url()))
        .header(CONTENT_TYPE, "application/ocsp-request")
        .body(vec![0x30u8; 100 * 1024])
        .send()
        .expect("OCSP POST of 100 KB");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "an oversized OCSP request is still answered in OCSP"
    );
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/ocsp-response")
    );
    assert_eq!(resp.bytes().expect("body").as_ref(), [0x30, 0x03, 0x0a, 0x01, 0x01]);
    api.cases
        .borrow_mut()
        .push("OCSP POST of 100 KB over HTTP: 200 malformedRequest".into());
    api.refused(
        "wrong method on the OCSP endpoint",
        plain.put(format!("{}/ocsp", node.http_url())),
        405,
        "method_not_allowed",
        "does not take PUT",
    );

    // --- Nothing was stored, and the node still works. ---
    let after = node.digest();
    assert_eq!(
        before,
        after,
        "bad requests changed the stored data:\n{}",
        api.cases.borrow().join("\n")
    );
    assert!(started.elapsed() < Duration::from_secs(120), "refusals are quick");
    let out = node.cli(&["cert", "issue", "--csr", "rsa1024.csr", "--profile", "server"]);
    assert_eq!(out.status.code(), Some(2), "the CLI reports a policy refusal as such");
    assert!(stderr(&out).contains("RSA 1024"), "{}", stderr(&out));

    let good = node.issue("after", "server", &["CN:after.example.com"]);
    let serial = serial_of(&work, &good);
    let got = api.ok(api.get(&format!("/v1/certs/{serial}")), 200);
    assert_eq!(got["status"], "valid");
    assert_eq!(node.digest().1, before.1 + 1, "exactly one more certificate");
    let cases = api.cases.borrow();
    eprintln!("{} cases:\n  {}", cases.len(), cases.join("\n  "));
    assert!(cases.len() >= 50, "{} cases", cases.len());
}

#[test]
fn missing_wrong_expired_revoked_and_weak_tokens_are_refused() {
    let node = Node::start();
    let api = Api::new(&node);
    let csr = hapki_csr(&node, "t", &["--cn", "t.example.com"]);

    let create = |role: &str, ttl: Option<&str>| {
        let mut body = json!({"role": role, "name": format!("{role} for bad_input")});
        if let Some(t) = ttl {
            body["ttl"] = t.into();
        }
        api.ok(api.post("/v1/tokens", &body), 201)
    };
    let short = create("agent", Some("1s"));
    let expiring_at = Instant::now();
    let requester = create("requester", None);
    let doomed = create("agent", None);
    api.ok(
        api.admin(
            reqwest::Method::DELETE,
            &format!("/v1/tokens/{}", doomed["id"].as_str().unwrap()),
        ),
        200,
    );
    // Issued with ttl 1s: wait until it is surely past its expiry.
    let sleep = Duration::from_secs(2).saturating_sub(expiring_at.elapsed());
    std::thread::sleep(sleep + Duration::from_millis(200));

    let before = node.digest();
    let with = |token: &str| {
        api.client
            .get(api.url("/v1/sys/status"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
    };
    api.refused(
        "missing token",
        api.client.get(api.url("/v1/sys/status")),
        401,
        "unauthorized",
        "missing bearer token",
    );
    api.refused(
        "wrong token",
        with("hapki_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        401,
        "unauthorized",
        "not valid on this cluster",
    );
    api.refused(
        "token with a wrong prefix",
        with(&node.token.replacen("hapki_", "vault_", 1)),
        401,
        "unauthorized",
        "not a hapki token",
    );
    api.refused(
        "Authorization that is not Bearer",
        api.client
            .get(api.url("/v1/sys/status"))
            .header(AUTHORIZATION, format!("Basic {}", node.token)),
        401,
        "unauthorized",
        "must be `Bearer <token>`",
    );
    let msg = api.refused(
        "expired token",
        with(short["token"].as_str().unwrap()),
        401,
        "unauthorized",
        "expired at",
    );
    assert!(msg.contains(short["id"].as_str().unwrap()), "names the token: {msg}");
    api.refused(
        "revoked token",
        with(doomed["token"].as_str().unwrap()),
        401,
        "unauthorized",
        "has been revoked",
    );
    let req_token = requester["token"].as_str().unwrap();
    api.refused(
        "requester token listing tokens",
        api.client
            .get(api.url("/v1/tokens"))
            .header(AUTHORIZATION, format!("Bearer {req_token}")),
        403,
        "forbidden",
        "a requester token may not manage tokens",
    );
    api.refused(
        "requester token creating a root CA",
        api.client
            .post(api.url("/v1/ca/root"))
            .header(AUTHORIZATION, format!("Bearer {req_token}"))
            .json(&json!({"common_name": "Rogue"})),
        403,
        "forbidden",
        "a requester token may not manage CAs",
    );
    api.refused(
        "requester token revoking",
        api.client
            .post(api.url("/v1/certs/4000/revoke"))
            .header(AUTHORIZATION, format!("Bearer {req_token}"))
            .json(&json!({})),
        403,
        "forbidden",
        "a requester token may not revoke certificates",
    );
    api.refused(
        "issuing with a revoked token",
        api.client
            .post(api.url("/v1/certs"))
            .header(AUTHORIZATION, format!("Bearer {}", doomed["token"].as_str().unwrap()))
            .json(&json!({"csr": csr, "profile": "server"})),
        401,
        "unauthorized",
        "has been revoked",
    );

    assert_eq!(node.digest(), before, "refused tokens changed the stored data");
    // The requester token still issues, as its role allows.
    api.ok(
        api.client
            .post(api.url("/v1/certs"))
            .header(AUTHORIZATION, format!("Bearer {req_token}"))
            .json(&json!({"csr": csr, "profile": "server"})),
        201,
    );
    assert_eq!(node.digest().1, before.1 + 1);
    let cases = api.cases.borrow();
    eprintln!("{} cases:\n  {}", cases.len(), cases.join("\n  "));
    assert_eq!(cases.len(), 10);
}

/// curl (HTTP/2 over TLS, as it speaks to the HTTPS API by default) gets the JSON
/// refusal of a request refused before its body is read: no token, no JSON
/// content type. The node reads the rest of the body before answering, so the
/// client is never left with a reset stream instead of the answer.
#[test]
fn curl_over_http2_gets_refusals_made_before_the_body_is_read() {
    let node = Node::start();
    let curl = |extra: &[&str]| -> (String, String) {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--http2", "--cacert"])
            .arg(node.api_ca())
            .args(["-X", "POST", "-d", r#"{"csr":"x","profile":"server"}"#])
            .args(["-w", "\n%{http_code} %{http_version}"])
            .args(extra)
            .arg(format!("{}/v1/certs", node.url()))
            .output()
            .expect("run curl (install the Debian package curl; ./scripts/test.sh does)");
        assert!(out.status.success(), "curl failed: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        (body.to_string(), status.to_string())
    };
    let (body, status) = curl(&["-H", "Content-Type: application/json"]);
    assert_eq!(status, "401 2", "{body}");
    assert!(body.contains(r#""code":"unauthorized""#), "{body}");
    let bearer = format!("Authorization: Bearer {}", node.token);
    let (body, status) = curl(&["-H", &bearer]);
    assert_eq!(status, "415 2", "{body}");
    assert!(body.contains(r#""code":"unsupported_media_type""#), "{body}");
}
