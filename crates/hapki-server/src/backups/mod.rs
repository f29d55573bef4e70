//! Backups as files: the leader's scheduled backups in `[backup] dir`, and a restore
//! of a backup file into a fresh data directory. Taking a backup and its record are the
//! CA service's (`pki::backup`); the file's layout is `hapki_domain::backup`'s.

mod restore;
mod schedule;

pub use restore::{inspect, restore, KeyMaterial, Restored};
pub use schedule::schedule;
