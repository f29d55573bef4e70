//! Backup and restore as an operator runs them: `hapki backup create` on a node,
//! `hapki backup restore` into a fresh data directory that then serves the same
//! state as a one-node cluster another node joins, and scheduled backups taken by
//! the leader and opened with the recipient's private key. A wrong key, a cut or an
//! altered file restore nothing; no private key is ever on disk in plaintext.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::secrets::{assert_nowhere, exported_keys, key_encodings};
use common::{ocsp, openssl, serial_of, stderr, wait_for, Cluster, Node};

/// `hapki backup restore FILE --key-file KEY --config node.toml` for `node`.
fn restore(node: &Node, file: &Path, key: &Path) -> std::process::Output {
    node.cli_with_token(
        &[
            "--output",
            "json",
            "backup",
            "restore",
            &file.display().to_string(),
            "--key-file",
            &key.display().to_string(),
            "--config",
            "node.toml",
        ],
        None,
    )
}

/// A restore that must fail with `exit`, say `says`, and leave no data directory.
#[track_caller]
fn refused(node: &Node, file: &Path, key: &Path, exit: i32, says: &str) {
    let out = restore(node, file, key);
    assert_eq!(out.status.code(), Some(exit), "{}", stderr(&out));
    assert!(stderr(&out).contains(says), "{}", stderr(&out));
    let left = std::fs::read_dir(node.data()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "a refused restore wrote into {}", node.data().display());
}

/// A new RSA-2048 private key (PKCS#8 PEM) at `dir/name`.
fn rsa_key(dir: &Path, name: &str) {
    let (ok, out) = openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            name,
        ],
    );
    assert!(ok, "{out}");
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).expect("metadata").permissions()) & 0o777
}

#[test]
fn a_backup_restores_on_a_fresh_node_with_the_same_state_and_a_second_node_joins_it() {
    let a = Node::start();
    let work = a.work();
    let ca = a.ca_pem();
    a.issue("kept", "server", &["CN:kept.example.com"]);
    let gone = a.issue("gone", "server", &["CN:gone.example.com"]);
    a.ok(&["cert", "revoke", &serial_of(work, &gone), "--reason", "superseded"]);
    let gen = work.join("gen");
    a.ok(&[
        "cert",
        "generate",
        "--cn",
        "gen.example.com",
        "--san",
        "gen.example.com",
        "--profile",
        "server",
        "--archive",
        "--out",
        &gen.display().to_string(),
    ]);
    let ca_keys = exported_keys(&a);

    // Only an admin takes a backup.
    let agent = a.json(&["token", "create", "--role", "agent"])["token"]
        .as_str()
        .expect("token")
        .to_string();
    let out = a.cli_with_token(
        &["backup", "create", "-o", "agent.hbk", "--key-out", "agent.key"],
        Some(&agent),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(!work.join("agent.hbk").exists() && !work.join("agent.key").exists());
    let out = a.cli_with_token(&["backup", "list"], Some(&agent));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    let (digest, count) = a.quiet_digest();
    let made = a.json(&["backup", "create", "-o", "full.hbk", "--key-out", "full.key"]);
    assert_eq!(made["digest"], digest.as_str(), "{made}");
    assert_eq!(made["counts"]["certificates"], 3, "{made}");
    assert_eq!(made["counts"]["revoked"], 1, "{made}");
    assert_eq!(made["counts"]["archived_keys"], 1, "{made}");
    let (file, key) = (work.join("full.hbk"), work.join("full.key"));
    assert_eq!(mode(&key), 0o600);
    let inspected = a.json(&["backup", "inspect", "full.hbk"]);
    for field in ["id", "cluster_id", "index", "digest", "counts"] {
        assert_eq!(inspected[field], made[field], "{field}: {inspected}");
    }
    assert!(inspected.get("kek").is_none(), "{inspected}");
    let listed = a.json(&["backup", "list"]);
    assert_eq!(listed["backups"][0]["id"], made["id"], "{listed}");
    assert_eq!(
        listed["backups"][0]["size"],
        std::fs::metadata(&file).expect("backup").len()
    );
    a.json(&["backup", "create", "-o", "other.hbk", "--key-out", "other.key"]);

    // A wrong key, a file that is no key, a cut file and one altered byte restore nothing.
    let mut fresh = Node::configured("");
    refused(&fresh, &file, &work.join("other.key"), 1, "nothing was restored");
    refused(&fresh, &file, &fresh.work().join("node.toml"), 2, "node.toml");
    let bytes = std::fs::read(&file).expect("backup");
    let cut = work.join("cut.hbk");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).expect("cut");
    refused(&fresh, &cut, &key, 1, "nothing was restored: the backup is cut short");
    let mut altered = bytes.clone();
    let at = altered.len() - 40;
    altered[at] ^= 1;
    let altered_file = work.join("altered.hbk");
    std::fs::write(&altered_file, &altered).expect("altered");
    refused(&fresh, &altered_file, &key, 1, "nothing was restored");

    // The good file and key: the same state, served by a one-node cluster.
    let out = restore(&fresh, &file, &key);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(restored["restored_digest"], digest.as_str(), "{restored}");
    fresh.start_server();
    fresh.token = a.token.clone();
    // Running, it records itself as the cluster's only node, and holds all the rest.
    assert_eq!(fresh.digest().1, count);
    let nodes = fresh.json(&["cluster", "nodes", "list"]);
    assert_eq!(nodes["nodes"].as_array().map(|n| n.len()), Some(1), "{nodes}");
    let after = fresh.issue("after", "server", &["CN:after.example.com"]);
    let (ok, out) = openssl(
        fresh.work(),
        &[
            "verify",
            "-CAfile",
            &ca.display().to_string(),
            &after.display().to_string(),
        ],
    );
    assert!(ok && out.contains(": OK"), "{out}");

    // A second node joins it and answers for what the first cluster revoked.
    let mut cluster = Cluster { nodes: vec![fresh] };
    let out = cluster.add("");
    assert!(out.status.success(), "fulljoin: {}", stderr(&out));
    cluster.converged(Duration::from_secs(60));
    let report = ocsp(&cluster.nodes[1], &ca, &gone);
    assert!(report.contains(": revoked"), "{report}");

    // No private key the clusters hold is on any disk, or in a backup, in plaintext: the
    // CA's, its OCSP signer's and the audit key (as exported), and the archived one.
    let mut secrets = key_encodings(work, &gen.with_extension("key"));
    for k in &ca_keys {
        secrets.extend(key_encodings(work, k));
    }
    let mut places = vec![a.data(), file, work.join("other.hbk")];
    places.extend(cluster.nodes.iter().map(|n| n.data()));
    assert_nowhere(&places, &secrets);
}

#[test]
fn the_leader_takes_scheduled_backups_keeps_the_newest_and_the_recipient_restores_one() {
    let keys = tempfile::tempdir().expect("temp dir");
    rsa_key(keys.path(), "recipient.key");
    let (ok, out) = openssl(
        keys.path(),
        &["pkey", "-in", "recipient.key", "-pubout", "-out", "recipient.pem"],
    );
    assert!(ok, "{out}");
    let dir = keys.path().join("backups");
    let mut node = Node::start_with_config(&format!(
        "init_root_ca = true\n[backup]\nevery = \"1\"\ndir = \"{}\"\nkeep = 2\nrecipient = \"{}\"\n",
        dir.display(),
        keys.path().join("recipient.pem").display()
    ));
    node.issue("one", "server", &["CN:one.example.com"]);
    let backups = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    };
    wait_for("three scheduled backups", Duration::from_secs(60), || {
        let listed = node.json(&["backup", "list"]);
        let n = listed["backups"].as_array().map_or(0, |b| b.len());
        n >= 3 && backups().len() == 2 && backups().iter().all(|f| f.extension().is_some_and(|e| e == "hbk"))
    });
    let listed = node.json(&["backup", "list"]);
    // Stopped, the node takes no more: the files stay as they are. A backup is recorded
    // before its file gets its name, so the newest record may have none yet.
    node.kill9();
    let rows = listed["backups"].as_array().expect("backups");
    assert!(rows.iter().all(|b| b["taken_by"] == "schedule"), "{listed}");
    let kept: Vec<_> = rows
        .iter()
        .filter(|b| dir.join(b["file"].as_str().expect("file name")).exists())
        .collect();
    // The newest two are kept (three for a moment, if the stop fell between a new file and
    // the pruning that follows it).
    let named = backups()
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "hbk"))
        .count();
    assert!(
        kept.len() >= 2 && (2..=3).contains(&named),
        "the newest two are kept: {listed} {:?}",
        backups()
    );
    let newest = kept.iter().max_by_key(|b| b["index"].as_u64()).expect("a backup");
    let file = dir.join(newest["file"].as_str().expect("file name"));
    assert_eq!(mode(&file), 0o600);
    let inspected = node.json(&["backup", "inspect", &file.display().to_string()]);
    assert_eq!(inspected["id"], newest["id"], "{inspected}");
    assert_eq!(inspected["counts"]["certificates"], 1, "{inspected}");

    // Only the recipient's private key opens it.
    let mut fresh = Node::configured("");
    rsa_key(keys.path(), "stranger.key");
    refused(
        &fresh,
        &file,
        &keys.path().join("stranger.key"),
        1,
        "nothing was restored",
    );
    let out = restore(&fresh, &file, &keys.path().join("recipient.key"));
    assert!(out.status.success(), "{}", stderr(&out));
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(restored["restored_digest"], newest["digest"], "{restored}");
    fresh.start_server();
    fresh.token = node.token.clone();
    assert_eq!(fresh.digest().1, 1);
}
