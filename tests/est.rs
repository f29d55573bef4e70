//! EST (RFC 7030) as a device does it, with curl and openssl: the CA certificates, an
//! enrollment with a requester token as the HTTP Basic password, a re-enrollment with
//! the first certificate as the TLS client certificate, and the refusals (a wrong
//! password, a CSR for other names, a certificate of another CA, a challengePassword
//! that is not the connection's channel binding).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{openssl, serial_of, stdout, Node};

/// `curl` against the node's HTTPS API, with what `args` adds.
fn curl(node: &Node, path: &str, args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(node.api_ca())
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("{}{path}", node.url()))
        .output()
        .expect("curl")
}

/// The body and the status of a curl run.
fn answer(out: &Output) -> (String, u16) {
    let text = stdout(out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (body.to_string(), code.trim().parse().unwrap_or(0))
}

/// An EC key and a base64 DER CSR for `cn`, made by openssl; with `config`, the subject
/// and attributes come from that file (openssl leaves attributes out with `-subj`).
fn device_csr(work: &Path, name: &str, cn: &str, config: Option<&str>) -> String {
    let key = work.join(format!("{name}.key"));
    let der = work.join(format!("{name}.csr.der"));
    let mut args = vec![
        "req".to_string(),
        "-new".into(),
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        "ec_paramgen_curve:P-256".into(),
        "-nodes".into(),
        "-keyout".into(),
        key.display().to_string(),
        "-addext".into(),
        format!("subjectAltName=DNS:{cn}"),
        "-outform".into(),
        "DER".into(),
        "-out".into(),
        der.display().to_string(),
    ];
    match config {
        Some(c) => args.extend(["-config".to_string(), c.to_string()]),
        None => args.extend(["-subj".to_string(), format!("/CN={cn}")]),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, text) = openssl(work, &args);
    assert!(ok, "{text}");
    let b64 = work.join(format!("{name}.csr.b64"));
    let (ok, text) = openssl(
        work,
        &[
            "base64",
            "-in",
            &der.display().to_string(),
            "-out",
            &b64.display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    b64.display().to_string()
}

/// The certificates of a base64 certs-only answer, as PEM, by `openssl pkcs7 -print_certs`.
fn print_certs(work: &Path, name: &str, body: &str) -> String {
    let b64 = work.join(format!("{name}.p7.b64"));
    std::fs::write(&b64, body).unwrap();
    let der = work.join(format!("{name}.p7"));
    let (ok, text) = openssl(
        work,
        &[
            "base64",
            "-d",
            "-in",
            &b64.display().to_string(),
            "-out",
            &der.display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    let pem = work.join(format!("{name}.pem"));
    let (ok, text) = openssl(
        work,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &der.display().to_string(),
            "-print_certs",
            "-out",
            &pem.display().to_string(),
        ],
    );
    assert!(ok, "{text}");
    pem.display().to_string()
}

#[test]
fn a_device_enrolls_with_a_token_and_re_enrolls_with_its_certificate() {
    let node = Node::start();
    let work = node.work().to_path_buf();
    let ca = node.ca_pem().display().to_string();

    let out = curl(&node, "/.well-known/est/cacerts", &[]);
    let (body, code) = answer(&out);
    assert_eq!(code, 200, "{body}");
    let cacerts = print_certs(&work, "cacerts", &body);
    let (_, text) = openssl(&work, &["x509", "-in", &cacerts, "-noout", "-subject"]);
    assert!(text.contains("Root CA"), "{text}");

    let made = node.json(&["token", "create", "--role", "requester", "--name", "device"]);
    let token = made["token"].as_str().expect("token").to_string();
    let csr = device_csr(&work, "first", "device1.example.test", None);
    let enroll = |password: &str, csr: &str| {
        curl(
            &node,
            "/.well-known/est/simpleenroll",
            &[
                "-u",
                &format!("device1:{password}"),
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &format!("@{csr}"),
            ],
        )
    };
    let (body, code) = answer(&enroll("wrong-token", &csr));
    assert_eq!(code, 401, "a wrong password: {body}");
    let (body, code) = answer(&enroll(&token, &csr));
    assert_eq!(code, 200, "{body}");
    let first = print_certs(&work, "first", &body);
    let (ok, text) = openssl(&work, &["verify", "-CAfile", &ca, &first]);
    assert!(ok, "{text}");
    let first_serial = serial_of(&work, Path::new(&first));

    // Re-enroll: the first certificate as the TLS client certificate, no password.
    let renew_csr = device_csr(&work, "second", "device1.example.test", None);
    let reenroll = |cert: &str, key: &str, csr: &str| {
        curl(
            &node,
            "/.well-known/est/simplereenroll",
            &[
                "--cert",
                cert,
                "--key",
                key,
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &format!("@{csr}"),
            ],
        )
    };
    let first_key = work.join("first.key").display().to_string();
    let (body, code) = answer(&reenroll(&first, &first_key, &renew_csr));
    assert_eq!(code, 200, "{body}");
    let second = print_certs(&work, "second", &body);
    let (ok, text) = openssl(&work, &["verify", "-CAfile", &ca, &second]);
    assert!(ok, "{text}");
    assert_ne!(serial_of(&work, Path::new(&second)), first_serial);

    // Another name than the certificate's is refused; so is a certificate of another CA.
    let other = device_csr(&work, "other", "device2.example.test", None);
    let (body, code) = answer(&reenroll(&first, &first_key, &other));
    assert_eq!(code, 400, "{body}");
    let (ok, text) = openssl(
        &work,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "foreign.key",
            "-out",
            "foreign.pem",
            "-subj",
            "/CN=device1.example.test",
            "-days",
            "1",
        ],
    );
    assert!(ok, "{text}");
    let foreign = work.join("foreign.pem").display().to_string();
    let foreign_key = work.join("foreign.key").display().to_string();
    let (body, code) = answer(&reenroll(&foreign, &foreign_key, &renew_csr));
    assert_eq!(code, 401, "{body}");
    // No credentials at all: 401 naming what to send.
    let (body, code) = answer(&curl(
        &node,
        "/.well-known/est/simpleenroll",
        &[
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &format!("@{csr}"),
        ],
    ));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("HTTP Basic"), "{body}");
    // A challengePassword that is not this connection's channel binding.
    let config = work.join("challenge.cnf");
    std::fs::write(
        &config,
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\nCN = device3.example.test\n\
         [attrs]\nchallengePassword = not-the-binding\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let bound = device_csr(&work, "bound", "device3.example.test", Some(&config));
    let (body, code) = answer(&enroll(&token, &bound));
    assert!(code == 403 || code == 400, "{code}: {body}");
    // A body that is no CSR, and the wrong content type.
    std::fs::write(work.join("junk.b64"), "bm90IGEgY3Ny").unwrap();
    let junk = work.join("junk.b64").display().to_string();
    assert_eq!(answer(&enroll(&token, &junk)).1, 400);
    let (_, code) = answer(&curl(
        &node,
        "/.well-known/est/simpleenroll",
        &[
            "-u",
            &format!("d:{token}"),
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            &format!("@{csr}"),
        ],
    ));
    assert_eq!(code, 400);
    // The node still serves.
    assert_eq!(answer(&curl(&node, "/.well-known/est/cacerts", &[])).1, 200);
    assert_eq!(answer(&curl(&node, "/.well-known/est/server/csrattrs", &[])).1, 200);
}
