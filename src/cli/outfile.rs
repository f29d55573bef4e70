//! Output files claimed before the request that fills them: a name that exists
//! (without `--force`) or a directory that cannot be written is refused before
//! anything is issued, so a certificate or a server-generated key is never made
//! only to be lost on the way to disk.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{CliResult, Failure};

/// A file opened for writing; removed again when it was created here and dropped
/// unwritten (the request failed), left as it was when it existed before.
pub struct OutFile {
    path: PathBuf,
    file: Option<File>,
    created: bool,
}

impl OutFile {
    /// Opens `path` for writing with mode 0600 (`secret`) or 0644. An existing file is
    /// refused unless `force`; with `force` its content stays until [`OutFile::write`].
    pub fn claim(path: &Path, secret: bool, force: bool) -> Result<OutFile, Failure> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).mode(if secret { 0o600 } else { 0o644 });
        let existed = force && path.exists();
        if force {
            opts.create(true);
        } else {
            opts.create_new(true);
        }
        let file = opts.open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Failure::usage(format!("{} exists; remove it or pass --force", path.display()))
            }
            _ => Failure::usage(format!("cannot write {}: {e}", path.display())),
        })?;
        Ok(OutFile {
            path: path.to_path_buf(),
            file: Some(file),
            created: !existed,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content with `data`. `lost` says what the user has lost
    /// if this fails, and what to do about it.
    pub fn write(mut self, data: &[u8], lost: &str) -> CliResult {
        let mut file = self.file.take().expect("an OutFile is written once");
        file.set_len(0)
            .and_then(|_| file.write_all(data))
            .and_then(|_| file.sync_all())
            .map_err(|e| {
                let then = if lost.is_empty() {
                    String::new()
                } else {
                    format!("; {lost}")
                };
                Failure::other(format!("cannot write {}: {e}{then}", self.path.display()))
            })
    }
}

impl OutFile {
    /// The open file, for content written as it arrives; [`OutFile::commit`] keeps it.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("an OutFile is written once")
    }

    /// Flushes what was written through [`OutFile::file`] to disk and keeps it.
    pub fn commit(mut self) -> CliResult {
        let file = self.file.take().expect("an OutFile is written once");
        file.sync_all()
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", self.path.display())))
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.file.is_some() && self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritten_claim_leaves_nothing_behind_and_keeps_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.pem");
        drop(OutFile::claim(&fresh, false, false).unwrap());
        assert!(!fresh.exists());

        let old = dir.path().join("old.pem");
        std::fs::write(&old, "old").unwrap();
        assert!(OutFile::claim(&old, false, false).is_err());
        drop(OutFile::claim(&old, false, true).unwrap());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "old");

        OutFile::claim(&old, false, true).unwrap().write(b"new", "").unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new");
    }

    #[test]
    fn a_missing_directory_is_refused_at_claim() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutFile::claim(&dir.path().join("no/such/dir.pem"), false, false)
            .err()
            .unwrap();
        assert!(err.message.contains("cannot write"), "{}", err.message);
    }

    #[test]
    fn a_secret_is_created_for_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        OutFile::claim(&key, true, false).unwrap().write(b"k", "").unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
