//! Clusters of real `hapki` processes on loopback ports, formed as an operator
//! would (`cluster new`, then `cluster fulljoin`): any node serves any request,
//! a late node joins through all five phases, a stopped node catches up, and
//! nodes are removed, reset and joined again.

mod common;

use std::time::Duration;

use common::{openssl, serial_of, stderr, stdout, wait_for, Cluster, Node};

/// The phases a join printed, in order, from the CLI's output.
fn phases(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("joining: ") || *l == "ready")
        .map(str::to_string)
        .collect()
}

const ALL_PHASES: [&str; 6] = [
    "joining: creating (1/5)",
    "joining: bootstrapping (2/5)",
    "joining: initial sync (3/5)",
    "joining: catching up (4/5)",
    "joining: completing (5/5)",
    "ready",
];

fn ocsp_status(node: &Node, issuer: &std::path::Path, cert: &std::path::Path) -> String {
    let (ok, text) = openssl(
        node.work(),
        &[
            "ocsp",
            "-issuer",
            &issuer.display().to_string(),
            "-cert",
            &cert.display().to_string(),
            "-url",
            &format!("{}/ocsp", node.http_url()),
            "-CAfile",
            &issuer.display().to_string(),
        ],
    );
    assert!(ok, "openssl ocsp against {}: {text}", node.http_url());
    text
}

#[test]
fn three_nodes_formed_with_fulljoin_serve_any_request() {
    let mut cluster = Cluster::start(1, "");
    let out = cluster.add("");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(phases(&out), ALL_PHASES, "{}", stderr(&out));
    let out = cluster.add("");
    assert!(out.status.success(), "{}", stderr(&out));

    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let nodes = a.json(&["cluster", "nodes", "list"]);
    let roles: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{nodes}");
    assert_eq!(roles.iter().filter(|r| **r == "voter").count(), 2, "{nodes}");

    // Every node took the cluster's credentials: the admin token works on each, and each
    // node's API certificate now chains to the cluster's internal CA.
    for n in [a, b, c] {
        assert_eq!(n.json(&["cluster", "status"])["status"], "ready");
        assert_eq!(
            std::fs::read(n.api_ca()).unwrap(),
            std::fs::read(a.api_ca()).unwrap(),
            "api-ca.pem differs on {}",
            n.url()
        );
    }

    // A CA made through a follower reaches every node, and every node can sign with it.
    b.ok(&["ca", "init", "--cn", "Cluster Root"]);
    let mut certs = Vec::new();
    for (i, n) in [a, b, c].iter().enumerate() {
        wait_for("ca.pem on every node", Duration::from_secs(10), || n.ca_pem().exists());
        let name = format!("web{i}");
        let cert = n.issue(&name, "server", &[&format!("CN:{name}.example.com")]);
        certs.push((i, serial_of(n.work(), &cert), cert));
    }
    for (i, serial, _) in &certs {
        for (j, n) in [a, b, c].iter().enumerate() {
            if i != &j {
                // A consistent read goes through the leader: it sees the write at once.
                let v = n.json(&["cert", "get", serial, "--consistent"]);
                assert_eq!(v["status"], "valid", "certificate from node {i} on node {j}: {v}");
            }
        }
    }

    // A revocation on one node shows in OCSP on every node, and in the CRL the answer names,
    // which the leader built (the CRL owner) and every node serves.
    let (_, serial, cert) = &certs[0];
    let leader = a.json(&["cluster", "info"])["leader"].as_str().unwrap().to_string();
    let taker = [b, c].into_iter().find(|n| n.id() != leader).unwrap();
    let revoked = taker.json(&["cert", "revoke", serial, "--reason", "keyCompromise"]);
    let number = revoked["crl_number"].as_u64().expect("crl number");
    for n in [a, b, c] {
        wait_for("the revocation on every node", Duration::from_secs(10), || {
            ocsp_status(n, &a.ca_pem(), cert).contains(": revoked")
        });
        let crl = n.work().join("latest.crl.pem");
        wait_for("the CRL on every node", Duration::from_secs(10), || {
            let (_, pem) = n.get_ok(&format!("{}/v1/crl.pem", n.http_url()));
            std::fs::write(&crl, pem).unwrap();
            let (ok, text) = openssl(n.work(), &["crl", "-noout", "-text", "-in", "latest.crl.pem"]);
            let crl_number = text
                .lines()
                .skip_while(|l| !l.contains("CRL Number"))
                .nth(1)
                .and_then(|l| l.trim().parse::<u64>().ok());
            ok && text.to_lowercase().contains(&serial.to_lowercase()) && crl_number >= Some(number)
        });
    }
    // Each node signed its own copy from its replica: every signature checks out, and a CRL
    // number lists the same entries on every node.
    let mut listings = std::collections::BTreeMap::new();
    for n in [a, b, c] {
        let ca = a.ca_pem();
        let (ok, text) = openssl(
            n.work(),
            &[
                "crl",
                "-noout",
                "-text",
                "-in",
                "latest.crl.pem",
                "-CAfile",
                ca.to_str().unwrap(),
            ],
        );
        assert!(ok && text.contains("verify OK"), "node {}: {text}", n.id());
        let number = text
            .lines()
            .skip_while(|l| !l.contains("CRL Number"))
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        let serials: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
            .map(str::to_string)
            .collect();
        if let Some(first) = listings.insert(number.clone(), serials.clone()) {
            assert_eq!(first, serials, "CRL {number} lists other entries on node {}", n.id());
        }
    }

    cluster.converged(Duration::from_secs(20));
    let summary = b.json(&["cluster", "summary"]);
    assert_eq!(summary["overall"], "GOOD", "{summary}");
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 3);
    let table = b.ok(&["cluster", "summary"]);
    assert!(table.contains("LAG BYTES") && table.contains("GOOD"), "{table}");
}

#[test]
fn a_node_joins_after_ten_thousand_certificates_and_a_stopped_node_catches_up() {
    // Snapshots every 2,000 entries, so the late node's initial sync is a snapshot install.
    // Raft timings for a debug build sharing two cores with other tests: 100 ms heartbeats
    // (openraft's timeout for each AppendEntries too) are missed there while a node catches
    // up on thousands of entries, and the elections that follow keep it from catching up.
    let extra = "contact_alarm_secs = 2\n[raft]\nsnapshot_every = 2000\nheartbeat_ms = 300\n\
                 election_timeout_min_ms = 1000\nelection_timeout_max_ms = 2000";
    let mut cluster = Cluster::start(3, extra);
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Cluster Root"]);
    let out = a.cli(&["bench", "issue", "--requests", "10000", "--concurrency", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.digest().1, 10_000);

    let out = cluster.add(extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(phases(&out), ALL_PHASES, "{}", stderr(&out));
    let late = &cluster.nodes[3];
    let info = late.json(&["cluster", "info"]);
    let role = info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == late.id())
        .map(|n| n["role"].clone());
    assert_eq!(
        role,
        Some("learner".into()),
        "a fourth node beyond the 3-voter target is a learner: {info}"
    );
    let out = late.cli(&["cluster", "settings", "--voters-target", "4"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = late.json(&["cluster", "settings", "--voters-target", "5"]);
    assert_eq!(v["promoted"], serde_json::json!([late.id()]), "{v}");
    assert_eq!(v["voters_target"], 5);
    let digest = cluster.converged(Duration::from_secs(60));
    assert_eq!(late.digest(), (digest, 10_000));

    // Stop a voter, issue 1,000 more, start it again: it catches up by itself.
    cluster.nodes[2].kill9();
    let stopped = cluster.nodes[2].id();
    // The leader raises an alarm once the stopped node has been silent too long, and the
    // summary turns BAD.
    wait_for("the leader's alarm", Duration::from_secs(20), || {
        cluster
            .nodes
            .iter()
            .any(|n| n.log().contains(&format!("alarm: no contact with node {stopped}")))
    });
    let summary = cluster.nodes[0].json(&["cluster", "summary"]);
    assert!(summary["overall"].as_str().unwrap().starts_with("BAD: "), "{summary}");
    assert!(summary["overall"].as_str().unwrap().contains("is down"), "{summary}");
    let out = cluster.nodes[1].cli(&["bench", "issue", "--requests", "1000", "--concurrency", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cluster.nodes[2].restart();
    let digest = cluster.converged(Duration::from_secs(60));
    assert_eq!(cluster.nodes[2].digest(), (digest, 11_000));
}

#[test]
fn nodes_are_removed_from_another_node_reset_and_joined_again() {
    let mut cluster = Cluster::start(3, "");
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let gone = cluster.nodes[2].id();

    // A node cannot remove itself; the message says what to do.
    let out = a.cli(&["cluster", "nodes", "delete", "--id", &a.id()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot remove itself"), "{}", stderr(&out));

    // Still a member: `cluster delete` refuses to reset it.
    let out = cluster.nodes[2].cli(&["cluster", "delete", "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("still a member"), "{}", stderr(&out));

    let v = b.json(&["cluster", "nodes", "delete", "--id", &gone]);
    assert_eq!(v["removed"], gone.as_str());
    let listed = a.ok(&["cluster", "nodes", "list"]);
    assert!(!listed.contains(&gone), "{listed}");

    // Reset it: a new id, not clustered, a new bootstrap token.
    let out = cluster.nodes[2].cli(&["cluster", "delete", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let removed = cluster.nodes.pop().unwrap();
    wait_for("the reset node to come back fresh", Duration::from_secs(30), || {
        removed.data().join("bootstrap-token").exists()
            && removed.id() != gone
            && removed.log().matches(" is ready").count() >= 2
    });
    assert!(removed.log().contains("is ready (not clustered)"), "{}", removed.log());

    let out = cluster.join(removed, 1);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    cluster.converged(Duration::from_secs(30));
    let listed = cluster.nodes[0].json(&["cluster", "nodes", "list"]);
    assert_eq!(listed["nodes"].as_array().unwrap().len(), 3, "{listed}");
}

#[test]
fn joins_that_cannot_work_are_refused_and_leave_the_cluster_as_it_was() {
    let mut cluster = Cluster::start(1, "");
    let a = &cluster.nodes[0];
    let before = a.digest();

    // A wrong bootstrap token.
    let fresh = Node::start_fresh("");
    let out = fresh.cli_with_token(&["cluster", "csr"], Some("hbt_wrong"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("bootstrap-token"), "{}", stderr(&out));

    // A CSR that is not a node's: refused by `nodes create`.
    a.ok(&["csr", "plain", "CN:plain.example.com"]);
    let out = a.cli(&["cluster", "nodes", "create", "--csr", "plain.csr"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a node CSR"), "{}", stderr(&out));

    // A certificate signed for another node.
    let out = fresh.cli_with_token(
        &["cluster", "csr", "--out", "fresh.csr"],
        Some(&fresh.bootstrap_token()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let other = Node::start_fresh("");
    let out = other.cli_with_token(
        &["cluster", "csr", "--out", "other.csr"],
        Some(&other.bootstrap_token()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::copy(other.work().join("other.csr"), a.work().join("other.csr")).unwrap();
    a.ok(&["cluster", "nodes", "create", "--csr", "other.csr", "--out", "other.pem"]);
    std::fs::copy(a.work().join("other.pem"), fresh.work().join("other.pem")).unwrap();
    let out = fresh.cli_with_token(
        &[
            "cluster",
            "join",
            "--member",
            &a.channel_addr(),
            "--cert",
            "other.pem",
            "--yes",
        ],
        Some(&fresh.bootstrap_token()),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not for this node"), "{}", stderr(&out));

    // Without --yes and without a terminal, join asks for --yes and changes nothing.
    let out = fresh.cli_with_token(
        &["cluster", "join", "--member", &a.channel_addr(), "--cert", "other.pem"],
        Some(&fresh.bootstrap_token()),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));

    // A node of another major version: the member refuses it at bootstrapping, the node ends
    // `killed` with the reason, and the cluster is unharmed.
    let newer = Node::start_fresh_with_env("", &[("HAPKI_TEST_ANNOUNCED_VERSION", "9.0.0")]);
    let out = cluster.join(newer, 0);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("major versions must match"), "{}", stderr(&out));
    let newer = cluster.nodes.last().unwrap();
    let status = newer.json(&["cluster", "status"]);
    assert_eq!(status["status"], "killed", "{status}");
    let a = &cluster.nodes[0];
    assert_eq!(
        a.json(&["cluster", "nodes", "list"])["nodes"].as_array().unwrap().len(),
        1
    );
    assert_eq!(a.digest().1, before.1);
    let summary = a.json(&["cluster", "summary"]);
    assert_eq!(summary["overall"], "GOOD", "{summary}");

    // The only member of a cluster is not reset without --force: that would destroy the cluster.
    let out = a.cli(&["cluster", "delete", "--yes"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("only member"), "{}", stderr(&out));

    // A node not clustered answers only the cluster routes.
    let out = fresh.cli_with_token(&["cert", "list"], Some(&fresh.bootstrap_token()));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not clustered"), "{}", stderr(&out));
}
