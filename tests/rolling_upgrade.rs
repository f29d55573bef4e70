//! A rolling upgrade under load: three nodes of the last release's state format (this
//! source built with `--features state-format-1`, as `scripts/test.sh` does) are replaced
//! one by one with this build while clients keep issuing and revoking through every node.
//! At each step the digests agree and nothing acknowledged is lost; a command of the new
//! format (an issuing-CA rollover) is refused, naming the nodes still to upgrade, until the
//! last member runs it, and works after; a node taken back to the old build while the format
//! is still old rejoins; once the format has risen, the old build refuses to start on a
//! member's data, saying which release it needs, and a new node of the old build is refused
//! at join.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client_cli, stderr, stdout, wait_for, Cluster, Node, HAPKI};

/// The newest state format this build applies, and the first release that does.
const NEWEST_FORMAT: u32 = 6;
const NEWEST_RELEASE: &str = "0.7.0";

/// The old build, next to this one.
fn old_binary() -> PathBuf {
    let path = Path::new(HAPKI).with_file_name("hapki-format1");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --bin hapki --features state-format-1 && \
         cp target/debug/hapki target/debug/hapki-format1` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// What the clients were told succeeded.
#[derive(Default)]
struct Acknowledged {
    issued: Vec<String>,
    revoked: Vec<String>,
}

/// Clients issuing, and revoking every other certificate, through all nodes with the CLI's
/// failover list, until stopped; paused while the test compares digests.
struct Load {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Cluster, csr: &str) -> Load {
        let urls = cluster.nodes.iter().map(Node::url).collect::<Vec<_>>().join(",");
        let node = &cluster.nodes[0];
        let (work, ca, token, csr) = (
            node.work().to_path_buf(),
            node.api_ca(),
            node.token.clone(),
            csr.to_string(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let handle = {
            let (stop, pause, idle, acked) = (stop.clone(), pause.clone(), idle.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    if pause.load(Ordering::SeqCst) {
                        idle.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    idle.store(false, Ordering::SeqCst);
                    n += 1;
                    let out = client_cli(
                        &work,
                        &urls,
                        &ca,
                        &token,
                        &["cert", "issue", "--csr", &csr, "--profile", "server"],
                    );
                    let Some(serial) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
                        .ok()
                        .and_then(|v| v["serial"].as_str().map(str::to_string))
                    else {
                        continue;
                    };
                    acked.lock().unwrap().issued.push(serial.clone());
                    if n.is_multiple_of(2) {
                        let out = client_cli(
                            &work,
                            &urls,
                            &ca,
                            &token,
                            &["cert", "revoke", &serial, "--reason", "superseded"],
                        );
                        if out.status.success() {
                            acked.lock().unwrap().revoked.push(serial);
                        }
                    }
                }
            })
        };
        Load {
            stop,
            pause,
            idle,
            acked,
            handle: Some(handle),
        }
    }

    /// Runs `f` with the clients paused between two requests.
    fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        self.pause.store(true, Ordering::SeqCst);
        wait_for("the clients to pause", Duration::from_secs(60), || {
            self.idle.load(Ordering::SeqCst)
        });
        let out = f();
        self.pause.store(false, Ordering::SeqCst);
        out
    }

    fn issued(&self) -> usize {
        self.acked.lock().unwrap().issued.len()
    }

    fn finish(mut self) -> Acknowledged {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

fn summary(node: &Node) -> serde_json::Value {
    node.json(&["cluster", "summary"])
}

/// Digests agree, and each step saw new writes acknowledged.
fn step(cluster: &Cluster, load: &Load, what: &str) {
    let before = load.issued();
    wait_for(
        &format!("writes acknowledged after {what}"),
        Duration::from_secs(60),
        || load.issued() > before + 2,
    );
    load.paused(|| cluster.converged(Duration::from_secs(60)));
}

fn rotate(node: &Node, root: &str) -> std::process::Output {
    node.cli(&[
        "ca",
        "rotate",
        "--id",
        root,
        "--out",
        "successor.pem",
        "--self-signed-out",
        "successor-root.pem",
    ])
}

#[test]
fn a_cluster_is_upgraded_node_by_node_under_load_and_the_new_format_waits_for_the_last_member() {
    let old = old_binary();
    let new = PathBuf::from(HAPKI);
    let mut cluster = Cluster::start_as(&old, 3);
    let a = &cluster.nodes[0];
    a.ok(&["ca", "init", "--cn", "Upgrade Root"]);
    let root = a.json(&["ca", "list"])["issuers"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.ok(&["csr", "load", "CN:load.example.com"]);
    let s = summary(a);
    assert_eq!(s["effective_format"], 1, "{s}");
    for row in s["nodes"].as_array().unwrap() {
        assert_eq!(row["max_format"], 1, "{s}");
        assert!(row["version"].as_str().unwrap().ends_with("-format1"), "{s}");
    }
    let load = Load::start(&cluster, "load.csr");
    step(&cluster, &load, "the old cluster formed");

    for i in 0..3 {
        if i == 2 {
            // Two of three run this build: the rollover is still refused, naming the third.
            let out = rotate(&cluster.nodes[0], &root);
            assert!(
                !out.status.success(),
                "a rollover before the last upgrade must be refused"
            );
            let says = stderr(&out);
            assert!(
                says.contains("needs state format 2") && says.contains("-format1, format 1)"),
                "{says}"
            );
            assert_eq!(out.status.code(), Some(5), "a conflict: {says}");
        }
        let node = &mut cluster.nodes[i];
        node.set_binary(&new);
        node.restart();
        step(&cluster, &load, &format!("node {i} runs the new build"));
        if i == 0 {
            // Back to the old build while the format is still old: it rejoins and keeps up.
            let node = &mut cluster.nodes[0];
            node.set_binary(&old);
            node.restart();
            step(&cluster, &load, "node 0 went back to the old build");
            let node = &mut cluster.nodes[0];
            node.set_binary(&new);
            node.restart();
            step(&cluster, &load, "node 0 runs the new build again");
        }
    }

    // Every member runs this build: the format rises by itself to the newest this build
    // applies, and the rollover works.
    wait_for(
        &format!("the effective format to rise to {NEWEST_FORMAT}"),
        Duration::from_secs(30),
        || summary(&cluster.nodes[1])["effective_format"] == NEWEST_FORMAT,
    );
    let out = rotate(&cluster.nodes[1], &root);
    assert!(out.status.success(), "rollover: {}\n{}", stderr(&out), stdout(&out));
    for (file, holds) in [("successor.pem", 2), ("successor-root.pem", 1)] {
        let text = std::fs::read_to_string(cluster.nodes[1].work().join(file)).expect(file);
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), holds, "{file}: {text}");
    }
    step(&cluster, &load, "the rollover");
    let acked = load.finish();
    cluster.converged(Duration::from_secs(60));

    // Nothing acknowledged is lost, on any node.
    let listed = cluster.nodes[2].json(&["cert", "list", "--limit", "1000"]);
    let certs = listed["certs"].as_array().expect("certs");
    assert!(certs.len() < 1000, "one page holds every certificate");
    let status = |serial: &str| {
        certs
            .iter()
            .find(|c| c["serial"] == serial)
            .map(|c| c["status"].as_str().unwrap_or("").to_string())
    };
    assert!(
        acked.issued.len() > 20,
        "the load ran: {} certificates",
        acked.issued.len()
    );
    eprintln!(
        "acknowledged: {} issued, {} revoked; every one is on every node",
        acked.issued.len(),
        acked.revoked.len()
    );
    for serial in &acked.issued {
        assert!(status(serial).is_some(), "{serial} was acknowledged and is gone");
    }
    for serial in &acked.revoked {
        assert_eq!(status(serial).as_deref(), Some("revoked"), "{serial} was revoked");
    }
    let digest = cluster.nodes[0].digest();
    for n in &cluster.nodes {
        assert_eq!(n.digest(), digest);
    }

    // The format has risen: the old build refuses this node's data, saying what it needs.
    let node = &mut cluster.nodes[2];
    node.set_binary(&old);
    let (status, log) = node.start_expecting_exit();
    assert!(!status.success(), "{log}");
    eprintln!("the old build refused to start: {}", log.trim());
    assert!(
        log.contains(&format!("state format {NEWEST_FORMAT}"))
            && log.contains(&format!("start hapki {NEWEST_RELEASE} or later")),
        "the old build must say which release it needs:\n{log}"
    );
    node.set_binary(&new);
    node.restart();
    cluster.converged(Duration::from_secs(60));

    // Nor does a new node of the old build join.
    let out = cluster.join(Node::start_fresh_as(&old, ""), 0);
    assert!(
        !out.status.success(),
        "an old build must not join a cluster of format {NEWEST_FORMAT}"
    );
    let says = stderr(&out);
    assert!(
        says.contains(&format!("state format {NEWEST_FORMAT}"))
            && says.contains(&format!("install hapki {NEWEST_RELEASE} or later")),
        "{says}"
    );
}
