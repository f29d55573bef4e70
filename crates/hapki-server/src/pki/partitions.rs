//! Which CRL partition a certificate issued now names ([`hapki_store::crl_partition`]):
//! the issuer's revoked count decides how many partitions there are, and the serial picks
//! one. The count is read from the replica at most every [`RECOUNT_EVERY`] and again after
//! a revocation of the issuer is applied, so issuance does not count revocations each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hapki_domain::crl::partition_url;
use hapki_domain::serial::Serial;
use hapki_store::crl_partition::CrlPartitioning;

use super::Pki;
use crate::pki::PkiError;

/// How long a revoked count read from the replica is used.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(10);

/// The issuers' revoked counts, as last read.
#[derive(Default)]
pub struct RevokedCounts(Mutex<HashMap<String, (u64, Instant)>>);

impl RevokedCounts {
    /// Forgets the count of `issuer_id` (a revocation of it was applied).
    pub fn forget(&self, issuer_id: &str) {
        self.0.lock().expect("revoked counts").remove(issuer_id);
    }

    /// Forgets every count (the state was replaced).
    pub fn clear(&self) {
        self.0.lock().expect("revoked counts").clear();
    }
}

impl Pki {
    /// The CRL URL a certificate of `issuer_id` with `serial` names: a partition's once
    /// the issuer's revoked set passed the partition size, otherwise `None` (the issuer's
    /// complete CRL).
    pub(super) fn partition_crl_url(
        &self,
        base: &str,
        issuer_id: &str,
        serial: &Serial,
    ) -> Result<Option<String>, PkiError> {
        let reader = self.reader()?;
        let policy = reader.crl_partitioning()?;
        if policy.size == 0 || reader.state_format()? < super::crl::DELTA_FORMAT {
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
        Ok(policy
            .partitions(revoked)
            .map(|partitions| partition_url(base, issuer_id, CrlPartitioning::partition_of(serial, partitions))))
    }
}
