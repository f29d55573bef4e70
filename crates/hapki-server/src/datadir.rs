//! The data directory's files: what is there, and writing secrets with mode 0600.
//!
//! ```text
//! hapki.redb      state machine and Raft bookkeeping (vote, last purged entry)
//! raft-log/       Raft log entries in segment files
//! snapshots/      Raft snapshots
//! node-id         this node's Raft id (node-local)
//! unseal.key      a key-file root of trust (node-local, 0600); `key_file` may put it
//!                 elsewhere, e.g. on another mount, so that a copy of this directory opens nothing
//! root-of-trust.toml  which root of trust the sealed files are under (a key file or a token)
//! kek.sealed      the cluster key-encryption key, sealed under the root of trust (node-local)
//! channel.key.sealed  this node's cluster-channel key, sealed under the root of trust (node-local)
//! *.sealed.next   a root-of-trust migration's new sealing, until it commits
//! *.sealed.schema2    the schema-2 bytes of a sealed file, only while a schema-2 directory migrates
//! channel.pem     this node's cluster-channel certificate, then the internal CA
//! bootstrap-token a fresh node's one-time token for `cluster new|csr|join` (0600)
//! admin-token     the first admin token (0600)
//! ca.pem          the default issuer's certificate and chain
//! api-ca.pem      the CA the HTTPS listener's certificate chains to
//! ```

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
    /// Where the unseal key is, when not in the directory itself.
    unseal_key: Option<PathBuf>,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        DataDir { root, unseal_key: None }
    }
    /// The same directory with its unseal key kept at `path` (e.g. on a separate mount).
    pub fn with_unseal_key(mut self, path: Option<PathBuf>) -> Self {
        self.unseal_key = path;
        self
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("hapki.redb")
    }
    pub fn node_id(&self) -> PathBuf {
        self.root.join("node-id")
    }
    pub fn unseal_key(&self) -> PathBuf {
        self.unseal_key.clone().unwrap_or_else(|| self.root.join("unseal.key"))
    }
    pub fn channel_key(&self) -> PathBuf {
        self.root.join("channel.key.sealed")
    }
    pub fn channel_cert(&self) -> PathBuf {
        self.root.join("channel.pem")
    }
    pub fn sealed_kek(&self) -> PathBuf {
        self.root.join("kek.sealed")
    }
    pub fn bootstrap_token(&self) -> PathBuf {
        self.root.join("bootstrap-token")
    }
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin-token")
    }
    pub fn ca_pem(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    pub fn api_ca_pem(&self) -> PathBuf {
        self.root.join("api-ca.pem")
    }

    /// Creates the directory (mode 0700).
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_secret(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, data, 0o600)
}

/// Writes a public file atomically.
pub fn write_public(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, data, 0o644)
}

fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    // A temporary name of its own for each write: two writers of the same file (the start-up
    // and an apply both rewriting ca.pem) must not rename each other's temporary away.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", hex::encode(crate::rand::bytes::<8>())));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_of_the_same_file_at_once_all_succeed_and_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || (0..50).try_for_each(|_| write_public(&path, &[i; 4096])))
            })
            .collect();
        for w in writers {
            w.join().unwrap().expect("every write succeeds");
        }
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.iter().all(|b| *b == data[0]), "one writer's bytes, whole");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ca.pem"], "no temporary file is left behind");
    }
}
