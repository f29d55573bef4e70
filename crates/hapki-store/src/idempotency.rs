//! Idempotency keys: which certificate a client's key issued or revoked, for a retry to
//! find. From state format 6 a key is remembered for at least [`WINDOW_SECS`] and then
//! forgotten: rows are filed under the day of the command that wrote them (the time the
//! command carries, so every node files them alike), a lookup reads the command's day and
//! the day before, and [`Command::ForgetIdempotencyKeys`] removes older days. A store
//! therefore holds the keys of about two days of writes, not one row per issuance forever,
//! and a new row lands among the newest day's rows instead of anywhere in a table of every
//! key ever used.
//!
//! Rows written before format 6 stay in the undated table ([`SM_IDEMPOTENCY`]): lookups
//! still read it, and the forgetting removes a row there once the certificate it names is
//! gone or was issued (and revoked) longer than two windows ago.
//!
//! [`Command::ForgetIdempotencyKeys`]: crate::Command::ForgetIdempotencyKeys

use redb::{ReadableTable, WriteTransaction};

use crate::codec::decode;
use crate::records::CertRecord;
use crate::tables::{SM_CERTS, SM_IDEMPOTENCY, SM_IDEMPOTENCY_DAYS};
use crate::StoreError;

/// The state format from which keys are dated and forgotten.
pub const FORMAT: u32 = 6;

/// How long a key is remembered at least (a day; at most two).
pub const WINDOW_SECS: u64 = 86_400;

/// The most rows one [`crate::Command::ForgetIdempotencyKeys`] removes.
pub const MAX_FORGET: u32 = 10_000;

/// Rows of the undated table one forgetting looks at, per row it may remove: rows that
/// must stay are passed over, and a forgetting is bounded even when all of them must.
const UNDATED_SCAN: usize = 4;

fn day(at: u64) -> u32 {
    u32::try_from(at / WINDOW_SECS).unwrap_or(u32::MAX)
}

/// The dated key: the day, big-endian, then the key's SHA-256.
fn dated(day: u32, key: &[u8; 32]) -> [u8; 36] {
    let mut out = [0; 36];
    out[..4].copy_from_slice(&day.to_be_bytes());
    out[4..].copy_from_slice(key);
    out
}

/// The first day a lookup at `at` still reads, as the bound of the dated rows before it.
fn first_kept(at: u64) -> [u8; 4] {
    day(at).saturating_sub(1).to_be_bytes()
}

/// The serial (20 bytes) the key stands for in a command of time `at`, if remembered.
pub(crate) fn find<D, U>(dated_rows: &D, undated: &U, key: &[u8; 32], at: u64) -> Result<Option<Vec<u8>>, StoreError>
where
    D: ReadableTable<&'static [u8], &'static [u8]>,
    U: ReadableTable<&'static [u8], &'static [u8]>,
{
    let today = day(at);
    for d in [today, today.saturating_sub(1)] {
        if let Some(v) = dated_rows.get(dated(d, key).as_slice())? {
            return Ok(Some(v.value().to_vec()));
        }
    }
    Ok(undated.get(key.as_slice())?.map(|v| v.value().to_vec()))
}

/// Looks a key up in a write transaction (both tables: the dated one is empty before format 6).
pub(crate) fn lookup(txn: &WriteTransaction, key: &[u8; 32], at: u64) -> Result<Option<Vec<u8>>, StoreError> {
    find(
        &txn.open_table(SM_IDEMPOTENCY_DAYS)?,
        &txn.open_table(SM_IDEMPOTENCY)?,
        key,
        at,
    )
}

/// Remembers that `key` issued or revoked `serial` in a command of time `at`.
pub(crate) fn record(txn: &WriteTransaction, key: &[u8; 32], at: u64, serial: &[u8]) -> Result<(), StoreError> {
    if crate::format::current(txn)? >= FORMAT {
        txn.open_table(SM_IDEMPOTENCY_DAYS)?
            .insert(dated(day(at), key).as_slice(), serial)?;
    } else {
        txn.open_table(SM_IDEMPOTENCY)?.insert(key.as_slice(), serial)?;
    }
    Ok(())
}

/// Whether an undated row naming `serial` may go at `at`: its certificate is gone, or it
/// was issued, and revoked if it was, longer than two windows before `at`.
fn undated_expired<C>(certs: &C, serial: &[u8], at: u64) -> Result<bool, StoreError>
where
    C: ReadableTable<&'static [u8], &'static [u8]>,
{
    let Some(cert) = certs.get(serial)? else {
        return Ok(true);
    };
    let cert: CertRecord = decode(cert.value())?;
    let last = cert.revoked.map_or(cert.issued_at, |r| r.at.max(cert.issued_at));
    Ok(last.saturating_add(2 * WINDOW_SECS) < at)
}

/// The rows a forgetting at `at` of at most `max` rows (1 to [`MAX_FORGET`]) removes, dated
/// ones first: the same rows on every node with the same state.
pub(crate) fn choose<D, U, C>(
    dated_rows: &D,
    undated: &U,
    certs: &C,
    at: u64,
    max: u32,
) -> Result<Forgotten, StoreError>
where
    D: ReadableTable<&'static [u8], &'static [u8]>,
    U: ReadableTable<&'static [u8], &'static [u8]>,
    C: ReadableTable<&'static [u8], &'static [u8]>,
{
    let max = max.clamp(1, MAX_FORGET) as usize;
    let mut out = Forgotten::default();
    let bound = first_kept(at);
    for row in dated_rows.range::<&[u8]>(..bound.as_slice())?.take(max) {
        out.dated.push(row?.0.value().to_vec());
    }
    let room = max - out.dated.len();
    if room > 0 {
        for row in undated.iter()?.take(room * UNDATED_SCAN) {
            let (key, serial) = row?;
            if undated_expired(certs, serial.value(), at)? {
                out.undated.push(key.value().to_vec());
                if out.undated.len() == room {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Rows chosen to be forgotten.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Forgotten {
    dated: Vec<Vec<u8>>,
    undated: Vec<Vec<u8>>,
}

impl Forgotten {
    pub(crate) fn len(&self) -> usize {
        self.dated.len() + self.undated.len()
    }
}

/// Applies [`crate::Command::ForgetIdempotencyKeys`]: removes what [`choose`] picks.
pub(crate) fn forget(txn: &WriteTransaction, at: u64, max: u32) -> Result<u64, StoreError> {
    let mut dated_rows = txn.open_table(SM_IDEMPOTENCY_DAYS)?;
    let mut undated = txn.open_table(SM_IDEMPOTENCY)?;
    let chosen = choose(&dated_rows, &undated, &txn.open_table(SM_CERTS)?, at, max)?;
    for key in &chosen.dated {
        dated_rows.remove(key.as_slice())?;
    }
    for key in &chosen.undated {
        undated.remove(key.as_slice())?;
    }
    Ok(chosen.len() as u64)
}

#[cfg(test)]
mod tests;
