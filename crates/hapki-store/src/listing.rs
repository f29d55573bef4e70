//! Listing certificates a page at a time. A listing reads the one index its filter
//! allows, and checks the rest of the filter on each certificate it finds there:
//!
//! - `san` or `subject` read the name index ([`crate::index`]), in name order: a whole
//!   name, or with a leading dot every name below a domain;
//! - `expired` and `expiring_before` read the expiry index, soonest first;
//! - `revoked` reads the revoked index, in serial order;
//! - anything else reads the certificates themselves, in serial order.
//!
//! A page ends with a [`Cursor`] at its last row; the next page starts after it, so that
//! certificates issued between two pages are neither repeated nor skipped.

use std::ops::Bound;

use hapki_domain::serial::Serial;
use redb::TableDefinition;

use crate::codec::decode;
use crate::index::{expiry_key, name_key, san_value};
use crate::read::StateReader;
use crate::records::CertRecord;
use crate::tables::{IDX_CERT_EXPIRY, IDX_CERT_NAMES, IDX_REVOKED, SM_CERTS};
use crate::StoreError;

/// Certificate status for filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    Revoked,
    Expired,
}

/// Filters for listing certificates; all that are set must hold.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    pub status: Option<CertStatus>,
    /// The subject's common name, case-insensitive: a whole name, or `.example.com` for
    /// every name below `example.com`; a value with `=` in it is a whole subject
    /// (`CN=web, O=Example`).
    pub subject: Option<String>,
    /// A subject alternative name, case-insensitive, with or without its type
    /// (`web.example.com`, `DNS:web.example.com`, `10.0.0.1`): a whole name, or
    /// `.example.com` for every DNS name below `example.com`.
    pub san: Option<String>,
    /// Not expired and expiring before this time.
    pub expiring_before: Option<u64>,
    pub issuer_id: Option<String>,
    pub profile: Option<String>,
    /// Start after this row of an earlier page of the same listing.
    pub after: Option<Cursor>,
    pub limit: usize,
    /// The time "expired" is judged against.
    pub now: u64,
}

/// A page of a listing, and where the next one starts when there may be more.
#[derive(Debug, Default)]
pub struct CertPage {
    pub certs: Vec<CertRecord>,
    pub next: Option<Cursor>,
}

/// Where a page ended: a serial when the listing is in serial order, else the key of the
/// index row it read last. Written as the serial's hex, or `n`/`t` and the hex of a name
/// or expiry index key (neither letter is a hex digit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Serial(Serial),
    Name(Vec<u8>),
    Expiry(Vec<u8>),
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Serial(s) => f.write_str(&s.to_hex()),
            Cursor::Name(k) => write!(f, "n{}", hex::encode(k)),
            Cursor::Expiry(k) => write!(f, "t{}", hex::encode(k)),
        }
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Cursor, String> {
        let bad = || format!("'{s}' is not a next_after this listing returned");
        let key = |rest: &str| hex::decode(rest).ok().filter(|k| k.len() > 20).ok_or_else(bad);
        match s.split_at_checked(1) {
            Some(("n", rest)) => Ok(Cursor::Name(key(rest)?)),
            Some(("t", rest)) => Ok(Cursor::Expiry(key(rest)?)),
            _ => Serial::from_hex(s).map(Cursor::Serial).map_err(|_| bad()),
        }
    }
}

/// A name asked for: one whole name, or every name below a domain.
enum NameQuery {
    Whole(String),
    Below(String),
}

impl NameQuery {
    fn parse(q: &str) -> NameQuery {
        let q = q.trim().to_ascii_lowercase();
        match q.strip_prefix('.') {
            Some(domain) => NameQuery::Below(domain.to_string()),
            None => NameQuery::Whole(q),
        }
    }

    /// Whether `name` (lowercase) is this name or below it.
    fn matches(&self, name: &str) -> bool {
        match self {
            NameQuery::Whole(q) => name == q,
            NameQuery::Below(d) => name
                .strip_suffix(d.as_str())
                .and_then(|host| host.strip_suffix('.'))
                .is_some_and(|host| !host.is_empty()),
        }
    }

    /// The start of the name index rows that can match.
    fn prefix(&self) -> Vec<u8> {
        match self {
            NameQuery::Whole(q) => {
                let mut p = name_key(q);
                p.push(0);
                p
            }
            NameQuery::Below(d) => {
                let mut p = name_key(d);
                p.push(b'.');
                p
            }
        }
    }
}

/// A filter's subject part: a common name, or a whole subject (and its common name, which
/// the index can find).
struct SubjectQuery {
    name: Option<NameQuery>,
    whole: Option<String>,
}

impl SubjectQuery {
    fn parse(q: &str) -> SubjectQuery {
        if !q.contains('=') {
            return SubjectQuery {
                name: Some(NameQuery::parse(q)),
                whole: None,
            };
        }
        let cn = q.split(',').find_map(|rdn| {
            let (k, v) = rdn.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("cn")
                .then(|| NameQuery::Whole(v.trim().to_ascii_lowercase()))
        });
        SubjectQuery {
            name: cn,
            whole: Some(normalize_dn(q)),
        }
    }

    fn matches(&self, c: &CertRecord) -> bool {
        self.whole.as_ref().is_none_or(|w| &normalize_dn(&c.subject) == w)
            && self.name.as_ref().is_none_or(|n| {
                c.common_name
                    .as_ref()
                    .is_some_and(|cn| n.matches(&cn.to_ascii_lowercase()))
            })
    }
}

/// A subject written for comparison: lowercase, no space around `,` and `=`.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| match rdn.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
            None => rdn.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase()
}

/// The names of a certificate a name query is asked of: its SANs, or its common name.
type NamesOf = for<'c> fn(&'c CertRecord) -> Vec<&'c str>;

/// Which rows a listing reads.
enum Source<'q> {
    Serials,
    Revoked,
    Names { query: &'q NameQuery, names_of: NamesOf },
    Expiry { from: u64, to: u64 },
}

impl StateReader {
    /// A page of the certificates `filter` finds.
    pub fn certs(&self, filter: &CertFilter) -> Result<CertPage, StoreError> {
        let san = filter.san.as_deref().map(|s| NameQuery::parse(san_value(s)));
        let subject = filter.subject.as_deref().map(SubjectQuery::parse);
        let keep = |c: &CertRecord| {
            let expired = c.not_after <= filter.now;
            (match filter.status {
                Some(CertStatus::Valid) => c.revoked.is_none() && !expired,
                Some(CertStatus::Revoked) => c.revoked.is_some(),
                Some(CertStatus::Expired) => expired,
                None => true,
            }) && san
                .as_ref()
                .is_none_or(|q| c.sans.iter().any(|n| q.matches(&san_value(n).to_ascii_lowercase())))
                && subject.as_ref().is_none_or(|q| q.matches(c))
                && filter.expiring_before.is_none_or(|t| !expired && c.not_after <= t)
                && filter.issuer_id.as_ref().is_none_or(|i| &c.issuer_id == i)
                && filter.profile.as_ref().is_none_or(|p| &c.profile == p)
        };
        let by_name: Option<(&NameQuery, NamesOf)> = match (&san, subject.as_ref().and_then(|q| q.name.as_ref())) {
            (Some(q), _) => Some((q, |c| c.sans.iter().map(|n| san_value(n)).collect())),
            (None, Some(q)) => Some((q, |c| c.common_name.as_deref().into_iter().collect())),
            (None, None) => None,
        };
        let source = match (by_name, filter.status, filter.expiring_before) {
            (Some((query, names_of)), _, _) => Source::Names { query, names_of },
            (None, Some(CertStatus::Expired), _) => Source::Expiry {
                from: 0,
                to: filter.now,
            },
            (None, _, Some(t)) => Source::Expiry {
                from: filter.now.saturating_add(1),
                to: t,
            },
            (None, Some(CertStatus::Revoked), _) => Source::Revoked,
            (None, _, _) => Source::Serials,
        };
        let limit = filter.limit.max(1);
        let mut page = CertPage::default();
        let mut take = |cursor: Cursor, c: CertRecord| {
            if keep(&c) {
                page.certs.push(c);
                if page.certs.len() == limit {
                    page.next = Some(cursor);
                    return false;
                }
            }
            true
        };
        let certs = self.txn().open_table(SM_CERTS)?;
        match source {
            Source::Serials => {
                let start = match &filter.after {
                    None => Bound::Unbounded,
                    Some(Cursor::Serial(s)) => Bound::Excluded(s.0.as_slice()),
                    Some(_) => return Err(wrong_cursor()),
                };
                for row in certs.range::<&[u8]>((start, Bound::Unbounded))? {
                    let (k, v) = row?;
                    if !take(Cursor::Serial(serial_of(k.value())?), decode(v.value())?) {
                        break;
                    }
                }
            }
            Source::Revoked => {
                let start = match &filter.after {
                    None => Bound::Unbounded,
                    Some(Cursor::Serial(s)) => Bound::Excluded(s.0.as_slice()),
                    Some(_) => return Err(wrong_cursor()),
                };
                self.index_rows(IDX_REVOKED, start, &[], |k| {
                    Ok(take(Cursor::Serial(serial_of(k)?), cert_at(&certs, k)?))
                })?;
            }
            Source::Names { query, names_of } => {
                let prefix = query.prefix();
                let start = match &filter.after {
                    None => Bound::Included(prefix.as_slice()),
                    Some(Cursor::Name(k)) => Bound::Excluded(k.as_slice()),
                    Some(_) => return Err(wrong_cursor()),
                };
                self.index_rows(IDX_CERT_NAMES, start, &prefix, |k| {
                    let (name, serial) = k.split_at(k.len() - 21);
                    let cert = cert_at(&certs, &serial[1..])?;
                    // A certificate with several names the query matches has a row for
                    // each: it is listed at the first.
                    let first = names_of(&cert)
                        .into_iter()
                        .map(str::to_ascii_lowercase)
                        .filter(|n| query.matches(n))
                        .map(|n| name_key(&n))
                        .min();
                    if first.as_deref() != Some(name) {
                        return Ok(true);
                    }
                    Ok(take(Cursor::Name(k.to_vec()), cert))
                })?;
            }
            Source::Expiry { from, to } => {
                let first = expiry_key(from, &[0; 20]);
                let start = match &filter.after {
                    None => Bound::Included(first.as_slice()),
                    Some(Cursor::Expiry(k)) => Bound::Excluded(k.as_slice()),
                    Some(_) => return Err(wrong_cursor()),
                };
                self.index_rows(IDX_CERT_EXPIRY, start, &[], |k| {
                    let not_after = u64::from_be_bytes(k[..8].try_into().expect("expiry key"));
                    if not_after > to {
                        return Ok(false);
                    }
                    Ok(take(Cursor::Expiry(k.to_vec()), cert_at(&certs, &k[8..])?))
                })?;
            }
        }
        Ok(page)
    }

    /// Calls `each` with the keys of `table` from `start` on while they begin with
    /// `prefix`, until it answers false.
    fn index_rows(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        start: Bound<&[u8]>,
        prefix: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let t = self.txn().open_table(table)?;
        for row in t.range::<&[u8]>((start, Bound::Unbounded))? {
            let (k, _) = row?;
            let k = k.value();
            if !k.starts_with(prefix) || k.len() < 20 || !each(k)? {
                break;
            }
        }
        Ok(())
    }
}

fn wrong_cursor() -> StoreError {
    StoreError::Invalid("after is the next_after of a listing with other filters; start this one without it".into())
}

fn serial_of(k: &[u8]) -> Result<Serial, StoreError> {
    Serial::from_bytes(k).ok_or_else(|| StoreError::Corrupt("certificate key is not a serial".into()))
}

/// The certificate an index row names.
fn cert_at(certs: &redb::ReadOnlyTable<&[u8], &[u8]>, serial: &[u8]) -> Result<CertRecord, StoreError> {
    match certs.get(serial)? {
        Some(v) => decode(v.value()),
        None => Err(StoreError::Corrupt("an index names a certificate not stored".into())),
    }
}

#[cfg(test)]
mod tests;
