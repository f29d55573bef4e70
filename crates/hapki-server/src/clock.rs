//! Time and randomness as the CA service sees them: passed in when the service
//! is built, so that CRL renewal, OCSP-signer renewal and token expiry can be
//! tested by moving a manual clock instead of waiting. Production uses the
//! system clock and the operating system's CSPRNG; the key-encryption keys and
//! their nonces (`trust`) always come from the CSPRNG itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> u64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        system_now()
    }
}

/// The system clock's seconds since the epoch, for what is not the service's business to fake
/// (log records, the time a summary was computed).
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A clock that moves only when told to.
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(start)))
    }

    /// Moves the clock `secs` forward.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A source of random bytes (serial numbers, token secrets).
pub trait Random: Send + Sync + 'static {
    fn fill(&self, out: &mut [u8]);
}

/// The operating system's CSPRNG.
pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&self, out: &mut [u8]) {
        crate::rand::fill(out);
    }
}

/// The clock and randomness a service runs on.
#[derive(Clone)]
pub struct Sources {
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Sources {
    /// The system clock and the CSPRNG.
    pub fn system() -> Sources {
        Sources {
            clock: Arc::new(SystemClock),
            random: Arc::new(SystemRandom),
        }
    }
}
