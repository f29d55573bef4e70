//! A data directory written by the last hapki of schema 2 (bincode 1 records, log and
//! sealed files: `tests/fixtures/schema2`) opens with this build. The node migrates it in
//! place when it starts, says so, and then serves what the old node stored: the same
//! certificates, the same revocation in OCSP and in the CRL; and it issues new ones. The
//! fixture itself is never written: the node runs on a copy.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{openssl, serial_of, wait_for, Node};

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema2"))
}

/// The first PEM block of `pem`: the leaf of a certificate file with its chain.
fn first_block(pem: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    let at = pem.find(end).expect("a PEM certificate") + end.len();
    pem[..at].trim().to_string()
}

fn ocsp_status(node: &Node, cert: &Path) -> String {
    let ca = node.ca_pem().display().to_string();
    let (ok, text) = openssl(
        node.work(),
        &[
            "ocsp",
            "-issuer",
            &ca,
            "-cert",
            &cert.display().to_string(),
            "-url",
            &format!("{}/ocsp", node.http_url()),
            "-CAfile",
            &ca,
        ],
    );
    assert!(ok, "openssl ocsp: {text}");
    text
}

#[test]
fn a_schema_2_data_directory_is_migrated_in_place_and_served() {
    let mut node = Node::start_on_copy_of(&fixture().join("data"));
    assert!(
        node.log().contains("migrated the data directory") && node.log().contains("from schema 2 to 3"),
        "the node must say it migrated:\n{}",
        node.log()
    );
    let revoked = std::fs::read_to_string(fixture().join("revoked-serial"))
        .expect("revoked-serial")
        .trim()
        .to_string();

    let listed = node.json(&["cert", "list"]);
    let certs = listed["certs"].as_array().expect("certs");
    assert_eq!(certs.len(), 3, "{listed}");
    for c in certs {
        // The others are valid until 2028-01-04, and expired after: either way not revoked.
        let is_revoked = c["status"] == "revoked";
        assert_eq!(is_revoked, c["serial"] == revoked.as_str(), "{c}");
    }

    for name in ["alpha", "beta", "gamma"] {
        let file = fixture().join(format!("{name}.pem"));
        let serial = serial_of(node.work(), &file);
        let got = node.json(&["cert", "get", &serial]);
        let pem = std::fs::read_to_string(&file).expect("fixture certificate");
        assert_eq!(
            first_block(got["certificate"].as_str().expect("the certificate")),
            first_block(&pem),
            "{name}"
        );
    }

    let beta = fixture().join("beta.pem");
    assert!(ocsp_status(&node, &beta).contains(": revoked"), "beta is revoked");
    let alpha = fixture().join("alpha.pem");
    assert!(ocsp_status(&node, &alpha).contains(": good"), "alpha is good");
    let (_, crl) = node.get_ok(&format!("{}/v1/crl.pem", node.http_url()));
    std::fs::write(node.work().join("latest.crl.pem"), crl).expect("write the CRL");
    let (ok, text) = openssl(node.work(), &["crl", "-noout", "-text", "-in", "latest.crl.pem"]);
    assert!(ok && text.to_lowercase().contains(&revoked.to_lowercase()), "{text}");

    let delta = node.issue("delta", "server", &["CN:delta.fixture.example"]);
    let serial = serial_of(node.work(), &delta);
    assert_eq!(node.json(&["cert", "get", &serial])["status"], "valid");

    // What the old node left is gone: its snapshot file (the state is its own snapshot
    // now) and the schema-2 copies of the sealed files.
    let left: Vec<_> = std::fs::read_dir(node.data().join("snapshots"))
        .expect("the snapshot directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for f in ["kek.sealed.schema2", "channel.key.sealed.schema2"] {
        assert!(!node.data().join(f).exists(), "{f} is left over");
    }

    // A restart opens it as it is, with nothing left to migrate.
    node.restart();
    assert!(
        !node.log().contains("migrated"),
        "migrated once, not at every start:\n{}",
        node.log()
    );
    wait_for("the node to list four certificates", Duration::from_secs(10), || {
        node.json(&["cert", "list"])["certs"].as_array().map(Vec::len) == Some(4)
    });
}
