//! Snapshots as a stream: every state-machine row written in table order to any
//! `Write`, and read back from any `Read` into an emptied state, so a snapshot of
//! any size passes through a file without being held in memory.
//!
//! Format: `HAPKISNAP1`, then rows `[table u8][key len u32][key][value len u32][value]`,
//! then `0xFF` and the SHA-256 of everything before it.

use std::io::{Read, Write};

use aws_lc_rs::digest;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use crate::tables::{SmTable, SM_TABLES};
use crate::StoreError;

const MAGIC: &[u8] = b"HAPKISNAP1";
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
    w.put(&[END])?;
    let sum = w.ctx.clone().finish();
    w.inner.write_all(sum.as_ref())?;
    w.inner.flush()?;
    Ok(rows)
}

/// Replaces the state machine in `txn` with the snapshot read from `input`.
/// Nothing is kept unless the caller commits, which it does only on `Ok`.
pub fn import_state(txn: &WriteTransaction, input: impl Read) -> Result<u64, StoreError> {
    for table in SM_TABLES {
        txn.open_table(table)?.retain(|_, _| false)?;
    }
    let mut r = HashingReader {
        inner: input,
        ctx: digest::Context::new(&digest::SHA256),
    };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(StoreError::Corrupt("not a hapki snapshot".into()));
    }
    let mut rows = 0u64;
    loop {
        let index = r.take(1)?[0];
        if index == END {
            break;
        }
        let table = *SM_TABLES
            .get(index as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot names table {index}")))?;
        let klen = r.len()?;
        let k = r.take(klen)?;
        let vlen = r.len()?;
        let v = r.take(vlen)?;
        txn.open_table(table)?.insert(k.as_slice(), v.as_slice())?;
        rows += 1;
    }
    let expected = r.ctx.clone().finish();
    let mut sum = vec![0u8; expected.as_ref().len()];
    r.inner.read_exact(&mut sum)?;
    if sum != expected.as_ref() {
        return Err(StoreError::Corrupt("snapshot checksum does not match".into()));
    }
    Ok(rows)
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
}

struct HashingReader<R> {
    inner: R,
    ctx: digest::Context,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf)?;
        self.ctx.update(&buf);
        Ok(buf)
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
