//! Crash durability: every issuance and revocation acknowledged to a client
//! survives `kill -9` of the node, and the CRL number never goes back.
//! The state machine is flushed lazily; the Raft log is fsynced before a write
//! is acknowledged, so a restart must replay whatever the state had not flushed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Node;
use hapki_domain::csr::build_csr;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{San, SubjectSpec};
use hapki_domain::pem::{encode, PemLabel};
use serde_json::{json, Value};

fn csr_pem(i: usize) -> String {
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let cn = format!("host{i}.durable.example");
    let der = build_csr(&key, &SubjectSpec::cn(&cn).to_name().unwrap(), &[San::Dns(cn.clone())]).unwrap();
    encode(PemLabel::CertificateRequest, &der)
}

fn crl_number(node: &Node) -> u64 {
    let v = node.json(&["ca", "list"]);
    v["issuers"][0]["crl_number"].as_u64().expect("a CRL number")
}

#[test]
fn a_thousand_acknowledged_certificates_survive_kill_9() {
    const N: usize = 1000;
    let mut node = Node::start();
    let client = node.http_client();
    let url = format!("{}/v1/certs", node.url());
    let next = Arc::new(AtomicUsize::new(0));
    let serials = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, next, token) = (client.clone(), url.clone(), next.clone(), node.token.clone());
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= N {
                            return mine;
                        }
                        let resp = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&json!({"csr": csr_pem(i), "profile": "server"}))
                            .send()
                            .unwrap();
                        assert_eq!(resp.status().as_u16(), 201);
                        let v: Value = resp.json().unwrap();
                        mine.push(v["serial"].as_str().unwrap().to_string());
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(serials.len(), N);
    for s in serials.iter().take(5) {
        node.ok(&["cert", "revoke", s, "--reason", "keyCompromise"]);
    }
    let crl_before = crl_number(&node);
    let (digest_before, count_before) = node.digest();
    assert_eq!(count_before, N as u64);

    node.kill9();
    node.restart();

    let (digest_after, count_after) = node.digest();
    assert_eq!(count_after, N as u64, "certificates lost in the crash");
    assert_eq!(
        digest_after, digest_before,
        "the state after the crash differs from the acknowledged state"
    );
    let listed: Value = client
        .get(format!("{url}?limit=1000"))
        .bearer_auth(&node.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut stored: Vec<String> = listed["certs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    let mut acknowledged = serials.clone();
    stored.sort();
    acknowledged.sort();
    assert_eq!(
        stored, acknowledged,
        "the stored serials differ from the acknowledged ones"
    );
    for s in serials.iter().take(5) {
        assert_eq!(node.json(&["cert", "get", s])["status"], "revoked");
    }
    let crl_after = crl_number(&node);
    assert!(
        crl_after >= crl_before,
        "CRL number went back from {crl_before} to {crl_after}"
    );
    node.ok(&["cert", "revoke", &serials[10]]);
    assert!(crl_number(&node) > crl_after);
}
