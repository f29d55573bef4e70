//! The node's root of trust and the cluster key-encryption key (KEK).
//!
//! `unseal.key` (32 random bytes, mode 0600, node-local) seals the KEK in
//! `kek.sealed`; the KEK seals every CA, OCSP and internal key kept in the
//! replicated state. No private key is written to disk in plaintext.

use hapki_domain::wrap::{self, Wrapped};

use crate::datadir::{write_secret, DataDir};
use crate::rand;

const KEK_CONTEXT: &str = "cluster-kek";

/// Why the root of trust could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The unsealed cluster KEK, held in memory only.
pub struct Keyring {
    kek: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrustError {
    let path = path.display().to_string();
    move |source| TrustError::Io { path, source }
}

/// The node's unseal key; created when `create` and there is none yet (a node that has
/// sealed nothing). A missing key of a node that sealed things is an error, never a new key.
fn unseal_key(dir: &DataDir, create: bool) -> Result<[u8; 32], TrustError> {
    let path = dir.unseal_key();
    if !path.exists() {
        if !create {
            return Err(TrustError::Invalid(format!(
                "the unseal key {} is missing: mount or restore it (unseal_key_file in node.toml says where it is)",
                path.display()
            )));
        }
        write_secret(&path, &rand::bytes::<32>()).map_err(io(&path))?;
    }
    std::fs::read(&path)
        .map_err(io(&path))?
        .try_into()
        .map_err(|_| TrustError::Invalid(format!("{} must hold exactly 32 bytes", path.display())))
}

impl Keyring {
    /// Opens the node's unseal key and KEK, creating both on a fresh data directory.
    pub fn open_or_create(dir: &DataDir) -> Result<Keyring, TrustError> {
        if dir.sealed_kek().exists() {
            Self::load(dir)
        } else {
            Self::install(dir, rand::bytes::<32>())
        }
    }

    /// Seals `kek` under this node's unseal key and keeps it: a new cluster's own, or the
    /// one a joining node receives over the cluster channel.
    pub fn install(dir: &DataDir, kek: [u8; 32]) -> Result<Keyring, TrustError> {
        let unseal = unseal_key(dir, true)?;
        let sealed = wrap::seal(&unseal, rand::bytes::<12>(), KEK_CONTEXT, &kek)
            .map_err(|e| TrustError::Invalid(e.to_string()))?;
        let bytes = bincode::serialize(&sealed).expect("wrapped keys serialize");
        let path = dir.sealed_kek();
        write_secret(&path, &bytes).map_err(io(&path))?;
        Ok(Keyring { kek })
    }

    /// Opens the KEK sealed in the data directory.
    pub fn load(dir: &DataDir) -> Result<Keyring, TrustError> {
        let unseal = unseal_key(dir, false)?;
        let kek_path = dir.sealed_kek();
        let sealed: Wrapped = bincode::deserialize(&std::fs::read(&kek_path).map_err(io(&kek_path))?)
            .map_err(|_| TrustError::Invalid(format!("{} is damaged", kek_path.display())))?;
        let kek = wrap::open(&unseal, KEK_CONTEXT, &sealed).map_err(|_| {
            TrustError::Invalid(format!(
                "{} cannot be opened with {}: the unseal key does not belong to this data directory",
                kek_path.display(),
                dir.unseal_key().display()
            ))
        })?;
        let kek: [u8; 32] = kek
            .try_into()
            .map_err(|_| TrustError::Invalid("the sealed KEK has the wrong length".into()))?;
        Ok(Keyring { kek })
    }

    /// The KEK itself, to hand to a joining node over the mutual-TLS cluster channel only.
    pub fn kek_for_joining_node(&self) -> [u8; 32] {
        self.kek
    }

    /// Seals a secret under the KEK; `context` names its slot (e.g. `issuer-key:<id>`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Wrapped {
        wrap::seal(&self.kek, rand::bytes::<12>(), context, plaintext).expect("AES-GCM sealing does not fail")
    }

    /// Opens a secret sealed under the KEK.
    pub fn open(&self, context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, hapki_domain::DomainError> {
        wrap::open(&self.kek, context, wrapped)
    }
}

/// Seals a node-local secret (the node's cluster-channel key) under the unseal key itself
/// and writes it to `path` (0600): it is never replicated, so it needs no KEK.
pub fn seal_local(dir: &DataDir, context: &str, plaintext: &[u8], path: &std::path::Path) -> Result<(), TrustError> {
    let unseal = unseal_key(dir, true)?;
    let sealed = wrap::seal(&unseal, rand::bytes::<12>(), context, plaintext)
        .map_err(|e| TrustError::Invalid(e.to_string()))?;
    let bytes = bincode::serialize(&sealed).expect("wrapped keys serialize");
    write_secret(path, &bytes).map_err(io(path))
}

/// Opens what [`seal_local`] wrote to `path`; `None` when there is no such file.
pub fn open_local(dir: &DataDir, context: &str, path: &std::path::Path) -> Result<Option<Vec<u8>>, TrustError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let unseal = unseal_key(dir, false)?;
    let sealed: Wrapped =
        bincode::deserialize(&bytes).map_err(|_| TrustError::Invalid(format!("{} is damaged", path.display())))?;
    wrap::open(&unseal, context, &sealed).map(Some).map_err(|_| {
        TrustError::Invalid(format!(
            "{} cannot be opened with {}: the unseal key does not belong to this data directory",
            path.display(),
            dir.unseal_key().display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kek_survives_a_restart_and_needs_its_unseal_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let k1 = Keyring::open_or_create(&dir).unwrap();
        let sealed = k1.seal("issuer-key:x", b"pkcs8");
        let k2 = Keyring::open_or_create(&dir).unwrap();
        assert_eq!(k2.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
        std::fs::write(dir.unseal_key(), [0u8; 32]).unwrap();
        let err = Keyring::open_or_create(&dir).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn the_unseal_key_may_live_outside_the_data_directory() {
        let data = tempfile::tempdir().unwrap();
        let mount = tempfile::tempdir().unwrap();
        let key = mount.path().join("unseal.key");
        let dir = DataDir::new(data.path().to_path_buf()).with_unseal_key(Some(key.clone()));
        let sealed = Keyring::open_or_create(&dir).unwrap().seal("issuer-key:x", b"pkcs8");
        assert!(key.exists() && !data.path().join("unseal.key").exists());
        // A copy of the data directory alone opens nothing, and makes no new key.
        let copy = DataDir::new(data.path().to_path_buf());
        let err = Keyring::load(&copy).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        assert!(!data.path().join("unseal.key").exists());
        let back = Keyring::load(&dir).unwrap();
        assert_eq!(back.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
    }
}
