//! Serial numbers. Random by default (the second they were drawn in, then 88 bits from
//! the CSPRNG; unique by apply).
//! In sequential mode a node issues increasing numbers from ranges it leases
//! through the log, so no two nodes ever hold the same range; once its range
//! runs low (a quarter left) the request that notices claims the next one, and a
//! restarted node starts on a fresh range rather than guess where it stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hapki_domain::serial::Serial;
use hapki_store::{Command, SerialLease, SerialMode, Settings};

use super::Pki;
use crate::pki::PkiError;

/// This node's place in its leased ranges.
#[derive(Default)]
pub struct SerialAllocator {
    cursor: Mutex<Cursor>,
    claiming: AtomicBool,
}

#[derive(Default)]
struct Cursor {
    next: u64,
    end: u64,
    queued: Option<SerialLease>,
}

impl Pki {
    /// The serial for the next certificate, as the cluster's settings say.
    pub async fn next_serial(&self, settings: &Settings) -> Result<Serial, PkiError> {
        if settings.serial_mode == SerialMode::Random {
            return Ok(Serial::from_time_and_random(self.now(), self.random()));
        }
        loop {
            let (serial, claim) = {
                let mut c = self.serials.cursor.lock().expect("serial cursor");
                if c.next >= c.end {
                    if let Some(q) = c.queued.take() {
                        (c.next, c.end) = (q.start, q.end);
                    }
                }
                if c.next < c.end {
                    let s = c.next;
                    c.next += 1;
                    let low = c.end - c.next <= settings.serial_range / 4;
                    let claim = low && c.queued.is_none() && !self.serials.claiming.swap(true, Ordering::SeqCst);
                    (Some(s), claim)
                } else {
                    (None, !self.serials.claiming.swap(true, Ordering::SeqCst))
                }
            };
            if claim {
                let lease = self.claim_range(settings.serial_range).await;
                self.serials.claiming.store(false, Ordering::SeqCst);
                self.serials.cursor.lock().expect("serial cursor").queued = Some(lease?);
            }
            if let Some(s) = serial {
                return Ok(Serial::from_u64(s));
            }
            if !claim {
                // Another request is claiming the next range.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    /// Leases the next range of `size` serials to this node through the log.
    async fn claim_range(&self, size: u64) -> Result<SerialLease, PkiError> {
        let node = self.cluster.node_id();
        self.propose(&hapki_cluster::Origin::Node, Command::LeaseSerials { node, size })
            .await?;
        let lease = self
            .reader()?
            .serial_lease(node)?
            .ok_or_else(|| PkiError::internal("a leased serial range is not recorded"))?;
        tracing::info!("leased serials {:#x}..{:#x}", lease.start, lease.end);
        Ok(lease)
    }
}
