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

impl Keyring {
    /// Opens the node's unseal key and KEK, creating both on a fresh data directory.
    pub fn open_or_create(dir: &DataDir) -> Result<Keyring, TrustError> {
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| TrustError::Io { path, source }
        };
        let unseal_path = dir.unseal_key();
        if !unseal_path.exists() {
            write_secret(&unseal_path, &rand::bytes::<32>()).map_err(io(&unseal_path))?;
        }
        let unseal: [u8; 32] = std::fs::read(&unseal_path)
            .map_err(io(&unseal_path))?
            .try_into()
            .map_err(|_| TrustError::Invalid(format!("{} must hold exactly 32 bytes", unseal_path.display())))?;
        let kek_path = dir.sealed_kek();
        if !kek_path.exists() {
            let sealed = wrap::seal(&unseal, rand::bytes::<12>(), KEK_CONTEXT, &rand::bytes::<32>())
                .map_err(|e| TrustError::Invalid(e.to_string()))?;
            let bytes = bincode::serialize(&sealed).expect("wrapped keys serialize");
            write_secret(&kek_path, &bytes).map_err(io(&kek_path))?;
        }
        let sealed: Wrapped = bincode::deserialize(&std::fs::read(&kek_path).map_err(io(&kek_path))?)
            .map_err(|_| TrustError::Invalid(format!("{} is damaged", kek_path.display())))?;
        let kek = wrap::open(&unseal, KEK_CONTEXT, &sealed).map_err(|_| {
            TrustError::Invalid(format!(
                "{} cannot be opened with {}: the unseal key does not belong to this data directory",
                kek_path.display(),
                unseal_path.display()
            ))
        })?;
        let kek: [u8; 32] = kek
            .try_into()
            .map_err(|_| TrustError::Invalid("the sealed KEK has the wrong length".into()))?;
        Ok(Keyring { kek })
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
}
