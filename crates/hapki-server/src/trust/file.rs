//! The key-file root of trust: 32 random bytes (mode 0600) that seal with
//! AES-256-GCM, made when the node first seals something. A node that has
//! sealed things and finds its key file missing is sealed, never given a new key.

use std::path::PathBuf;

use hapki_api::node::RootOfTrustSpec;
use hapki_domain::wrap::{self, Wrapped};

use super::root::RootOfTrust;
use super::TrustError;
use crate::datadir::write_secret;
use crate::rand;

pub struct FileRoot {
    spec: RootOfTrustSpec,
    path: PathBuf,
}

impl FileRoot {
    pub fn new(spec: RootOfTrustSpec, path: PathBuf) -> Self {
        FileRoot { spec, path }
    }

    fn key(&self, create: bool) -> Result<[u8; 32], TrustError> {
        let io = |source| TrustError::Io {
            path: self.path.display().to_string(),
            source,
        };
        if !self.path.exists() {
            if !create {
                return Err(TrustError::Unavailable(format!(
                    "the unseal key {} is missing: mount or restore it (key_file in [root_of_trust] says where it is)",
                    self.path.display()
                )));
            }
            write_secret(&self.path, &rand::bytes::<32>()).map_err(io)?;
        }
        std::fs::read(&self.path)
            .map_err(io)?
            .try_into()
            .map_err(|_| TrustError::Invalid(format!("{} must hold exactly 32 bytes", self.path.display())))
    }
}

impl RootOfTrust for FileRoot {
    fn spec(&self) -> &RootOfTrustSpec {
        &self.spec
    }

    fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Wrapped, TrustError> {
        wrap::seal(&self.key(true)?, 0, rand::bytes::<12>(), context, plaintext)
            .map_err(|e| TrustError::Invalid(e.to_string()))
    }

    fn open(&self, context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, TrustError> {
        wrap::open(&self.key(false)?, context, wrapped).map_err(|_| {
            TrustError::Invalid(format!(
                "'{context}' cannot be opened with {}: the unseal key does not belong to this data directory",
                self.path.display()
            ))
        })
    }

    fn retire(&self) -> Result<Option<PathBuf>, TrustError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(Some(self.path.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TrustError::Io {
                path: self.path.display().to_string(),
                source,
            }),
        }
    }
}
