//! What a node watches once a second: its apply rate (applied log entries per
//! second over the last ten seconds) and, on the leader, members it has not
//! heard from for longer than `contact_alarm_secs` (an alarm in the log, raised
//! once and cleared when the member is back).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Node;

const WINDOW: usize = 11;

/// Recent (time, applied index) samples.
#[derive(Default)]
pub struct ApplyRate {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl ApplyRate {
    fn record(&self, applied: u64) {
        let mut s = self.samples.lock().expect("rate lock");
        s.push_back((Instant::now(), applied));
        while s.len() > WINDOW {
            s.pop_front();
        }
    }

    /// Entries applied per second over the window.
    pub fn per_second(&self) -> f64 {
        let s = self.samples.lock().expect("rate lock");
        match (s.front(), s.back()) {
            (Some((t0, a0)), Some((t1, a1))) if t1 > t0 => {
                a1.saturating_sub(*a0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Samples the node's applied index and checks contact once a second for as long as the node runs.
pub(super) async fn sample(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut alarmed = std::collections::BTreeSet::new();
    let mut unheard = std::collections::HashMap::new();
    loop {
        tick.tick().await;
        let status = node.cluster.status();
        node.apply_rate.record(status.last_applied.unwrap_or(0));
        if !status.is_leader {
            alarmed.clear();
            unheard.clear();
            continue;
        }
        let limit = Duration::from_secs(node.cfg.contact_alarm_secs);
        for m in node.cluster.members().into_iter().filter(|m| m.id != node.id) {
            // A member never heard from since this node started counts from when it was first missed.
            let since = node.cluster.network().contacts.since(m.id);
            let missed = *unheard.entry(m.id).or_insert_with(std::time::Instant::now);
            let silent = since.map_or(missed.elapsed() > limit, |d| d > limit);
            if silent && alarmed.insert(m.id) {
                tracing::warn!(
                    "alarm: no contact with node {:016x} ({}) for over {} s; `hapki cluster summary` shows the cluster",
                    m.id,
                    m.addr.name,
                    limit.as_secs()
                );
            } else if !silent && alarmed.remove(&m.id) {
                tracing::warn!("cleared: node {:016x} ({}) is in contact again", m.id, m.addr.name);
            }
        }
    }
}
