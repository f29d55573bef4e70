//! The hapki node: HTTPS API (axum over rustls), plain-HTTP publication, bearer
//! token auth, the CA service on top of the replicated store, the node's root
//! of trust, and start-up.

pub mod api;
pub mod auth;
pub mod backups;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod error;
pub mod lifecycle;
pub mod logfmt;
pub mod metrics;
mod node;
pub mod observe;
pub mod pki;
pub mod rand;
pub mod recent;
pub mod replica;
pub mod serve;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod trust;
mod upgrade;
pub mod version;

pub use config::NodeConfig;
pub use node::run;
