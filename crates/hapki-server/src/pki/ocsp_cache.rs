//! Signed OCSP answers kept for reuse: the response to a request for one certificate
//! without a nonce (RFC 5019's profile, what browsers, CDNs and `GET /ocsp/...` send),
//! kept per CertId as clients ask, and served again, unsigned anew, until half its validity
//! has passed. Past [`REFRESH_AT`] of it, the first request served a kept answer also has
//! its successor signed off that request, so a serial asked about steadily never waits for
//! a signature. An answer is dropped as soon as what it says may change: a revocation or an
//! issuance of its serial applied on this node (an `unknown` serial may become known), or
//! any change to the issuers (their keys, signers, defaults). A request with a nonce is
//! signed for that request, as it must echo the nonce.
//!
//! An answer built from a replica read before an invalidation is not kept: each insert
//! carries the generation it read at, and every invalidation moves the generation on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;

use super::ocsp::Freshness;

/// Most answers kept; past it the cache starts over (each answer is a few hundred bytes).
const MAX_ENTRIES: usize = 100_000;

/// The share of an answer's validity (numerator, denominator) after which it is signed
/// anew ahead of being dropped at half of it.
pub const REFRESH_AT: (u64, u64) = (2, 5);

/// One kept answer.
#[derive(Clone)]
pub struct Kept {
    pub der: Bytes,
    pub fresh: Freshness,
    /// `good`, `revoked` or `unknown`, for metrics.
    pub status: &'static str,
    /// Set once a successor is being signed.
    refreshing: Arc<AtomicBool>,
}

impl Kept {
    pub fn new(der: Bytes, fresh: Freshness, status: &'static str) -> Kept {
        Kept {
            der,
            fresh,
            status,
            refreshing: Arc::default(),
        }
    }
}

/// A kept answer, and whether this caller is to have its successor signed.
pub struct Hit {
    pub kept: Kept,
    pub refresh: bool,
}

/// The answers kept for one serial, by the requested CertId's DER (a client may hash the
/// issuer with SHA-1 or SHA-256).
type BySerial = HashMap<[u8; 20], Vec<(Vec<u8>, Kept)>>;

/// The kept answers.
#[derive(Default)]
pub struct OcspCache {
    answers: RwLock<BySerial>,
    len: AtomicU64,
    generation: AtomicU64,
}

impl OcspCache {
    /// The generation to pass to [`OcspCache::keep`]: read it before reading the replica.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The answer kept for `cert_id` of `serial`, while less than half its validity has
    /// passed; past [`REFRESH_AT`] of it, the first caller is told to refresh it.
    pub fn get(&self, serial: &[u8; 20], cert_id: &[u8], now: u64) -> Option<Hit> {
        let answers = self.answers.read().expect("ocsp cache lock");
        let (_, kept) = answers.get(serial)?.iter().find(|(id, _)| id == cert_id)?;
        let f = kept.fresh;
        let validity = f.next_update - f.this_update;
        if now >= f.this_update + validity / 2 {
            return None;
        }
        let due = now >= f.this_update + validity * REFRESH_AT.0 / REFRESH_AT.1;
        let refresh = due && !kept.refreshing.swap(true, Ordering::AcqRel);
        Some(Hit {
            kept: kept.clone(),
            refresh,
        })
    }

    /// Keeps an answer built from a replica read at `generation`, unless something was
    /// invalidated since.
    pub fn keep(&self, generation: u64, serial: [u8; 20], cert_id: Vec<u8>, kept: Kept) {
        let mut answers = self.answers.write().expect("ocsp cache lock");
        if self.generation() != generation {
            return;
        }
        if self.len.load(Ordering::Relaxed) as usize >= MAX_ENTRIES {
            answers.clear();
            self.len.store(0, Ordering::Relaxed);
        }
        let list = answers.entry(serial).or_default();
        match list.iter_mut().find(|(id, _)| *id == cert_id) {
            Some(slot) => slot.1 = kept,
            None => {
                list.push((cert_id, kept));
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops what is kept for `serial`.
    pub fn forget(&self, serial: &[u8; 20]) {
        let mut answers = self.answers.write().expect("ocsp cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(list) = answers.remove(serial) {
            self.len.fetch_sub(list.len() as u64, Ordering::Relaxed);
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        let mut answers = self.answers.write().expect("ocsp cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        answers.clear();
        self.len.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(this_update: u64) -> Kept {
        let fresh = Freshness {
            this_update,
            next_update: this_update + 100,
        };
        Kept::new(Bytes::from(vec![this_update as u8]), fresh, "good")
    }

    #[test]
    fn past_two_fifths_of_its_validity_one_caller_is_told_to_refresh_an_answer() {
        let cache = OcspCache::default();
        cache.keep(cache.generation(), [3; 20], b"id".to_vec(), kept(1000));
        assert!(!cache.get(&[3; 20], b"id", 1039).unwrap().refresh, "not due yet");
        assert!(
            cache.get(&[3; 20], b"id", 1040).unwrap().refresh,
            "due: the first caller refreshes"
        );
        assert!(
            !cache.get(&[3; 20], b"id", 1041).unwrap().refresh,
            "only one caller refreshes"
        );
        // The successor replaces it, and is refreshed in its turn.
        cache.keep(cache.generation(), [3; 20], b"id".to_vec(), kept(1041));
        let hit = cache.get(&[3; 20], b"id", 1042).unwrap();
        assert_eq!((hit.kept.fresh.this_update, hit.refresh), (1041, false));
        assert!(cache.get(&[3; 20], b"id", 1081).unwrap().refresh);
    }

    #[test]
    fn an_answer_is_served_for_half_its_validity_and_dropped_by_an_invalidation() {
        let cache = OcspCache::default();
        let g = cache.generation();
        cache.keep(g, [1; 20], b"id-sha1".to_vec(), kept(1000));
        assert!(cache.get(&[1; 20], b"id-sha1", 1049).is_some());
        assert!(
            cache.get(&[1; 20], b"id-sha1", 1050).is_none(),
            "half its validity passed"
        );
        assert!(
            cache.get(&[1; 20], b"id-sha256", 1001).is_none(),
            "another CertId of the serial"
        );
        cache.forget(&[1; 20]);
        assert!(cache.get(&[1; 20], b"id-sha1", 1001).is_none());
    }

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_kept() {
        let cache = OcspCache::default();
        let before = cache.generation();
        cache.forget(&[2; 20]); // a revocation applied while the answer was built
        cache.keep(before, [2; 20], b"id".to_vec(), kept(1000));
        assert!(
            cache.get(&[2; 20], b"id", 1001).is_none(),
            "a stale answer must not be kept"
        );
        cache.keep(cache.generation(), [2; 20], b"id".to_vec(), kept(1000));
        assert!(cache.get(&[2; 20], b"id", 1001).is_some());
        cache.clear();
        assert!(cache.get(&[2; 20], b"id", 1001).is_none());
    }
}
