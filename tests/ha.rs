//! High availability with real processes: health codes that follow the quorum,
//! the leader killed (`kill -9`) under a steady stream of issuance through every
//! node, and HAProxy (deploy/haproxy.cfg) in front of the cluster while a node
//! dies and comes back. Every request the clients saw succeed is one certificate,
//! and none is issued twice.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{stderr, wait_for, Cluster, Haproxy, Node, HAPKI};

/// The index of the node that leads, as node `asker` sees it.
fn leader(cluster: &Cluster, asker: usize) -> usize {
    let mut found = None;
    wait_for("a leader", Duration::from_secs(20), || {
        let info = cluster.nodes[asker].cli(&["--output", "json", "cluster", "info"]);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&info.stdout) else {
            return false;
        };
        let Some(id) = v["leader"].as_str() else { return false };
        found = cluster.nodes.iter().position(|n| n.id() == id);
        found.is_some()
    });
    found.unwrap()
}

/// `GET /v1/sys/health` on a node, with a query; returns the status and body.
fn health(node: &Node, query: &str) -> (u16, serde_json::Value) {
    let resp = node
        .http_client()
        .get(format!("{}/v1/sys/health{query}", node.url()))
        .send()
        .expect("health");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or_default())
}

/// `hapki cert issue` of `csr` against `urls` as a client would; `retry_secs` sets the CLI's
/// retry budget (its default when `None`).
fn issue_with_cli(
    work: &std::path::Path,
    urls: &str,
    ca: &std::path::Path,
    token: &str,
    csr: &str,
    retry_secs: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(HAPKI);
    cmd.args(["--output", "json", "cert", "issue", "--csr", csr, "--profile", "server"])
        .current_dir(work)
        .env("HOME", work)
        .env("HAPKI_URL", urls)
        .env("HAPKI_CA_CERT", ca)
        .env("HAPKI_TOKEN", token);
    if let Some(r) = retry_secs {
        cmd.env("HAPKI_RETRY_SECS", r);
    }
    cmd.output().expect("run hapki")
}

/// Issues with the CLI against `urls` (a failover list) until stopped; records every
/// outcome with its time.
struct Issuer {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<(Instant, bool, String)>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Issuer {
    fn start(node: &Node, urls: String, csr: &str, retry_secs: &str) -> Issuer {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (work, ca, token) = (node.work().to_path_buf(), node.api_ca(), node.token.clone());
        let (csr, retry) = (csr.to_string(), retry_secs.to_string());
        let handle = {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let out = issue_with_cli(&work, &urls, &ca, &token, &csr, Some(&retry));
                    let serial = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                        .ok()
                        .and_then(|v| v["serial"].as_str().map(str::to_string))
                        .unwrap_or_else(|| stderr(&out));
                    outcomes
                        .lock()
                        .unwrap()
                        .push((Instant::now(), out.status.success(), serial));
                }
            })
        };
        Issuer {
            stop,
            outcomes,
            handle: Some(handle),
        }
    }

    fn successes_after(&self, t: Instant) -> Vec<Instant> {
        let o = self.outcomes.lock().unwrap();
        o.iter()
            .filter(|(at, ok, _)| *ok && *at > t)
            .map(|(at, _, _)| *at)
            .collect()
    }

    fn finish(mut self) -> Vec<(Instant, bool, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// Every acknowledged certificate is on every node, once each.
fn check_no_loss(cluster: &Cluster, acknowledged: &[String], before: u64) {
    let unique: std::collections::BTreeSet<&String> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len(), "a serial was answered twice");
    let (_, count) = cluster.nodes[0].digest();
    assert_eq!(
        count,
        before + acknowledged.len() as u64,
        "every acknowledged request is exactly one certificate, and no other was issued"
    );
    for n in &cluster.nodes {
        for serial in acknowledged.iter().step_by(7) {
            let out = n.cli(&["cert", "get", serial]);
            assert!(
                out.status.success(),
                "{serial} missing on {}: {}",
                n.url(),
                stderr(&out)
            );
        }
    }
}

#[test]
fn health_answers_200_429_or_503_and_a_cut_off_node_refuses_writes_at_once() {
    let mut cluster = Cluster::start(3, "");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "HA Root"]);
    let cert = a.issue("web", "server", &["CN:web.example.com"]);
    let serial = common::serial_of(a.work(), &cert);
    cluster.converged(Duration::from_secs(20));
    for n in &cluster.nodes {
        let (code, body) = health(n, "");
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "ok");
    }

    // A fresh node is not ready.
    let fresh = Node::start_fresh("");
    let (code, body) = health(&fresh, "");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let (code, _) = health(&fresh, "?notreadycode=200");
    assert_eq!(code, 200);
    let (code, body) = health(&fresh, "?notreadycode=9000");
    assert_eq!(code, 400, "{body}");

    // Cut node 0 off from the majority: the two others stop.
    cluster.nodes[1].kill9();
    cluster.nodes[2].kill9();
    let a = &cluster.nodes[0];
    wait_for("429 from the node cut off", Duration::from_secs(20), || {
        health(a, "").0 == 429
    });
    let (_, body) = health(a, "");
    assert_eq!(body["status"], "no_quorum", "{body}");
    let (code, _) = health(a, "?noquorumcode=200");
    assert_eq!(code, 200);
    // It serves reads from its replica ...
    let v = a.json(&["cert", "get", &serial]);
    assert_eq!(v["status"], "valid");
    // ... and refuses writes with a clear error, at once rather than after a timeout.
    let started = Instant::now();
    let out = Command::new(HAPKI)
        .args(["cert", "revoke", &serial])
        .current_dir(a.work())
        .env("HOME", a.work())
        .env("HAPKI_URL", a.url())
        .env("HAPKI_CA_CERT", a.api_ca())
        .env("HAPKI_TOKEN", &a.token)
        .env("HAPKI_RETRY_SECS", "0")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("majority"), "{}", stderr(&out));

    // The others come back: writes resume, and the revocation never happened.
    cluster.nodes[1].restart();
    cluster.nodes[2].restart();
    let a = &cluster.nodes[0];
    wait_for("200 again", Duration::from_secs(30), || health(a, "").0 == 200);
    assert_eq!(a.json(&["cert", "get", &serial])["status"], "valid");
    a.ok(&["cert", "revoke", &serial]);
    cluster.converged(Duration::from_secs(20));
}

#[test]
fn writes_resume_on_the_survivors_when_the_leader_is_killed_twice() {
    let mut cluster = Cluster::start(3, "");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "HA Root"]);
    a.ok(&["csr", "load", "CN:load.example.com"]);
    let csr = a.work().join("load.csr").display().to_string();
    let before = a.digest().1;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();

    let mut acknowledged = Vec::new();
    for round in 0..2 {
        let victim = leader(&cluster, (round + 1) % 3);
        // The list starts with the leader, so every request meets the failover.
        let mut order = urls.clone();
        order.rotate_left(victim);
        let issuer = Issuer::start(&cluster.nodes[(victim + 1) % 3], order.join(","), &csr, "20");
        wait_for("steady issuance", Duration::from_secs(20), || {
            issuer.successes_after(Instant::now() - Duration::from_secs(60)).len() >= 5
        });
        let killed_at = Instant::now();
        cluster.nodes[victim].kill9();
        wait_for("an issuance on a survivor", Duration::from_secs(30), || {
            !issuer.successes_after(killed_at).is_empty()
        });
        let first = issuer.successes_after(killed_at)[0];
        eprintln!(
            "failover {round}: first issuance on a survivor {} ms after kill -9 of the leader",
            (first - killed_at).as_millis()
        );
        std::thread::sleep(Duration::from_secs(1));
        let outcomes = issuer.finish();
        let failed: Vec<&String> = outcomes.iter().filter(|(_, ok, _)| !ok).map(|(_, _, e)| e).collect();
        assert!(failed.is_empty(), "with retries no request fails: {failed:?}");
        acknowledged.extend(outcomes.into_iter().map(|(_, _, s)| s));
        cluster.nodes[victim].restart();
        cluster.converged(Duration::from_secs(30));
    }
    check_no_loss(&cluster, &acknowledged, before);
}

#[test]
fn haproxy_balances_over_the_cluster_and_a_client_retrying_gets_exactly_one_certificate_each_time() {
    let mut cluster = Cluster::start(3, "");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "HA Root"]);
    a.ok(&["csr", "load", "CN:load.example.com"]);
    let csr = a.work().join("load.csr").display().to_string();
    let before = a.digest().1;

    let haproxy = Haproxy::start(&cluster);
    let through = haproxy.api_url();
    // Round robin: requests land on every node.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..9 {
        let v: serde_json::Value = a
            .http_client()
            .get(format!("{through}/v1/sys/health"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        seen.insert(v["node_id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A client issues through HAProxy while a node dies and comes back.
    let client = a.http_client();
    let issuer = Issuer::start(a, through.clone(), &csr, "20");
    std::thread::sleep(Duration::from_secs(2));
    cluster.nodes[1].kill9();
    std::thread::sleep(Duration::from_secs(3));
    cluster.nodes[1].restart();
    std::thread::sleep(Duration::from_secs(3));
    let outcomes = issuer.finish();
    let failed: Vec<&String> = outcomes.iter().filter(|(_, ok, _)| !ok).map(|(_, _, e)| e).collect();
    assert!(
        failed.is_empty(),
        "with the CLI's retries every request succeeds: {failed:?}"
    );
    assert!(outcomes.len() >= 10, "{} requests", outcomes.len());
    let acknowledged: Vec<String> = outcomes.into_iter().map(|(_, _, s)| s).collect();
    cluster.converged(Duration::from_secs(30));
    check_no_loss(&cluster, &acknowledged, before);

    // Publication through HAProxy too.
    let crl = client
        .get(format!("http://127.0.0.1:{}/v1/crl.pem", haproxy.publication))
        .send()
        .unwrap();
    assert!(crl.status().is_success());
}

#[test]
fn sequential_serials_come_from_ranges_no_two_nodes_share() {
    let mut cluster = Cluster::start(3, "");
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Sequential Root"]);
    let v = a.json(&[
        "cluster",
        "settings",
        "--serial-mode",
        "sequential",
        "--serial-range",
        "10",
    ]);
    assert_eq!(v["serial_mode"], "sequential", "{v}");
    let out = a.cli(&["cluster", "settings", "--serial-mode", "counting"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    a.ok(&["csr", "load", "CN:load.example.com"]);
    let csr = a.work().join("load.csr").display().to_string();

    // Every node issues concurrently; each leases ranges of 10 as it goes.
    let issue_all = |cluster: &Cluster, per_node: usize| -> Vec<(usize, u64)> {
        let handles: Vec<_> = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (url, ca, token, work, csr) = (
                    n.url(),
                    n.api_ca(),
                    n.token.clone(),
                    n.work().to_path_buf(),
                    csr.clone(),
                );
                std::thread::spawn(move || {
                    (0..per_node)
                        .map(|_| {
                            let out = issue_with_cli(&work, &url, &ca, &token, &csr, None);
                            assert!(out.status.success(), "{}", stderr(&out));
                            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                            (i, u64::from_str_radix(v["serial"].as_str().unwrap(), 16).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    };
    let mut serials = issue_all(&cluster, 25);
    // A restarted node starts on a fresh range rather than reuse the one it had.
    cluster.nodes[1].restart();
    cluster.converged(Duration::from_secs(20));
    serials.extend(issue_all(&cluster, 5));

    let unique: std::collections::BTreeSet<u64> = serials.iter().map(|(_, s)| *s).collect();
    assert_eq!(unique.len(), serials.len(), "a serial was issued twice: {serials:?}");
    assert!(serials.iter().all(|(_, s)| *s >= 0x1000), "{serials:?}");
    // Ranges of 10 belong to one node each.
    let mut owner = std::collections::BTreeMap::new();
    for (node, s) in &serials {
        let range = (s - 0x1000) / 10;
        let first = *owner.entry(range).or_insert(*node);
        assert_eq!(
            first, *node,
            "range {range} was used by nodes {first} and {node}: {serials:?}"
        );
    }
    // Each node's numbers only increase.
    for node in 0..3 {
        let mine: Vec<u64> = serials.iter().filter(|(n, _)| *n == node).map(|(_, s)| *s).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "node {node}: {mine:?}");
    }
    cluster.converged(Duration::from_secs(20));
}
