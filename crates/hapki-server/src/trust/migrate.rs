//! Moving a running node's sealed files (`kek.sealed`, `channel.key.sealed`)
//! from one root of trust to another, so that a crash at any point leaves a
//! directory that opens under exactly one of them.
//!
//! The next record (`root-of-trust.toml.next`) is written first and marks a
//! migration under way; then each sealed file is sealed again beside itself
//! (`<file>.next`) and read back; renaming the next record over the record is
//! the commit point; then the `.next` files are renamed into place. At start,
//! [`finish_interrupted`] rolls an uncommitted migration back (deletes the
//! `.next` files) and a committed one forward (renames them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::root::{self, RootOfTrust};
use super::{io, open_local, read_sealed, write_sealed, Keyring, TrustError, CHANNEL_KEY_CONTEXT};
use crate::datadir::DataDir;

/// Where a file's next sealing is written until the migration commits.
fn next(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// The node-local files sealed under the root of trust, `kek.sealed` first.
fn sealed_files(dir: &DataDir) -> [PathBuf; 2] {
    [dir.sealed_kek(), dir.channel_key()]
}

fn sync_dir(dir: &DataDir) -> Result<(), TrustError> {
    std::fs::File::open(&dir.root)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir.root))
}

fn remove_if_present(path: &Path) -> Result<(), TrustError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Completes what a migration cut short left in `dir`: back to the old root when it had not
/// committed, forward to the new one when it had.
pub fn finish_interrupted(dir: &DataDir) -> Result<(), TrustError> {
    let next_record = root::next_record_path(dir);
    let committed = !next_record.exists();
    let mut changed = false;
    for file in sealed_files(dir) {
        let pending = next(&file);
        if !pending.exists() {
            continue;
        }
        changed = true;
        if committed {
            std::fs::rename(&pending, &file).map_err(io(&pending))?;
        } else {
            remove_if_present(&pending)?;
        }
    }
    if !committed {
        changed = true;
        remove_if_present(&next_record)?;
    }
    if changed {
        tracing::warn!(
            "an interrupted root-of-trust migration was {} at start",
            if committed { "completed" } else { "rolled back" }
        );
        sync_dir(dir)?;
    }
    Ok(())
}

/// Moves the node's sealed files under `to`, then seals with it; returns the old key file
/// when it was removed (a key file's root is the node's alone, a token's key is not).
pub fn migrate(ring: &Keyring, to: Arc<dyn RootOfTrust>) -> Result<Option<PathBuf>, TrustError> {
    let from = ring.root();
    if from.spec().same_key(to.spec()) {
        return Err(TrustError::Invalid(format!(
            "this node is already sealed under {}",
            from.spec()
        )));
    }
    let dir = &ring.dir;
    // No KEK is added or dropped while the files move.
    let keks = ring.keks.write().expect("keyring lock");
    let [kek_file, channel_file] = sealed_files(dir);
    let next_record = root::next_record_path(dir);
    root::write_record(&next_record, to.spec())?;
    let staged = (|| {
        // Sealing under the new root first also proves it works (token present, PIN right).
        let sealed = ring.sealed_under(&*to, &keks)?;
        super::open_keks(&*to, sealed.clone(), &kek_file)?;
        write_sealed(&next(&kek_file), &sealed)?;
        if let Some(plain) = open_local(&*from, CHANNEL_KEY_CONTEXT, &channel_file)? {
            let wrapped = to.seal(CHANNEL_KEY_CONTEXT, &plain)?;
            write_sealed(&next(&channel_file), &wrapped)?;
            let path = next(&channel_file);
            let back: hapki_domain::wrap::Wrapped = read_sealed(&path, &std::fs::read(&path).map_err(io(&path))?)?;
            if to.open(CHANNEL_KEY_CONTEXT, &back)? != plain {
                return Err(TrustError::Invalid(
                    "the channel key did not read back under the new root".into(),
                ));
            }
        }
        sync_dir(dir)
    })();
    if let Err(e) = staged {
        let _ = finish_interrupted(dir);
        return Err(e);
    }
    // The commit point: from here the directory belongs to the new root.
    std::fs::rename(&next_record, root::record_path(dir)).map_err(io(&next_record))?;
    sync_dir(dir)?;
    finish_interrupted(dir)?;
    ring.set_root(to.clone());
    drop(keks);
    tracing::info!("this node's KEK and channel key are now sealed under {}", to.spec());
    let removed = from.retire()?;
    if let Some(p) = &removed {
        tracing::info!("removed the old unseal key {}", p.display());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapki_api::node::RootOfTrustSpec;

    fn file_at(dir: &DataDir, key: &Path) -> Arc<dyn RootOfTrust> {
        root::open(
            &RootOfTrustSpec::File {
                key_file: Some(key.to_path_buf()),
            },
            dir,
        )
    }

    #[test]
    fn a_move_to_another_key_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let ring = Keyring::open_or_create(&dir, root::open(&RootOfTrustSpec::default(), &dir)).unwrap();
        let elsewhere = tmp.path().join("other.key");
        // A key file moves with `mv` and `key_file`; a migration between two is refused.
        let same = migrate(&ring, file_at(&dir, &elsewhere)).unwrap_err().to_string();
        assert!(same.contains("already sealed"), "{same}");
        assert!(!elsewhere.exists() && dir.unseal_key().exists());
    }

    /// A root that seals with a key file but counts as another key (as a token's would).
    struct Other(Arc<dyn RootOfTrust>, RootOfTrustSpec);
    impl RootOfTrust for Other {
        fn spec(&self) -> &RootOfTrustSpec {
            &self.1
        }
        fn seal(&self, c: &str, p: &[u8]) -> Result<hapki_domain::wrap::Wrapped, TrustError> {
            self.0.seal(c, p)
        }
        fn open(&self, c: &str, w: &hapki_domain::wrap::Wrapped) -> Result<Vec<u8>, TrustError> {
            self.0.open(c, w)
        }
        fn retire(&self) -> Result<Option<PathBuf>, TrustError> {
            self.0.retire()
        }
    }

    fn other(dir: &DataDir, key: &Path) -> Arc<dyn RootOfTrust> {
        Arc::new(Other(
            file_at(dir, key),
            RootOfTrustSpec::Pkcs11 {
                module: "/nonexistent.so".into(),
                token_label: "t".into(),
                pin_file: "/nonexistent".into(),
                key_label: "k".into(),
            },
        ))
    }

    #[test]
    fn a_committed_migration_reopens_under_the_new_root_and_an_uncommitted_one_under_the_old() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let ring = Keyring::open_or_create(&dir, root::open(&RootOfTrustSpec::default(), &dir)).unwrap();
        super::super::seal_local(&*ring.root(), CHANNEL_KEY_CONTEXT, b"channel", &dir.channel_key()).unwrap();
        let sealed = ring.seal("issuer-key:x", b"pkcs8");
        let new_key = tmp.path().join("token.key");

        let removed = migrate(&ring, other(&dir, &new_key)).unwrap();
        assert_eq!(removed, Some(dir.unseal_key()), "the old key file is removed");
        assert!(!dir.unseal_key().exists());
        assert_eq!(ring.root().spec().kind(), "pkcs11");
        assert_eq!(
            ring.open("issuer-key:x", &sealed).unwrap(),
            b"pkcs8",
            "the KEK is unchanged"
        );
        let recorded = root::read_record(&root::record_path(&dir)).unwrap().unwrap();
        assert_eq!(recorded.kind(), "pkcs11");
        let back = Keyring::load(&dir, other(&dir, &new_key)).unwrap();
        assert_eq!(back.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
        let channel = open_local(&*other(&dir, &new_key), CHANNEL_KEY_CONTEXT, &dir.channel_key()).unwrap();
        assert_eq!(channel.as_deref(), Some(&b"channel"[..]));
        assert!(sealed_files(&dir).iter().all(|f| !next(f).exists()));

        // Crash after the next files were written but before the commit: rolled back.
        let before: Vec<Vec<u8>> = sealed_files(&dir).iter().map(|f| std::fs::read(f).unwrap()).collect();
        root::write_record(&root::next_record_path(&dir), &RootOfTrustSpec::default()).unwrap();
        for f in sealed_files(&dir) {
            std::fs::write(next(&f), b"half written").unwrap();
        }
        let resolved = root::resolve(None, &dir).unwrap();
        assert_eq!(resolved.kind(), "pkcs11", "the uncommitted migration is rolled back");
        assert!(!root::next_record_path(&dir).exists());
        for (f, b) in sealed_files(&dir).iter().zip(&before) {
            assert_eq!(&std::fs::read(f).unwrap(), b);
            assert!(!next(f).exists());
        }

        // Crash after the commit, before the renames: rolled forward.
        for (f, b) in sealed_files(&dir).iter().zip(&before) {
            std::fs::write(next(f), b).unwrap();
            std::fs::write(f, b"stale").unwrap();
        }
        root::resolve(None, &dir).unwrap();
        for (f, b) in sealed_files(&dir).iter().zip(&before) {
            assert_eq!(&std::fs::read(f).unwrap(), b, "the committed files are in place");
        }
        Keyring::load(&dir, other(&dir, &new_key)).unwrap();
    }

    #[test]
    fn a_migration_to_a_root_that_cannot_seal_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let ring = Keyring::open_or_create(&dir, root::open(&RootOfTrustSpec::default(), &dir)).unwrap();
        let kek = std::fs::read(dir.sealed_kek()).unwrap();
        let token = root::open(
            &RootOfTrustSpec::Pkcs11 {
                module: tmp.path().join("no-such-module.so"),
                token_label: "t".into(),
                pin_file: tmp.path().join("pin"),
                key_label: "k".into(),
            },
            &dir,
        );
        let err = migrate(&ring, token).unwrap_err();
        assert!(matches!(err, TrustError::Unavailable(_)), "{err}");
        assert_eq!(std::fs::read(dir.sealed_kek()).unwrap(), kek);
        assert!(dir.unseal_key().exists());
        assert!(!root::next_record_path(&dir).exists());
        assert_eq!(ring.root().spec().kind(), "file");
        assert_eq!(
            root::read_record(&root::record_path(&dir)).unwrap().unwrap().kind(),
            "file"
        );
    }

    #[test]
    fn a_node_moves_from_its_key_file_to_a_token_and_starts_from_it() {
        use super::super::pkcs11::softhsm;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().to_path_buf());
        let ring = Keyring::open_or_create(&dir, root::open(&RootOfTrustSpec::default(), &dir)).unwrap();
        super::super::seal_local(&*ring.root(), CHANNEL_KEY_CONTEXT, b"channel", &dir.channel_key()).unwrap();
        let sealed = ring.seal("issuer-key:x", b"pkcs8");
        let token = super::super::pkcs11::test_root(
            "migrate",
            hapki_api::node::DEFAULT_KEY_LABEL,
            softhsm::pin_file("pin", softhsm::USER_PIN),
        );

        let removed = migrate(&ring, root::open(&token, &dir)).unwrap();
        assert_eq!(removed, Some(dir.unseal_key()));
        assert!(!dir.unseal_key().exists());
        // Sealing goes on under the token, with the same KEK.
        ring.add(1, [7; 32]).unwrap();
        // A start with nothing configured takes the recorded token.
        let resolved = root::resolve(None, &dir).unwrap();
        assert_eq!(resolved, token);
        let back = Keyring::load(&dir, root::open(&resolved, &dir)).unwrap();
        assert_eq!(back.open("issuer-key:x", &sealed).unwrap(), b"pkcs8");
        assert!(back.holds(1));
        let channel = open_local(&*root::open(&resolved, &dir), CHANNEL_KEY_CONTEXT, &dir.channel_key()).unwrap();
        assert_eq!(channel.as_deref(), Some(&b"channel"[..]));
        // A configuration that still names the key file is refused, naming both roots.
        let err = root::resolve(Some(&RootOfTrustSpec::default()), &dir)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sealed under pkcs11") && err.contains("asks for file"),
            "{err}"
        );
    }
}
