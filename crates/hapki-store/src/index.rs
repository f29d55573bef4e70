//! Derived indexes: tables computed from the state-machine tables, kept in step by
//! apply in the same transaction, and built anew whenever the state is replaced whole
//! (a snapshot installed, a backup restored) or a build brings an index the store does
//! not have yet. They are not state: no snapshot carries them and no digest covers them,
//! and nothing apply decides depends on them; the leader reads them to choose what to
//! propose, and the command names the rows it changes.
//!
//! The expiry index ([`IDX_CERT_EXPIRY`]) orders every stored certificate by the time it
//! expires, so that finding the expired ones reads only those; the revoked index
//! ([`IDX_REVOKED`]) holds the serials of the revoked ones, so that listing them reads only
//! those; the name index ([`IDX_CERT_NAMES`]) holds each certificate's subject alternative
//! names and common name, so that finding a name reads only the certificates that have it.
//!
//! A name's key is its lowercase text, except that a DNS name's labels are reversed
//! (`web.example.com` is `com.example.web`): every name below a domain then shares a
//! prefix (`com.example.`), and one range read finds them.

use redb::{ReadableTable, WriteTransaction};

use crate::codec::decode;
use crate::records::CertRecord;
use crate::tables::{IDX_CERT_EXPIRY, IDX_CERT_NAMES, IDX_META, IDX_REVOKED, SM_CERTS};
use crate::StoreError;

/// The version of the indexes below; an index recorded at another version is built anew.
/// Version 2 added the revoked index, version 3 the name index.
pub(crate) const VERSION: u32 = 3;

/// The index tables, in the order a snapshot's index trailer numbers them.
pub(crate) const TABLES: [redb::TableDefinition<&[u8], &[u8]>; 3] = [IDX_CERT_EXPIRY, IDX_REVOKED, IDX_CERT_NAMES];
const EXPIRY: &str = "cert_expiry";

/// Key of a certificate in [`IDX_CERT_EXPIRY`]: not-after, big-endian, then the serial.
pub(crate) fn expiry_key(not_after: u64, serial: &[u8; 20]) -> [u8; 28] {
    let mut k = [0u8; 28];
    k[..8].copy_from_slice(&not_after.to_be_bytes());
    k[8..].copy_from_slice(serial);
    k
}

/// A subject alternative name without its type (`DNS:`, `IP:`, `email:`, `URI:`), as a
/// name is looked up; text without one of these is returned whole.
pub(crate) fn san_value(san: &str) -> &str {
    ["DNS:", "IP:", "email:", "URI:"]
        .iter()
        .find_map(|t| {
            san.get(..t.len())
                .filter(|p| p.eq_ignore_ascii_case(t))
                .map(|_| &san[t.len()..])
        })
        .unwrap_or(san)
}

/// The index form of a lowercase name: a DNS name's labels reversed, anything else (an
/// address, an email address, a URI, a common name that is not a host name) as it is.
pub(crate) fn name_key(name: &str) -> Vec<u8> {
    let dns = !name.is_empty()
        && name.contains('.')
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b));
    if !dns {
        return name.as_bytes().to_vec();
    }
    let mut key = Vec::with_capacity(name.len());
    for (i, label) in name.rsplit('.').enumerate() {
        if i > 0 {
            key.push(b'.');
        }
        key.extend_from_slice(label.as_bytes());
    }
    key
}

/// The name index keys of a certificate: each distinct name, then a zero byte and the serial.
fn name_keys(cert: &CertRecord) -> std::collections::BTreeSet<Vec<u8>> {
    cert.sans
        .iter()
        .map(|s| san_value(s))
        .chain(cert.common_name.as_deref())
        .map(|name| {
            let mut key = name_key(&name.to_ascii_lowercase());
            key.push(0);
            key.extend_from_slice(&cert.serial.0);
            key
        })
        .collect()
}

/// Indexes a certificate just recorded.
pub(crate) fn add_cert(txn: &WriteTransaction, cert: &CertRecord) -> Result<(), StoreError> {
    let key = expiry_key(cert.not_after, &cert.serial.0);
    txn.open_table(IDX_CERT_EXPIRY)?.insert(key.as_slice(), [].as_slice())?;
    let mut names = txn.open_table(IDX_CERT_NAMES)?;
    for key in name_keys(cert) {
        names.insert(key.as_slice(), [].as_slice())?;
    }
    Ok(())
}

/// Drops a certificate just removed from the indexes.
pub(crate) fn remove_cert(txn: &WriteTransaction, cert: &CertRecord) -> Result<(), StoreError> {
    let key = expiry_key(cert.not_after, &cert.serial.0);
    txn.open_table(IDX_CERT_EXPIRY)?.remove(key.as_slice())?;
    let mut names = txn.open_table(IDX_CERT_NAMES)?;
    for key in name_keys(cert) {
        names.remove(key.as_slice())?;
    }
    if cert.revoked.is_some() {
        txn.open_table(IDX_REVOKED)?.remove(cert.serial.0.as_slice())?;
    }
    Ok(())
}

/// Indexes a revocation just applied.
pub(crate) fn add_revoked(txn: &WriteTransaction, serial: &[u8; 20]) -> Result<(), StoreError> {
    txn.open_table(IDX_REVOKED)?.insert(serial.as_slice(), [].as_slice())?;
    Ok(())
}

/// Builds every index anew from the state-machine tables in `txn`; returns how many
/// certificates it indexed.
pub(crate) fn rebuild(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut expiry = SortedKeys::new(txn.open_table(IDX_CERT_EXPIRY)?, SortedKeys::CHUNK);
    expiry.table.retain(|_, _| false)?;
    let mut revoked = txn.open_table(IDX_REVOKED)?;
    revoked.retain(|_, _| false)?;
    let mut names = SortedKeys::new(txn.open_table(IDX_CERT_NAMES)?, SortedKeys::CHUNK);
    names.table.retain(|_, _| false)?;
    let certs = txn.open_table(SM_CERTS)?;
    let mut n = 0u64;
    for row in certs.iter()? {
        let (_, v) = row?;
        let cert: CertRecord = decode(v.value())?;
        expiry.push(&expiry_key(cert.not_after, &cert.serial.0))?;
        // Serial order is this index's order: these come sorted.
        if cert.revoked.is_some() {
            revoked.insert(cert.serial.0.as_slice(), [].as_slice())?;
        }
        for key in name_keys(&cert) {
            names.push(&key)?;
        }
        n += 1;
    }
    expiry.flush()?;
    names.flush()?;
    mark_current(txn)?;
    Ok(n)
}

/// Records that the indexes in `txn` are of this build's version.
pub(crate) fn mark_current(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(IDX_META)?.insert(EXPIRY, VERSION)?;
    Ok(())
}

/// Keys for one index, gathered and inserted in key order a chunk at a time. Certificates
/// are read in serial order, which puts their names (and, with mixed lifetimes, their
/// expiry) on the index's pages at random: inserted as they come, a large index writes
/// its pages out and reads them back again and again; sorted, each page is written about
/// once per chunk.
struct SortedKeys<'t> {
    table: redb::Table<'t, &'static [u8], &'static [u8]>,
    bytes: Vec<u8>,
    ends: Vec<u32>,
    chunk: usize,
}

impl<'t> SortedKeys<'t> {
    /// Bytes of keys held before they are sorted and inserted.
    const CHUNK: usize = 4 << 20;

    fn new(table: redb::Table<'t, &'static [u8], &'static [u8]>, chunk: usize) -> Self {
        SortedKeys {
            table,
            bytes: Vec::with_capacity(chunk + 1024),
            ends: Vec::new(),
            chunk,
        }
    }

    fn push(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len() as u32);
        if self.bytes.len() >= self.chunk {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let mut spans: Vec<(u32, u32)> = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            spans.push((start, end));
            start = end;
        }
        let bytes = &self.bytes;
        let key = |(s, e): (u32, u32)| &bytes[s as usize..e as usize];
        spans.sort_unstable_by(|a, b| key(*a).cmp(key(*b)));
        for span in spans {
            self.table.insert(key(span), [].as_slice())?;
        }
        self.bytes.clear();
        self.ends.clear();
        Ok(())
    }
}

/// Whether the indexes in `txn` are of this build's version.
pub(crate) fn is_current(txn: &WriteTransaction) -> Result<bool, StoreError> {
    Ok(txn.open_table(IDX_META)?.get(EXPIRY)?.map(|v| v.value()) == Some(VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{cert, history, run, store};
    use crate::Command;

    fn expiry_rows(s: &crate::Store) -> Vec<Vec<u8>> {
        let txn = s.db().begin_read().unwrap();
        let t = txn.open_table(IDX_CERT_EXPIRY).unwrap();
        t.iter().unwrap().map(|r| r.unwrap().0.value().to_vec()).collect()
    }

    fn revoked_rows(s: &crate::Store) -> Vec<Vec<u8>> {
        let txn = s.db().begin_read().unwrap();
        let t = txn.open_table(IDX_REVOKED).unwrap();
        t.iter().unwrap().map(|r| r.unwrap().0.value().to_vec()).collect()
    }

    fn name_rows(s: &crate::Store) -> Vec<Vec<u8>> {
        let txn = s.db().begin_read().unwrap();
        let t = txn.open_table(IDX_CERT_NAMES).unwrap();
        t.iter().unwrap().map(|r| r.unwrap().0.value().to_vec()).collect()
    }

    #[test]
    fn keys_pushed_in_any_order_are_all_inserted_across_chunks() {
        let (_d, s) = store();
        let txn = s.db().begin_write().unwrap();
        let mut keys = SortedKeys::new(txn.open_table(IDX_CERT_NAMES).unwrap(), 50);
        let pushed: Vec<Vec<u8>> = (0..100u32)
            .map(|i| format!("k{:03}", (i * 37) % 100).into_bytes())
            .collect();
        for k in &pushed {
            keys.push(k).unwrap();
        }
        keys.flush().unwrap();
        drop(keys);
        txn.commit().unwrap();
        let mut sorted = pushed.clone();
        sorted.sort();
        assert_eq!(name_rows(&s), sorted, "every key once, whatever chunk it came in");
    }

    #[test]
    fn names_are_keyed_lowercase_with_dns_labels_reversed() {
        assert_eq!(name_key("web.example.com"), b"com.example.web");
        assert_eq!(name_key("*.example.com"), b"com.example.*");
        assert_eq!(name_key("10.0.0.1"), b"10.0.0.1", "an address is not a DNS name");
        assert_eq!(name_key("alice@example.com"), b"alice@example.com");
        assert_eq!(name_key("issuing ca 1"), b"issuing ca 1");
        assert_eq!(name_key("localhost"), b"localhost");
        assert_eq!(san_value("DNS:web.example.com"), "web.example.com");
        assert_eq!(san_value("dns:web.example.com"), "web.example.com");
        assert_eq!(san_value("URI:urn:hapki:node:1"), "urn:hapki:node:1");
        assert_eq!(san_value("web.example.com"), "web.example.com");
    }

    #[test]
    fn issuing_and_revoking_index_and_a_rebuild_gives_the_same_rows() {
        let (_d, s) = store();
        run(&s, &history());
        let mut late = cert(900_001, "aa");
        late.not_after = 5;
        run(
            &s,
            &[Command::IssueCert {
                cert: late,
                idempotency_key: None,
            }],
        );
        let rows = expiry_rows(&s);
        assert_eq!(rows.len() as u64, s.reader().unwrap().cert_count().unwrap());
        let names = name_rows(&s);
        assert_eq!(names.len(), rows.len(), "the common name and the SAN are one name");
        assert!(names.iter().all(|k| k.starts_with(b"com.example.host")));
        let revoked = revoked_rows(&s);
        assert_eq!(
            revoked,
            [crate::tests::cert(3, "aa").serial.0.to_vec()],
            "history revokes 3"
        );
        assert_eq!(
            &rows[0][..8],
            5u64.to_be_bytes().as_slice(),
            "the earliest expiry comes first"
        );
        let digest = s.reader().unwrap().digest().unwrap();

        let txn = s.db().begin_write().unwrap();
        txn.open_table(IDX_CERT_EXPIRY).unwrap().retain(|_, _| false).unwrap();
        txn.open_table(IDX_REVOKED).unwrap().retain(|_, _| false).unwrap();
        txn.open_table(IDX_CERT_NAMES).unwrap().retain(|_, _| false).unwrap();
        assert_eq!(rebuild(&txn).unwrap(), rows.len() as u64);
        assert!(is_current(&txn).unwrap());
        txn.commit().unwrap();
        assert_eq!(expiry_rows(&s), rows);
        assert_eq!(revoked_rows(&s), revoked);
        assert_eq!(name_rows(&s), names);
        assert_eq!(s.reader().unwrap().digest().unwrap(), digest, "indexes are not state");
    }

    #[test]
    fn revoked_certificates_page_through_the_index_in_serial_order_and_leave_it_with_the_tidy() {
        let (_d, s) = crate::tests::issued_at(3, vec![], 10);
        run(
            &s,
            &[
                crate::tests::revoke(7),
                crate::tests::revoke(2),
                crate::tests::revoke(9),
            ],
        );
        let page = |after: Option<u64>| {
            let filter = crate::CertFilter {
                status: Some(crate::CertStatus::Revoked),
                after: after.map(|n| crate::Cursor::Serial(hapki_domain::serial::Serial::from_u64(n))),
                limit: 1,
                now: 0,
                ..Default::default()
            };
            let certs = s.reader().unwrap().certs(&filter).unwrap().certs;
            certs
                .first()
                .map(|c| u64::from_be_bytes(c.serial.0[12..].try_into().unwrap()))
        };
        assert_eq!(
            [page(None), page(Some(2)), page(Some(7)), page(Some(9))],
            [Some(2), Some(7), Some(9), None]
        );
        let tidy = Command::TidyExpired {
            tidy: crate::tidy::Tidy {
                at: 2000,
                expired_before: 1003,
                serials: vec![hapki_domain::serial::Serial::from_u64(2)],
                crl_heads: vec![crate::CrlHead {
                    issuer_id: "aa".into(),
                    number: 1,
                    this_update: 2000,
                    next_update: 3000,
                }],
            },
        };
        assert_eq!(run(&s, &[tidy]), [crate::CommandResult::Applied]);
        assert_eq!(page(None), Some(7), "the tidied one left the index");
        assert!(
            !name_rows(&s).iter().any(|k| k.starts_with(b"com.example.host2\0")),
            "and the name index"
        );
    }
}
