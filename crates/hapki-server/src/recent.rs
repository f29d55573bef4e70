//! The node's recent warnings and errors, kept in memory for `cluster summary`:
//! a tracing layer that remembers the last few WARN and ERROR events.

use std::collections::VecDeque;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

const KEEP: usize = 10;

pub use hapki_api::cluster::RecentError;

static RECENT: Mutex<VecDeque<RecentError>> = Mutex::new(VecDeque::new());

/// The remembered events, oldest first.
pub fn recent_errors() -> Vec<RecentError> {
    RECENT.lock().expect("recent lock").iter().cloned().collect()
}

/// A layer that remembers WARN and ERROR events.
pub struct RecentErrors;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else if !self.0.is_empty() {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for RecentErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let mut recent = RECENT.lock().expect("recent lock");
        recent.push_back(RecentError {
            at: crate::clock::system_now(),
            level: level.to_string(),
            message: msg.0,
        });
        while recent.len() > KEEP {
            recent.pop_front();
        }
    }
}
