//! The bytes of each issuer's latest CRL, as this node serves them. Under state format 2
//! the log records a CRL's head only ([`hapki_store::CrlHead`]); this node builds and signs
//! the CRL of the latest head from its replica once, keeps it in memory and serves it
//! until a newer head is applied. A head applied starts a build a little later (at most one
//! per issuer in [`EAGER_DELAY`], so that a burst of revocations costs a few builds, not
//! one per head), so relying parties rarely wait for one; a request that finds no build of
//! the latest head waits for the one under way or makes it. Either way the CRL a request
//! gets lists every revocation answered before it.
//!
//! Every node lists the same entries under a number (the head decides them); an ECDSA
//! signature differs from node to node, as two signatures of one CRL do. Delta CRLs
//! ([`hapki_store::crl_delta`]) are built and kept the same way, apart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hapki_domain::crl::CrlKind;
use hapki_store::LatestCrl;

use super::crl::sign_crl;
use super::Pki;
use crate::pki::PkiError;

/// How long after a head is applied this node builds its CRL, gathering the heads that
/// follow it into one build (at 100,000 entries a build takes about 0.1 s of one core).
pub const EAGER_DELAY: Duration = Duration::from_secs(1);

/// A CRL this node serves.
#[derive(Debug)]
pub struct BuiltCrl {
    pub number: u64,
    /// Shared with every response that sends it.
    pub der: Bytes,
}

/// The latest CRL built for each issuer, and the builds under way.
#[derive(Default)]
pub struct CrlBytes {
    built: Mutex<HashMap<String, Arc<BuiltCrl>>>,
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    scheduled: Mutex<HashSet<String>>,
}

impl CrlBytes {
    fn kept(&self, issuer_id: &str, number: u64) -> Option<Arc<BuiltCrl>> {
        let built = self.built.lock().expect("CRL bytes lock");
        built.get(issuer_id).filter(|b| b.number == number).cloned()
    }

    /// Forgets every CRL built (the state they were built from was replaced).
    pub fn clear(&self) {
        self.built.lock().expect("CRL bytes lock").clear();
    }

    fn keep(&self, issuer_id: &str, crl: Arc<BuiltCrl>) {
        let mut built = self.built.lock().expect("CRL bytes lock");
        let newer = built.get(issuer_id).is_none_or(|b| b.number < crl.number);
        if newer {
            built.insert(issuer_id.to_string(), crl);
        }
    }

    fn build_lock(&self, issuer_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut building = self.building.lock().expect("CRL build lock");
        building.entry(issuer_id.to_string()).or_default().clone()
    }

    /// Whether a build of `issuer_id` should be scheduled now (none is waiting yet).
    fn schedule(&self, issuer_id: &str) -> bool {
        self.scheduled
            .lock()
            .expect("CRL schedule lock")
            .insert(issuer_id.to_string())
    }

    fn unschedule(&self, issuer_id: &str) {
        self.scheduled.lock().expect("CRL schedule lock").remove(issuer_id);
    }
}

/// Which of an issuer's CRLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Complete,
    Delta,
    /// One partition of the latest complete CRL.
    Partition(u32),
}

impl Pki {
    /// The DER of the issuer's latest complete CRL.
    pub async fn crl_der(&self, issuer_id: &str) -> Result<Arc<BuiltCrl>, PkiError> {
        let latest = self.reader()?.latest_crl(issuer_id)?.ok_or_else(|| {
            PkiError::unavailable("the first CRL of this issuer has not been published yet; retry shortly")
        })?;
        let number = match latest {
            LatestCrl::Signed(c) => {
                return Ok(Arc::new(BuiltCrl {
                    number: c.number,
                    der: c.der.into(),
                }))
            }
            LatestCrl::Head(h) => h.number,
        };
        self.built_crl(Which::Complete, issuer_id, number).await
    }

    /// The DER of the issuer's latest delta CRL.
    pub async fn delta_crl_der(&self, issuer_id: &str) -> Result<Arc<BuiltCrl>, PkiError> {
        let reader = self.reader()?;
        let state = reader.delta_state(issuer_id)?;
        let Some(number) = state.as_ref().and_then(|s| s.latest.as_ref()).map(|d| d.number) else {
            return Err(match state {
                None => PkiError::not_found(format!(
                    "issuer {issuer_id} publishes no delta CRLs with its latest complete CRL; they are turned on \
                     with `hapki cluster settings --delta-crl-secs 5`"
                )),
                Some(_) => PkiError::unavailable(
                    "the first delta CRL of the latest complete CRL has not been published yet; retry shortly",
                ),
            });
        };
        self.built_crl(Which::Delta, issuer_id, number).await
    }

    /// The DER of partition `partition` of the issuer's latest complete CRL.
    pub async fn partition_crl_der(&self, issuer_id: &str, partition: u32) -> Result<Arc<BuiltCrl>, PkiError> {
        if partition >= hapki_store::crl_partition::MAX_PARTITIONS {
            return Err(PkiError::not_found(format!(
                "CRL partitions are numbered from 0 to {}",
                hapki_store::crl_partition::MAX_PARTITIONS - 1
            )));
        }
        let number = match self.reader()?.latest_crl(issuer_id)? {
            Some(LatestCrl::Head(h)) => h.number,
            Some(LatestCrl::Signed(_)) | None => {
                return Err(PkiError::unavailable(
                    "the issuer's first CRL of state format 2 or later has not been published yet; retry shortly",
                ))
            }
        };
        self.built_crl(Which::Partition(partition), issuer_id, number).await
    }

    fn bytes_of(&self, which: Which) -> &CrlBytes {
        match which {
            Which::Complete => &self.crl_bytes,
            Which::Delta => &self.delta_bytes,
            Which::Partition(_) => &self.partition_bytes,
        }
    }

    /// CRL `number` of the issuer: the one kept, or built from the replica now.
    async fn built_crl(&self, which: Which, issuer_id: &str, number: u64) -> Result<Arc<BuiltCrl>, PkiError> {
        let bytes = self.bytes_of(which);
        let key = match which {
            Which::Partition(p) => format!("{issuer_id}/{p}"),
            _ => issuer_id.to_string(),
        };
        if let Some(kept) = bytes.kept(&key, number) {
            return Ok(kept);
        }
        let lock = bytes.build_lock(&key);
        let _one_build = lock.lock().await;
        // Built while this request waited for the lock?
        if let Some(kept) = bytes.kept(&key, number) {
            return Ok(kept);
        }
        let issuer = self.issuer(Some(issuer_id))?;
        let reader = self.reader()?;
        let base_url = reader.settings()?.publication_base_url;
        let started = Instant::now();
        let built = tokio::task::spawn_blocking(move || -> Result<BuiltCrl, PkiError> {
            let changed = || PkiError::unavailable("the issuer's CRL changed while it was read; retry");
            let id = &issuer.record.id;
            let (number, this_update, next_update, kind, revoked) = match which {
                Which::Complete => {
                    let (head, revoked) = reader.head_entries(id)?.ok_or_else(changed)?;
                    let freshest = reader
                        .has_deltas(id, head.number)?
                        .then(|| format!("{}/v1/issuers/{id}/delta-crl", base_url.trim_end_matches('/')));
                    let kind = Freshest(freshest);
                    (head.number, head.this_update, head.next_update, kind, revoked)
                }
                Which::Delta => {
                    let (head, revoked) = reader.delta_entries(id)?.ok_or_else(changed)?;
                    (
                        head.number,
                        head.this_update,
                        head.next_update,
                        DeltaOf(head.base),
                        revoked,
                    )
                }
                Which::Partition(p) => {
                    let (head, revoked) = reader.partition_entries(id, p)?.ok_or_else(changed)?;
                    let url = hapki_domain::crl::partition_url(&base_url, id, p);
                    (head.number, head.this_update, head.next_update, Part(url), revoked)
                }
            };
            drop(reader);
            let kind = match &kind {
                Freshest(url) => CrlKind::Complete {
                    freshest: url.as_deref(),
                },
                DeltaOf(base) => CrlKind::Delta { base: *base },
                Part(url) => CrlKind::Partition { url },
            };
            let der = sign_crl(&issuer, number, this_update, next_update, kind, revoked)?;
            Ok(BuiltCrl {
                number,
                der: der.into(),
            })
        })
        .await
        .map_err(|e| PkiError::internal(format!("building a CRL failed: {e}")))??;
        metrics::histogram!(crate::metrics::CRL_BUILD_SECONDS).record(started.elapsed().as_secs_f64());
        let built = Arc::new(built);
        bytes.keep(&key, built.clone());
        Ok(built)
    }

    /// Builds the issuer's CRL (`which`) soon, for a head just applied.
    pub(crate) fn build_crl_soon(self: &Arc<Self>, which: Which, issuer_id: &str) {
        if !self.bytes_of(which).schedule(issuer_id) {
            return;
        }
        let pki = Arc::downgrade(self);
        let issuer_id = issuer_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(EAGER_DELAY).await;
            let Some(pki) = pki.upgrade() else { return };
            pki.bytes_of(which).unschedule(&issuer_id);
            let built = match which {
                Which::Complete => pki.crl_der(&issuer_id).await,
                Which::Delta => pki.delta_crl_der(&issuer_id).await,
                Which::Partition(p) => pki.partition_crl_der(&issuer_id, p).await,
            };
            if let Err(e) = built {
                tracing::warn!("building the CRL of issuer {issuer_id} failed: {e}");
            }
        });
    }
}

/// What a CRL built from a head says beyond its entries, owned for the build's thread.
enum Built {
    Freshest(Option<String>),
    DeltaOf(u64),
    Part(String),
}
use Built::{DeltaOf, Freshest, Part};
