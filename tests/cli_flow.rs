//! The operator's everyday flow through the real CLI against a real dev node:
//! make a CSR, issue, list, get, revoke, manage tokens and profiles. The
//! invariant: what the CLI reports is what the node stores and publishes.

mod common;

use common::{serial_of, stderr, Node};

#[test]
fn dev_node_writes_its_files_and_issues_from_a_seed_style_csr() {
    let node = Node::start();
    for f in ["admin-token", "ca.pem", "api-ca.pem", "unseal.key"] {
        assert!(node.data().join(f).exists(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.data().join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let cert = node.issue(
        "cms1a",
        "server",
        &["CN:cms1.pod1.cms.lab", "subjectAltName:cms1a.pod1.cms.lab,pod1.cms.lab"],
    );
    let key_mode = std::fs::metadata(node.work().join("cms1a.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let serial = serial_of(node.work(), &cert);
    let got = node.json(&["cert", "get", &serial]);
    assert_eq!(got["status"], "valid");
    assert!(got["sans"].as_array().unwrap().iter().any(|s| s == "DNS:pod1.cms.lab"));

    let listed = node.json(&["cert", "list", "--san", "pod1.cms.lab"]);
    assert_eq!(listed["certs"].as_array().unwrap().len(), 1);
    let table = node.ok(&["cert", "list"]);
    assert!(table.starts_with("SERIAL"), "{table}");

    // Every page, one after another: the same certificates as one large page, in serial order,
    // none twice, under one header.
    node.issue("cms1b", "server", &["CN:cms1b.pod1.cms.lab"]);
    node.issue("cms1c", "server", &["CN:cms1c.pod1.cms.lab"]);
    let whole: Vec<String> = node.json(&["cert", "list", "--limit", "1000"])["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    assert!(whole.len() >= 3, "{whole:?}");
    let paged = node.ok(&["--output", "json", "cert", "list", "--all", "--limit", "1"]);
    let streamed: Vec<String> = paged
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("one certificate per line")["serial"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streamed, whole);
    let table = node.ok(&["cert", "list", "--all", "--limit", "2"]);
    assert_eq!(table.matches("SERIAL").count(), 1, "{table}");
    assert_eq!(table.lines().count(), whole.len() + 1, "{table}");
    assert!(!table.contains("(more:"), "{table}");
    assert!(node
        .ok(&["cert", "list", "--limit", "1"])
        .contains("--all for every page"));

    let revoked = node.json(&["cert", "revoke", &serial, "--reason", "superseded"]);
    assert_eq!(revoked["reason"], "superseded");
    let again = node.cli(&["cert", "revoke", &serial]);
    assert_eq!(
        again.status.code(),
        Some(5),
        "revoking twice is a conflict: {}",
        stderr(&again)
    );
    assert_eq!(
        node.json(&["cert", "list", "--status", "revoked"])["certs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn tokens_carry_roles_and_die_when_revoked() {
    let node = Node::start();
    let created = node.json(&["token", "create", "--role", "requester", "--name", "ci"]);
    let requester = created["token"].as_str().unwrap().to_string();
    node.ok(&["csr", "r1", "--cn", "r1.example.com"]);
    let issued = node.cli_with_token(
        &["cert", "issue", "--csr", "r1.csr", "--profile", "server"],
        Some(&requester),
    );
    assert!(issued.status.success(), "{}", stderr(&issued));
    let listing = node.cli_with_token(&["cert", "list"], Some(&requester));
    assert_eq!(
        listing.status.code(),
        Some(4),
        "a requester may not list: {}",
        stderr(&listing)
    );
    let ca = node.cli_with_token(&["ca", "init", "--cn", "Rogue"], Some(&requester));
    assert_eq!(ca.status.code(), Some(4));

    let id = created["id"].as_str().unwrap();
    node.ok(&["token", "revoke", id]);
    let after = node.cli_with_token(
        &["cert", "issue", "--csr", "r1.csr", "--profile", "server"],
        Some(&requester),
    );
    assert_eq!(after.status.code(), Some(4));
    assert!(stderr(&after).contains("revoked"), "{}", stderr(&after));
    assert!(node.ok(&["token", "list"]).contains("requester"));
}

#[test]
fn profiles_are_listed_created_and_updated() {
    let node = Node::start();
    let list = node.json(&["profile", "list"]);
    let names: Vec<&str> = list["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "server",
        "client",
        "db-server",
        "db-client",
        "subsystem",
        "ocsp-signing",
        "sub-ca",
    ] {
        assert!(names.contains(&p), "{p} missing from {names:?}");
    }
    let mut profile = node.json(&["profile", "show", "server"]);
    profile["name"] = "web-internal".into();
    profile["san"]["allowed_domains"] = serde_json::json!(["corp.example"]);
    std::fs::write(node.work().join("p.json"), profile.to_string()).unwrap();
    node.ok(&["profile", "create", "--file", "p.json"]);
    assert_eq!(
        node.cli(&["profile", "create", "--file", "p.json"]).status.code(),
        Some(5)
    );

    node.ok(&["csr", "outside", "--cn", "www.other.org"]);
    let refused = node.cli(&["cert", "issue", "--csr", "outside.csr", "--profile", "web-internal"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("outside the allowed domains"),
        "{}",
        stderr(&refused)
    );

    profile["san"]["allowed_domains"] = serde_json::json!(["other.org"]);
    std::fs::write(node.work().join("p.json"), profile.to_string()).unwrap();
    node.ok(&["profile", "update", "--file", "p.json"]);
    node.ok(&["cert", "issue", "--csr", "outside.csr", "--profile", "web-internal"]);
}

#[test]
fn a_configured_node_starts_without_a_ca_until_one_is_created() {
    let node = Node::start_with_config("node_name = \"pki-1\"\ncrl_check_secs = 5");
    assert!(!node.ca_pem().exists(), "a configured node creates no CA by itself");
    node.ok(&["csr", "early", "--cn", "early.example.com"]);
    let refused = node.cli(&["cert", "issue", "--csr", "early.csr", "--profile", "server"]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("hapki ca init"),
        "the error says what to do: {}",
        stderr(&refused)
    );

    let ca = node.json(&[
        "ca",
        "init",
        "--cn",
        "Example Root",
        "--subject",
        "O=Example",
        "--key",
        "ec-p384",
    ]);
    assert_eq!(ca["default"], true);
    assert_eq!(ca["key_type"], "EC P-384");
    common::wait_for("ca.pem", std::time::Duration::from_secs(10), || node.ca_pem().exists());
    let cert = node.issue("web", "server", &["CN:web.example.com"]);
    let (ok, out) = common::openssl(
        node.work(),
        &[
            "verify",
            "-CAfile",
            node.ca_pem().to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    std::fs::write(node.work().join("bad.toml"), "listne = \"127.0.0.1:1\"\n").unwrap();
    let bad = node.cli(&["server", "--config", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("listne"),
        "the error names the bad field: {}",
        stderr(&bad)
    );
}

#[test]
fn client_settings_come_from_the_config_file_and_a_failover_list() {
    let node = Node::start();
    let config_dir = node.work().join(".config/hapki");
    std::fs::create_dir_all(&config_dir).unwrap();
    // The first URL refuses connections; the CLI moves on to the second.
    let dead = format!("https://127.0.0.1:{}", common::free_port());
    std::fs::write(
        config_dir.join("config.toml"),
        format!(
            "url = \"{dead},{}\"\ntoken = \"{}\"\nca_cert = \"{}\"\noutput = \"json\"\n",
            node.url(),
            node.token,
            node.api_ca().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::HAPKI)
        .args(["ca", "list"])
        .current_dir(node.work())
        .env("HOME", node.work())
        .env_remove("HAPKI_URL")
        .env_remove("HAPKI_TOKEN")
        .env_remove("HAPKI_CA_CERT")
        .env_remove("HAPKI_OUTPUT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["issuers"].as_array().unwrap().len(), 1);

    let unreachable = std::process::Command::new(common::HAPKI)
        .args(["--url", &dead, "ca", "list"])
        .current_dir(node.work())
        .env("HOME", node.work())
        .env("HAPKI_RETRY_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(6), "{}", stderr(&unreachable));
}

#[test]
fn cluster_info_shows_the_node_and_what_is_replicated() {
    let node = Node::start();
    let info = node.json(&["cluster", "info"]);
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "a dev node is a one-member cluster: {info}");
    assert_eq!(nodes[0]["role"], "leader");
    assert_eq!(nodes[0]["id"], info["node_id"]);
    assert_eq!(info["digest"], node.digest().0.as_str());
    assert!(info["replicated"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("profiles")));
    assert!(info["node_local"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("unseal.key")));
    let table = node.ok(&["cluster", "nodes", "list"]);
    assert!(table.starts_with("ID") && table.contains("leader"), "{table}");
}

#[test]
fn a_retry_with_the_same_idempotency_key_returns_the_first_certificate() {
    let node = Node::start();
    node.ok(&["csr", "idem", "--cn", "idem.example.com"]);
    let csr = std::fs::read_to_string(node.work().join("idem.csr")).unwrap();
    let client = node.http_client();
    let post = |token: &str, key: &str| {
        let resp = client
            .post(format!("{}/v1/certs", node.url()))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"csr": csr, "profile": "server"}))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        resp.json::<serde_json::Value>().unwrap()
    };
    let first = post(&node.token, "retry-1");
    let (_, count) = node.digest();
    let again = post(&node.token, "retry-1");
    assert_eq!(
        again["serial"], first["serial"],
        "a retry must return the first certificate"
    );
    assert_eq!(again["certificate"], first["certificate"]);
    assert_eq!(node.digest().1, count, "a retry must not issue a second certificate");
    assert_ne!(post(&node.token, "retry-2")["serial"], first["serial"]);

    // Keys are per token: another client's equal key is another request.
    let other = node.json(&["token", "create", "--role", "requester"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(post(&other, "retry-1")["serial"], first["serial"]);

    // A generated key is not kept, so a replay of `generate` is refused rather than answered without it.
    let generate = |key: &str| {
        client
            .post(format!("{}/v1/certs/generate", node.url()))
            .bearer_auth(&node.token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"common_name": "gen.example.com", "profile": "server"}))
            .send()
            .unwrap()
    };
    assert_eq!(generate("gen-1").status().as_u16(), 201);
    let replay = generate("gen-1");
    assert_eq!(replay.status().as_u16(), 409);
    assert!(replay.text().unwrap().contains("not kept"));
}

/// An output file that exists (without `--force`) or sits in a missing directory is
/// refused before the request: nothing is issued, no key is generated and lost, and
/// no empty file is left behind. With `--force` the file is replaced.
#[test]
fn output_files_are_checked_before_anything_is_issued() {
    let node = Node::start();
    let work = node.work();
    node.ok(&["csr", "out", "--cn", "out.example.com", "--san", "out.example.com"]);
    std::fs::write(work.join("taken.pem"), "keep me").unwrap();
    std::fs::write(work.join("taken.key"), "keep me").unwrap();
    let (digest, count) = node.quiet_digest();

    let refused = |args: &[&str], needle: &str| {
        let out = node.cli(args);
        assert_eq!(out.status.code(), Some(2), "hapki {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "hapki {args:?}: {}", stderr(&out));
    };
    let issue = ["cert", "issue", "--csr", "out.csr", "--profile", "server", "--out"];
    refused(
        &[&issue[..], &["taken.pem"]].concat(),
        "taken.pem exists; remove it or pass --force",
    );
    refused(
        &[&issue[..], &["no/such/dir/x.pem"]].concat(),
        "cannot write no/such/dir/x.pem",
    );
    let generate = [
        "cert",
        "generate",
        "--cn",
        "gen.example.com",
        "--profile",
        "server",
        "--out",
    ];
    refused(&[&generate[..], &["taken"]].concat(), "taken.key exists");
    refused(
        &[&generate[..], &["no/such/dir/gen"]].concat(),
        "cannot write no/such/dir/gen.key",
    );
    // The same request as a PKCS#12 file: everything before --out, then the format.
    let p12 = [&generate[..generate.len() - 1], &["--format", "pkcs12"]].concat();
    std::fs::write(work.join("p.p12"), "keep me").unwrap();
    refused(&[&p12[..], &["--out", "p"]].concat(), "p.p12 exists");
    refused(
        &["ca", "init", "--intermediate", "--cn", "Sub", "--csr-out", "taken.pem"],
        "taken.pem exists",
    );

    assert_eq!(node.digest(), (digest, count), "a refused output changed the store");
    assert_eq!(std::fs::read_to_string(work.join("taken.pem")).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(work.join("taken.key")).unwrap(), "keep me");

    // A request the server refuses leaves no empty file behind.
    let out = node.cli(&[
        "cert",
        "issue",
        "--csr",
        "out.csr",
        "--profile",
        "nope",
        "--out",
        "nope.pem",
    ]);
    assert!(!out.status.success());
    assert!(!work.join("nope.pem").exists(), "an empty output file was left");

    // --force replaces the file with the certificate.
    node.ok(&[&issue[..], &["taken.pem", "--force"]].concat());
    let pem = std::fs::read_to_string(work.join("taken.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(node.digest().1, count + 1);
}

#[test]
fn generated_files_are_named_as_given_and_passwords_come_from_files() {
    let node = Node::start();
    let work = node.work();
    std::fs::write(work.join("p12.pass"), "s3cret-from-a-file\n").expect("password file");
    node.ok(&[
        "cert",
        "generate",
        "--cn",
        "gen.example.com",
        "--profile",
        "server",
        "--format",
        "pkcs12",
        "--out",
        "gen.p12",
        "--password-file",
        "p12.pass",
    ]);
    assert!(work.join("gen.p12").exists() && !work.join("gen.p12.p12").exists());
    let (ok, out) = common::openssl(
        work,
        &[
            "pkcs12",
            "-in",
            "gen.p12",
            "-passin",
            "pass:s3cret-from-a-file",
            "-nokeys",
            "-noout",
        ],
    );
    assert!(ok, "the PKCS#12 file opens with the password from the file: {out}");
    node.ok(&[
        "cert",
        "generate",
        "--cn",
        "web.example.com",
        "--profile",
        "server",
        "--out",
        "web.pem",
    ]);
    assert!(work.join("web.pem").exists() && work.join("web.key").exists() && !work.join("web.pem.pem").exists());

    // fulljoin names the flag that is missing, not the one that was given.
    let out = node.cli(&[
        "cluster",
        "fulljoin",
        "--member",
        &node.url(),
        "--newnode",
        "https://127.0.0.1:1",
        "--newnode-token-file",
        "p12.pass",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --newnode-ca-cert"), "{}", stderr(&out));
}

#[test]
fn a_client_piped_into_a_reader_that_stops_ends_quietly() {
    let node = Node::start();
    let mut child = std::process::Command::new(common::HAPKI)
        .args(["profile", "list"])
        .current_dir(node.work())
        .env("HAPKI_URL", node.url())
        .env("HAPKI_CA_CERT", node.api_ca())
        .env("HAPKI_TOKEN", &node.token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hapki");
    // As `| head -1` does, long before the answer arrives: the read end is gone.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
