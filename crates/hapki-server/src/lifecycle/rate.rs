//! The apply rate a node reports: applied log entries per second over the last
//! ten seconds, sampled once a second.

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

/// Samples the node's applied index once a second for as long as the node runs.
pub(super) async fn sample(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        node.apply_rate.record(node.cluster.status().last_applied.unwrap_or(0));
    }
}
