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

/// `node`'s metrics, in Prometheus text.
fn metrics(node: &Node) -> String {
    node.http_client()
        .get(format!("{}/metrics", node.http_url()))
        .send()
        .expect("GET /metrics")
        .text()
        .unwrap_or_default()
}

/// The sum over `node`'s lines of metric `name` that `keep` accepts.
fn sum(node: &Node, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
    metrics(node)
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && keep(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The OCSP answers `node` served from kept ones, from its metrics.
fn hits(node: &Node) -> u64 {
    sum(node, "hapki_ocsp_responses_total", |l| l.contains("cache=\"hit\"")) as u64
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

/// Sends `signal` (`STOP`, `CONT`) to `node`'s process.
fn signal(node: &Node, signal: &str) {
    let pid = node.pid().expect("a running node").to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{signal} {pid}");
}

#[test]
fn a_node_that_catches_up_by_a_snapshot_forgets_the_answers_it_kept() {
    // Snapshots every 200 entries, 100 kept below: a node paused through 1,500 writes is
    // sent one.
    let cluster = Cluster::start(
        3,
        "metrics = true\n[raft]\nsnapshot_every = 200\nkeep_below_snapshot = 100",
    );
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Snapshot Root"]);
    let cert = a.issue("kept", "server", &["CN:kept.example.com"]);
    cluster.converged(Duration::from_secs(30));
    let ca = a.ca_pem();
    let leader = a.json(&["cluster", "info"])["leader"].as_str().unwrap().to_string();
    let paused = cluster.nodes.iter().find(|n| n.id() != leader).unwrap();
    let writer = cluster.nodes.iter().find(|n| n.id() != paused.id()).unwrap();
    for _ in 0..2 {
        assert_eq!(status(paused, &ca, &cert), "good");
    }

    signal(paused, "STOP");
    writer.ok(&[
        "cert",
        "revoke",
        &serial_of(a.work(), &cert),
        "--reason",
        "keyCompromise",
    ]);
    let out = writer.cli(&["bench", "issue", "--requests", "1500", "--concurrency", "16"]);
    signal(paused, "CONT");
    assert!(out.status.success(), "{}", common::stderr(&out));
    cluster.converged(Duration::from_secs(60));
    assert!(
        sum(paused, "hapki_raft_snapshot_installs_total", |_| true) >= 1.0,
        "the paused node caught up by a snapshot"
    );
    assert_eq!(
        status(paused, &ca, &cert),
        "revoked",
        "a node must not serve an answer it kept from before the snapshot"
    );
}
