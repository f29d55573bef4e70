//! Key wrapping: AES-256-GCM under a key-encryption key, with the purpose and
//! key id bound into the associated data so that a wrapped blob cannot be moved
//! to another slot. The 96-bit nonce is passed in fresh for every seal.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A wrapped secret: format version, which key-encryption key sealed it (the cluster's KEKs
/// are numbered from 0 and each rotation takes the next), nonce and ciphertext with tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapped {
    pub version: u8,
    pub kek: u32,
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Wrapped(v{}, kek {}, {} bytes)",
            self.version,
            self.kek,
            self.ciphertext.len()
        )
    }
}

fn key(kek: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).expect("32-byte AES-256 key"))
}

/// Seals `plaintext` under `kek`, the key numbered `kek_id`; `context` names what it is
/// (e.g. `issuer-key:<id>`).
pub fn seal(
    kek: &[u8; 32],
    kek_id: u32,
    nonce: [u8; 12],
    context: &str,
    plaintext: &[u8],
) -> Result<Wrapped, DomainError> {
    let mut buf = plaintext.to_vec();
    key(kek)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(context)),
            &mut buf,
        )
        .map_err(|_| DomainError::Crypto("sealing failed".into()))?;
    Ok(Wrapped {
        version: 1,
        kek: kek_id,
        nonce,
        ciphertext: buf,
    })
}

/// Opens a sealed secret; fails if the key, context or bytes differ.
pub fn open(kek: &[u8; 32], context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, DomainError> {
    if wrapped.version != 1 {
        return Err(DomainError::invalid(format!(
            "unknown wrapping version {}",
            wrapped.version
        )));
    }
    let mut buf = wrapped.ciphertext.clone();
    let plain = key(kek)
        .open_in_place(
            Nonce::assume_unique_for_key(wrapped.nonce),
            Aad::from(associated_data(context)),
            &mut buf,
        )
        .map_err(|_| DomainError::Crypto(format!("unwrapping '{context}' failed: wrong key or damaged data")))?;
    Ok(plain.to_vec())
}

/// The associated data a secret for `context` is sealed with; a PKCS#11 token that seals
/// with AES-GCM uses it too, so its output opens the same way.
pub fn associated_data(context: &str) -> Vec<u8> {
    format!("hapki-wrap-v1:{context}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let kek = [9u8; 32];
        let w = seal(&kek, 0, [1; 12], "issuer-key:a", b"secret").unwrap();
        assert_eq!(open(&kek, "issuer-key:a", &w).unwrap(), b"secret");
        assert!(open(&kek, "issuer-key:b", &w).is_err());
        assert!(open(&[8u8; 32], "issuer-key:a", &w).is_err());
    }
}
