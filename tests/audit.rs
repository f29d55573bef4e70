//! The audit log on a three-node cluster, as an operator and an auditor use it:
//! actions taken through different nodes are recorded once, in the same order, on
//! every node, and sealed; `hapki audit verify` checks the log online and an export
//! offline with the audit certificate; and after a node's store is edited while it is
//! stopped (a record changed, one removed, two swapped) the check names the record.

mod common;

use std::time::Duration;

use common::{serial_of, stderr, wait_for, Cluster, Node};
use hapki_domain::audit::Record;
use hapki_store::codec::{decode, encode};
use hapki_store::tables::SM_AUDIT;
use redb::ReadableTable;

/// The node's audit records, the whole log.
fn records(node: &Node) -> serde_json::Value {
    node.json(&["audit", "list", "--limit", "1000"])
}

/// Runs `edit` on the audit table of `node`'s store, the node stopped; starts it again.
fn edit_stopped(node: &mut Node, edit: impl FnOnce(&mut redb::Table<&[u8], &[u8]>)) {
    node.kill9();
    let db = redb::Database::open(node.data().join("hapki.redb")).expect("open the store");
    let txn = db.begin_write().expect("write");
    {
        let mut table = txn.open_table(SM_AUDIT).expect("audit table");
        edit(&mut table);
    }
    txn.commit().expect("commit");
    drop(db);
    node.start_server();
}

fn get(table: &redb::Table<&[u8], &[u8]>, seq: u64) -> Vec<u8> {
    table
        .get(seq.to_be_bytes().as_slice())
        .expect("read")
        .expect("the record")
        .value()
        .to_vec()
}

fn put(table: &mut redb::Table<&[u8], &[u8]>, seq: u64, value: &[u8]) {
    table.insert(seq.to_be_bytes().as_slice(), value).expect("write");
}

/// `hapki audit verify` on `node` must fail, naming record `seq` and saying `says`.
#[track_caller]
fn fails(node: &Node, seq: u64, says: &str) {
    let out = node.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("(record {seq})")) && err.contains(says), "{err}");
}

#[test]
fn the_audit_log_is_replicated_sealed_and_names_the_record_that_was_changed_removed_or_reordered() {
    let extra = |i: usize| if i == 0 { "init_root_ca = true\n" } else { "" }.to_string();
    let mut cluster = Cluster::start_each(3, extra, |_, _| {});
    cluster.converged(Duration::from_secs(60));
    let ids: Vec<String> = cluster.nodes.iter().map(Node::id).collect();
    {
        let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
        // Actions through every node: each is recorded where it was asked.
        let cert = b.issue("x", "server", &["CN:x.example.com"]);
        let serial = serial_of(b.work(), &cert);
        c.ok(&["cert", "revoke", &serial, "--reason", "superseded"]);
        a.json(&["token", "create", "--role", "agent", "--name", "ops"]);
        b.ok(&["cluster", "settings", "--recovery-approvals", "3"]);
        cluster.converged(Duration::from_secs(60));
        wait_for("every node's log sealed", Duration::from_secs(30), || {
            cluster.nodes.iter().all(|n| {
                let v = records(n);
                v["head"] == v["sealed_through"]
            })
        });
        let log = records(a);
        for n in [b, c] {
            assert_eq!(records(n)["records"], log["records"], "the same log on every node");
        }
        let find_of = |action: &str, of: &str| {
            log["records"]
                .as_array()
                .expect("records")
                .iter()
                .find(|r| r["action"] == action && r["object"].as_str().is_some_and(|o| o.contains(of)))
                .unwrap_or_else(|| panic!("no {action} of {of} in {log}"))
                .clone()
        };
        let find = |action: &str| find_of(action, "");
        let issued = find("issue_cert");
        assert_eq!(issued["node"], ids[1].as_str(), "{issued}");
        assert!(issued["object"].as_str().expect("object").contains(&serial), "{issued}");
        assert!(issued["actor"].is_string(), "{issued}");
        assert_eq!(find("revoke")["node"], ids[2].as_str());
        assert_eq!(find_of("create_token", "ops (agent)")["node"], ids[0].as_str());
        assert_eq!(find("set_recovery_policy")["object"], "recovery approvals 3");
        assert_eq!(find("admit_node")["outcome"], "applied");
        let filtered = b.json(&["audit", "list", "--action", "revoke"]);
        assert_eq!(filtered["records"].as_array().map(Vec::len), Some(1), "{filtered}");

        for n in [a, b, c] {
            let v = n.json(&["audit", "verify"]);
            assert_eq!(v["fault"], serde_json::Value::Null, "{v}");
        }
        // An agent reads nothing of it.
        let agent = a.json(&["token", "create", "--role", "agent", "--name", "auditor"])["token"]
            .as_str()
            .expect("token")
            .to_string();
        let out = a.cli_with_token(&["audit", "list"], Some(&agent));
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

        // Refused authentications go to the node's own log, one line for a burst, no token in it.
        let bogus = "hpk_not-a-token-of-this-cluster";
        let head = records(a)["head"].clone();
        for _ in 0..5 {
            let out = a.cli_with_token(&["audit", "list"], Some(bogus));
            assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        }
        wait_for("the refusal in the node's log", Duration::from_secs(10), || {
            a.log().contains("authentication refused")
        });
        let log = a.log();
        assert_eq!(log.matches("authentication refused").count(), 1, "{log}");
        assert!(!log.contains(bogus), "the token is never logged");
        assert_eq!(records(a)["head"], head, "refusals are not in the replicated log");

        // Offline: the export verifies with the audit certificate, and one altered line does not.
        b.ok(&["audit", "export", "-o", "audit.jsonl"]);
        b.ok(&["audit", "certificate", "-o", "audit.pem"]);
        let offline = ["audit", "verify", "--file", "audit.jsonl", "--cert", "audit.pem"];
        let v = b.json(&offline);
        assert_eq!(v["fault"], serde_json::Value::Null, "{v}");
        let text = std::fs::read_to_string(b.work().join("audit.jsonl")).expect("export");
        std::fs::write(
            b.work().join("altered.jsonl"),
            text.replacen("\"outcome\":\"applied\"", "\"outcome\":\"refused: forbidden\"", 1),
        )
        .expect("write");
        let out = b.cli(&["audit", "verify", "--file", "altered.jsonl", "--cert", "audit.pem"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("(record 1)") && stderr(&out).contains("changed"),
            "{}",
            stderr(&out)
        );
    }

    // A tamperer with the store of a stopped node: the check names what was done.
    let issued_at = records(&cluster.nodes[2])["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["action"] == "issue_cert")
        .and_then(|r| r["seq"].as_u64())
        .expect("the issuance's position");
    let c = &mut cluster.nodes[2];
    let mut original = Vec::new();
    edit_stopped(c, |t| {
        original = get(t, issued_at);
        let mut r: Record = decode(&original).expect("a record");
        r.actor_name = "someone else".into();
        put(t, issued_at, &encode(&r));
    });
    fails(c, issued_at, "was changed");

    let mut removed = Vec::new();
    edit_stopped(c, |t| {
        put(t, issued_at, &original);
        removed = get(t, issued_at + 1);
        t.remove((issued_at + 1).to_be_bytes().as_slice()).expect("remove");
    });
    fails(c, issued_at + 1, "missing");

    edit_stopped(c, |t| {
        put(t, issued_at, &removed);
        put(t, issued_at + 1, &original);
    });
    fails(c, issued_at, "reordered");

    // Put back as it was, the log verifies again.
    edit_stopped(c, |t| {
        put(t, issued_at, &original);
        put(t, issued_at + 1, &removed);
    });
    let v = c.json(&["audit", "verify"]);
    assert_eq!(v["fault"], serde_json::Value::Null, "{v}");
}
