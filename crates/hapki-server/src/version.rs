//! The version every node reports, and the one it announces when it joins.

/// The version every node reports. A build of the last release's state format (the
/// `state-format-1` feature, for upgrade tests) says so in a pre-release suffix, which
/// orders it before this release.
#[cfg(not(feature = "state-format-1"))]
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The version every node reports. A build of the last release's state format (the
/// `state-format-1` feature, for upgrade tests) says so in a pre-release suffix, which
/// orders it before this release.
#[cfg(feature = "state-format-1")]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-format1");

/// The version this node announces when it joins. Debug builds take
/// `HAPKI_TEST_ANNOUNCED_VERSION` instead, so tests can show that a node of another
/// major version is refused without building a second release.
pub fn version() -> String {
    if cfg!(debug_assertions) {
        if let Ok(v) = std::env::var("HAPKI_TEST_ANNOUNCED_VERSION") {
            return v;
        }
    }
    VERSION.to_string()
}
