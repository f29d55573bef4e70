//! Opening a data directory that an earlier hapki wrote. The store migrates itself in
//! place ([`hapki_store::Upgrade`]); this module hands it what it cannot re-encode alone:
//! the Raft tables ([`hapki_cluster::upgrade`]) and the node's sealed files.
//!
//! A sealed file of schema 2 is first copied beside itself (`<file>.schema2`) and always
//! re-encoded from that copy, so a migration interrupted before its commit reads the same
//! bytes when it runs again; the copies are removed once the store is at the current schema.

use std::path::{Path, PathBuf};

use hapki_domain::wrap::Wrapped;
use hapki_store::legacy::recode;
use hapki_store::{Store, StoreError};

use crate::datadir::{write_secret, DataDir};
use crate::trust::SealedKeks;

/// Re-encodes the bytes of one sealed file of schema 2.
type Recode = fn(&[u8]) -> Result<Vec<u8>, StoreError>;

/// The data directory's sealed files, and how each is re-encoded from schema 2.
fn sealed_files(dir: &DataDir) -> [(PathBuf, Recode); 2] {
    [
        (dir.sealed_kek(), recode::<SealedKeks>),
        (dir.channel_key(), recode::<Wrapped>),
    ]
}

/// Where the schema-2 bytes of `path` are kept while the migration runs.
fn schema_2_copy(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".schema2");
    PathBuf::from(name)
}

struct Schema2<'a> {
    dir: &'a DataDir,
}

impl hapki_store::Upgrade for Schema2<'_> {
    fn log_entry(&self, legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
        hapki_cluster::upgrade::log_entry(legacy)
    }

    fn raft_meta(&self, key: &str, legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
        hapki_cluster::upgrade::raft_meta(key, legacy)
    }

    fn files(&self) -> Result<(), StoreError> {
        for (path, recode) in sealed_files(self.dir) {
            let copy = schema_2_copy(&path);
            if !copy.exists() {
                match std::fs::read(&path) {
                    Ok(bytes) => write_secret(&copy, &bytes)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let bytes =
                recode(&std::fs::read(&copy)?).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            write_secret(&path, &bytes)?;
        }
        Ok(())
    }
}

/// Opens the node's store with a page cache of `cache_bytes`, migrating a data directory
/// of schema 2 in place (and saying so).
pub fn open_store(dir: &DataDir, cache_bytes: usize) -> Result<Store, StoreError> {
    let (store, migrated) = Store::open_upgrading(&dir.db(), cache_bytes, &Schema2 { dir })?;
    for (path, _) in sealed_files(dir) {
        match std::fs::remove_file(schema_2_copy(&path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    if let Some(m) = migrated {
        let line = format!(
            "migrated the data directory {} from schema {} to {}: {} records, {} log entries, \
             {} Raft values and the sealed files re-encoded",
            dir.root.display(),
            m.from,
            hapki_store::tables::SCHEMA_VERSION,
            m.records,
            m.log_entries,
            m.raft_meta
        );
        println!("hapki: {line}");
        tracing::info!("{line}");
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Keyring;

    fn u64le(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    /// A `Wrapped` of schema 2: version, KEK, nonce (12 bytes, no count), ciphertext.
    fn legacy_wrapped(w: &Wrapped) -> Vec<u8> {
        [
            vec![w.version],
            w.kek.to_le_bytes().to_vec(),
            w.nonce.to_vec(),
            u64le(w.ciphertext.len() as u64),
            w.ciphertext.clone(),
        ]
        .concat()
    }

    #[test]
    fn sealed_files_of_schema_2_are_re_encoded_even_when_interrupted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let root = crate::trust::root::open(&Default::default(), &dir);
        let ring = Keyring::open_or_create(&dir, root.clone()).unwrap();
        let sealed = ring.seal("issuer-key:x", b"pkcs8");
        crate::trust::seal_local(&*root, "channel-key", b"channel", &dir.channel_key()).unwrap();
        // Write both files back in the schema-2 layout.
        let keks: SealedKeks = hapki_store::codec::decode(&std::fs::read(dir.sealed_kek()).unwrap()).unwrap();
        let mut legacy = u64le(keks.len() as u64);
        for (id, w) in &keks {
            legacy.extend(id.to_le_bytes());
            legacy.extend(legacy_wrapped(w));
        }
        std::fs::write(dir.sealed_kek(), &legacy).unwrap();
        let channel: Wrapped = hapki_store::codec::decode(&std::fs::read(dir.channel_key()).unwrap()).unwrap();
        std::fs::write(dir.channel_key(), legacy_wrapped(&channel)).unwrap();
        assert!(
            Keyring::load(&dir, root.clone()).is_err(),
            "schema 2 is not read as it is"
        );

        let upgrade = Schema2 { dir: &dir };
        hapki_store::Upgrade::files(&upgrade).unwrap();
        // Interrupted before the store committed: the next start runs it again, from the copies.
        hapki_store::Upgrade::files(&upgrade).unwrap();
        assert!(schema_2_copy(&dir.sealed_kek()).exists());
        let back = Keyring::load(&dir, root.clone()).unwrap();
        assert_eq!(back.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
        let key = crate::trust::open_local(&*root, "channel-key", &dir.channel_key()).unwrap();
        assert_eq!(key.as_deref(), Some(b"channel".as_slice()));

        // Once the store is at schema 3, the copies go.
        open_store(&dir, hapki_store::DEFAULT_CACHE_BYTES).unwrap();
        assert!(!schema_2_copy(&dir.sealed_kek()).exists());
        assert!(!schema_2_copy(&dir.channel_key()).exists());
    }
}
