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
