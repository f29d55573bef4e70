//! Bad input that needs a real node: inputs made by openssl (an RSA-1024 CSR, a
//! PKCS#12 file), a 10 MB body over a real socket, an OCSP refusal that openssl
//! reads, the CLI's exit code for a refusal, and curl over HTTP/2. Every other
//! refusal of the API (more than 60 cases, and the token cases) runs in process
//! against the router: `crates/hapki-server/src/api/refusals.rs`.

mod common;

use std::path::Path;

use base64::Engine;
use common::refusals::Api;
use common::{openssl, serial_of, stderr, Node};
use reqwest::header::CONTENT_TYPE;
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
fn inputs_from_openssl_and_real_sockets_are_refused_clearly_and_change_nothing() {
    let node = Node::start();
    let work = node.work().to_path_buf();
    let api = Api::new(&node);

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

    let before = node.quiet_digest();
    api.refused(
        "RSA-1024 CSR made by openssl",
        api.post("/v1/certs", &json!({"csr": rsa1024_csr, "profile": "server"})),
        400,
        "policy_violation",
        "does not accept a RSA 1024 key",
    );
    api.refused(
        "openssl's PKCS#12 with a wrong password",
        api.post("/v1/ca/import", &json!({"pkcs12": p12, "password": "wrong"})),
        400,
        "invalid_input",
        "wrong password or damaged file",
    );
    // A body over the limit, sent whole over a real connection: the client reads the 413,
    // not a broken pipe.
    let huge = "A".repeat(10 * 1024 * 1024);
    api.refused(
        "10 MB body",
        api.post("/v1/certs", &json!({"csr": huge, "profile": "server"})),
        413,
        "too_large",
        "too large",
    );
    // OCSP refusals are OCSP responses, and openssl reads them as the responder's refusal.
    let resp = api
        .client
        .post(format!("{}/ocsp", node.http_url()))
        .header(CONTENT_TYPE, "application/ocsp-request")
        .body(&b"this is not an OCSP request"[..])
        .send()
        .expect("OCSP POST");
    assert_eq!(resp.status().as_u16(), 200, "OCSP errors are OCSP responses");
    let der = resp.bytes().expect("OCSP body").to_vec();
    assert_eq!(der, [0x30, 0x03, 0x0a, 0x01, 0x01], "malformedRequest, nothing else");
    std::fs::write(work.join("garbage.ocsp"), &der).expect("write");
    let (_, text) = openssl(&work, &["ocsp", "-respin", "garbage.ocsp", "-resp_text"]);
    assert!(text.contains("Responder Error: malformedrequest (1)"), "{text}");

    // The CLI reports a policy refusal as such, with exit code 2.
    let out = node.cli(&["cert", "issue", "--csr", "rsa1024.csr", "--profile", "server"]);
    assert_eq!(out.status.code(), Some(2), "the CLI reports a policy refusal as such");
    assert!(stderr(&out).contains("RSA 1024"), "{}", stderr(&out));
    assert_eq!(node.digest(), before, "bad requests changed the stored data");

    // The node still issues, and openssl's PKCS#12 imports with its password.
    let good = node.issue("after", "server", &["CN:after.example.com"]);
    let serial = serial_of(&work, &good);
    let got = api.ok(api.get(&format!("/v1/certs/{serial}")), 200);
    assert_eq!(got["status"], "valid");
    api.ok(
        api.post("/v1/ca/import", &json!({"pkcs12": p12, "password": "right"})),
        201,
    );
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
