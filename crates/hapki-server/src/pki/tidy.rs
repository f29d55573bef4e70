//! Expiry tidy on the service: the leader's scheduled runs, a run an admin starts now,
//! and where the tidy stands. A run proposes batches chosen from this node's expiry
//! index ([`hapki_store::tidy`]), each an audited command, and after each one waits long
//! enough that the tidy keeps the log busy at most its share of the time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hapki_api::tidy::{TidyBatch, TidyReport, TidyStatus};
use hapki_store::idempotency;
use hapki_store::tidy::{Tidy, TidyPolicy};
use hapki_store::{Command, CrlHead, RejectCode};

use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

/// The state format that brought the tidy.
pub const TIDY_FORMAT: u32 = 3;

/// Idempotency keys one tidy batch forgets.
const KEYS_PER_BATCH: u32 = 5_000;

/// How often the leader looks for expired certificates, by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

/// The tidy's bookkeeping on one node: one run at a time, and the schedule it keeps.
pub struct TidyState {
    running: tokio::sync::Mutex<()>,
    every_secs: AtomicU64,
}

impl Default for TidyState {
    fn default() -> Self {
        TidyState {
            running: tokio::sync::Mutex::new(()),
            every_secs: AtomicU64::new(DEFAULT_EVERY.as_secs()),
        }
    }
}

/// What one batch removed, and the share of the log's time the policy it ran under gives.
struct Removed {
    removed: u64,
    revoked: u64,
    crls: Vec<String>,
    share_percent: u8,
}

/// How long to wait after a batch that took `took`, so that batches use `share_percent`
/// of the time.
fn pause_after(took: Duration, share_percent: u8) -> Duration {
    let share = u32::from(share_percent.clamp(1, 100));
    took * (100 - share) / share
}

impl Pki {
    /// The policy, the latest batch and what waits now.
    pub fn tidy_status(&self, caller: &Caller) -> Result<TidyStatus, PkiError> {
        caller.may(Action::ReadStatus)?;
        let reader = self.reader()?;
        let policy = reader.tidy_policy()?;
        let expired_before = self.now().saturating_sub(policy.retention_secs);
        Ok(TidyStatus {
            retention_secs: policy.retention_secs,
            batch: policy.batch,
            share_percent: policy.share_percent,
            every_secs: self.tidy.every_secs.load(Ordering::Relaxed),
            pending: reader.tidy_pending(expired_before)?,
            expired_before,
            idempotency_keys: reader.idempotency_keys()?,
            last: reader.last_tidy()?.map(|r| TidyBatch {
                at: r.at,
                expired_before: r.expired_before,
                removed: r.removed,
                revoked: r.revoked,
                total_removed: r.total_removed,
            }),
        })
    }

    /// Runs tidy batches now on behalf of `caller`, up to `max_batches` (until nothing
    /// waits when `None`).
    pub async fn run_tidy(&self, caller: &Caller, max_batches: Option<u32>) -> Result<TidyReport, PkiError> {
        caller.may(Action::Tidy)?;
        if max_batches == Some(0) {
            return Err(PkiError::invalid("max_batches must be at least 1"));
        }
        self.require_format(TIDY_FORMAT, "the expiry tidy")?;
        self.tidy_batches(caller, max_batches).await
    }

    /// Sets how expired certificates are tidied.
    pub async fn set_tidy_policy(&self, caller: &Caller, policy: TidyPolicy) -> Result<(), PkiError> {
        caller.may(Action::ManageCluster)?;
        policy.check().map_err(PkiError::invalid)?;
        self.propose_as(caller, Command::SetTidyPolicy { policy }).await
    }

    async fn tidy_batches(&self, caller: &Caller, max_batches: Option<u32>) -> Result<TidyReport, PkiError> {
        let _one_at_a_time = self.tidy.running.lock().await;
        let mut report = TidyReport::default();
        let mut drained = false;
        while max_batches.is_none_or(|max| report.batches < max) {
            let started = Instant::now();
            let Some(done) = self.tidy_batch(caller).await? else {
                drained = true;
                break;
            };
            report.batches += 1;
            report.removed += done.removed;
            report.revoked += done.revoked;
            for id in done.crls {
                if !report.crls.contains(&id) {
                    report.crls.push(id);
                }
            }
            tokio::time::sleep(pause_after(started.elapsed(), done.share_percent)).await;
        }
        if !drained {
            let reader = self.reader()?;
            let policy = reader.tidy_policy()?;
            report.pending = reader.tidy_pending(self.now().saturating_sub(policy.retention_secs))?;
            report.keys_pending = self.forgettable_keys(&reader)?;
            return Ok(report);
        }
        while max_batches.is_none_or(|max| report.batches < max) {
            let reader = self.reader()?;
            if !self.forgettable_keys(&reader)? {
                return Ok(report);
            }
            let started = Instant::now();
            let before = reader.idempotency_keys()?;
            let share = reader.tidy_policy()?.share_percent;
            drop(reader);
            let forget = Command::ForgetIdempotencyKeys {
                at: self.now(),
                max: KEYS_PER_BATCH,
            };
            self.propose_as(caller, forget).await?;
            report.batches += 1;
            report.keys_forgotten += before.saturating_sub(self.reader()?.idempotency_keys()?);
            tokio::time::sleep(pause_after(started.elapsed(), share)).await;
        }
        report.keys_pending = self.forgettable_keys(&self.reader()?)?;
        Ok(report)
    }

    /// Whether idempotency keys wait to be forgotten (never before the format that dates them).
    fn forgettable_keys(&self, reader: &hapki_store::StateReader) -> Result<bool, PkiError> {
        if reader.state_format()? < idempotency::FORMAT {
            return Ok(false);
        }
        Ok(reader.forgettable_idempotency_keys(self.now(), 1)? > 0)
    }

    /// Chooses and proposes one batch; `None` when nothing waits. A CRL number another
    /// publication took first is chosen again.
    async fn tidy_batch(&self, caller: &Caller) -> Result<Option<Removed>, PkiError> {
        for _ in 0..3 {
            // CRL heads rise one at a time on this node: a scheduled renewal waits.
            let _crls = self.crl.built_from.lock().await;
            let now = self.now();
            let reader = self.reader()?;
            let policy = reader.tidy_policy()?;
            let validity = reader.settings()?.crl_validity_secs;
            let expired_before = now.saturating_sub(policy.retention_secs);
            let chosen = reader.tidy_candidates(expired_before, policy.batch as usize)?;
            if chosen.is_empty() {
                return Ok(None);
            }
            let mut crls: Vec<String> = chosen
                .iter()
                .filter(|c| c.revoked)
                .map(|c| c.issuer_id.clone())
                .collect();
            crls.sort();
            crls.dedup();
            let mut crl_heads = Vec::with_capacity(crls.len());
            for issuer_id in &crls {
                let number = super::crl::next_crl_number(&reader, issuer_id)?;
                crl_heads.push(CrlHead {
                    issuer_id: issuer_id.clone(),
                    number,
                    this_update: now,
                    next_update: now + validity,
                });
            }
            drop(reader);
            let removed = chosen.len() as u64;
            let revoked = chosen.iter().filter(|c| c.revoked).count() as u64;
            let tidy = Tidy {
                at: now,
                expired_before,
                serials: chosen.iter().map(|c| c.serial).collect(),
                crl_heads,
            };
            match self.propose_as(caller, Command::TidyExpired { tidy }).await {
                Ok(()) => {
                    metrics::counter!(crate::metrics::TIDIED).increment(removed);
                    return Ok(Some(Removed {
                        removed,
                        revoked,
                        crls,
                        share_percent: policy.share_percent,
                    }));
                }
                Err(PkiError::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PkiError::unavailable(
            "the CRL number kept moving during the tidy; retry",
        ))
    }
}

/// On the leader, once the cluster's format has the tidy: runs a tidy every `every`
/// until the process ends.
pub async fn tidy_loop(pki: Arc<Pki>, every: Duration) {
    pki.tidy.every_secs.store(every.as_secs(), Ordering::Relaxed);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let due = pki.cluster.status().is_leader
            && pki.reader().and_then(|r| Ok(r.state_format()?)).unwrap_or(0) >= TIDY_FORMAT;
        if !due {
            continue;
        }
        match pki.tidy_batches(&Caller::node(), None).await {
            Ok(r) if r.removed > 0 || r.keys_forgotten > 0 => tracing::info!(
                "tidy removed {} certificates expired longer ago than the retention ({} revoked) and forgot {} \
                 idempotency keys older than a day in {} batches",
                r.removed,
                r.revoked,
                r.keys_forgotten,
                r.batches
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("the expiry tidy failed: {e}; it runs again in {} s", every.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_sets_the_pause_after_each_batch() {
        let took = Duration::from_millis(40);
        assert_eq!(pause_after(took, 10), Duration::from_millis(360));
        assert_eq!(pause_after(took, 50), Duration::from_millis(40));
        assert_eq!(pause_after(took, 100), Duration::ZERO);
        assert_eq!(pause_after(took, 0), Duration::from_millis(3960), "0 counts as 1 %");
    }
}
