//! CPU-heavy work off the async runtime: key generation, CSR signature checks
//! and PKCS#12 files run on tokio's blocking threads behind a semaphore, so the
//! async workers that carry Raft heartbeats, forwarding and health never wait
//! behind them. One token may have only so many jobs queued or running at once;
//! beyond that it is told to slow down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::pki::PkiError;

/// A bounded pool for one kind of heavy work.
pub struct HeavyWork {
    what: &'static str,
    running: Arc<Semaphore>,
    per_token: Mutex<HashMap<String, usize>>,
    per_token_max: usize,
}

impl HeavyWork {
    /// At most `threads` jobs run at once; a token may have `per_token_max` queued or running.
    pub fn new(what: &'static str, threads: usize, per_token_max: usize) -> HeavyWork {
        HeavyWork {
            what,
            running: Arc::new(Semaphore::new(threads.max(1))),
            per_token: Mutex::new(HashMap::new()),
            per_token_max: per_token_max.max(1),
        }
    }

    /// Runs `job` on a blocking thread for the token `token_id`, waiting for a free slot.
    pub async fn run<T: Send + 'static>(
        &self,
        token_id: &str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PkiError> {
        let _claim = self.claim(token_id)?;
        let permit = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PkiError::unavailable("the node is shutting down; retry on another node"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| PkiError::internal(format!("{} failed: {e}", self.what)))
    }

    fn claim(&self, token_id: &str) -> Result<Claim<'_>, PkiError> {
        let mut counts = self.per_token.lock().expect("per-token lock");
        let count = counts.entry(token_id.to_string()).or_insert(0);
        if *count >= self.per_token_max {
            return Err(PkiError::Busy(format!(
                    "token {token_id} already has {} {} in progress, the most one token may have; wait for them, then retry",
                self.per_token_max, self.what
            )));
        }
        *count += 1;
        Ok(Claim {
            work: self,
            token_id: token_id.to_string(),
        })
    }
}

/// A token's place in a pool, given back when its job ends (or its request is dropped).
struct Claim<'a> {
    work: &'a HeavyWork,
    token_id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut counts = self.work.per_token.lock().expect("per-token lock");
        if let Some(c) = counts.get_mut(&self.token_id) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&self.token_id);
            }
        }
    }
}

/// The pools of one node: slow key generation apart from quick CSR checks, so a flood of
/// one does not stall the other. Each uses at most the cores but one.
pub struct Pools {
    pub keygen: HeavyWork,
    pub verify: HeavyWork,
}

impl Default for Pools {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let spare = cores.saturating_sub(1).max(1);
        Pools {
            keygen: HeavyWork::new("key generations", spare, 8),
            verify: HeavyWork::new("CSR checks", spare, 256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_over_its_share_is_told_to_wait() {
        let work = Arc::new(HeavyWork::new("jobs", 1, 2));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (work, rx) = (work.clone(), rx.clone());
            held.push(tokio::spawn(async move {
                work.run("t1", move || rx.lock().unwrap().recv().ok()).await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let err = work.run("t1", || ()).await.unwrap_err();
        assert!(matches!(&err, PkiError::Busy(m) if m.contains("token t1")), "{err}");
        drop(tx);
        for h in held {
            h.await.unwrap().unwrap();
        }
        // Another token, and the same one once its jobs are done, get through.
        work.run("t2", || ()).await.unwrap();
        work.run("t1", || ()).await.unwrap();
    }
}
