//! PKCS#12 files: writing a key with its chain (server-side key generation,
//! CA export) and reading one back (CA import). p12-keystore does the format;
//! files are AES-256-CBC with PBKDF2 and a SHA-256 MAC.

use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKey, PrivateKeyChain};

use crate::DomainError;

/// Writes `key_pkcs8` and `chain` (leaf first) under `password`.
pub fn write(alias: &str, key_pkcs8: &[u8], chain: &[Vec<u8>], password: &str) -> Result<Vec<u8>, DomainError> {
    write_entries(
        &[Entry {
            alias: alias.to_string(),
            key_pkcs8: key_pkcs8.to_vec(),
            chain: chain.to_vec(),
        }],
        password,
    )
}

/// One key with its chain (leaf first), under a friendly name.
pub struct Entry {
    pub alias: String,
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// Writes several keys with their chains, each under its friendly name, in one file.
pub fn write_entries(entries: &[Entry], password: &str) -> Result<Vec<u8>, DomainError> {
    if password.is_empty() {
        return Err(DomainError::invalid("a PKCS#12 file needs a non-empty password"));
    }
    let mut store = KeyStore::new();
    for e in entries {
        let key =
            PrivateKey::from_der(&e.key_pkcs8).map_err(|err| DomainError::invalid(format!("PKCS#12 key: {err}")))?;
        let certs = e
            .chain
            .iter()
            .map(|c| {
                Certificate::from_der(c).map_err(|err| DomainError::invalid(format!("PKCS#12 certificate: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = e
            .chain
            .first()
            .ok_or_else(|| DomainError::invalid("a PKCS#12 key needs its certificate"))?;
        let local_key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf);
        store.add_entry(
            &e.alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.as_ref().to_vec(), key, certs)),
        );
    }
    store
        .writer(password)
        .write()
        .map_err(|e| DomainError::Crypto(format!("writing PKCS#12 failed: {e}")))
}

/// Every key with its chain in a PKCS#12 file, by friendly name.
pub fn read_entries(data: &[u8], password: &str) -> Result<Vec<Entry>, DomainError> {
    let store = open(data, password)?;
    let mut out: Vec<Entry> = store
        .entries()
        .filter_map(|(alias, entry)| match entry {
            KeyStoreEntry::PrivateKeyChain(chain) if !chain.certs().is_empty() => Some(Entry {
                alias: alias.to_string(),
                key_pkcs8: chain.key().as_der().to_vec(),
                chain: chain.certs().iter().map(|c| c.as_der().to_vec()).collect(),
            }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.alias.cmp(&b.alias));
    Ok(out)
}

fn open(data: &[u8], password: &str) -> Result<KeyStore, DomainError> {
    KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
        DomainError::invalid(format!(
            "cannot read the PKCS#12 file (wrong password or damaged file): {e}"
        ))
    })
}

/// A key and its chain read from a PKCS#12 file.
pub struct KeyAndChain {
    pub key_pkcs8: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// Reads the first key and its chain (leaf first) from a PKCS#12 file.
pub fn read(data: &[u8], password: &str) -> Result<KeyAndChain, DomainError> {
    let store = open(data, password)?;
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
