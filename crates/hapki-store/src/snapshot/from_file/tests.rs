use std::io::Write;

use super::super::tests::{index_rows, install, sender, trailer_len};
use super::super::INDEX_MAGIC;
use super::*;
use crate::tests::store;
use crate::SNAPSHOT_FORMAT;

fn file_of(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

/// A store that took `snap` from a file.
fn install_file(snap: &[u8]) -> Result<(tempfile::TempDir, crate::Store, u64), StoreError> {
    let (d, b) = store();
    let txn = b.db().begin_write().unwrap();
    let rows = import_snapshot_file(&txn, &file_of(snap))?;
    txn.commit().unwrap();
    Ok((d, b, rows))
}

/// A snapshot of `rows` (table, key, value) in the order given, with a true checksum.
fn snapshot_of(rows: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(SNAPSHOT_FORMAT);
    for (table, k, v) in rows {
        out.push(*table);
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out.push(END);
    let sum = digest::digest(&digest::SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    out
}

/// The offset of the last byte of the longest value among `snap`'s rows.
fn last_byte_of_a_value(snap: &[u8]) -> usize {
    let len = |at: usize| u32::from_be_bytes(snap[at..at + 4].try_into().unwrap()) as usize;
    let (mut at, mut best) = (MAGIC.len() + 1, (0, 0));
    while snap[at] != END {
        let v = at + 5 + len(at + 1);
        best = best.max((len(v), v + 4 + len(v) - 1));
        at = v + 4 + len(v);
    }
    best.1
}

#[test]
fn a_file_installs_what_the_stream_installs() {
    let (_a, a, snap) = sender();
    let (_s, streamed) = install(&snap).unwrap();
    let digest = a.reader().unwrap().digest().unwrap();
    let (_b, b, rows) = install_file(&snap).unwrap();
    assert!(rows > 20, "{rows} rows");
    assert_eq!(b.reader().unwrap().digest().unwrap(), digest);
    assert_eq!(index_rows(&b), index_rows(&a), "the rows sent, not rebuilt ones");
    assert_eq!(index_rows(&b), index_rows(&streamed));
    assert!(crate::index::is_current(&b.db().begin_write().unwrap()).unwrap());

    // Without the trailer, or with one of another index version, the receiver builds its
    // own: one row more than the sender has.
    let state_only = &snap[..snap.len() - trailer_len(&a)];
    let (_c, c, _) = install_file(state_only).unwrap();
    assert_eq!(c.reader().unwrap().digest().unwrap(), digest);
    assert_eq!(index_rows(&c).len(), index_rows(&a).len() + 1);
    let mut other = snap.clone();
    let version_at = state_only.len() + INDEX_MAGIC.len();
    other[version_at..version_at + 4].copy_from_slice(&99u32.to_be_bytes());
    assert_eq!(
        index_rows(&install_file(&other).unwrap().1).len(),
        index_rows(&a).len() + 1
    );
}

#[test]
fn a_damaged_or_cut_file_is_refused_as_the_stream_refuses_it() {
    let (_a, a, snap) = sender();
    let start = snap.len() - trailer_len(&a);
    // Inside a value: the rows still parse, their checksum does not match.
    let in_a_value = last_byte_of_a_value(&snap);
    for (at, says) in [
        (in_a_value, "snapshot checksum does not match"),
        (MAGIC.len() + 1, "snapshot names table"),
        (start + INDEX_MAGIC.len() + 4 + 6, "checksum of the snapshot's indexes"),
        (start, "not its indexes"),
        (start + INDEX_MAGIC.len() + 4, "name index"),
    ] {
        let mut bad = snap.clone();
        bad[at] ^= 0x40;
        let stream = install(&bad).err().expect("the stream took a damaged snapshot");
        let err = install_file(&bad).err().expect("a damaged snapshot was taken");
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains(says)),
            "{at}: {err}"
        );
        assert_eq!(err.to_string(), stream.to_string(), "{at}");
    }
    for cut in [snap.len() - 5, start - 5, snap.len() / 2] {
        let err = install_file(&snap[..cut]).err().expect("a cut snapshot was taken");
        assert!(matches!(err, StoreError::Io(_)), "{cut}: {err}");
    }
}

#[test]
fn rows_of_one_table_in_two_places_are_refused() {
    let audit = 12;
    let seals = 13;
    let rows: [(u8, &[u8], &[u8]); 3] = [(audit, b"a", b"1"), (audit, b"c", b"3"), (seals, b"b", b"2")];
    assert_eq!(install_file(&snapshot_of(&rows)).unwrap().2, 3);
    let apart = [rows[0], rows[2], rows[1]];
    let err = install_file(&snapshot_of(&apart)).err().expect("rows apart were taken");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("table 12 are not all in one place")),
        "{err}"
    );
}
