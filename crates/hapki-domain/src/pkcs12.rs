//! PKCS#12 files: writing a key with its chain (server-side key generation,
//! CA export) and reading one back (CA import). p12-keystore does the format;
//! files are AES-256-CBC with PBKDF2 and a SHA-256 MAC.

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKey, PrivateKeyChain};

use crate::DomainError;

/// Writes `key_pkcs8` and `chain` (leaf first) under `password`.
pub fn write(alias: &str, key_pkcs8: &[u8], chain: &[Vec<u8>], password: &str) -> Result<Vec<u8>, DomainError> {
    if password.is_empty() {
        return Err(DomainError::invalid("a PKCS#12 file needs a non-empty password"));
    }
    let key = PrivateKey::from_der(key_pkcs8).map_err(|e| DomainError::invalid(format!("PKCS#12 key: {e}")))?;
    let certs = chain
        .iter()
        .map(|c| Certificate::from_der(c).map_err(|e| DomainError::invalid(format!("PKCS#12 certificate: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let local_key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &chain[0]);
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.as_ref().to_vec(), key, certs)),
    );
    store
        .writer(password)
        .write()
        .map_err(|e| DomainError::Crypto(format!("writing PKCS#12 failed: {e}")))
}

/// A key and its chain read from a PKCS#12 file.
pub struct KeyAndChain {
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// Reads the first key and its chain (leaf first) from a PKCS#12 file.
pub fn read(data: &[u8], password: &str) -> Result<KeyAndChain, DomainError> {
    let store = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
        DomainError::invalid(format!(
            "cannot read the PKCS#12 file (wrong password or damaged file): {e}"
        ))
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| DomainError::invalid("the PKCS#12 file holds no private key with a certificate"))?;
    if chain.certs().is_empty() {
        return Err(DomainError::invalid("the PKCS#12 file's key has no certificate"));
    }
    Ok(KeyAndChain {
        key_pkcs8: chain.key().as_der().to_vec(),
        chain: chain.certs().iter().map(|c| c.as_der().to_vec()).collect(),
    })
}
