//! Chaos: clients issue and revoke through every node while a driver kills and
//! restarts nodes (`kill -9`) and cuts and heals the links to them (a proxy in
//! front of each node's cluster channel). Afterwards a checker compares what the
//! clients were told with what every node holds: every acknowledged certificate
//! and revocation is on every node, no serial was answered twice, OCSP on every
//! node agrees with its store, the digests match, and CRL numbers only went up.
//! The checker is also fed a broken history, to show that it can fail.
//!
//! `CHAOS_SECS` sets the length (45 s by default; a soak run by hand takes longer).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{openssl, Cluster, FaultProxy, Node};

/// What the clients were told.
#[derive(Clone, Debug, Default)]
struct History {
    /// Serials of certificates acknowledged as issued, in the order they were answered.
    issued: Vec<String>,
    /// Serials whose revocation was acknowledged.
    revoked: Vec<String>,
}

/// What one node holds at the end.
#[derive(Clone, Debug, Default)]
struct NodeView {
    name: String,
    digest: String,
    /// Serial → status (`valid`, `revoked`, `expired`) in the node's replica.
    certs: BTreeMap<String, String>,
    /// Serial → OCSP answer of the node (`good`, `revoked`, `unknown`) for the serials checked.
    ocsp: BTreeMap<String, String>,
}

/// What the nodes hold, and the CRL numbers each node published over the run, in order.
#[derive(Clone, Debug, Default)]
struct Observations {
    nodes: Vec<NodeView>,
    crl_numbers: Vec<(String, Vec<u64>)>,
}

/// Everything wrong with a run; empty when the run kept every promise.
fn check(history: &History, seen: &Observations) -> Vec<String> {
    let mut problems = Vec::new();
    let mut unique = BTreeSet::new();
    for s in &history.issued {
        if !unique.insert(s) {
            problems.push(format!("serial {s} was answered twice"));
        }
    }
    for node in &seen.nodes {
        for s in &history.issued {
            if !node.certs.contains_key(s) {
                problems.push(format!("{}: acknowledged certificate {s} is missing", node.name));
            }
        }
        for s in &history.revoked {
            if node.certs.get(s).map(String::as_str) != Some("revoked") {
                problems.push(format!("{}: acknowledged revocation of {s} is missing", node.name));
            }
        }
        for (s, answer) in &node.ocsp {
            let expected = match node.certs.get(s).map(String::as_str) {
                Some("revoked") => "revoked",
                Some(_) => "good",
                None => "unknown",
            };
            if answer != expected {
                problems.push(format!(
                    "{}: OCSP says {answer} for {s}, its store says {expected}",
                    node.name
                ));
            }
        }
    }
    let digests: BTreeSet<&String> = seen.nodes.iter().map(|n| &n.digest).collect();
    if digests.len() > 1 {
        problems.push(format!("the nodes' digests differ: {digests:?}"));
    }
    for (node, numbers) in &seen.crl_numbers {
        for w in numbers.windows(2) {
            if w[1] < w[0] {
                problems.push(format!("{node}: the CRL number went back from {} to {}", w[0], w[1]));
            }
        }
    }
    problems
}

/// A tiny deterministic generator, seeded from the clock and printed, to replay a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn cli(work: &std::path::Path, urls: &str, ca: &std::path::Path, token: &str, args: &[&str]) -> (bool, String) {
    let out = common::client_cli(work, urls, ca, token, args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every certificate in a node's replica, with its status.
fn all_certs(node: &Node) -> BTreeMap<String, String> {
    let client = node.http_client();
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let url = format!("{}/v1/certs?limit=1000{after}", node.url());
        let v: serde_json::Value = client
            .get(url)
            .bearer_auth(&node.token)
            .send()
            .expect("list certs")
            .json()
            .expect("JSON");
        for c in v["certs"].as_array().expect("certs") {
            out.insert(
                c["serial"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            );
        }
        match v["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return out,
        }
    }
}

fn ocsp(node: &Node, ca: &std::path::Path, serial: &str) -> String {
    let (ok, text) = openssl(
        node.work(),
        &[
            "ocsp",
            "-issuer",
            &ca.display().to_string(),
            "-serial",
            &format!("0x{serial}"),
            "-url",
            &format!("{}/ocsp", node.http_url()),
            "-CAfile",
            &ca.display().to_string(),
        ],
    );
    assert!(ok, "openssl ocsp: {text}");
    ["good", "revoked", "unknown"]
        .into_iter()
        .find(|w| text.contains(&format!("0x{serial}: {w}")) || text.contains(&format!(": {w}")))
        .unwrap_or("unreadable")
        .to_string()
}

fn crl_number(node: &Node) -> Option<u64> {
    let pem = node
        .http_client()
        .get(format!("{}/v1/crl.pem", node.http_url()))
        .timeout(Duration::from_secs(2))
        .send()
        .ok()?
        .text()
        .ok()?;
    let path = node.work().join(format!("crl-{}.pem", std::process::id()));
    std::fs::write(&path, pem).ok()?;
    let (ok, text) = openssl(
        node.work(),
        &["crl", "-noout", "-crlnumber", "-in", &path.display().to_string()],
    );
    let hex = text.trim().strip_prefix("crlNumber=")?;
    ok.then(|| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())?
}

#[test]
fn acknowledged_writes_survive_kills_and_cut_links() {
    let secs: u64 = std::env::var("CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let proxies: Vec<FaultProxy> = (0..3).map(|_| FaultProxy::start()).collect();
    let mut cluster = Cluster::start_each(
        3,
        |i| format!("advertise = \"{}\"\ncontact_alarm_secs = 2", proxies[i].addr()),
        |i, node| proxies[i].set_target(node.channel_addr()),
    );
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Chaos Root"]);
    a.ok(&["csr", "load", "CN:load.example.com"]);
    let (work, ca_cert, token) = (a.work().to_path_buf(), a.api_ca(), a.token.clone());
    let issuer_pem = a.ca_pem();
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));

    // Three clients, each with the nodes in another order, issuing and revoking.
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let mut order = urls.clone();
            order.rotate_left(c);
            let (urls, work, ca, token) = (order.join(","), work.clone(), ca_cert.clone(), token.clone());
            let (stop, history) = (stop.clone(), history.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    if n % 4 == 0 && !mine.is_empty() {
                        let serial: String = mine.remove(0);
                        let (ok, _) = cli(
                            &work,
                            &urls,
                            &ca,
                            &token,
                            &["cert", "revoke", &serial, "--reason", "superseded"],
                        );
                        if ok {
                            history.lock().unwrap().revoked.push(serial);
                        }
                        continue;
                    }
                    let (ok, out) = cli(
                        &work,
                        &urls,
                        &ca,
                        &token,
                        &["cert", "issue", "--csr", "load.csr", "--profile", "server"],
                    );
                    if ok {
                        let v: serde_json::Value = serde_json::from_str(&out).expect("issue JSON");
                        let serial = v["serial"].as_str().expect("serial").to_string();
                        history.lock().unwrap().issued.push(serial.clone());
                        mine.push(serial);
                    }
                }
            })
        })
        .collect();

    // CRL numbers as every node publishes them, sampled through the run.
    let crl_samples: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); 3]));

    // The driver: one fault at a time, so that a majority stays up and the run makes progress.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("chaos: seed {seed}, {secs} s");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut faults = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(1000 + rng.next(2000)));
        let victim = rng.next(3) as usize;
        if rng.next(2) == 0 {
            faults.push(format!("kill -9 node {victim}"));
            cluster.nodes[victim].kill9();
            std::thread::sleep(Duration::from_millis(500 + rng.next(2500)));
            cluster.nodes[victim].restart();
        } else {
            faults.push(format!("cut the links to node {victim}"));
            proxies[victim].cut();
            std::thread::sleep(Duration::from_millis(1000 + rng.next(3000)));
            proxies[victim].heal();
        }
        let mut samples = crl_samples.lock().unwrap();
        for (i, n) in cluster.nodes.iter().enumerate() {
            if let Some(number) = crl_number(n) {
                samples[i].push(number);
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    for p in &proxies {
        p.heal();
    }
    let digest = cluster.converged(Duration::from_secs(60));
    let history = history.lock().unwrap().clone();

    // What every node holds.
    let mut sample: Vec<String> = history.revoked.iter().take(15).cloned().collect();
    sample.extend(history.issued.iter().rev().take(15).cloned());
    let mut seen = Observations::default();
    for (i, n) in cluster.nodes.iter().enumerate() {
        let certs = all_certs(n);
        let ocsp = sample.iter().map(|s| (s.clone(), ocsp(n, &issuer_pem, s))).collect();
        if let Some(number) = crl_number(n) {
            crl_samples.lock().unwrap()[i].push(number);
        }
        seen.nodes.push(NodeView {
            name: format!("node {i}"),
            digest: n.digest().0,
            certs,
            ocsp,
        });
    }
    seen.crl_numbers = crl_samples
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("node {i}"), s.clone()))
        .collect();

    let problems = check(&history, &seen);
    eprintln!(
        "chaos: {} s, {} certificates and {} revocations acknowledged, {} faults ({}), digest {digest}: {}",
        started.elapsed().as_secs(),
        history.issued.len(),
        history.revoked.len(),
        faults.len(),
        faults.join(", "),
        if problems.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL {problems:?}")
        }
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        !faults.is_empty() && history.issued.len() >= 20,
        "the run must do something"
    );
    assert!(
        seen.crl_numbers.iter().all(|(_, s)| s.len() >= 2) && seen.nodes.iter().all(|n| !n.ocsp.is_empty()),
        "the checker must have had CRLs and OCSP answers to look at: {:?}",
        seen.crl_numbers
    );
}

#[test]
fn the_checker_fails_a_broken_history() {
    let history = History {
        issued: vec!["01".into(), "02".into(), "03".into()],
        revoked: vec!["02".into()],
    };
    let good = |name: &str| NodeView {
        name: name.into(),
        digest: "d".into(),
        certs: BTreeMap::from([
            ("01".into(), "valid".into()),
            ("02".into(), "revoked".into()),
            ("03".into(), "valid".into()),
        ]),
        ocsp: BTreeMap::from([("01".into(), "good".into()), ("02".into(), "revoked".into())]),
    };
    let clean = Observations {
        nodes: vec![good("a"), good("b")],
        crl_numbers: vec![("a".into(), vec![1, 2, 2, 5])],
    };
    assert_eq!(check(&history, &clean), Vec::<String>::new());

    // Every kind of broken promise is caught.
    let mut lost = good("b");
    lost.certs.remove("03");
    let mut unrevoked = good("c");
    unrevoked.certs.insert("02".into(), "valid".into());
    unrevoked.ocsp.insert("02".into(), "revoked".into());
    let mut forked = good("d");
    forked.digest = "other".into();
    let mut lying = good("e");
    lying.ocsp.insert("01".into(), "revoked".into());
    let broken = Observations {
        nodes: vec![good("a"), lost, unrevoked, forked, lying],
        crl_numbers: vec![("a".into(), vec![3, 4, 2])],
    };
    let mut twice = history.clone();
    twice.issued.push("01".into());
    let problems = check(&twice, &broken);
    for needle in [
        "answered twice",
        "b: acknowledged certificate 03 is missing",
        "c: acknowledged revocation of 02 is missing",
        "c: OCSP says revoked for 02, its store says good",
        "digests differ",
        "e: OCSP says revoked for 01",
        "CRL number went back from 4 to 2",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle} not reported: {problems:#?}"
        );
    }
}
