//! Real `openssl` as the relying party: what hapki writes and serves (CSRs,
//! certificates of every profile, OCSP answers over POST and GET, CRLs, PKCS#12
//! files, keys) must be accepted by it, and CAs that openssl made (an external
//! root over an intermediate, an imported root) must work inside hapki.

mod common;

use std::path::Path;

use base64::Engine;
use common::{openssl, serial_of, stderr, Node};

/// Runs openssl in `dir` and requires success; returns stdout + stderr.
fn ossl(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// Runs openssl in `dir` and requires failure; returns stdout + stderr.
fn ossl_fails(dir: &Path, args: &[&str]) -> String {
    let (ok, out) = openssl(dir, args);
    assert!(!ok, "openssl {args:?} should have failed:\n{out}");
    out
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The PEM certificate blocks of a file, in order.
fn pem_certs(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            let body = b.split(END).next().expect("block");
            format!("-----BEGIN CERTIFICATE-----{body}{END}\n")
        })
        .collect()
}

/// Certificates compared by their base64 content, whatever the line wrapping.
fn squeeze(certs: &[String]) -> Vec<String> {
    certs
        .iter()
        .map(|c| c.chars().filter(|c| !c.is_whitespace()).collect())
        .collect()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

fn write(dir: &Path, file: &str, data: impl AsRef<[u8]>) {
    std::fs::write(dir.join(file), data).unwrap_or_else(|e| panic!("write {file}: {e}"));
}

/// Writes the first certificate of an issued file (leaf, then chain) to `<name>.leaf.pem`
/// and checks that the rest of the file is exactly `expected_chain`.
fn split_issued(dir: &Path, issued: &Path, name: &str, expected_chain: &[String]) -> String {
    let certs = pem_certs(&std::fs::read_to_string(issued).expect("issued file"));
    assert!(certs.len() >= 2, "{} holds no chain: {certs:?}", issued.display());
    assert_eq!(
        squeeze(&certs[1..]),
        squeeze(expected_chain),
        "the chain in {} is not the issuer's chain",
        issued.display()
    );
    let leaf = format!("{name}.leaf.pem");
    write(dir, &leaf, &certs[0]);
    leaf
}

/// `hapki csr` then `hapki cert issue` with extra issue arguments (e.g. `--issuer ID`).
fn issue_with(node: &Node, name: &str, profile: &str, words: &[&str], extra: &[&str]) -> String {
    let mut args = vec!["csr", name];
    args.extend_from_slice(words);
    node.ok(&args);
    let csr = format!("{name}.csr");
    let out = format!("{name}.pem");
    let mut args = vec!["cert", "issue", "--csr", &csr, "--profile", profile, "--out", &out];
    args.extend_from_slice(extra);
    node.ok(&args);
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as RFC 6960 A.1 asks of base64.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The public key of a key file and of a certificate (or CSR) file, as openssl prints them.
fn same_public_key(dir: &Path, key: &str, cert: &str, kind: &str) {
    let from_key = ossl(dir, &["pkey", "-in", key, "-pubout"]);
    let from_cert = ossl(dir, &[kind, "-in", cert, "-noout", "-pubkey"]);
    assert!(from_key.contains("BEGIN PUBLIC KEY"), "{from_key}");
    assert_eq!(from_key, from_cert, "{key} does not match {cert}");
}

#[test]
fn csrs_of_every_key_type_verify_in_openssl_and_their_certificates_chain() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();
    let ca_chain = pem_certs(&std::fs::read_to_string(node.ca_pem()).unwrap());
    for (key, marker) in [
        ("ec-p256", "ASN1 OID: prime256v1"),
        ("ec-p384", "ASN1 OID: secp384r1"),
        ("rsa-2048", "Public-Key: (2048 bit)"),
        ("rsa-3072", "Public-Key: (3072 bit)"),
        ("ed25519", "Public Key Algorithm: ED25519"),
    ] {
        let name = format!("k-{key}");
        let host = format!("{key}.example.com");
        node.ok(&["csr", &name, &format!("CN:{host}"), "--key", key]);
        let csr = format!("{name}.csr");
        let verified = ossl(dir, &["req", "-verify", "-in", &csr, "-noout"]);
        assert!(verified.contains("verify OK"), "{key}: {verified}");
        let text = ossl(dir, &["req", "-in", &csr, "-noout", "-text"]);
        assert!(text.contains(marker), "{key}: no '{marker}' in\n{text}");
        assert!(text.contains(&format!("Subject: CN = {host}")), "{key}:\n{text}");
        same_public_key(dir, &format!("{name}.key"), &csr, "req");
        let checked = ossl(dir, &["pkey", "-in", &format!("{name}.key"), "-check", "-noout"]);
        assert!(checked.contains("Key is valid"), "{key}: {checked}");

        node.ok(&[
            "cert",
            "issue",
            "--csr",
            &csr,
            "--profile",
            "server",
            "--out",
            &format!("{name}.pem"),
        ]);
        let leaf = split_issued(dir, &dir.join(format!("{name}.pem")), &name, &ca_chain);
        let out = ossl(
            dir,
            &["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", &ca, &leaf],
        );
        assert!(out.contains(&format!("{leaf}: OK")), "{key}: {out}");
    }
}

#[test]
fn certificates_of_every_builtin_profile_verify_with_x509_strict() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();
    let ca_chain = pem_certs(&std::fs::read_to_string(node.ca_pem()).unwrap());
    // (profile, file name, CSR words, openssl purposes it must pass, text the certificate shows)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: [Case; 7] = [
        (
            "server",
            "srv",
            &["CN:srv.example.com", "subjectAltName:srv.example.com,www.example.com"],
            &["sslserver"],
            &["TLS Web Server Authentication", "DNS:www.example.com", "CA:FALSE"],
        ),
        (
            "client",
            "cli",
            &["--cn", "alice", "--san", "alice@example.com"],
            &["sslclient"],
            &["TLS Web Client Authentication", "email:alice@example.com"],
        ),
        (
            "db-server",
            "dbs",
            &["CN:db1.example.com", "--key", "rsa-2048"],
            &["sslserver", "sslclient"],
            &[
                "TLS Web Server Authentication, TLS Web Client Authentication",
                "Digital Signature, Key Encipherment",
                "DNS:db1.example.com",
            ],
        ),
        (
            "db-client",
            "dbc",
            &["--cn", "postgres"],
            &["sslclient"],
            &["Subject: CN = postgres", "TLS Web Client Authentication"],
        ),
        (
            "subsystem",
            "sub",
            &["--cn", "svc-a", "--san", "svc-a.internal"],
            &["sslserver", "sslclient"],
            &["DNS:svc-a.internal"],
        ),
        (
            "ocsp-signing",
            "ocs",
            &["--cn", "Example OCSP Responder"],
            &["ocsphelper"],
            &["OCSP Signing", "OCSP No Check"],
        ),
        (
            "sub-ca",
            "sca",
            &["--cn", "Issuing CA 1", "--subject", "O=Example"],
            &["crlsign"],
            &["CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign"],
        ),
    ];
    for (profile, name, words, purposes, shows) in cases {
        let issued = node.issue(name, profile, words);
        let leaf = split_issued(dir, &issued, name, &ca_chain);
        for purpose in purposes {
            let out = ossl(
                dir,
                &["verify", "-x509_strict", "-purpose", purpose, "-CAfile", &ca, &leaf],
            );
            assert!(out.contains(&format!("{leaf}: OK")), "{profile} as {purpose}: {out}");
        }
        let text = ossl(dir, &["x509", "-in", &leaf, "-noout", "-text"]);
        for s in shows {
            assert!(text.contains(s), "{profile}: no '{s}' in\n{text}");
        }
    }

    // The purposes are really checked: a client certificate is no TLS server certificate.
    let out = ossl_fails(
        dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            &ca,
            "cli.leaf.pem",
        ],
    );
    assert!(out.contains("error 26"), "{out}");

    // The sub-ca certificate works as a CA: openssl signs a leaf with its key (written by
    // `hapki csr`) and the three-level chain verifies strictly.
    node.ok(&["csr", "below", "CN:below.example.com"]);
    write(
        dir,
        "below.ext",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:below.example.com\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    );
    ossl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "below.csr",
            "-CA",
            "sca.leaf.pem",
            "-CAkey",
            "sca.key",
            "-set_serial",
            "0x4242",
            "-days",
            "30",
            "-extfile",
            "below.ext",
            "-out",
            "below.pem",
        ],
    );
    let out = ossl(
        dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            &ca,
            "-untrusted",
            "sca.leaf.pem",
            "below.pem",
        ],
    );
    assert!(out.contains("below.pem: OK"), "{out}");
}

/// `openssl ocsp` against the node for one certificate; returns its output with the response text.
fn ocsp_query(node: &Node, issuer: &str, trust: &str, cert: &str, extra: &[&str]) -> String {
    let url = format!("{}/ocsp", node.http_url());
    let mut args = vec![
        "ocsp",
        "-issuer",
        issuer,
        "-cert",
        cert,
        "-url",
        &url,
        "-CAfile",
        trust,
        "-resp_text",
    ];
    args.extend_from_slice(extra);
    let out = ossl(node.work(), &args);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(!out.contains("Nonce Verify error"), "{out}");
    out
}

#[test]
fn ocsp_answers_good_then_revoked_over_post_and_get_with_and_without_nonce() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();
    let leaf = node.issue("oleaf", "server", &["CN:oleaf.example.com"]);
    node.issue("oother", "client", &["--cn", "other"]);
    // The certificate names this node's responder.
    let uri = ossl(dir, &["x509", "-in", "oleaf.pem", "-noout", "-ocsp_uri"]);
    assert_eq!(uri.trim(), format!("{}/ocsp", node.http_url()));

    let with_nonce = ocsp_query(&node, &ca, &ca, "oleaf.pem", &[]);
    assert!(with_nonce.contains("oleaf.pem: good"), "{with_nonce}");
    assert!(
        with_nonce.contains("OCSP Nonce"),
        "the nonce is not echoed:\n{with_nonce}"
    );
    let without = ocsp_query(&node, &ca, &ca, "oleaf.pem", &["-no_nonce"]);
    assert!(without.contains("oleaf.pem: good"), "{without}");
    assert!(!without.contains("OCSP Nonce"), "a nonce nobody asked for:\n{without}");

    let serial = serial_of(dir, &leaf);
    let revoked = node.json(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert_eq!(revoked["reason"], "keyCompromise");
    for extra in [&[][..], &["-no_nonce"][..]] {
        let out = ocsp_query(&node, &ca, &ca, "oleaf.pem", extra);
        assert!(out.contains("oleaf.pem: revoked"), "{out}");
        assert!(out.contains("Reason: keyCompromise"), "{out}");
        assert!(out.contains("Revocation Time:"), "{out}");
    }
    let other = ocsp_query(&node, &ca, &ca, "oother.pem", &[]);
    assert!(other.contains("oother.pem: good"), "{other}");

    // GET (RFC 6960 appendix A.1): the URL-encoded base64 of the DER request after /ocsp/.
    for (cert, expect) in [("oleaf.pem", "revoked"), ("oother.pem", "good")] {
        let req = format!("{cert}.req.der");
        ossl(
            dir,
            &["ocsp", "-issuer", &ca, "-cert", cert, "-no_nonce", "-reqout", &req],
        );
        let der = std::fs::read(dir.join(&req)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let url = format!("{}/ocsp/{}", node.http_url(), url_encode(&b64));
        let (ct, body) = node.get_ok(&url);
        assert_eq!(ct, "application/ocsp-response");
        let resp = format!("{cert}.resp.der");
        write(dir, &resp, &body);
        let out = ossl(
            dir,
            &[
                "ocsp",
                "-respin",
                &resp,
                "-issuer",
                &ca,
                "-cert",
                cert,
                "-CAfile",
                &ca,
                "-no_nonce",
            ],
        );
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(&format!("{cert}: {expect}")), "GET for {cert}: {out}");
    }
}

#[test]
fn the_crl_lists_the_revoked_serial_and_openssl_refuses_the_revoked_leaf() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();
    let a = node.issue("crl-a", "server", &["CN:a.example.com"]);
    node.issue("crl-b", "server", &["CN:b.example.com"]);
    let crl_url = format!("{}/v1/crl", node.http_url());
    let fetch = |name: &str| -> Vec<u8> {
        let (ct, der) = node.get_ok(&crl_url);
        assert_eq!(ct, "application/pkix-crl");
        assert_eq!(der.first(), Some(&0x30), "/v1/crl is not DER");
        write(dir, &format!("{name}.der"), &der);
        ossl(
            dir,
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.der"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
        der
    };
    let crl_number = |name: &str| -> u64 {
        let out = ossl(
            dir,
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                &format!("{name}.der"),
                "-noout",
                "-crlnumber",
            ],
        );
        let hex = out.trim().trim_start_matches("crlNumber=").trim_start_matches("0x");
        u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("CRL number in {out}"))
    };
    let verify_with =
        |crl: &str, leaf: &str| openssl(dir, &["verify", "-crl_check", "-CRLfile", crl, "-CAfile", &ca, leaf]);

    fetch("crl0");
    let text = ossl(dir, &["crl", "-inform", "DER", "-in", "crl0.der", "-noout", "-text"]);
    assert!(text.contains("No Revoked Certificates"), "{text}");
    let (ok, out) = verify_with("crl0.pem", "crl-a.pem");
    assert!(ok && out.contains("crl-a.pem: OK"), "{out}");

    let serial_a = serial_of(dir, &a);
    let serial_b = serial_of(dir, &dir.join("crl-b.pem"));
    node.ok(&["cert", "revoke", &serial_a, "--reason", "keyCompromise"]);
    let der = fetch("crl1");
    assert!(crl_number("crl1") > crl_number("crl0"));
    let text = ossl(dir, &["crl", "-inform", "DER", "-in", "crl1.der", "-noout", "-text"]);
    let entry = format!("Serial Number: {}", serial_a.to_ascii_uppercase());
    let at = text.find(&entry).unwrap_or_else(|| panic!("no '{entry}' in\n{text}"));
    assert!(
        text[at..].contains("X509v3 CRL Reason Code") && text[at..].contains("Key Compromise"),
        "{text}"
    );
    assert!(!text.contains(&serial_b.to_ascii_uppercase()), "{text}");
    let verified = ossl(
        dir,
        &["crl", "-inform", "DER", "-in", "crl1.der", "-CAfile", &ca, "-noout"],
    );
    assert!(verified.contains("verify OK"), "{verified}");

    let (ok, out) = verify_with("crl1.pem", "crl-a.pem");
    assert!(!ok, "openssl accepted a revoked certificate:\n{out}");
    assert!(out.contains("error 23"), "{out}");
    assert!(out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify_with("crl1.pem", "crl-b.pem");
    assert!(ok && out.contains("crl-b.pem: OK"), "{out}");

    // The distribution point named in the certificate serves the same CRL.
    let cdp = ossl(
        dir,
        &["x509", "-in", "crl-a.pem", "-noout", "-ext", "crlDistributionPoints"],
    );
    let url = cdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("URI:"))
        .unwrap_or_else(|| panic!("no URI in {cdp}"));
    assert!(url.starts_with(&node.http_url()), "{url}");
    assert_eq!(node.get_ok(url).1, der);
}

#[test]
fn generated_keys_and_pkcs12_files_open_in_openssl() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();

    node.ok(&[
        "cert",
        "generate",
        "--cn",
        "p12.example.com",
        "--profile",
        "server",
        "--format",
        "pkcs12",
        "--password",
        "p12-pass",
        "--out",
        "bundle",
    ]);
    let info = ossl(
        dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:p12-pass",
            "-nokeys",
        ],
    );
    assert!(info.contains("subject=CN = p12.example.com"), "{info}");
    assert!(!info.contains("PRIVATE KEY"), "{info}");
    let with_keys = ossl(
        dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:p12-pass",
            "-nodes",
        ],
    );
    assert!(with_keys.contains("-----BEGIN PRIVATE KEY-----"), "{with_keys}");
    let wrong = ossl_fails(
        dir,
        &[
            "pkcs12",
            "-info",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:wrong",
            "-nokeys",
        ],
    );
    assert!(wrong.to_ascii_lowercase().contains("mac verify"), "{wrong}");
    // The key in the file belongs to the certificate in it, which chains to the CA.
    ossl(
        dir,
        &[
            "pkcs12",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:p12-pass",
            "-nodes",
            "-nocerts",
            "-out",
            "p12.key",
        ],
    );
    ossl(
        dir,
        &[
            "pkcs12",
            "-in",
            "bundle.p12",
            "-passin",
            "pass:p12-pass",
            "-nokeys",
            "-clcerts",
            "-out",
            "p12.crt",
        ],
    );
    same_public_key(dir, "p12.key", "p12.crt", "x509");
    let out = ossl(dir, &["verify", "-x509_strict", "-CAfile", &ca, "p12.crt"]);
    assert!(out.contains("p12.crt: OK"), "{out}");

    for key in ["ec-p256", "ec-p384", "rsa-2048", "ed25519"] {
        let base = format!("gen-{key}");
        node.ok(&[
            "cert",
            "generate",
            "--cn",
            &format!("{base}.example.com"),
            "--profile",
            "server",
            "--key",
            key,
            "--out",
            &base,
        ]);
        let k = format!("{base}.key");
        let c = format!("{base}.pem");
        let checked = ossl(dir, &["pkey", "-in", &k, "-check", "-noout"]);
        assert!(checked.contains("Key is valid"), "{key}: {checked}");
        same_public_key(dir, &k, &c, "x509");
        let out = ossl(dir, &["verify", "-x509_strict", "-CAfile", &ca, &c]);
        assert!(out.contains(&format!("{c}: OK")), "{key}: {out}");
    }
}

/// An openssl root CA in `dir`: `<name>.key` and `<name>.pem`.
fn openssl_root(dir: &Path, name: &str, newkey: &[&str], subject: &str) {
    let ca = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    common::openssl_self_signed(dir, name, newkey, subject, &ca);
}

fn issuer_entry(node: &Node, id: &str) -> serde_json::Value {
    let list = node.json(&["ca", "list"]);
    list["issuers"]
        .as_array()
        .expect("issuers")
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("issuer {id} missing from {list}"))
        .clone()
}

#[test]
fn an_intermediate_signed_by_an_openssl_root_issues_leaves_openssl_accepts() {
    let node = Node::start();
    let dir = node.work();
    let made = node.json(&["ca", "init", "--intermediate", "--cn", "Sub CA", "--csr-out", "sub.csr"]);
    let id = made["id"].as_str().expect("id").to_string();
    assert_ne!(issuer_entry(&node, &id)["status"], "active");
    let verified = ossl(dir, &["req", "-verify", "-in", "sub.csr", "-noout"]);
    assert!(verified.contains("verify OK"), "{verified}");

    openssl_root(
        dir,
        "root",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "/O=Interop/CN=OpenSSL Root",
    );
    write(
        dir,
        "sub.ext",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    );
    ossl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "0x1001",
            "-days",
            "1825",
            "-extfile",
            "sub.ext",
            "-out",
            "sub-only.pem",
        ],
    );
    let sub_only = read(dir, "sub-only.pem");
    let root = read(dir, "root.pem");
    write(dir, "sub.pem", format!("{sub_only}{root}"));
    node.ok(&["ca", "install-cert", "sub.pem", "--id", &id]);
    node.ok(&["ca", "set-default", &id]);
    let entry = issuer_entry(&node, &id);
    assert_eq!(entry["status"], "active", "{entry}");
    assert_eq!(entry["default"], true, "{entry}");

    let issued = node.issue("under-sub", "server", &["CN:under-sub.example.com"]);
    let chain = vec![pem_certs(&sub_only).remove(0), pem_certs(&root).remove(0)];
    let leaf = split_issued(dir, &issued, "under-sub", &chain);
    let out = ossl(
        dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "-untrusted",
            path(&issued),
            &leaf,
        ],
    );
    assert!(out.contains(&format!("{leaf}: OK")), "{out}");
    // Without the intermediate the root alone does not reach the leaf.
    let out = ossl_fails(dir, &["verify", "-x509_strict", "-CAfile", "root.pem", &leaf]);
    assert!(out.contains("error 20"), "{out}");

    // The intermediate's delegated responder and CRL verify up to the openssl root.
    let out = ocsp_query(&node, "sub-only.pem", "root.pem", &leaf, &[]);
    assert!(out.contains(&format!("{leaf}: good")), "{out}");
    let (_, crl) = node.get_ok(&format!("{}/v1/issuers/{id}/crl", node.http_url()));
    write(dir, "sub-crl.der", &crl);
    let out = ossl(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "sub-crl.der",
            "-CAfile",
            "sub-only.pem",
            "-noout",
        ],
    );
    assert!(out.contains("verify OK"), "{out}");
}

#[test]
fn a_ca_imported_from_an_openssl_pkcs12_file_issues_leaves_openssl_accepts() {
    let node = Node::start();
    let dir = node.work();
    openssl_root(dir, "imp", &["rsa:3072"], "/O=Interop/CN=Imported Root");
    ossl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "imp.key",
            "-in",
            "imp.pem",
            "-passout",
            "pass:imp-pass",
            "-out",
            "imp.p12",
        ],
    );
    let refused = node.cli(&["ca", "import", "--pkcs12", "imp.p12", "--password", "not-it"]);
    assert!(
        !refused.status.success(),
        "a wrong password was accepted: {}",
        stderr(&refused)
    );

    let imported = node.json(&["ca", "import", "--pkcs12", "imp.p12", "--password", "imp-pass"]);
    let id = imported["id"].as_str().expect("id").to_string();
    let entry = issuer_entry(&node, &id);
    assert_eq!(entry["status"], "active", "{entry}");
    assert_eq!(entry["default"], false, "{entry}");
    assert_eq!(entry["name"], "O=Interop, CN=Imported Root", "{entry}");
    assert_eq!(
        squeeze(&pem_certs(entry["certificate"].as_str().expect("certificate"))),
        squeeze(&pem_certs(&read(dir, "imp.pem"))),
        "the imported certificate is not openssl's"
    );

    let issued = issue_with(
        &node,
        "imp-leaf",
        "server",
        &["CN:imp-leaf.example.com"],
        &["--issuer", &id],
    );
    let chain = pem_certs(&read(dir, "imp.pem"));
    let leaf = split_issued(dir, &dir.join(&issued), "imp-leaf", &chain);
    let issuer = ossl(dir, &["x509", "-in", &leaf, "-noout", "-issuer"]);
    assert_eq!(issuer.trim(), "issuer=O = Interop, CN = Imported Root");
    let out = ossl(
        dir,
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "imp.pem",
            &leaf,
        ],
    );
    assert!(out.contains(&format!("{leaf}: OK")), "{out}");
    // It was not signed by the default (dev) root.
    let out = ossl_fails(dir, &["verify", "-CAfile", path(&node.ca_pem()), &leaf]);
    assert!(out.contains("error 20"), "{out}");

    let out = ocsp_query(&node, "imp.pem", "imp.pem", &leaf, &[]);
    assert!(out.contains(&format!("{leaf}: good")), "{out}");
    let listed = node.json(&["cert", "list", "--issuer", &id]);
    assert_eq!(listed["certs"].as_array().map(Vec::len), Some(1), "{listed}");
}

/// OCSP answers to GET carry the caching headers of RFC 5019 §6.2 (Last-Modified
/// = thisUpdate, Expires = nextUpdate, max-age up to nextUpdate, an ETag), so an
/// HTTP cache in front of the responder may keep them; an answer that echoes a
/// nonce is for one request only and carries none of them.
#[test]
fn ocsp_get_answers_carry_caching_headers_unless_they_echo_a_nonce() {
    let node = Node::start();
    let dir = node.work();
    let ca = path(&node.ca_pem()).to_string();
    node.issue("cached", "server", &["CN:cached.example.com"]);
    let client = node.http_client();
    let get = |nonce: &[&str]| {
        let mut args = vec!["ocsp", "-issuer", &ca, "-cert", "cached.pem", "-reqout", "cached.req"];
        args.extend_from_slice(nonce);
        ossl(dir, &args);
        let der = std::fs::read(dir.join("cached.req")).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let resp = client
            .get(format!("{}/ocsp/{}", node.http_url(), url_encode(&b64)))
            .send()
            .expect("OCSP GET");
        assert_eq!(resp.status().as_u16(), 200);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().expect("ASCII header").to_string())
        };
        (
            header("cache-control"),
            header("last-modified"),
            header("expires"),
            header("etag"),
        )
    };

    let (cache, modified, expires, etag) = get(&["-no_nonce"]);
    let cache = cache.expect("Cache-Control");
    assert!(cache.starts_with("max-age=3600, public"), "{cache}");
    assert!(cache.contains("must-revalidate"), "{cache}");
    let modified = httpdate::parse_http_date(&modified.expect("Last-Modified")).expect("HTTP date");
    let expires = httpdate::parse_http_date(&expires.expect("Expires")).expect("HTTP date");
    assert_eq!(expires.duration_since(modified).unwrap().as_secs(), 3600);
    let etag = etag.expect("ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "{etag}"
    );

    assert_eq!(get(&[]), (None, None, None, None), "a nonce answer is not for caches");
}
