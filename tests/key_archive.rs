//! The key archive on a three-node cluster, through the CLI as an operator
//! uses it: a key archived by its holder (encrypted to the transport
//! certificate) and one generated with `--archive`, a KEK rotation, then a
//! recovery asked on one node, approved on the other two and fetched on the
//! first, as a PKCS#12 file that `openssl pkcs12` opens without `-legacy`.
//! No archived key is ever found in plaintext under any data directory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{openssl, stderr, Cluster, Node};

/// A new token of `role`, made on `node`.
fn token(node: &Node, role: &str, name: &str) -> String {
    node.json(&["token", "create", "--role", role, "--name", name])["token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// `hapki` on `node` with `token`; must succeed; returns stdout parsed as JSON.
fn json_as(node: &Node, token: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = node.cli_with_token(&all, Some(token));
    assert!(out.status.success(), "hapki {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `hapki` on `node` with `token`; must fail with `exit` and say `needle`.
fn refused_as(node: &Node, token: &str, args: &[&str], exit: i32, needle: &str) {
    let out = node.cli_with_token(args, Some(token));
    assert_eq!(out.status.code(), Some(exit), "hapki {args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(needle), "hapki {args:?}: {}", stderr(&out));
}

/// The DER forms of the private key in PEM file `key`: PKCS#8, and for an EC key also
/// SEC1 and the bare scalar, as `openssl` writes them.
fn key_encodings(work: &Path, key: &Path) -> Vec<Vec<u8>> {
    let der = work.join("probe.der");
    let (ok, out) = openssl(
        work,
        &[
            "pkey",
            "-in",
            &key.display().to_string(),
            "-outform",
            "DER",
            "-out",
            &der.display().to_string(),
        ],
    );
    assert!(ok, "{out}");
    let pkcs8 = std::fs::read(&der).expect("pkcs8");
    let (ok, out) = openssl(
        work,
        &[
            "ec",
            "-in",
            &key.display().to_string(),
            "-outform",
            "DER",
            "-out",
            &der.display().to_string(),
        ],
    );
    assert!(ok, "{out}");
    let sec1 = std::fs::read(&der).expect("sec1");
    // ECPrivateKey: SEQUENCE, INTEGER 1, OCTET STRING (32) with the scalar.
    let scalar = sec1[7..39].to_vec();
    vec![pkcs8, sec1, scalar]
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_key_archived_on_one_node_is_recovered_with_two_approvals_across_the_cluster() {
    let extra = |i: usize| {
        if i == 0 {
            "init_root_ca = true\n".to_string()
        } else {
            String::new()
        }
    };
    let cluster = Cluster::start_each(3, extra, |_, _| {});
    cluster.converged(Duration::from_secs(60));
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let holder = token(a, "requester", "holder");
    let asker = token(a, "agent", "asker");
    let first = token(a, "agent", "first approver");
    let second = token(a, "agent", "second approver");

    // The holder's own key: made here, certified, then archived encrypted to the transport certificate.
    a.ok(&["csr", "laptop", "CN:laptop.example.com"]);
    let issue = [
        "cert",
        "issue",
        "--csr",
        "laptop.csr",
        "--profile",
        "server",
        "--out",
        "laptop.pem",
    ];
    let out = a.cli_with_token(&issue, Some(&holder));
    assert!(out.status.success(), "{}", stderr(&out));
    let (cert, key) = (a.work().join("laptop.pem"), a.work().join("laptop.key"));
    let transport = a.ok(&["key", "transport-cert"]);
    assert!(transport.contains("BEGIN CERTIFICATE"), "{transport}");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let archived = json_as(b, &holder, &["key", "archive", "--cert", &cert_arg, "--key", &key_arg]);
    let serial = archived["serial"].as_str().expect("serial").to_string();
    refused_as(
        c,
        &holder,
        &["key", "archive", "--cert", &cert_arg, "--key", &key_arg],
        5,
        "already archived",
    );
    // A key that is not the certificate's is refused before anything is sent.
    let other = a.issue("other", "server", &["CN:other.example.com"]);
    let other_key = a.work().join("other.key").display().to_string();
    refused_as(
        a,
        &holder,
        &["key", "archive", "--cert", &cert_arg, "--key", &other_key],
        2,
        "is not the key of",
    );
    drop(other);

    // One generated by the cluster, archived with its certificate.
    let gen = a.work().join("gen");
    a.ok(&[
        "cert",
        "generate",
        "--cn",
        "gen.example.com",
        "--san",
        "gen.example.com",
        "--profile",
        "server",
        "--archive",
        "--out",
        &gen.display().to_string(),
    ]);
    let listed = c.json(&["key", "list"]);
    assert_eq!(listed["keys"].as_array().expect("keys").len(), 2, "{listed}");
    let table = c.ok(&["key", "list", "--source", "client"]);
    assert!(table.contains(&serial) && table.contains("holder"), "{table}");

    // The KEK rotates: the archive is sealed anew with the rest.
    let rotated = a.json(&["cluster", "rotate-kek"]);
    assert_eq!(rotated["to"], 1, "{rotated}");
    cluster.converged(Duration::from_secs(60));

    // M = 2 (the default, shown by the settings); the request on a, approvals on b and c.
    let settings = b.json(&["cluster", "settings"]);
    assert_eq!(settings["recovery_approvals"], 2, "{settings}");
    refused_as(
        a,
        &holder,
        &["key", "recover", "request", &serial, "--reason", "x"],
        4,
        "may not recover",
    );
    let request = json_as(
        a,
        &asker,
        &[
            "key",
            "recover",
            "request",
            &serial,
            "--reason",
            "the laptop was stolen",
        ],
    );
    let id = request["id"].as_str().expect("id").to_string();
    refused_as(b, &asker, &["key", "recover", "approve", &id], 4, "may not approve it");
    json_as(b, &first, &["key", "recover", "approve", &id]);
    refused_as(c, &first, &["key", "recover", "approve", &id], 5, "already");
    let password = a.work().join("p12.pass");
    std::fs::write(&password, "recovery pass\n").expect("password file");
    let pw = password.display().to_string();
    let out_p12 = a.work().join("recovered.p12");
    let out_arg = out_p12.display().to_string();
    let fetch = [
        "key",
        "recover",
        "fetch",
        id.as_str(),
        "--password-file",
        pw.as_str(),
        "--out",
        out_arg.as_str(),
    ];
    refused_as(a, &asker, &fetch, 5, "has 1 of the 2 approvals");
    assert!(!out_p12.exists(), "a refused fetch leaves no file");
    json_as(c, &second, &["key", "recover", "approve", &id]);
    refused_as(b, &first, &fetch, 4, "only the token that made");
    let fetched = json_as(a, &asker, &fetch);
    assert_eq!(fetched["serial"], serial.as_str());
    refused_as(
        a,
        &asker,
        &[
            "key",
            "recover",
            "fetch",
            &id,
            "--password-file",
            &pw,
            "--out",
            "again.p12",
        ],
        5,
        "fetched already",
    );
    let shown = json_as(b, &first, &["key", "recover", "show", &id]);
    assert_eq!(shown["status"], "fetched", "{shown}");

    // openssl opens it as it is (PBES2, AES-256, PBKDF2): the key is the certificate's.
    let work = a.work();
    let (ok, info) = openssl(
        work,
        &[
            "pkcs12",
            "-in",
            &out_arg,
            "-passin",
            &format!("file:{pw}"),
            "-info",
            "-noout",
        ],
    );
    assert!(ok, "{info}");
    assert!(info.contains("PBES2") && info.contains("AES-256-CBC"), "{info}");
    let (ok, out) = openssl(
        work,
        &[
            "pkcs12",
            "-in",
            &out_arg,
            "-passin",
            &format!("file:{pw}"),
            "-nocerts",
            "-nodes",
            "-out",
            "recovered.key",
        ],
    );
    assert!(ok, "{out}");
    let pubkey = |args: &[&str]| {
        let (ok, out) = openssl(work, args);
        assert!(ok, "{out}");
        out
    };
    assert_eq!(
        pubkey(&["pkey", "-in", "recovered.key", "-pubout"]),
        pubkey(&["x509", "-in", &cert_arg, "-noout", "-pubkey"]),
    );

    // No archived key is on any disk in plaintext, in any encoding.
    let mut secrets = key_encodings(work, &key);
    secrets.extend(key_encodings(work, &gen.with_extension("key")));
    for node in &cluster.nodes {
        for file in files(&node.data()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for s in &secrets {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_slice()),
                    "{} holds an archived key in plaintext",
                    file.display()
                );
            }
        }
    }
}
