//! The audit log's chain and its check, shared by the node (which appends and verifies
//! its own log) and the CLI (which verifies an exported file with the audit certificate).
//!
//! Every record carries the SHA-256 of the previous record's hash and its own fields, so
//! a record changed in place no longer hashes to what it says. Seals sign the head of the
//! chain (a record's position and hash) with the audit signing key (Ed25519), so a chain
//! rebuilt after a change no longer matches a signed head. [`verify`] walks records in
//! stored order and names the first one that was changed, removed or reordered.

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

/// One action in the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its position in the log, from 1.
    pub seq: u64,
    /// When the node that took the action stamped it (Unix seconds).
    pub at: u64,
    /// The token id of the caller, or `None` for the cluster's own work.
    pub actor: Option<String>,
    /// The token's name, or `node`.
    pub actor_name: String,
    /// The node that proposed it (16 hex digits).
    pub node: String,
    /// What was done (`issue_cert`, `revoke`, `create_token`, ...).
    pub action: String,
    /// What it was done to (`cert 1f…`, `token 3a…`, `profile server`, ...).
    pub object: String,
    /// `applied`, `replayed`, or `refused: <code>`.
    pub outcome: String,
    /// SHA-256 (hex) of the previous record's hash and this record's fields.
    pub hash: String,
}

/// The signed head of the chain: the record at `seq` has hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub seq: u64,
    pub hash: String,
    pub at: u64,
    /// Ed25519 over [`Seal::message`], base64.
    pub signature: String,
}

/// The hash of the record before the first.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields a record's hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: u64,
    actor: &'a Option<String>,
    actor_name: &'a str,
    node: &'a str,
    action: &'a str,
    object: &'a str,
    outcome: &'a str,
}

impl Record {
    /// The hash this record has after `prev` (the previous record's hash).
    pub fn chain(&self, prev: &[u8; 32]) -> [u8; 32] {
        let fields = Hashed {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            actor_name: &self.actor_name,
            node: &self.node,
            action: &self.action,
            object: &self.object,
            outcome: &self.outcome,
        };
        let mut ctx = Context::new(&SHA256);
        ctx.update(b"hapki audit record v1\0");
        ctx.update(prev);
        ctx.update(&serde_json::to_vec(&fields).expect("plain fields serialize"));
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// This record's stored hash, as bytes (zeros if it is not 64 hex digits).
    pub fn hash_bytes(&self) -> [u8; 32] {
        parse_hash(&self.hash).unwrap_or([0xff; 32])
    }
}

fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let v = hex::decode(hex_text).ok()?;
    v.try_into().ok()
}

impl Seal {
    /// What the audit key signs for a head at `seq` with hash `hash`.
    pub fn message(seq: u64, hash: &str) -> Vec<u8> {
        let mut m = b"hapki audit seal v1\0".to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(hash.as_bytes());
        m
    }

    /// Whether the signature is the key's (`public` is the raw Ed25519 public key).
    pub fn signed_by(&self, public: &[u8]) -> bool {
        use base64::Engine;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public)
            .verify(&Self::message(self.seq, &self.hash), &sig)
            .is_ok()
    }
}

/// What a check of the whole log found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub records: u64,
    pub seals: u64,
    /// The last record a valid seal covers (0 for none).
    pub sealed_through: u64,
    /// The first fault, if any.
    pub fault: Option<Fault>,
}

/// The first thing found wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The record it concerns (its position in the log).
    pub seq: u64,
    pub kind: FaultKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Changed,
    Removed,
    Reordered,
    BadSeal,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.fault.is_none()
    }
}

/// Checks `records` in stored order, each with its storage position (the key the node
/// stores it under, which an export carries with it), against `seals` and the audit key's
/// raw Ed25519 public key. [`Verifier`] does the same one record at a time.
pub fn verify(records: impl IntoIterator<Item = (u64, Record)>, seals: &[Seal], public: &[u8]) -> Report {
    let mut v = Verifier::new(seals, public);
    for (position, r) in records {
        if !v.push(position, &r) {
            break;
        }
    }
    v.finish()
}

/// The check of [`verify`], fed one record at a time, so that a log of any length is
/// checked without holding it: only the seals (a few per second of activity) are kept.
pub struct Verifier {
    /// The hash each valid seal signs, by position.
    signed: std::collections::BTreeMap<u64, String>,
    prev: [u8; 32],
    expected: u64,
    last_position: u64,
    report: Report,
}

impl Verifier {
    /// A check against `seals`, each of which must be signed by `public`.
    pub fn new(seals: &[Seal], public: &[u8]) -> Verifier {
        let mut v = Verifier {
            signed: std::collections::BTreeMap::new(),
            prev: GENESIS,
            expected: 1,
            last_position: 0,
            report: Report {
                records: 0,
                seals: seals.len() as u64,
                sealed_through: 0,
                fault: None,
            },
        };
        for s in seals {
            if !s.signed_by(public) {
                v.fail(
                    s.seq,
                    FaultKind::BadSeal,
                    format!("the seal of record {} is not signed by the audit key", s.seq),
                );
                break;
            }
            v.signed.insert(s.seq, s.hash.clone());
        }
        v
    }

    fn fail(&mut self, seq: u64, kind: FaultKind, message: String) {
        self.report.fault = Some(Fault { seq, kind, message });
    }

    /// Checks the next record, stored at `position`; false once a fault is found.
    pub fn push(&mut self, position: u64, r: &Record) -> bool {
        if self.report.fault.is_some() {
            return false;
        }
        self.report.records += 1;
        let (expected, last_position) = (self.expected, self.last_position);
        if r.seq != position || position <= last_position {
            self.fail(
                position,
                FaultKind::Reordered,
                format!(
                    "the record stored at {position} (after {last_position}) says it is record {}: records were reordered",
                    r.seq
                ),
            );
            return false;
        }
        self.last_position = position;
        if position != expected {
            let message = if position == expected + 1 {
                format!("record {expected} is missing: it was removed")
            } else {
                format!("records {expected} to {} are missing: they were removed", position - 1)
            };
            self.fail(expected, FaultKind::Removed, message);
            return false;
        }
        let hash = r.chain(&self.prev);
        if hex::encode(hash) != r.hash {
            self.fail(
                r.seq,
                FaultKind::Changed,
                format!(
                    "record {} ({} of {} by {}) does not hash to its chain: it was changed",
                    r.seq, r.action, r.object, r.actor_name
                ),
            );
            return false;
        }
        if let Some(h) = self.signed.get(&r.seq) {
            if *h != r.hash {
                self.fail(
                    r.seq,
                    FaultKind::Changed,
                    format!(
                        "the chain up to record {} is not the one the audit key signed: a record at or before {} was changed",
                        r.seq, r.seq
                    ),
                );
                return false;
            }
            self.report.sealed_through = r.seq;
        }
        self.prev = hash;
        self.expected += 1;
        true
    }

    /// What the check found, once every record was pushed.
    pub fn finish(mut self) -> Report {
        if self.report.fault.is_none() {
            if let Some((&last_signed, _)) = self.signed.iter().next_back() {
                let expected = self.expected;
                if last_signed >= expected {
                    self.fail(
                        expected,
                        FaultKind::Removed,
                        format!(
                            "the audit key signed the log up to record {last_signed}, but it ends at record {}: records from {expected} were removed",
                            expected - 1
                        ),
                    );
                }
            }
        }
        self.report
    }
}

/// The raw Ed25519 public key in a DER SubjectPublicKeyInfo or certificate.
pub fn ed25519_public(spki_or_cert_der: &[u8]) -> Result<Vec<u8>, String> {
    use der::Decode;
    let spki = match x509_cert::Certificate::from_der(spki_or_cert_der) {
        Ok(c) => c.tbs_certificate.subject_public_key_info,
        Err(_) => spki::SubjectPublicKeyInfoOwned::from_der(spki_or_cert_der)
            .map_err(|e| format!("neither a certificate nor a public key: {e}"))?,
    };
    if spki.algorithm.oid != crate::oids::ED25519 {
        return Err(format!(
            "the audit key is Ed25519; this key is of algorithm {}",
            spki.algorithm.oid
        ));
    }
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "the public key bit string is not octet aligned".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

    fn key() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap()
    }

    fn chain(n: u64) -> Vec<Record> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let mut r = Record {
                    seq,
                    at: 1_800_000_000 + seq,
                    actor: Some(format!("{seq:016x}")),
                    actor_name: "ops".into(),
                    node: "0000000000000001".into(),
                    action: "issue_cert".into(),
                    object: format!("cert {seq:x}"),
                    outcome: "applied".into(),
                    hash: String::new(),
                };
                prev = r.chain(&prev);
                r.hash = hex::encode(prev);
                r
            })
            .collect()
    }

    fn seal(r: &Record) -> Seal {
        use base64::Engine;
        let sig = key().sign(&Seal::message(r.seq, &r.hash));
        Seal {
            seq: r.seq,
            hash: r.hash.clone(),
            at: r.at,
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        }
    }

    fn check(records: &[Record], seals: &[Seal]) -> Report {
        let public = key().public_key().as_ref().to_vec();
        verify(
            records.iter().enumerate().map(|(i, r)| (i as u64 + 1, r.clone())),
            seals,
            &public,
        )
    }

    #[test]
    fn an_untouched_log_verifies_and_reports_what_its_seals_cover() {
        let records = chain(6);
        let seals = [seal(&records[2]), seal(&records[4])];
        let report = check(&records, &seals);
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.records, report.seals, report.sealed_through), (6, 2, 5));
        assert!(check(&[], &[]).ok());
    }

    #[test]
    fn a_changed_removed_or_reordered_record_is_named() {
        let records = chain(6);
        let seals = [seal(&records[5])];
        let fault = |records: &[Record]| check(records, &seals).fault.expect("a fault");

        let mut changed = records.clone();
        changed[2].actor_name = "someone else".into();
        let f = fault(&changed);
        assert_eq!((f.seq, f.kind), (3, FaultKind::Changed), "{}", f.message);

        let mut removed = records.clone();
        removed.remove(3);
        let positions = removed.iter().map(|r| (r.seq, r.clone()));
        let public = key().public_key().as_ref().to_vec();
        let f = verify(positions, &seals, &public).fault.unwrap();
        assert_eq!((f.seq, f.kind), (4, FaultKind::Removed), "{}", f.message);

        let mut swapped = records.clone();
        swapped.swap(1, 4);
        let f = fault(&swapped);
        assert_eq!((f.seq, f.kind), (2, FaultKind::Reordered), "{}", f.message);

        // A record moved later, with its position: the first gap is named.
        let mut moved: Vec<(u64, Record)> = records.iter().map(|r| (r.seq, r.clone())).collect();
        moved.swap(2, 3);
        let f = verify(moved, &seals, &public).fault.unwrap();
        assert_eq!((f.seq, f.kind), (3, FaultKind::Removed), "{}", f.message);

        // A record copied over the next one.
        let mut copied: Vec<(u64, Record)> = records.iter().map(|r| (r.seq, r.clone())).collect();
        copied[2] = copied[1].clone();
        let f = verify(copied, &seals, &public).fault.unwrap();
        assert_eq!((f.seq, f.kind), (2, FaultKind::Reordered), "{}", f.message);

        // Cut at the end: the seal says there was more.
        let f = fault(&records[..4]);
        assert_eq!((f.seq, f.kind), (5, FaultKind::Removed), "{}", f.message);
    }

    #[test]
    fn a_chain_rebuilt_after_a_change_does_not_match_its_seal() {
        let records = chain(5);
        let seals = [seal(&records[4])];
        let mut rebuilt = records.clone();
        rebuilt[1].outcome = "refused: forbidden".into();
        let mut prev = GENESIS;
        for r in &mut rebuilt {
            prev = r.chain(&prev);
            r.hash = hex::encode(prev);
        }
        let f = check(&rebuilt, &seals).fault.unwrap();
        assert_eq!((f.seq, f.kind), (5, FaultKind::Changed), "{}", f.message);
        // Without the seal the rebuilt chain holds together: that is what seals are for.
        assert!(check(&rebuilt, &[]).ok());
    }

    #[test]
    fn a_seal_not_made_by_the_audit_key_is_refused() {
        let records = chain(3);
        let mut forged = seal(&records[2]);
        forged.hash = records[1].hash.clone();
        let f = check(&records, &[forged]).fault.unwrap();
        assert_eq!((f.seq, f.kind), (3, FaultKind::BadSeal), "{}", f.message);
        let other = Ed25519KeyPair::from_seed_unchecked(&[1; 32]).unwrap();
        let f = verify(
            records.iter().map(|r| (r.seq, r.clone())),
            &[seal(&records[2])],
            other.public_key().as_ref(),
        )
        .fault
        .unwrap();
        assert_eq!(f.kind, FaultKind::BadSeal);
    }
}
