//! A node's root of trust: what seals the node's copy of the cluster KEKs and
//! its cluster-channel key. Two kinds ([`RootOfTrustSpec`]): a key file, or an
//! AES key on a PKCS#11 token. Each node has its own, so one cluster may mix
//! them. The data directory records which root its files are sealed under
//! (`root-of-trust.toml`), so that a node configured for another refuses to
//! start instead of sealing anew, and a migration can name its commit point.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hapki_api::node::RootOfTrustSpec;
use hapki_domain::wrap::Wrapped;

use super::{file::FileRoot, pkcs11::Pkcs11Root, TrustError};
use crate::datadir::{write_public, DataDir};

/// Seals and opens the node's own secrets. Implementations never hand out the key.
pub trait RootOfTrust: Send + Sync {
    /// What this root is, as configured.
    fn spec(&self) -> &RootOfTrustSpec;
    /// Seals `plaintext` for the slot `context`, making the root's key when there is none yet.
    fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Wrapped, TrustError>;
    /// Opens what [`RootOfTrust::seal`] made; [`TrustError::Unavailable`] when the key cannot
    /// be reached (file missing, token absent, PIN refused).
    fn open(&self, context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, TrustError>;
    /// Removes the root's key after a migration away from it, when it is the node's alone
    /// (a key file); returns what it removed.
    fn retire(&self) -> Result<Option<PathBuf>, TrustError>;
}

/// Opens the root of trust `spec` describes for the data directory `dir`.
pub fn open(spec: &RootOfTrustSpec, dir: &DataDir) -> Arc<dyn RootOfTrust> {
    match spec {
        RootOfTrustSpec::File { key_file } => Arc::new(FileRoot::new(
            spec.clone(),
            key_file.clone().unwrap_or_else(|| dir.unseal_key()),
        )),
        RootOfTrustSpec::Pkcs11 { .. } => Arc::new(Pkcs11Root::new(spec.clone())),
    }
}

/// The root of trust `dir` records its files are sealed under (a key file when it records
/// none), opened: what a tool reading a stopped node's directory uses.
pub fn recorded(dir: &DataDir) -> Result<Arc<dyn RootOfTrust>, TrustError> {
    Ok(open(&resolve(None, dir)?, dir))
}

/// The record of the root a data directory's sealed files are under.
pub fn record_path(dir: &DataDir) -> PathBuf {
    dir.root.join("root-of-trust.toml")
}

/// Where a migration writes the next record until it commits.
pub(super) fn next_record_path(dir: &DataDir) -> PathBuf {
    dir.root.join("root-of-trust.toml.next")
}

/// Reads a record file, `None` when there is none.
pub(super) fn read_record(path: &Path) -> Result<Option<RootOfTrustSpec>, TrustError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| TrustError::Invalid(format!("{} cannot be read: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrustError::Io {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// Writes a record file (it names paths and labels, never a PIN or a key).
pub(super) fn write_record(path: &Path, spec: &RootOfTrustSpec) -> Result<(), TrustError> {
    let text = toml::to_string(spec).map_err(|e| TrustError::Invalid(e.to_string()))?;
    let text = format!(
        "# The root of trust this data directory's sealed files are under. Written by hapki;\n\
         # change it with `hapki node migrate-root-of-trust`, not by hand.\n{text}"
    );
    write_public(path, text.as_bytes()).map_err(|source| TrustError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The root of trust a node starts with: what the data directory records, checked against
/// what the configuration asks for. A configuration that names another key than the one the
/// files are sealed under is refused; where it only moves the module or the PIN file (or
/// names nothing), the configuration's paths win. A directory with no record (a fresh one,
/// or one written before records existed) takes the configuration, a key file by default.
pub fn resolve(configured: Option<&RootOfTrustSpec>, dir: &DataDir) -> Result<RootOfTrustSpec, TrustError> {
    super::migrate::finish_interrupted(dir)?;
    let recorded = read_record(&record_path(dir))?;
    match (recorded, configured) {
        (None, c) => Ok(c.cloned().unwrap_or_default()),
        (Some(r), None) => Ok(r),
        (Some(r), Some(c)) if r.same_key(c) => Ok(c.clone()),
        (Some(r), Some(c)) => Err(TrustError::Invalid(format!(
            "this data directory is sealed under {r}, but the configuration asks for {c}: \
             put the recorded root of trust in [root_of_trust] of node.toml, or move the node \
             with `hapki node migrate-root-of-trust`"
        ))),
    }
}
