//! `hapki backup restore`: a backup file into a fresh data directory, as a one-node
//! cluster of the backup's cluster. The key is checked before anything is written; the
//! state is read chunk by chunk, every chunk checked, into one redb transaction; the
//! restored state must have the backup's digest; the KEK is sealed under this node's
//! root of trust. On any failure the directory is left as it was found.

use std::io::{BufReader, Read};
use std::path::Path;

use hapki_api::node::RootOfTrustSpec;
use hapki_cluster::restore::AppliedAt;
use hapki_cluster::NodeAddr;
use hapki_domain::backup::{self, BackupKey, Header};
use hapki_domain::pem::{decode_one, PemLabel};

use crate::config::NodeConfig;
use crate::datadir::DataDir;
use crate::trust::Keyring;

/// What opens a backup: its key, or the recipient's RSA private key (PKCS#8 DER).
pub enum KeyMaterial {
    Key(BackupKey),
    Recipient(Vec<u8>),
}

impl KeyMaterial {
    /// Reads a key file: a backup key (`hbk_…`) or a PEM private key.
    pub fn parse(text: &[u8]) -> Result<KeyMaterial, String> {
        let s = String::from_utf8_lossy(text);
        if s.trim_start().starts_with("hbk_") {
            return BackupKey::parse(&s).map(KeyMaterial::Key).map_err(|e| e.to_string());
        }
        decode_one(text, &[PemLabel::PrivateKey])
            .map(KeyMaterial::Recipient)
            .map_err(|_| {
                "the key file holds neither a backup key (hbk_…) nor a PKCS#8 PEM private key \
             (convert an RSA key with `openssl pkcs8 -topk8 -nocrypt`)"
                    .to_string()
            })
    }

    fn open(&self, header: &Header) -> Result<BackupKey, String> {
        match self {
            KeyMaterial::Key(k) => Ok(k.clone()),
            KeyMaterial::Recipient(pkcs8) => backup::open_key_with(header, pkcs8).map_err(|e| e.to_string()),
        }
    }
}

/// A finished restore.
pub struct Restored {
    pub header: Header,
    pub node_id: u64,
    pub rows: u64,
    /// The digest of the restored state, computed from the new store (the header's).
    pub digest: String,
}

/// Reads the header of a backup file without its key.
pub fn inspect(path: &Path) -> Result<Header, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    backup::read_header(&mut BufReader::new(file))
        .map(|(h, _)| h)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Restores `file` into `cfg.data_dir`, which must be absent or empty. `progress` is told
/// how many bytes of the file were read.
pub fn restore(
    cfg: &NodeConfig,
    file: &Path,
    key: &KeyMaterial,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Restored, String> {
    let shown = file.display();
    let mut input = BufReader::new(std::fs::File::open(file).map_err(|e| format!("{shown}: {e}"))?);
    let (header, hash) = backup::read_header(&mut input).map_err(|e| format!("{shown}: {e}"))?;
    let backup_key = key.open(&header)?;
    let (kek_id, kek) = header.open_kek(&backup_key).map_err(|e| e.to_string())?;

    let root = &cfg.data_dir;
    let existed = root.exists();
    if existed
        && std::fs::read_dir(root)
            .map_err(|e| format!("{}: {e}", root.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} is not empty: restore into a new data directory (--data-dir), so that nothing there is overwritten",
            root.display()
        ));
    }
    let outcome = fill(cfg, &header, hash, &backup_key, (kek_id, kek), input, progress);
    if outcome.is_err() {
        // Leave the directory as it was found: absent, or empty.
        if existed {
            if let Ok(entries) = std::fs::read_dir(root) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(root);
        }
    }
    outcome
}

fn fill(
    cfg: &NodeConfig,
    header: &Header,
    hash: Vec<u8>,
    key: &BackupKey,
    (kek_id, kek): (u32, [u8; 32]),
    input: impl Read,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Restored, String> {
    let dir = DataDir::new(cfg.data_dir.clone());
    dir.create()
        .map_err(|e| format!("cannot create {}: {e}", dir.root.display()))?;
    let spec = crate::trust::root::resolve(cfg.configured_root().as_ref(), &dir).map_err(|e| e.to_string())?;
    let dir = match &spec {
        RootOfTrustSpec::File { key_file } => dir.with_unseal_key(key_file.clone()),
        RootOfTrustSpec::Pkcs11 { .. } => dir,
    };
    let node_id = crate::node::node_id(&dir).map_err(|e| e.to_string())?;
    let store = crate::upgrade::open_store(&dir, cfg.cache_mib.max(1) * 1024 * 1024)
        .map_err(|e| format!("cannot open {}: {e}", dir.db().display()))?;
    let reader = backup::Reader::new(
        Progress {
            inner: input,
            read: 0,
            tell: progress,
        },
        key,
        header,
        hash,
    )
    .map_err(|e| e.to_string())?;
    let at = AppliedAt {
        term: header.term,
        leader: header.leader,
        index: header.index,
    };
    let addr = NodeAddr {
        name: crate::lifecycle::node_name(cfg),
        api: cfg.listen.to_string(),
        cluster: cfg.cluster_address().unwrap_or_default(),
    };
    let rows = hapki_cluster::restore::restore(&store, reader, at, node_id, addr).map_err(|e| damage(&*e))?;
    let digest = store.reader().and_then(|r| r.digest()).map_err(|e| e.to_string())?;
    if digest != header.digest {
        return Err(format!(
            "the restored state's digest {digest} is not the backup's {}: the backup is damaged",
            header.digest
        ));
    }
    drop(store);
    Keyring::install(&dir, crate::trust::root::open(&spec, &dir), kek_id, kek).map_err(|e| e.to_string())?;
    Ok(Restored {
        header: header.clone(),
        node_id,
        rows,
        digest,
    })
}

/// What went wrong in a restore, in words: a file that does not open (cut, altered,
/// another key's) says so without the storage layer's "I/O:" in front.
fn damage(e: &(dyn std::error::Error + 'static)) -> String {
    match e.downcast_ref::<hapki_store::StoreError>() {
        Some(hapki_store::StoreError::Io(io)) if io.kind() == std::io::ErrorKind::InvalidData => io.to_string(),
        _ => e.to_string(),
    }
}

/// Tells how far a read has come.
struct Progress<'a, R> {
    inner: R,
    read: u64,
    tell: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.tell)(self.read);
        Ok(n)
    }
}
