//! The cluster channel of a real node: it listens only for mutual TLS, and a
//! peer without a certificate of this cluster's internal CA is refused and the
//! refusal is logged; the node's own CA still answers it over TLS, so the
//! refusal is about the certificate, not the port.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_for, Node};

fn s_client(node: &Node, port: u16, extra: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        "localhost",
        "-CAfile",
    ])
    .arg(node.api_ca())
    .args(extra)
    .current_dir(node.work())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("openssl s_client");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"POST /raft/vote HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n\0");
    drop(stdin);
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_cluster_channel_demands_a_node_certificate_of_this_cluster() {
    let port = free_port();
    let node = Node::start_with_config(&format!("init_root_ca = true\ncluster_listen = \"127.0.0.1:{port}\""));
    assert!(
        node.log().contains(&format!("cluster channel:  127.0.0.1:{port}")),
        "{}",
        node.log()
    );

    // The server's certificate chains to this cluster's internal CA (api-ca.pem).
    let refusals = |node: &Node| node.log().matches("cluster channel: refused").count();
    let anonymous = s_client(&node, port, &[]);
    assert!(anonymous.contains("Verify return code: 0 (ok)"), "{anonymous}");
    assert!(
        !anonymous.contains("HTTP/1.1"),
        "a peer without a certificate must get no answer: {anonymous}"
    );
    wait_for("the first refusal in the log", Duration::from_secs(10), || {
        refusals(&node) >= 1
    });
    assert!(node.log().contains("TLS handshake failed"), "{}", node.log());

    // A self-signed certificate: refused, and the refusal is logged.
    let p256 = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    common::openssl_self_signed(node.work(), "rogue", &p256, "/CN=rogue", &[]);
    let before = refusals(&node);
    let rogue = s_client(&node, port, &["-cert", "rogue.pem", "-key", "rogue.key"]);
    assert!(!rogue.contains("HTTP/1.1"), "{rogue}");
    wait_for("the second refusal in the log", Duration::from_secs(10), || {
        refusals(&node) > before
    });

    // The node keeps serving its API.
    node.ok(&["status"]);
}
