//! OCSP answers kept on every node of a cluster, and how fast a revocation reaches them:
//! nonce-less requests (as `openssl ocsp -no_nonce` sends them) are answered from the kept
//! answer on each node (its metrics count the hits), and after a revocation through one
//! node, every node's responder says `revoked` within a second.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{openssl, serial_of, Cluster, Node};

/// What `openssl ocsp -no_nonce` hears from `node` about `cert`.
fn status(node: &Node, ca: &Path, cert: &Path) -> String {
    let (ca, cert) = (ca.display().to_string(), cert.display().to_string());
    let url = format!("{}/ocsp", node.http_url());
    let (ok, text) = openssl(
        node.work(),
        &[
            "ocsp",
            "-no_nonce",
            "-issuer",
            &ca,
            "-cert",
            &cert,
            "-url",
            &url,
            "-CAfile",
            &ca,
        ],
    );
    assert!(ok, "openssl ocsp: {text}");
    ["good", "revoked", "unknown"]
        .into_iter()
        .find(|w| text.contains(&format!(": {w}")))
        .unwrap_or("unreadable")
        .to_string()
}

/// The OCSP answers `node` served from kept ones, from its metrics.
fn hits(node: &Node) -> u64 {
    let text = node
        .http_client()
        .get(format!("{}/metrics", node.http_url()))
        .send()
        .expect("GET /metrics")
        .text()
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("hapki_ocsp_responses_total{") && l.contains("cache=\"hit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn every_node_serves_kept_answers_and_says_revoked_within_a_second_of_a_revocation() {
    let cluster = Cluster::start(3, "metrics = true");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Freshness Root"]);
    let cert = a.issue("fresh", "server", &["CN:fresh.example.com"]);
    cluster.converged(Duration::from_secs(30));
    let ca = a.ca_pem();
    for node in &cluster.nodes {
        let before = hits(node);
        for _ in 0..3 {
            assert_eq!(status(node, &ca, &cert), "good", "{}", node.url());
        }
        assert!(
            hits(node) >= before + 2,
            "{} answered again from the kept answer",
            node.url()
        );
    }

    a.ok(&[
        "cert",
        "revoke",
        &serial_of(a.work(), &cert),
        "--reason",
        "keyCompromise",
    ]);
    let revoked_at = Instant::now();
    for node in &cluster.nodes {
        while status(node, &ca, &cert) != "revoked" {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "{} still says good 1 s after the revocation",
                node.url()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("every node said revoked within {:?}", revoked_at.elapsed());
}
