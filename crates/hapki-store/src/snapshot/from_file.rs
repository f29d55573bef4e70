//! Installing a snapshot that lies whole in a file, on two threads: the caller's reads the
//! file through once, checking its layout and both checksums, and says where each table's
//! run of rows starts as it meets it; an inserter, with its own reader at that offset,
//! inserts the runs into the write transaction. Reading, parsing and hashing thus run
//! beside the inserts instead of between them. (Two inserters, into different tables of
//! the one transaction, made a million-certificate install slower: they wait on redb's
//! locks.) What is installed is what [`super::import_state_and_indexes`] installs from the
//! same bytes, and nothing is kept unless both threads succeed and the caller commits.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use aws_lc_rs::digest;
use redb::{TableDefinition, WriteTransaction};

use super::{check_header, HashingReader, END, MAGIC};
use crate::tables::SM_TABLES;
use crate::StoreError;

/// The bytes each reader of the file buffers.
const BUFFER: usize = 1 << 20;

/// Where a table's run of rows starts in the file.
#[derive(Clone, Copy, Debug)]
struct Run {
    part: Part,
    /// The table's number in its part, as the rows carry it.
    table: u8,
    /// The offset of the run's first row.
    at: u64,
}

/// The two parts of a snapshot file: the state's rows, then the index trailer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    Rows,
    Indexes,
}

impl Run {
    fn table(&self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        match self.part {
            Part::Rows => SM_TABLES[self.table as usize],
            Part::Indexes => crate::index::TABLES[self.table as usize],
        }
    }
}

/// What reading the file through found.
struct Scanned {
    /// State rows, and index rows when the trailer is taken.
    rows: u64,
    index_rows: u64,
    /// Whether the file ends in an index trailer of this build's index version.
    indexes: bool,
}

/// [`super::import_state_and_indexes`] from the snapshot in `file` (from its start).
/// Returns the number of state rows.
pub fn import_snapshot_file(txn: &WriteTransaction, file: &File) -> Result<u64, StoreError> {
    for table in SM_TABLES.into_iter().chain(crate::index::TABLES) {
        txn.open_table(table)?.retain(|_, _| false)?;
    }
    let stop = AtomicBool::new(false);
    let (runs, queue) = mpsc::channel();
    let (scanned, inserted) = std::thread::scope(|s| {
        let inserter = s.spawn(|| insert_runs(txn, file, queue, &stop));
        let scanned = scan(file, runs, &stop);
        if scanned.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        (scanned, inserter.join().expect("the snapshot's inserter panicked"))
    });
    // The scan's error says what is wrong with the file; the inserter's would follow from
    // it. A scan stopped early was stopped by the inserter's error.
    let scanned = scanned?;
    let rows = inserted?;
    let Some(scanned) = scanned else {
        return Err(StoreError::Corrupt("the snapshot's install stopped".into()));
    };
    if rows != scanned.rows + scanned.index_rows {
        return Err(StoreError::Corrupt(
            "the snapshot's file changed while it was installed".into(),
        ));
    }
    if scanned.indexes {
        crate::index::mark_current(txn)?;
    } else {
        crate::index::rebuild(txn)?;
    }
    Ok(scanned.rows)
}

/// Reads `file` through, checking what [`super::import_state_and_indexes`] checks, and
/// sends each table's run as it starts; `None` once the inserter has failed.
fn scan(file: &File, runs: mpsc::Sender<Run>, stop: &AtomicBool) -> Result<Option<Scanned>, StoreError> {
    let mut r = HashingReader {
        inner: Counting {
            inner: BufReader::with_capacity(BUFFER, At { file, pos: 0 }),
            pos: 0,
        },
        ctx: digest::Context::new(&digest::SHA256),
    };
    check_header(&r.take(MAGIC.len() + 1)?)?;
    let Some(rows) = scan_part(&mut r, Part::Rows, &runs, stop)? else {
        return Ok(None);
    };
    r.check_sum("snapshot checksum does not match")?;

    if !r.index_trailer_follows()? {
        return Ok(Some(Scanned {
            rows,
            index_rows: 0,
            indexes: false,
        }));
    }
    let Some(index_rows) = scan_part(&mut r, Part::Indexes, &runs, stop)? else {
        return Ok(None);
    };
    r.check_sum("the checksum of the snapshot's indexes does not match")?;
    Ok(Some(Scanned {
        rows,
        index_rows,
        indexes: true,
    }))
}

/// Reads the rows of one part up to its end marker; returns how many there were, or `None`
/// once the inserter has failed.
fn scan_part(
    r: &mut HashingReader<Counting<BufReader<At>>>,
    part: Part,
    runs: &mpsc::Sender<Run>,
    stop: &AtomicBool,
) -> Result<Option<u64>, StoreError> {
    let tables = match part {
        Part::Rows => SM_TABLES.len(),
        Part::Indexes => crate::index::TABLES.len(),
    };
    let mut seen = vec![false; tables];
    let mut current = None;
    let mut rows = 0u64;
    let mut skipped = Vec::new();
    loop {
        let at = r.inner.pos;
        let table = r.take(1)?[0];
        if table == END {
            return Ok(Some(rows));
        }
        if current != Some(table) {
            let Some(seen) = seen.get_mut(table as usize) else {
                return Err(StoreError::Corrupt(match part {
                    Part::Rows => format!("snapshot names table {table}"),
                    Part::Indexes => format!("the snapshot's indexes name index {table}"),
                }));
            };
            if std::mem::replace(seen, true) {
                return Err(StoreError::Corrupt(format!(
                    "the snapshot's rows of table {table} are not all in one place"
                )));
            }
            current = Some(table);
            let run = Run { part, table, at };
            // Only a failed inserter is gone, and `stop` says so below.
            let _ = runs.send(run);
        }
        let klen = r.len()?;
        r.take_into(klen, &mut skipped)?;
        if part == Part::Rows {
            let vlen = r.len()?;
            r.take_into(vlen, &mut skipped)?;
        }
        rows += 1;
        if rows.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
    }
}

/// Takes runs from `queue` until there are no more and inserts their rows; returns how
/// many it inserted. Stops early, without error, once `stop` is set.
fn insert_runs(
    txn: &WriteTransaction,
    file: &File,
    queue: mpsc::Receiver<Run>,
    stop: &AtomicBool,
) -> Result<u64, StoreError> {
    let mut rows = 0;
    for run in queue {
        match insert_run(txn, file, run, stop) {
            Ok(n) => rows += n,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(rows)
}

/// Inserts the rows of `run`, up to the first row of another table or the end marker.
fn insert_run(txn: &WriteTransaction, file: &File, run: Run, stop: &AtomicBool) -> Result<u64, StoreError> {
    let mut table = txn.open_table(run.table())?;
    let mut r = BufReader::with_capacity(BUFFER, At { file, pos: run.at });
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut rows = 0u64;
    loop {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        if b[0] != run.table {
            return Ok(rows);
        }
        read_field(&mut r, &mut k)?;
        if run.part == Part::Rows {
            read_field(&mut r, &mut v)?;
        }
        table.insert(k.as_slice(), v.as_slice())?;
        rows += 1;
        if rows.is_multiple_of(4096) && stop.load(Ordering::Relaxed) {
            return Ok(rows);
        }
    }
}

/// Reads a length and that many bytes into `buf`.
fn read_field(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > super::MAX_ROW {
        return Err(StoreError::Corrupt("snapshot row larger than 64 MiB".into()));
    }
    buf.resize(n, 0);
    r.read_exact(buf)?;
    Ok(())
}

/// A reader of `file` from `pos` on, independent of the file's own offset.
struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(out, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A reader that counts what it gave: the offset of the next byte.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
