//! The expiry tidy in a three-node cluster, as an operator runs it: short-lived certificates
//! expire, some revoked; `hapki tidy run` on a follower removes them in batches through the
//! log while another node keeps issuing; every node ends with the same state, and each
//! node's CRL no longer lists the expired revoked ones.

mod common;

use std::time::Duration;

use common::{openssl, stderr, Cluster};

#[test]
fn a_tidy_under_concurrent_issuance_leaves_every_node_with_the_same_state() {
    let cluster = Cluster::start(3, "");
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    a.ok(&["ca", "init", "--cn", "Tidy Root"]);
    let out = a.cli(&[
        "bench",
        "issue",
        "--requests",
        "300",
        "--concurrency",
        "8",
        "--ttl",
        "3s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = a.json(&["cert", "list", "--limit", "3"]);
    let revoked: Vec<String> = listed["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    for serial in &revoked {
        a.ok(&["cert", "revoke", serial, "--reason", "superseded"]);
    }
    let v = a.json(&[
        "cluster",
        "settings",
        "--tidy-retention",
        "0",
        "--tidy-batch",
        "40",
        "--tidy-share",
        "50",
    ]);
    assert_eq!(
        (v["tidy_retention_secs"].as_u64(), v["tidy_batch"].as_u64()),
        (Some(0), Some(40)),
        "{v}"
    );
    for serial in &revoked {
        assert!(
            crl_text(a).contains(&serial.to_ascii_lowercase()),
            "the CRL lists {serial} first"
        );
    }
    std::thread::sleep(Duration::from_secs(4));
    let status = b.json(&["tidy", "status"]);
    assert_eq!(status["pending"], 300, "{status}");
    assert!(status["last"].is_null(), "{status}");

    let issuing = {
        let (work, url, ca) = (c.work().to_path_buf(), c.url(), c.api_ca());
        let token = c.token.clone();
        std::thread::spawn(move || {
            common::client_cli(
                &work,
                &url,
                &ca,
                &token,
                &["bench", "issue", "--requests", "1500", "--concurrency", "8"],
            )
        })
    };
    let report = b.json(&["tidy", "run"]);
    let out = issuing.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        (
            report["removed"].as_u64(),
            report["revoked"].as_u64(),
            report["pending"].as_u64()
        ),
        (Some(300), Some(3), Some(0)),
        "{report}"
    );
    assert_eq!(report["batches"], 8, "300 in batches of 40: {report}");

    let digest = cluster.converged(Duration::from_secs(60));
    for node in &cluster.nodes {
        assert_eq!(node.digest(), (digest.clone(), 1500), "{}", node.url());
        let last = node.json(&["tidy", "status"])["last"].clone();
        assert_eq!(last["total_removed"], 300, "{last}");
    }
    for node in &cluster.nodes {
        let text = crl_text(node);
        for serial in &revoked {
            assert!(
                !text.contains(&serial.to_ascii_lowercase()),
                "{}: the CRL still lists {serial}:\n{text}",
                node.url()
            );
        }
    }
    let audit = a.json(&["audit", "list", "--action", "tidy_expired"]);
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 8, "{audit}");
    assert!(records.iter().all(|r| r["outcome"] == "applied"), "{audit}");
}

/// The node's CRL of the default issuer as `openssl crl -text` prints it, in lower case.
fn crl_text(node: &common::Node) -> String {
    let (_, der) = node.get_ok(&format!("{}/v1/crl", node.http_url()));
    std::fs::write(node.work().join("latest.crl"), der).unwrap();
    let (ok, text) = openssl(
        node.work(),
        &["crl", "-inform", "DER", "-in", "latest.crl", "-noout", "-text"],
    );
    assert!(ok, "{text}");
    text.to_ascii_lowercase()
}
