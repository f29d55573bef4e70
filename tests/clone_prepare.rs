//! Clone-prepare: a CA exported with `hapki ca export` (its signing key and its
//! OCSP signer's, in one PKCS#12 file that `openssl pkcs12` reads) and imported
//! into another cluster, which then issues certificates that chain to the same
//! root and answers OCSP with the same responder.

mod common;

use common::{openssl, stderr, Node};

/// `openssl ocsp` for `cert` against `node`'s responder, trusting `ca`; returns its report.
fn ocsp(node: &Node, ca: &str, cert: &str) -> String {
    let url = format!("{}/ocsp", node.http_url());
    let (ok, out) = openssl(
        node.work(),
        &[
            "ocsp",
            "-issuer",
            ca,
            "-cert",
            cert,
            "-url",
            &url,
            "-CAfile",
            ca,
            "-resp_text",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": good"), "{out}");
    out
}

fn responder_id(report: &str) -> String {
    report
        .lines()
        .find(|l| l.trim_start().starts_with("Responder Id:"))
        .unwrap_or_else(|| panic!("no responder id in {report}"))
        .trim()
        .to_string()
}

#[test]
fn an_exported_ca_signs_and_answers_ocsp_as_the_same_ca_in_another_cluster() {
    let a = Node::start();
    let b = Node::start();
    let id = a.json(&["ca", "list"])["issuers"][0]["id"]
        .as_str()
        .expect("issuer id")
        .to_string();
    let root = a.ca_pem().display().to_string();
    let first = a
        .issue("first", "server", &["CN:first.example.com"])
        .display()
        .to_string();
    let before = responder_id(&ocsp(&a, &root, &first));

    // Only an admin exports, to a file it names, with a password from a file.
    let pass = a.work().join("export.pass");
    std::fs::write(&pass, "clone secret\n").expect("password file");
    let pass_arg = pass.display().to_string();
    let agent = a.json(&["token", "create", "--role", "agent"])["token"]
        .as_str()
        .expect("token")
        .to_string();
    let export = [
        "ca",
        "export",
        "--id",
        &id,
        "--pkcs12",
        "ca.p12",
        "--password-file",
        &pass_arg,
    ];
    let out = a.cli_with_token(&export, Some(&agent));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!a.work().join("ca.p12").exists(), "a refused export leaves no file");
    let out = a.cli(&[
        "ca",
        "export",
        "--id",
        "0000000000000000",
        "--pkcs12",
        "x.p12",
        "--password-file",
        &pass_arg,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let exported = a.json(&export);
    let cluster = a.json(&["cluster", "info"])["cluster_id"]
        .as_str()
        .expect("cluster id")
        .to_string();
    assert_eq!(
        exported["entries"],
        serde_json::json!([
            format!("caSigningCert {id}"),
            format!("ocspSigningCert {id}"),
            format!("auditSigningCert {cluster}")
        ])
    );
    let p12 = a.work().join("ca.p12");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p12).expect("p12").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let p12_arg = p12.display().to_string();
    let passin = format!("file:{pass_arg}");
    // The key bags carry the names (the certificate bags their subjects).
    let (ok, info) = openssl(
        a.work(),
        &[
            "pkcs12", "-info", "-in", &p12_arg, "-passin", &passin, "-nocerts", "-nodes", "-out", "keys.pem",
        ],
    );
    assert!(ok, "{info}");
    assert!(info.contains("PBES2") && info.contains("AES-256-CBC"), "{info}");
    let keys = std::fs::read_to_string(a.work().join("keys.pem")).expect("keys");
    for name in ["caSigningCert", "ocspSigningCert"] {
        assert!(keys.contains(&format!("friendlyName: {name} {id}")), "{keys}");
    }
    assert!(
        keys.contains(&format!("friendlyName: auditSigningCert {cluster}")),
        "{keys}"
    );
    // The audit key is the one whose certificate `hapki audit certificate` gives.
    a.ok(&["audit", "certificate", "-o", "audit.pem"]);
    let (ok, audit_pub) = openssl(a.work(), &["x509", "-in", "audit.pem", "-noout", "-pubkey"]);
    assert!(ok, "{audit_pub}");
    let keys_pub: Vec<String> = common::secrets::split_keys(&a.work().join("keys.pem"))
        .iter()
        .map(|k| openssl(a.work(), &["pkey", "-in", &k.display().to_string(), "-pubout"]).1)
        .collect();
    assert!(keys_pub.contains(&audit_pub), "{keys_pub:?} {audit_pub}");

    // The other cluster imports it and issues from it by default.
    let out = b.cli(&[
        "ca",
        "import",
        "--pkcs12",
        &p12_arg,
        "--password-file",
        &pass_arg,
        "--default",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = b.work().join("wrong.pass");
    std::fs::write(&wrong, "not it\n").expect("password file");
    let out = b.cli(&[
        "ca",
        "import",
        "--pkcs12",
        &p12_arg,
        "--password-file",
        &wrong.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    let second = b
        .issue("second", "server", &["CN:second.example.com"])
        .display()
        .to_string();
    let (ok, out) = openssl(b.work(), &["verify", "-CAfile", &root, &second]);
    assert!(ok && out.contains(": OK"), "{out}");
    let after = responder_id(&ocsp(&b, &root, &second));
    assert_eq!(after, before, "the clone answers with the same OCSP responder");
}
