//! Logs as an operator ships them: a three-node cluster logging JSON at debug level goes
//! through a full scenario (join, a CA, issuance, a key generated into a PKCS#12 file with
//! a password and archived, a token created, the CA exported), and no node's log holds any
//! token, password or private key used, in any encoding; every JSON line names its node,
//! request lines their request id, and writes their log index.

mod common;

use std::path::Path;

use base64::Engine;
use common::secrets::{exported_keys, key_encodings};
use common::{openssl, Cluster};

/// The forms a secret could take in a text line: as it is, base64 (whole, and the opening
/// of a PEM line) and hex.
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let mut out = vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        b64.clone().into_bytes(),
    ];
    if b64.len() > 60 {
        out.push(b64.as_bytes()[..60].to_vec());
    }
    out
}

fn read_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn no_token_password_or_private_key_reaches_a_log_line_and_every_line_names_its_node() {
    // Every node logs at debug level, in JSON (the harness's processes inherit this).
    std::env::set_var(
        "HAPKI_LOG",
        "info,hapki=debug,hapki_server=debug,hapki_cluster=debug,hapki_store=debug",
    );
    std::env::set_var("HAPKI_LOG_FORMAT", "json");
    let extra = |i: usize| {
        if i == 0 {
            "init_root_ca = true\n".to_string()
        } else {
            String::new()
        }
    };
    let cluster = Cluster::start_each(3, extra, |_, _| {});
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let mut secrets: Vec<Vec<u8>> = vec![a.token.clone().into_bytes()];
    // The bootstrap tokens the joins used, as files in the member's directory.
    for entry in std::fs::read_dir(a.work()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("bootstrap-") && name.ends_with(".token") {
            secrets.push(read_line(&entry.path()).into_bytes());
        }
    }
    assert_eq!(secrets.len(), 3, "the admin token and two bootstrap tokens");

    b.issue("web", "server", &["CN:web.example.com"]);
    let pass = c.work().join("p12.pass");
    std::fs::write(&pass, "p12 secret passphrase\n").unwrap();
    secrets.push(b"p12 secret passphrase".to_vec());
    c.ok(&[
        "cert",
        "generate",
        "--cn",
        "gen.example.com",
        "--profile",
        "server",
        "--format",
        "pkcs12",
        "--password-file",
        &pass.display().to_string(),
        "--archive",
        "--out",
        "gen.p12",
    ]);
    let (ok, out) = openssl(
        c.work(),
        &[
            "pkcs12",
            "-in",
            "gen.p12",
            "-passin",
            &format!("file:{}", pass.display()),
            "-nocerts",
            "-nodes",
            "-out",
            "gen.key",
        ],
    );
    assert!(ok, "{out}");
    let mut keys = key_encodings(c.work(), &c.work().join("gen.key"));
    let created = b.json(&["token", "create", "--role", "agent", "--name", "logs"]);
    secrets.push(created["token"].as_str().expect("the new token").as_bytes().to_vec());
    for key in exported_keys(a) {
        keys.extend(key_encodings(a.work(), &key));
    }
    secrets.push(b"export secret".to_vec());

    let mut writes_with_index = 0;
    for node in &cluster.nodes {
        let log = node.log();
        for secret in &secrets {
            for form in forms(secret) {
                let text = String::from_utf8_lossy(&form);
                assert!(
                    !log.contains(text.as_ref()),
                    "{}'s log holds a secret ({text})",
                    node.url()
                );
            }
        }
        for key in &keys {
            for form in forms(key) {
                assert!(
                    !log.as_bytes().windows(form.len()).any(|w| w == form.as_slice()),
                    "{}'s log holds a private key",
                    node.url()
                );
            }
        }
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(lines.len() > 10, "{} logged {} JSON lines", node.url(), lines.len());
        let id = node.id();
        for line in &lines {
            assert_eq!(line["node"], id.as_str(), "a line without its node: {line}");
        }
        let requests: Vec<&serde_json::Value> = lines.iter().filter(|l| l["span"]["name"] == "request").collect();
        assert!(!requests.is_empty(), "{} logged no request", node.url());
        for r in &requests {
            assert!(r["span"]["request_id"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        }
        writes_with_index += requests
            .iter()
            .filter(|r| r["span"]["method"] == "POST" && r["span"]["log_index"].as_u64().is_some())
            .count();
    }
    assert!(
        writes_with_index >= 3,
        "writes name their log index ({writes_with_index} did)"
    );
}
