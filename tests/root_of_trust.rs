//! Roots of trust in a running cluster, with SoftHSM2 as the token: nodes on
//! key files and a node on PKCS#11 in one cluster, a node that starts sealed
//! (its token refuses the PIN) and unseals by itself once the PIN file is
//! right, and a running node moved from its key file to a token.

mod common;

use std::time::Duration;

use common::{softhsm, stderr, stdout, wait_for, Cluster, Node};
use serde_json::Value;

/// `GET /v1/sys/health` on the plain-HTTP listener (what a load balancer asks): status, body.
fn health(node: &Node) -> (u16, Value) {
    let resp = node
        .http_client()
        .get(format!("{}/v1/sys/health", node.http_url()))
        .send()
        .expect("health");
    let status = resp.status().as_u16();
    (status, resp.json().expect("health body"))
}

/// The row of `cluster summary --output json` (asked of `asked`) for `node`.
fn summary_row(asked: &Node, node: &Node) -> (Value, String) {
    let v = asked.json(&["cluster", "summary"]);
    let id = node.id();
    let row = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|r| r["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("node {id} is not in the summary: {v}"));
    (row, v["overall"].as_str().unwrap_or_default().to_string())
}

#[test]
fn key_files_and_a_token_in_one_cluster_a_sealed_node_and_a_migration() {
    softhsm::init_token("hapki-b");
    softhsm::init_token("hapki-c");
    let pin_b = softhsm::pin_file("pin-b", softhsm::USER_PIN);
    let b_root = softhsm::config("hapki-b", &pin_b);
    let extra = |i: usize| match i {
        0 => "init_root_ca = true\n".to_string(),
        1 => b_root.clone(),
        _ => String::new(),
    };
    let mut cluster = Cluster::start_each(3, extra, |_, _| {});
    cluster.converged(Duration::from_secs(60));

    // A weaker token, made before the writes below: a sealed node
    // checks tokens against the state it had when it stopped (it does not replicate).
    let requester = cluster.nodes[0].json(&["token", "create", "--role", "requester"])["token"]
        .as_str()
        .expect("token")
        .to_string();
    // Every node issues, whatever seals its KEK.
    for (i, node) in cluster.nodes.iter().enumerate() {
        node.issue(&format!("web{i}"), "server", &[&format!("CN:web{i}.example.com")]);
    }
    let kinds: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            summary_row(&cluster.nodes[0], n).0["root_of_trust"]
                .as_str()
                .unwrap_or("-")
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["file", "pkcs11", "file"]);
    let b_id = cluster.nodes[1].id();
    let got = cluster.nodes[2].ok(&["cluster", "nodes", "get", "--id", &b_id]);
    assert!(got.contains("root of trust  pkcs11"), "{got}");
    let table = cluster.nodes[0].ok(&["cluster", "summary"]);
    assert!(table.contains("ROOT OF TRUST"), "{table}");

    // Node b keeps no key file; its wrapping key is on the token, sensitive, never extractable.
    assert!(!cluster.nodes[1].data().join("unseal.key").exists());
    assert!(cluster.nodes[0].data().join("unseal.key").exists());
    let keys = softhsm::secret_keys("hapki-b");
    assert!(keys.contains("label:      hapki-root-of-trust"), "{keys}");
    assert!(
        keys.contains("sensitive, always sensitive, never extractable"),
        "{keys}"
    );
    assert!(!keys.contains("wrap"), "the key encrypts and decrypts only: {keys}");

    cluster.converged(Duration::from_secs(60));

    // b restarts with a PIN the token refuses: it starts sealed.
    std::fs::write(&pin_b, "0000\n").expect("write the wrong PIN");
    cluster.nodes[1].restart();
    let (status, body) = health(&cluster.nodes[1]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "sealed", "{body}");
    assert!(
        body["reason"].as_str().unwrap_or_default().contains("refused the PIN"),
        "{body}"
    );
    assert!(
        cluster.nodes[1].log().contains("is sealed"),
        "{}",
        cluster.nodes[1].log()
    );
    let (row, overall) = summary_row(&cluster.nodes[0], &cluster.nodes[1]);
    assert_eq!(row["status"], "sealed", "{row}");
    assert_eq!(row["root_of_trust"], "pkcs11", "{row}");
    assert!(
        row["reason"].as_str().unwrap_or_default().contains("refused the PIN"),
        "{row}"
    );
    assert!(overall.contains("is sealed"), "{overall}");

    // It serves nothing that needs a key, with a 503 that says why, and changes nothing.
    let sealed = &cluster.nodes[1];
    let out = sealed.cli(&["csr", "sealed", "CN:sealed.example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let once = [("HAPKI_RETRY_SECS", "0")];
    let issue = [
        "cert",
        "issue",
        "--csr",
        "sealed.csr",
        "--profile",
        "server",
        "--out",
        "sealed.pem",
    ];
    let out = sealed.cli_with_env(&issue, Some(&sealed.token), &once);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("(sealed)"), "{}", stderr(&out));
    assert!(!sealed.work().join("sealed.pem").exists());
    let crl = sealed
        .http_client()
        .get(format!("{}/v1/crl.pem", sealed.http_url()))
        .send()
        .expect("publication");
    assert_eq!(crl.status().as_u16(), 503);
    let body: Value = crl.json().expect("error body");
    assert_eq!(body["error"]["code"], "sealed", "{body}");
    // The other two serve meanwhile.
    cluster.nodes[0].issue("while-sealed", "server", &["CN:while-sealed.example.com"]);

    // `node unseal` needs a token that may manage the cluster; with the PIN still wrong it fails.
    let out = sealed.cli_with_token(&["node", "unseal"], Some(&requester));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("may not manage the cluster"), "{}", stderr(&out));
    let out = sealed.cli_with_token(&["node", "unseal"], Some("hapki_not-a-token"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = sealed.cli_with_env(&["node", "unseal"], Some(&sealed.token), &once);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused the PIN"), "{}", stderr(&out));

    // The right PIN back in its file: the node unseals by itself and catches up.
    std::fs::write(&pin_b, format!("{}\n", softhsm::USER_PIN)).expect("write the PIN");
    wait_for("node b to unseal by itself", Duration::from_secs(45), || {
        health(&cluster.nodes[1]).0 == 200
    });
    let status = cluster.nodes[1].json(&["cluster", "status"]);
    let history: Vec<&str> = status["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["sealed", "ready"], "{status}");
    cluster.converged(Duration::from_secs(60));
    cluster.nodes[1].issue("after-unseal", "server", &["CN:after-unseal.example.com"]);

    // Node c moves from its key file to a token while it runs. Weaker tokens and bad input first.
    let c = &cluster.nodes[2];
    let pin_c = softhsm::pin_file("pin-c", softhsm::USER_PIN);
    let module = softhsm::module().display().to_string();
    let pin_c_arg = pin_c.display().to_string();
    let to_pkcs11 = |module: &str, token: &str| -> Vec<String> {
        let args = [
            "node",
            "migrate-root-of-trust",
            "--to",
            "pkcs11",
            "--module",
            module,
            "--token-label",
            token,
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--pin-file".to_string(), pin_c_arg.clone()]);
        args
    };
    let refused = |args: &[String], token: Option<&str>, exit: i32, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = c.cli_with_token(&args, token);
        assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    };
    let migrate = to_pkcs11(&module, "hapki-c");
    refused(&migrate, Some(&requester), 4, "may not manage the cluster");
    let incomplete = &migrate[..6];
    refused(incomplete, Some(&c.token), 2, "needs --token-label");
    refused(
        &to_pkcs11("/nonexistent/module.so", "hapki-c"),
        Some(&c.token),
        2,
        "is not a file",
    );
    refused(
        &to_pkcs11(&module, "no-such-token"),
        Some(&c.token),
        2,
        "nothing was changed",
    );
    let to_file = ["node", "migrate-root-of-trust", "--to", "file"].map(String::from);
    refused(&to_file, Some(&c.token), 2, "already sealed");
    assert!(
        c.data().join("unseal.key").exists(),
        "a refused migration changes nothing"
    );

    let migrate: Vec<&str> = migrate.iter().map(String::as_str).collect();
    let moved = c.json(&migrate);
    assert_eq!(
        moved["removed"].as_str(),
        Some(c.data().join("unseal.key").display().to_string().as_str()),
        "{moved}"
    );
    assert!(!c.data().join("unseal.key").exists(), "the old key file is removed");
    assert!(softhsm::secret_keys("hapki-c").contains("never extractable"));
    assert_eq!(summary_row(&cluster.nodes[0], c).0["root_of_trust"], "pkcs11");
    c.issue("after-migration", "server", &["CN:after-migration.example.com"]);
    // Its node.toml names no root of trust: it starts from what the data directory records.
    cluster.nodes[2].restart();
    wait_for("node c to serve again", Duration::from_secs(30), || {
        health(&cluster.nodes[2]).0 == 200
    });
    cluster.converged(Duration::from_secs(60));
    let c = &cluster.nodes[2];
    assert_eq!(summary_row(&cluster.nodes[1], c).0["root_of_trust"], "pkcs11");
    let out = c.cli(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("digest"), "{}", stdout(&out));
}
