//! The node's root of trust and the cluster key-encryption keys (KEKs).
//!
//! The node's root of trust ([`root`]: a key file or an AES key on a PKCS#11
//! token, each node its own) seals the KEKs this node holds in `kek.sealed`
//! and the node's cluster-channel key; the current KEK seals every CA, OCSP
//! and internal key kept in the replicated state. KEKs are numbered: a
//! rotation hands every member the next one over the cluster channel, then one
//! command re-seals every key under it, and each node keeps only that one from
//! then on. No private key is written to disk in plaintext. Sealed files are
//! [`hapki_store::codec`] values.

mod file;
pub mod migrate;
mod pkcs11;
pub mod root;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use hapki_domain::wrap::{self, Wrapped};
use hapki_store::codec;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use root::RootOfTrust;

use crate::datadir::{write_secret, DataDir};
use crate::rand;

/// The context the node's cluster-channel key is sealed under in `channel.key.sealed`.
pub const CHANNEL_KEY_CONTEXT: &str = "channel-key";

/// The context a KEK is sealed under in `kek.sealed`.
fn kek_context(id: u32) -> String {
    format!("cluster-kek:{id}")
}

/// Why the root of trust could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The root of trust cannot be reached now (key file missing, token absent, PIN
    /// refused): the node stays sealed and tries again.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

/// The KEKs a node holds, by number, and which one seals new keys.
struct Keks {
    all: BTreeMap<u32, [u8; 32]>,
    current: u32,
}

/// The unsealed cluster KEKs, held in memory only, and the root of trust that seals them.
pub struct Keyring {
    dir: DataDir,
    root: RwLock<Arc<dyn RootOfTrust>>,
    keks: RwLock<Keks>,
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

/// What `kek.sealed` holds: each KEK's number and the KEK sealed under the root of trust.
pub(crate) type SealedKeks = Vec<(u32, Wrapped)>;

/// Reads a sealed file.
fn read_sealed<T: DeserializeOwned>(path: &std::path::Path, bytes: &[u8]) -> Result<T, TrustError> {
    codec::decode(bytes).map_err(|e| TrustError::Invalid(format!("{} cannot be read: {e}", path.display())))
}

/// Writes a sealed file (0600).
fn write_sealed<T: Serialize>(path: &std::path::Path, value: &T) -> Result<(), TrustError> {
    write_secret(path, &codec::encode(value)).map_err(io(path))
}

impl Keyring {
    /// Opens the node's KEKs under `root`, creating the first (KEK 0) on a fresh data directory.
    pub fn open_or_create(dir: &DataDir, root: Arc<dyn RootOfTrust>) -> Result<Keyring, TrustError> {
        if dir.sealed_kek().exists() {
            Self::load(dir, root)
        } else {
            Self::install(dir, root, 0, rand::bytes::<32>())
        }
    }

    /// Seals KEK `id` under this node's root of trust and keeps it as the only one: a new
    /// cluster's own, or the one a joining node receives over the cluster channel (so each
    /// node seals it under its own root, whatever the others use).
    pub fn install(dir: &DataDir, root: Arc<dyn RootOfTrust>, id: u32, kek: [u8; 32]) -> Result<Keyring, TrustError> {
        let keyring = Keyring {
            dir: dir.clone(),
            root: RwLock::new(root),
            keks: RwLock::new(Keks {
                all: BTreeMap::from([(id, kek)]),
                current: id,
            }),
        };
        keyring.save(&keyring.keks.read().expect("keyring lock"))?;
        Ok(keyring)
    }

    /// Opens the KEKs sealed in the data directory; the newest seals until told otherwise
    /// ([`Keyring::set_current`]).
    pub fn load(dir: &DataDir, root: Arc<dyn RootOfTrust>) -> Result<Keyring, TrustError> {
        let path = dir.sealed_kek();
        let sealed: SealedKeks = read_sealed(&path, &std::fs::read(&path).map_err(io(&path))?)?;
        let all = open_keks(&*root, sealed, &path)?;
        let current = *all
            .keys()
            .next_back()
            .ok_or_else(|| TrustError::Invalid(format!("{} holds no KEK", path.display())))?;
        if root::read_record(&root::record_path(dir))?.is_none() {
            root::write_record(&root::record_path(dir), root.spec())?;
        }
        Ok(Keyring {
            dir: dir.clone(),
            root: RwLock::new(root),
            keks: RwLock::new(Keks { all, current }),
        })
    }

    /// The root of trust that seals this node's KEKs.
    pub fn root(&self) -> Arc<dyn RootOfTrust> {
        self.root.read().expect("root lock").clone()
    }

    /// From now on `root` seals (after a migration has moved every sealed file under it).
    pub(crate) fn set_root(&self, root: Arc<dyn RootOfTrust>) {
        *self.root.write().expect("root lock") = root;
    }

    /// The KEKs sealed under `root`, as `kek.sealed` holds them.
    fn sealed_under(&self, root: &dyn RootOfTrust, keks: &Keks) -> Result<SealedKeks, TrustError> {
        keks.all
            .iter()
            .map(|(id, kek)| Ok((*id, root.seal(&kek_context(*id), kek)?)))
            .collect()
    }

    fn save(&self, keks: &Keks) -> Result<(), TrustError> {
        let root = self.root();
        let sealed = self.sealed_under(&*root, keks)?;
        write_sealed(&self.dir.sealed_kek(), &sealed)?;
        root::write_record(&root::record_path(&self.dir), root.spec())
    }

    /// Keeps KEK `id` beside the others (a rotation under way hands it out before it is used).
    /// One above the current KEK seals nothing yet, so a retried rotation may replace it; the
    /// current and older ones are never replaced.
    pub fn add(&self, id: u32, kek: [u8; 32]) -> Result<(), TrustError> {
        let mut keks = self.keks.write().expect("keyring lock");
        if id <= keks.current && keks.all.get(&id).is_some_and(|k| k != &kek) {
            return Err(TrustError::Invalid(format!(
                "this node already holds another KEK {id}, which is in use"
            )));
        }
        keks.all.insert(id, kek);
        self.save(&keks)
    }

    /// Seals with KEK `id` from now on and forgets the older ones: the state's keys are all
    /// sealed under it. Fails when the node does not hold it.
    pub fn set_current(&self, id: u32) -> Result<(), TrustError> {
        let mut keks = self.keks.write().expect("keyring lock");
        if !keks.all.contains_key(&id) {
            return Err(TrustError::Invalid(format!("this node does not hold KEK {id}")));
        }
        if keks.current == id && keks.all.keys().next() == Some(&id) {
            return Ok(());
        }
        keks.current = id;
        keks.all.retain(|k, _| *k >= id);
        self.save(&keks)
    }

    /// Whether this node holds KEK `id`.
    pub fn holds(&self, id: u32) -> bool {
        self.keks.read().expect("keyring lock").all.contains_key(&id)
    }

    /// The number of the KEK that seals new keys.
    pub fn current(&self) -> u32 {
        self.keks.read().expect("keyring lock").current
    }

    /// KEK `id` itself, to hand to another member over the mutual-TLS cluster channel only.
    pub fn kek_for_member(&self, id: u32) -> Option<[u8; 32]> {
        self.keks.read().expect("keyring lock").all.get(&id).copied()
    }

    /// Seals a secret under the current KEK; `context` names its slot (e.g. `issuer-key:<id>`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Wrapped {
        let id = self.current();
        self.seal_with(id, context, plaintext).expect("the current KEK is held")
    }

    /// Seals a secret under KEK `id`, which this node must hold.
    pub fn seal_with(&self, id: u32, context: &str, plaintext: &[u8]) -> Result<Wrapped, hapki_domain::DomainError> {
        let kek = self
            .kek_for_member(id)
            .ok_or_else(|| hapki_domain::DomainError::Crypto(format!("this node does not hold KEK {id}")))?;
        wrap::seal(&kek, id, rand::bytes::<12>(), context, plaintext)
    }

    /// Opens a secret sealed under any KEK this node holds.
    pub fn open(&self, context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, hapki_domain::DomainError> {
        let kek = self.kek_for_member(wrapped.kek).ok_or_else(|| {
            hapki_domain::DomainError::Crypto(format!(
                "'{context}' is sealed under KEK {}, which this node does not hold",
                wrapped.kek
            ))
        })?;
        wrap::open(&kek, context, wrapped)
    }
}

/// Opens the KEKs of `kek.sealed` (at `path`) under `root`.
fn open_keks(
    root: &dyn RootOfTrust,
    sealed: SealedKeks,
    path: &std::path::Path,
) -> Result<BTreeMap<u32, [u8; 32]>, TrustError> {
    let mut all = BTreeMap::new();
    for (id, w) in sealed {
        let kek = root.open(&kek_context(id), &w).map_err(|e| match e {
            TrustError::Invalid(why) => TrustError::Invalid(format!("{}: {why}", path.display())),
            other => other,
        })?;
        let kek: [u8; 32] = kek
            .try_into()
            .map_err(|_| TrustError::Invalid("a sealed KEK has the wrong length".into()))?;
        all.insert(id, kek);
    }
    Ok(all)
}

/// Seals a node-local secret (the node's cluster-channel key) under the root of trust itself
/// and writes it to `path` (0600): it is never replicated, so it needs no KEK.
pub fn seal_local(
    root: &dyn RootOfTrust,
    context: &str,
    plaintext: &[u8],
    path: &std::path::Path,
) -> Result<(), TrustError> {
    write_sealed(path, &root.seal(context, plaintext)?)
}

/// Opens what [`seal_local`] wrote to `path`; `None` when there is no such file.
pub fn open_local(
    root: &dyn RootOfTrust,
    context: &str,
    path: &std::path::Path,
) -> Result<Option<Vec<u8>>, TrustError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let sealed: Wrapped = read_sealed(path, &bytes)?;
    root.open(context, &sealed).map(Some).map_err(|e| match e {
        TrustError::Invalid(why) => TrustError::Invalid(format!("{}: {why}", path.display())),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapki_api::node::RootOfTrustSpec;

    fn file_root(dir: &DataDir) -> Arc<dyn RootOfTrust> {
        root::open(&RootOfTrustSpec::default(), dir)
    }

    #[test]
    fn the_kek_survives_a_restart_and_needs_its_unseal_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let k1 = Keyring::open_or_create(&dir, file_root(&dir)).unwrap();
        let sealed = k1.seal("issuer-key:x", b"pkcs8");
        let k2 = Keyring::open_or_create(&dir, file_root(&dir)).unwrap();
        assert_eq!(k2.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
        std::fs::write(dir.unseal_key(), [0u8; 32]).unwrap();
        let err = Keyring::open_or_create(&dir, file_root(&dir)).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn a_rotation_moves_sealing_to_the_next_kek_and_drops_the_old_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let ring = Keyring::open_or_create(&dir, file_root(&dir)).unwrap();
        let old = ring.seal("issuer-key:x", b"pkcs8");
        assert_eq!(old.kek, 0);
        ring.add(1, [6; 32]).unwrap();
        // A retried rotation hands out another KEK 1: it replaces the unused one.
        ring.add(1, [5; 32]).unwrap();
        assert!(ring.add(0, [6; 32]).is_err(), "the KEK in use is never replaced");
        // Until the rotation applies, keys are still sealed under KEK 0; both open.
        assert_eq!(ring.seal("a", b"b").kek, 0);
        let new = ring.seal_with(1, "issuer-key:x", b"pkcs8").unwrap();
        assert_eq!(ring.open("issuer-key:x", &new).unwrap(), b"pkcs8");
        ring.set_current(1).unwrap();
        assert_eq!(ring.seal("a", b"b").kek, 1);
        let err = ring.open("issuer-key:x", &old).unwrap_err().to_string();
        assert!(err.contains("KEK 0, which this node does not hold"), "{err}");
        // What a restart finds: only KEK 1.
        let back = Keyring::load(&dir, file_root(&dir)).unwrap();
        assert_eq!(back.current(), 1);
        assert!(!back.holds(0));
        assert_eq!(back.open("issuer-key:x", &new).unwrap(), b"pkcs8");
        assert!(back.set_current(2).is_err());
    }

    #[test]
    fn the_unseal_key_may_live_outside_the_data_directory() {
        let data = tempfile::tempdir().unwrap();
        let mount = tempfile::tempdir().unwrap();
        let key = mount.path().join("unseal.key");
        let dir = DataDir::new(data.path().to_path_buf()).with_unseal_key(Some(key.clone()));
        let sealed = Keyring::open_or_create(&dir, file_root(&dir))
            .unwrap()
            .seal("issuer-key:x", b"pkcs8");
        assert!(key.exists() && !data.path().join("unseal.key").exists());
        // A copy of the data directory alone opens nothing, and makes no new key.
        let copy = DataDir::new(data.path().to_path_buf());
        let err = Keyring::load(&copy, file_root(&copy)).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        assert!(!data.path().join("unseal.key").exists());
        let back = Keyring::load(&dir, file_root(&dir)).unwrap();
        assert_eq!(back.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
    }
}
