//! Looking for private keys in plaintext on disk: every encoding `openssl` writes of
//! a key, searched for in every file under a directory.

use std::path::{Path, PathBuf};

use super::{openssl, Node};

/// The DER forms of the private key in PEM file `key`: PKCS#8, and for an EC key also
/// SEC1 and the bare scalar, for an Ed25519 key the bare seed, as `openssl` writes them.
pub fn key_encodings(work: &Path, key: &Path) -> Vec<Vec<u8>> {
    let der = work.join("probe.der");
    let (key, der_arg) = (key.display().to_string(), der.display().to_string());
    let to_der = |tool: &str| {
        let (ok, log) = openssl(work, &[tool, "-in", &key, "-outform", "DER", "-out", &der_arg]);
        ok.then(|| std::fs::read(&der).expect("the key's DER")).ok_or(log)
    };
    let pkcs8 = to_der("pkey").unwrap_or_else(|log| panic!("{log}"));
    let mut out = vec![pkcs8.clone()];
    match to_der("ec") {
        // ECPrivateKey: SEQUENCE, INTEGER 1, OCTET STRING (32) with the scalar.
        Ok(sec1) => {
            out.push(sec1[7..39].to_vec());
            out.push(sec1);
        }
        // Ed25519's PKCS#8 ends with the 32-byte seed.
        Err(_) => out.push(pkcs8[pkcs8.len() - 32..].to_vec()),
    }
    let _ = std::fs::remove_file(&der);
    out
}

/// Splits a PEM file holding several private keys (as `openssl pkcs12 -nodes` writes
/// them) into one file per key next to it; returns those files.
pub fn split_keys(pem: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(pem).expect("the keys' PEM");
    let end = "-----END PRIVATE KEY-----";
    text.split_inclusive(end)
        .filter_map(|part| part.find("-----BEGIN PRIVATE KEY-----").map(|at| &part[at..]))
        .enumerate()
        .map(|(i, key)| {
            let path = pem.with_extension(format!("{i}.pem"));
            std::fs::write(&path, format!("{key}\n")).expect("write one key");
            path
        })
        .collect()
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Fails naming the first of `paths` (files, or directories searched recursively) that
/// holds one of `secrets`.
#[track_caller]
pub fn assert_nowhere(paths: &[PathBuf], secrets: &[Vec<u8>]) {
    assert!(!secrets.is_empty(), "no secrets to look for");
    for path in paths {
        let all = if path.is_dir() { files(path) } else { vec![path.clone()] };
        for file in all {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for s in secrets {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_slice()),
                    "{} holds a private key in plaintext",
                    file.display()
                );
            }
        }
    }
}

/// The private keys of the CA, its OCSP signer and the audit log, as `hapki ca export`
/// gives them.
pub fn exported_keys(node: &Node) -> Vec<PathBuf> {
    let id = node.json(&["ca", "list"])["issuers"][0]["id"]
        .as_str()
        .expect("issuer id")
        .to_string();
    let pass = node.work().join("export.pass");
    std::fs::write(&pass, "export secret\n").expect("password file");
    let pass = pass.display().to_string();
    node.ok(&[
        "ca",
        "export",
        "--id",
        &id,
        "--pkcs12",
        "ca.p12",
        "--password-file",
        &pass,
    ]);
    let (ok, out) = openssl(
        node.work(),
        &[
            "pkcs12",
            "-in",
            "ca.p12",
            "-passin",
            &format!("file:{pass}"),
            "-nocerts",
            "-nodes",
            "-out",
            "ca-keys.pem",
        ],
    );
    assert!(ok, "{out}");
    let keys = split_keys(&node.work().join("ca-keys.pem"));
    assert_eq!(keys.len(), 3, "the CA's key, its OCSP signer's and the audit key");
    keys
}
