//! A schema-2 store, written byte by byte, is migrated in place at open: every record
//! re-encoded, the Raft tables handed to the [`Upgrade`], the schema set to 3, all in one
//! transaction; a migration that fails leaves schema 2 as it was.

use std::cell::Cell;
use std::path::Path;

use hapki_domain::revocation::RevocationReason;
use redb::ReadableTableMetadata;

use super::*;
use crate::{NodeStanding, SerialMode, Store, DEFAULT_CACHE_BYTES};

/// Re-encodes the Raft tables by tagging them, and counts its calls to `files`.
#[derive(Default)]
struct Tagging {
    files: Cell<u32>,
    fail_files: bool,
}

impl Upgrade for Tagging {
    fn log_entry(&self, legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok([b"entry:", legacy].concat())
    }
    fn raft_meta(&self, key: &str, legacy: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok([key.as_bytes(), b":", legacy].concat())
    }
    fn files(&self) -> Result<(), StoreError> {
        self.files.set(self.files.get() + 1);
        if self.fail_files {
            return Err(StoreError::Corrupt("the sealed files cannot be read".into()));
        }
        Ok(())
    }
}

fn u64le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// The settings of schema 2: URL, CRL and OCSP validity, voters, serial mode (variant 1,
/// sequential), serial range.
fn legacy_settings() -> Vec<u8> {
    [
        &u64le(4)[..],
        b"http",
        &u64le(86_400),
        &u64le(3_600),
        &[5],
        &[1, 0, 0, 0],
        &u64le(250),
    ]
    .concat()
}

/// A node record of schema 2: id 7, name "n7", admitted, at 10, never removed, no channel key.
fn legacy_node() -> Vec<u8> {
    [&u64le(7)[..], &u64le(2), b"n7", &[0, 0, 0, 0], &u64le(10), &[0], &[0]].concat()
}

/// Writes a schema-2 store at `path`, with `revocation` as its one revocation's bytes.
fn write_schema_2(path: &Path, revocation: &[u8]) {
    let store = Store::open(path).unwrap();
    let txn = store.db().begin_write().unwrap();
    {
        let mut meta = txn.open_table(SM_META).unwrap();
        meta.insert(b"schema_version".as_slice(), 2u32.to_be_bytes().as_slice())
            .unwrap();
        meta.insert(b"cluster_id".as_slice(), b"c1".as_slice()).unwrap();
        meta.insert(b"next_serial".as_slice(), 9u64.to_be_bytes().as_slice())
            .unwrap();
        meta.insert(b"settings".as_slice(), legacy_settings().as_slice())
            .unwrap();
        txn.open_table(SM_NODES)
            .unwrap()
            .insert(7u64.to_be_bytes().as_slice(), legacy_node().as_slice())
            .unwrap();
        txn.open_table(SM_REVOKED)
            .unwrap()
            .insert(b"aa/1".as_slice(), revocation)
            .unwrap();
        txn.open_table(SM_PROFILES)
            .unwrap()
            .insert(b"p".as_slice(), br#"{"name":"p"}"#.as_slice())
            .unwrap();
        let mut log = txn.open_table(RAFT_LOG).unwrap();
        for i in 1..=(BATCH as u64 + 3) {
            log.insert(i, i.to_le_bytes().as_slice()).unwrap();
        }
        txn.open_table(RAFT_META)
            .unwrap()
            .insert("vote", [1u8, 2].as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
}

fn schema_of(path: &Path) -> Option<u32> {
    let (store, _) = Store::open_upgrading(path, DEFAULT_CACHE_BYTES, &Tagging::default()).unwrap();
    store.reader().unwrap().schema_version().unwrap()
}

/// KeyCompromise (variant 1) at 1000.
fn legacy_revocation() -> Vec<u8> {
    [&u64le(1000)[..], &[1, 0, 0, 0]].concat()
}

#[test]
fn a_schema_2_store_is_migrated_in_place_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapki.redb");
    write_schema_2(&path, &legacy_revocation());

    let err = Store::open(&path)
        .err()
        .expect("schema 2 needs the upgrade")
        .to_string();
    assert!(err.contains("schema version 2") && err.contains("migrates"), "{err}");

    let upgrade = Tagging::default();
    let (store, migrated) = Store::open_upgrading(&path, DEFAULT_CACHE_BYTES, &upgrade).unwrap();
    let log_entries = BATCH as u64 + 3;
    assert_eq!(
        migrated,
        Some(Migrated {
            from: 2,
            records: 3,
            log_entries,
            raft_meta: 1
        })
    );
    assert_eq!(upgrade.files.get(), 1);
    let r = store.reader().unwrap();
    assert_eq!(r.schema_version().unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(r.cluster_id().unwrap().as_deref(), Some("c1"));
    let settings = r.settings().unwrap();
    assert_eq!(
        (
            settings.publication_base_url.as_str(),
            settings.voters_target,
            settings.serial_mode
        ),
        ("http", 5, SerialMode::Sequential)
    );
    let node = r.node(7).unwrap().expect("the node record");
    assert_eq!((node.name.as_str(), node.standing), ("n7", NodeStanding::Admitted));
    let revoked = r.revoked_of("aa").unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.reason, RevocationReason::KeyCompromise);

    let txn = store.db().begin_read().unwrap();
    let meta = txn.open_table(SM_META).unwrap();
    assert_eq!(
        meta.get(b"next_serial".as_slice()).unwrap().unwrap().value(),
        9u64.to_be_bytes()
    );
    // Profiles are JSON, counters raw: schema 2 did not use bincode for them.
    let profiles = txn.open_table(SM_PROFILES).unwrap();
    assert_eq!(
        profiles.get(b"p".as_slice()).unwrap().unwrap().value(),
        br#"{"name":"p"}"#
    );
    let log = txn.open_table(RAFT_LOG).unwrap();
    assert_eq!(log.len().unwrap(), log_entries);
    for i in [1, BATCH as u64, log_entries] {
        let entry = log.get(i).unwrap().unwrap();
        assert_eq!(entry.value(), [b"entry:".as_slice(), &i.to_le_bytes()].concat());
    }
    let vote = txn.open_table(RAFT_META).unwrap();
    assert_eq!(vote.get("vote").unwrap().unwrap().value(), b"vote:\x01\x02");
    drop((meta, profiles, log, vote, txn, r, store));

    let (_, again) = Store::open_upgrading(&path, DEFAULT_CACHE_BYTES, &upgrade).unwrap();
    assert_eq!(again, None, "a migrated store is not migrated again");
}

#[test]
fn a_migration_that_fails_leaves_schema_2_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapki.redb");
    write_schema_2(&path, &legacy_revocation());
    let failing = Tagging {
        fail_files: true,
        ..Tagging::default()
    };
    let err = Store::open_upgrading(&path, DEFAULT_CACHE_BYTES, &failing)
        .err()
        .expect("the files failed");
    assert!(err.to_string().contains("sealed files"), "{err}");
    // Nothing was committed: the next start migrates from schema 2 again.
    assert_eq!(schema_of(&path), Some(SCHEMA_VERSION));

    let damaged = tempfile::tempdir().unwrap();
    let path = damaged.path().join("hapki.redb");
    write_schema_2(&path, &[1, 2, 3]);
    let err = Store::open_upgrading(&path, DEFAULT_CACHE_BYTES, &Tagging::default())
        .err()
        .expect("a damaged record");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    let store = Store::open_with_cache(&path, DEFAULT_CACHE_BYTES);
    assert!(store.is_err(), "still schema 2, refused without the upgrade");
}
