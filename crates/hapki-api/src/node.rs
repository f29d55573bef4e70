//! `/v1/node/*`: what one node does for itself rather than for the cluster: its
//! root of trust, which seals the node's copy of the cluster KEK and its
//! cluster-channel key. Each node of a cluster has its own, of either kind.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The label of the wrapping key on the token unless `key_label` names another.
pub const DEFAULT_KEY_LABEL: &str = "hapki-root-of-trust";

fn default_key_label() -> String {
    DEFAULT_KEY_LABEL.to_string()
}

/// A node's root of trust: `[root_of_trust]` in `node.toml`, the body of a migration, and
/// what the data directory records it was sealed under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RootOfTrustSpec {
    /// A 32-byte key in a file (mode 0600), `<data_dir>/unseal.key` unless `key_file` says
    /// where, e.g. on another mount.
    File {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_file: Option<PathBuf>,
    },
    /// An AES-256 key on a PKCS#11 token, made there on first use, sensitive and not
    /// extractable; the node asks the token to encrypt and decrypt (AES-GCM).
    Pkcs11 {
        /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
        module: PathBuf,
        /// The token's label.
        token_label: String,
        /// A file holding the user PIN (its first line).
        pin_file: PathBuf,
        /// The wrapping key's label on the token.
        #[serde(default = "default_key_label")]
        key_label: String,
    },
}

impl Default for RootOfTrustSpec {
    fn default() -> Self {
        RootOfTrustSpec::File { key_file: None }
    }
}

impl RootOfTrustSpec {
    /// `file` or `pkcs11`.
    pub fn kind(&self) -> &'static str {
        match self {
            RootOfTrustSpec::File { .. } => "file",
            RootOfTrustSpec::Pkcs11 { .. } => "pkcs11",
        }
    }

    /// Whether `other` names the same key (a module or PIN file may move; the key may not).
    pub fn same_key(&self, other: &RootOfTrustSpec) -> bool {
        match (self, other) {
            (RootOfTrustSpec::File { .. }, RootOfTrustSpec::File { .. }) => true,
            (
                RootOfTrustSpec::Pkcs11 {
                    token_label: t1,
                    key_label: k1,
                    ..
                },
                RootOfTrustSpec::Pkcs11 {
                    token_label: t2,
                    key_label: k2,
                    ..
                },
            ) => t1 == t2 && k1 == k2,
            _ => false,
        }
    }
}

impl std::fmt::Display for RootOfTrustSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootOfTrustSpec::File { key_file: None } => f.write_str("file (unseal.key in the data directory)"),
            RootOfTrustSpec::File { key_file: Some(p) } => write!(f, "file ({})", p.display()),
            RootOfTrustSpec::Pkcs11 {
                token_label, key_label, ..
            } => write!(f, "pkcs11 (token '{token_label}', key '{key_label}')"),
        }
    }
}

/// `POST /v1/node/unseal`: what the node did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unsealed {
    pub node_id: String,
    /// The phase's label after the attempt (`ready` once unsealed).
    pub status: String,
    /// The root of trust, as [`RootOfTrustSpec`] displays it.
    pub root_of_trust: String,
}

/// `POST /v1/node/root-of-trust`: moves this node's KEK and channel key under another root.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRootOfTrust {
    pub to: RootOfTrustSpec,
}

/// What a migration did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RootOfTrustMigrated {
    pub node_id: String,
    pub from: String,
    pub to: String,
    /// The old key file, removed once nothing was sealed under it any more.
    pub removed: Option<String>,
    pub next: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_from_toml_shapes_and_refuses_unknown_kinds() {
        let p: RootOfTrustSpec =
            serde_json::from_str(r#"{"kind":"pkcs11","module":"/m.so","token_label":"t","pin_file":"/pin"}"#).unwrap();
        assert_eq!(p.kind(), "pkcs11");
        assert!(matches!(&p, RootOfTrustSpec::Pkcs11 { key_label, .. } if key_label == DEFAULT_KEY_LABEL));
        let f: RootOfTrustSpec = serde_json::from_str(r#"{"kind":"file"}"#).unwrap();
        assert_eq!(f, RootOfTrustSpec::default());
        assert!(!f.same_key(&p));
        assert!(serde_json::from_str::<RootOfTrustSpec>(r#"{"kind":"tpm"}"#).is_err());
        assert!(serde_json::from_str::<RootOfTrustSpec>(r#"{"kind":"pkcs11","module":"/m.so"}"#).is_err());
    }
}
