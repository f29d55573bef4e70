//! Snapshots as a stream: every state-machine row written in table order to any
//! `Write`, and read back from any `Read` into an emptied state, so a snapshot of
//! any size passes through a file without being held in memory.
//!
//! Format: `HAPKISNAP` and the format byte [`SNAPSHOT_FORMAT`], then rows
//! `[table u8][key len u32][key][value len u32][value]`, the values as the tables hold
//! them, then `0xFF` and the SHA-256 of everything before it. Format 1 (the ASCII digit
//! `1` in that place) carried schema-2 values and is refused: a node of schema 3 sends
//! only format 2.
//!
//! A snapshot sent to a joining node may be followed by the leader's derived indexes
//! ([`export_indexes`]): `HAPKIIDX`, the index version (u32), rows `[table u8][key len
//! u32][key]` (index values are empty), `0xFF` and the SHA-256 of the trailer. A receiver
//! whose indexes are of that version takes them as they are, in key order, instead of
//! deriving them again from every certificate; any other receiver builds its own. A build
//! that knows no trailer stops reading at the snapshot's checksum, so it ignores one.

use std::io::{Read, Write};

use aws_lc_rs::digest;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::tables::{SmTable, SM_TABLES};
use crate::StoreError;

mod from_file;
pub use from_file::import_snapshot_file;

const MAGIC: &[u8] = b"HAPKISNAP";
/// The snapshot layout this build writes and reads.
pub const SNAPSHOT_FORMAT: u8 = 2;
/// What format 1, written by schema 2, had in the format byte's place.
const SCHEMA_2_SNAPSHOT: u8 = b'1';
const END: u8 = 0xFF;
const MAX_ROW: usize = 64 * 1024 * 1024;

/// Calls `f` on every row of a state-machine table, in key order.
pub(crate) fn for_each_row(
    txn: &ReadTransaction,
    table: SmTable,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for row in txn.open_table(table)?.iter()? {
        let (k, v) = row?;
        f(k.value(), v.value())?;
    }
    Ok(())
}

/// Writes the whole state machine as seen by `txn` to `out`. Returns the number of rows.
pub fn export_state(txn: &ReadTransaction, out: impl Write) -> Result<u64, StoreError> {
    let mut w = HashingWriter {
        inner: out,
        ctx: digest::Context::new(&digest::SHA256),
    };
    w.put(MAGIC)?;
    w.put(&[SNAPSHOT_FORMAT])?;
    let mut rows = 0u64;
    for (i, table) in SM_TABLES.iter().enumerate() {
        for_each_row(txn, *table, |k, v| {
            w.put(&[i as u8])?;
            w.put(&(k.len() as u32).to_be_bytes())?;
            w.put(k)?;
            w.put(&(v.len() as u32).to_be_bytes())?;
            w.put(v)?;
            rows += 1;
            Ok(())
        })?;
    }
    w.finish()?;
    Ok(rows)
}

/// What [`export_state`] writes besides the rows: magic, format, end marker, SHA-256.
pub(crate) const FRAME_LEN: u64 = (MAGIC.len() + 1 + 1 + 32) as u64;

/// What [`export_state`] writes for one row: table, key and value with their lengths.
pub(crate) fn row_len(k: &[u8], v: &[u8]) -> u64 {
    (1 + 4 + k.len() + 4 + v.len()) as u64
}

const INDEX_MAGIC: &[u8] = b"HAPKIIDX";

/// Writes the derived indexes `txn` sees, as the trailer of a snapshot of it.
pub fn export_indexes(txn: &ReadTransaction, out: impl Write) -> Result<(), StoreError> {
    let mut w = HashingWriter {
        inner: out,
        ctx: digest::Context::new(&digest::SHA256),
    };
    w.put(INDEX_MAGIC)?;
    w.put(&crate::index::VERSION.to_be_bytes())?;
    for (i, table) in crate::index::TABLES.iter().enumerate() {
        for row in txn.open_table(*table)?.iter()? {
            let (k, _) = row?;
            w.put(&[i as u8])?;
            w.put(&(k.value().len() as u32).to_be_bytes())?;
            w.put(k.value())?;
        }
    }
    w.finish()
}

/// A state-machine table open for writing.
type RowTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// Replaces the state machine in `txn` with the snapshot read from `input`, and builds the
/// derived indexes from it. Nothing is kept unless the caller commits, which it does only
/// on `Ok`.
pub fn import_state(txn: &WriteTransaction, mut input: impl Read) -> Result<u64, StoreError> {
    let rows = import_rows(txn, &mut input)?;
    crate::index::rebuild(txn)?;
    Ok(rows)
}

/// [`import_state`], taking the indexes from the trailer that follows the snapshot when
/// there is one of this build's index version.
pub fn import_state_and_indexes(txn: &WriteTransaction, mut input: impl Read) -> Result<u64, StoreError> {
    let rows = import_rows(txn, &mut input)?;
    if !import_indexes(txn, &mut input)? {
        crate::index::rebuild(txn)?;
    }
    Ok(rows)
}

/// Reads an index trailer into the emptied index tables; false when there is none, or one
/// of another index version (then nothing was changed).
fn import_indexes(txn: &WriteTransaction, input: impl Read) -> Result<bool, StoreError> {
    let mut r = HashingReader {
        inner: input,
        ctx: digest::Context::new(&digest::SHA256),
    };
    if !r.index_trailer_follows()? {
        return Ok(false);
    }
    let mut tables = Vec::new();
    for table in crate::index::TABLES {
        let mut t = txn.open_table(table)?;
        t.retain(|_, _| false)?;
        tables.push(t);
    }
    let mut k = Vec::new();
    loop {
        let index = r.take(1)?[0];
        if index == END {
            break;
        }
        let table = tables
            .get_mut(index as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("the snapshot's indexes name index {index}")))?;
        let klen = r.len()?;
        r.take_into(klen, &mut k)?;
        table.insert(k.as_slice(), [].as_slice())?;
    }
    drop(tables);
    r.check_sum("the checksum of the snapshot's indexes does not match")?;
    crate::index::mark_current(txn)?;
    Ok(true)
}

/// Replaces the state-machine tables in `txn` with the rows read from `input`, up to and
/// including the snapshot's checksum.
fn import_rows(txn: &WriteTransaction, input: impl Read) -> Result<u64, StoreError> {
    for table in SM_TABLES {
        txn.open_table(table)?.retain(|_, _| false)?;
    }
    let mut r = HashingReader {
        inner: input,
        ctx: digest::Context::new(&digest::SHA256),
    };
    check_header(&r.take(MAGIC.len() + 1)?)?;
    let mut rows = 0u64;
    // Rows come table by table: each table is opened once for its run of rows, and the
    // key and value buffers are reused.
    let mut open: Option<(u8, RowTable)> = None;
    let (mut k, mut v) = (Vec::new(), Vec::new());
    loop {
        let index = r.take(1)?[0];
        if index == END {
            break;
        }
        if open.as_ref().is_none_or(|(i, _)| *i != index) {
            let table = *SM_TABLES
                .get(index as usize)
                .ok_or_else(|| StoreError::Corrupt(format!("snapshot names table {index}")))?;
            // The table before is closed first.
            drop(open.take());
            open = Some((index, txn.open_table(table)?));
        }
        let klen = r.len()?;
        r.take_into(klen, &mut k)?;
        let vlen = r.len()?;
        r.take_into(vlen, &mut v)?;
        let (_, table) = open.as_mut().expect("opened above");
        table.insert(k.as_slice(), v.as_slice())?;
        rows += 1;
    }
    drop(open);
    r.check_sum("snapshot checksum does not match")?;
    Ok(rows)
}

/// Whether `header`, the first bytes of a snapshot, says a format this build reads.
fn check_header(header: &[u8]) -> Result<(), StoreError> {
    let (magic, format) = header.split_at(header.len().min(MAGIC.len()));
    if magic != MAGIC || format.is_empty() {
        return Err(StoreError::Corrupt("not a hapki snapshot".into()));
    }
    match format[0] {
        SNAPSHOT_FORMAT => Ok(()),
        SCHEMA_2_SNAPSHOT => Err(StoreError::Format(
            "the snapshot was written by a hapki of schema 2, whose values this build reads only to \
             migrate a data directory; upgrade every node of the cluster"
                .into(),
        )),
        f if f > SNAPSHOT_FORMAT => Err(StoreError::Format(format!(
            "the snapshot is of format {f}, written by a newer hapki; this build reads format {SNAPSHOT_FORMAT}"
        ))),
        f => Err(StoreError::Corrupt(format!("a snapshot of unknown format {f}"))),
    }
}

struct HashingWriter<W> {
    inner: W,
    ctx: digest::Context,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.ctx.update(bytes);
        self.inner.write_all(bytes)?;
        Ok(())
    }

    /// Writes the end marker and the SHA-256 of everything before it.
    fn finish(mut self) -> Result<(), StoreError> {
        self.put(&[END])?;
        let sum = self.ctx.finish();
        self.inner.write_all(sum.as_ref())?;
        self.inner.flush()?;
        Ok(())
    }
}

struct HashingReader<R> {
    inner: R,
    ctx: digest::Context,
}

impl<R: Read> HashingReader<R> {
    /// Reads the SHA-256 that ends a section and checks it against what was read;
    /// `mismatch` says what does not match.
    fn check_sum(&mut self, mismatch: &str) -> Result<(), StoreError> {
        let expected = self.ctx.clone().finish();
        let mut sum = vec![0u8; expected.as_ref().len()];
        self.inner.read_exact(&mut sum)?;
        if sum != expected.as_ref() {
            return Err(StoreError::Corrupt(mismatch.into()));
        }
        Ok(())
    }

    /// Reads the start of an index trailer, hashing from a fresh start: true when one of
    /// this build's index version follows, false at the end of the input or for another
    /// version (whose rows are then left unread).
    fn index_trailer_follows(&mut self) -> Result<bool, StoreError> {
        self.ctx = digest::Context::new(&digest::SHA256);
        let mut first = [0u8; 1];
        if self.inner.read(&mut first)? == 0 {
            return Ok(false);
        }
        self.ctx.update(&first);
        let mut magic = self.take(INDEX_MAGIC.len() - 1)?;
        magic.insert(0, first[0]);
        if magic != INDEX_MAGIC {
            return Err(StoreError::Corrupt(
                "the snapshot is followed by something that is not its indexes".into(),
            ));
        }
        let version = u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes"));
        Ok(version == crate::index::VERSION)
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.take_into(n, &mut buf)?;
        Ok(buf)
    }

    /// Reads the next `n` bytes into `buf`, replacing what it held.
    fn take_into(&mut self, n: usize, buf: &mut Vec<u8>) -> Result<(), StoreError> {
        buf.resize(n, 0);
        self.inner.read_exact(buf)?;
        self.ctx.update(buf);
        Ok(())
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let b = self.take(4)?;
        let n = u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize;
        if n > MAX_ROW {
            return Err(StoreError::Corrupt("snapshot row larger than 64 MiB".into()));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{history, run, store};

    #[test]
    fn the_header_carries_the_format_and_another_format_is_refused_by_name() {
        let (_a, a) = store();
        run(&a, &history());
        let mut snap = Vec::new();
        export_state(&a.db().begin_read().unwrap(), &mut snap).unwrap();
        assert_eq!(&snap[..10], b"HAPKISNAP\x02");
        let reader = a.reader().unwrap();
        assert_eq!(
            reader.digest_and_snapshot_len().unwrap(),
            (reader.digest().unwrap(), snap.len() as u64)
        );

        let (_b, b) = store();
        for (format, says) in [(b'1', "schema 2"), (3, "newer hapki")] {
            let mut other = snap.clone();
            other[MAGIC.len()] = format;
            let txn = b.begin_apply().unwrap();
            let err = import_state(&txn, other.as_slice()).unwrap_err();
            assert!(matches!(&err, StoreError::Format(m) if m.contains(says)), "{err}");
        }
    }

    pub(super) fn index_rows(s: &crate::Store) -> Vec<(usize, Vec<u8>)> {
        let txn = s.db().begin_read().unwrap();
        let mut out = Vec::new();
        for (i, table) in crate::index::TABLES.iter().enumerate() {
            for row in txn.open_table(*table).unwrap().iter().unwrap() {
                out.push((i, row.unwrap().0.value().to_vec()));
            }
        }
        out
    }

    /// A store with history, whose name index lacks one row a rebuild would give it (so
    /// that a receiver holding the same rows as it took them from the trailer), and its
    /// snapshot with the index trailer.
    pub(super) fn sender() -> (tempfile::TempDir, crate::Store, Vec<u8>) {
        let (d, a) = store();
        run(&a, &history());
        let txn = a.db().begin_write().unwrap();
        {
            let mut names = txn.open_table(crate::tables::IDX_CERT_NAMES).unwrap();
            let first = names.first().unwrap().unwrap().0.value().to_vec();
            names.remove(first.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let mut snap = Vec::new();
        let read = a.db().begin_read().unwrap();
        export_state(&read, &mut snap).unwrap();
        export_indexes(&read, &mut snap).unwrap();
        (d, a, snap)
    }

    pub(super) fn install(snap: &[u8]) -> Result<(tempfile::TempDir, crate::Store), StoreError> {
        let (d, b) = store();
        let txn = b.db().begin_write().unwrap();
        import_state_and_indexes(&txn, snap)?;
        txn.commit().unwrap();
        Ok((d, b))
    }

    #[test]
    fn the_indexes_travel_after_the_snapshot_and_are_taken_as_sent() {
        let (_a, a, snap) = sender();
        let (_b, b) = install(&snap).unwrap();
        assert_eq!(index_rows(&b), index_rows(&a), "the rows sent, not rebuilt ones");
        assert_eq!(
            b.reader().unwrap().digest().unwrap(),
            a.reader().unwrap().digest().unwrap()
        );
        let txn = b.db().begin_write().unwrap();
        assert!(crate::index::is_current(&txn).unwrap());
        drop(txn);

        // Without the trailer, or with one of another index version, the receiver builds
        // its own: one row more than the sender has.
        let (_s, state_only) = install(&snap[..snap.len() - trailer_len(&a)]).unwrap();
        assert_eq!(index_rows(&state_only).len(), index_rows(&a).len() + 1);
        let mut other = snap.clone();
        let version_at = snap.len() - trailer_len(&a) + INDEX_MAGIC.len();
        other[version_at..version_at + 4].copy_from_slice(&99u32.to_be_bytes());
        assert_eq!(index_rows(&install(&other).unwrap().1).len(), index_rows(&a).len() + 1);
        // And import_state, as a restore uses it, always builds them.
        let (_c, c) = store();
        let txn = c.db().begin_write().unwrap();
        import_state(&txn, snap.as_slice()).unwrap();
        txn.commit().unwrap();
        assert_eq!(index_rows(&c).len(), index_rows(&a).len() + 1);
    }

    /// The bytes of `a`'s index trailer.
    pub(super) fn trailer_len(a: &crate::Store) -> usize {
        let mut t = Vec::new();
        export_indexes(&a.db().begin_read().unwrap(), &mut t).unwrap();
        t.len()
    }

    #[test]
    fn a_damaged_index_trailer_is_refused() {
        let (_a, a, snap) = sender();
        let start = snap.len() - trailer_len(&a);
        for (at, says) in [
            (start + INDEX_MAGIC.len() + 4 + 6, "checksum of the snapshot's indexes"),
            (start, "not its indexes"),
            (start + INDEX_MAGIC.len() + 4, "name index"),
        ] {
            let mut bad = snap.clone();
            bad[at] ^= 0x40;
            let err = install(&bad).err().expect("a damaged trailer was taken");
            assert!(
                matches!(&err, StoreError::Corrupt(m) if m.contains(says)),
                "{at}: {err}"
            );
        }
        let cut = install(&snap[..snap.len() - 5]).err().expect("a cut trailer was taken");
        assert!(matches!(cut, StoreError::Io(_)), "{cut}");
    }
}
