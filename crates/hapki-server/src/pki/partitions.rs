//! Which CRL partition a certificate issued now names ([`hapki_store::crl_partition`]):
//! the issuer's revoked count decides how many partitions there are, and the serial picks
//! one. The count is read from the replica at most every [`RECOUNT_EVERY`] and again after
//! a revocation is applied, so issuance does not count revocations each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hapki_domain::crl::partition_url;
use hapki_domain::serial::Serial;
use hapki_store::crl_partition::CrlPartitioning;
use hapki_store::StateReader;

use super::Pki;
use crate::pki::PkiError;

/// How long a revoked count read from the replica is used.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(10);

/// The issuers' revoked counts, as last read.
#[derive(Default)]
pub struct RevokedCounts(Mutex<HashMap<String, (u64, Instant)>>);

impl RevokedCounts {
    /// Forgets every count (a revocation was applied, or the state was replaced).
    pub fn clear(&self) {
        self.0.lock().expect("revoked counts").clear();
    }
}

impl Pki {
    /// How many CRL partitions a certificate of `issuer_id` issued now is spread over:
    /// `None` while the issuer's complete CRL is the one to name (partitions off, which is
    /// all a state below format 3 can say, or too few revoked yet).
    pub(super) fn crl_partitions(&self, reader: &StateReader, issuer_id: &str) -> Result<Option<u32>, PkiError> {
        let policy = reader.crl_partitioning()?;
        if policy.size == 0 {
            return Ok(None);
        }
        let cached = {
            let counts = self.revoked_counts.0.lock().expect("revoked counts");
            counts
                .get(issuer_id)
                .filter(|(_, at)| at.elapsed() < RECOUNT_EVERY)
                .map(|(n, _)| *n)
        };
        let revoked = match cached {
            Some(n) => n,
            None => {
                let n = reader.revoked_count(issuer_id)?;
                let mut counts = self.revoked_counts.0.lock().expect("revoked counts");
                counts.insert(issuer_id.to_string(), (n, Instant::now()));
                n
            }
        };
        Ok(policy.partitions(revoked))
    }
}

/// The partition CRL a certificate with `serial` names, among `partitions`.
pub(super) fn partition_crl_url(base: &str, issuer_id: &str, serial: &Serial, partitions: u32) -> String {
    partition_url(base, issuer_id, CrlPartitioning::partition_of(serial, partitions))
}
