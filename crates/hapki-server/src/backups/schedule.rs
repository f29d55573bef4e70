//! Scheduled backups: every node runs the loop, only the leader takes them. When the
//! last scheduled backup the cluster recorded is `every` old, the leader writes a new
//! one, encrypted to the configured recipient, into `dir`, records it, and keeps the
//! newest `keep` files there. The schedule follows the replicated records, so a new
//! leader neither repeats nor skips one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hapki_domain::backup::{self, BackupKey};
use hapki_store::BackupRecord;

use crate::config::BackupConfig;
use crate::pki::backup::BackupFor;
use crate::pki::Pki;

/// Takes scheduled backups while this node leads, for as long as the service lives.
pub async fn schedule(pki: Arc<Pki>, cfg: BackupConfig) {
    let Ok(every) = cfg.every_secs() else { return };
    let recipient = match std::fs::read(&cfg.recipient)
        .map_err(|e| e.to_string())
        .and_then(|pem| backup::recipient_key(&pem).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(
                "scheduled backups are off: backup.recipient {}: {e}",
                cfg.recipient.display()
            );
            return;
        }
    };
    let check = Duration::from_secs((every / 10).clamp(1, 60));
    loop {
        tokio::time::sleep(check).await;
        if !pki.cluster.status().is_leader {
            continue;
        }
        let last = match pki.reader().and_then(|r| Ok(r.backups()?)) {
            Ok(all) => all.iter().filter(|b| b.taken_by.is_none()).map(|b| b.taken_at).max(),
            Err(e) => {
                tracing::error!("scheduled backups: cannot read the backup records: {e}");
                continue;
            }
        };
        if last.is_some_and(|t| pki.now() < t.saturating_add(every)) {
            continue;
        }
        match take(&pki, &cfg, &recipient).await {
            Ok(b) => tracing::info!(
                "scheduled backup {} of index {} written to {}",
                b.id,
                b.index,
                cfg.dir.join(b.file.as_deref().unwrap_or_default()).display()
            ),
            Err(e) => tracing::error!("scheduled backup into {} failed: {e}", cfg.dir.display()),
        }
    }
}

async fn take(
    pki: &Arc<Pki>,
    cfg: &BackupConfig,
    (spki, fingerprint): &(Vec<u8>, String),
) -> Result<BackupRecord, String> {
    let key = BackupKey::from_bytes(pki.random());
    let jwe = backup::seal_key_to(spki, &key).map_err(|e| e.to_string())?;
    let job = pki
        .scheduled_backup(BackupFor {
            key,
            recipient: Some((jwe, fingerprint.clone())),
        })
        .map_err(|e| e.to_string())?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&cfg.dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let h = job.header();
    let name = format!("{}{}-{:012}-{}.hbk", PREFIX, h.cluster_id, h.index, h.id);
    let partial = cfg.dir.join(format!(".{name}.partial"));
    let job = Arc::new(job);
    let (writer_job, path) = (job.clone(), partial.clone());
    let written = tokio::task::spawn_blocking(move || -> Result<_, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| e.to_string())?;
        let (out, written) = writer_job
            .write(std::io::BufWriter::new(file))
            .map_err(|e| e.to_string())?;
        out.into_inner()
            .map_err(|e| e.to_string())?
            .sync_all()
            .map_err(|e| e.to_string())?;
        Ok(written)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let record = match pki.record_backup(&job, &written, Some(name.clone())).await {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(format!("recording it: {e}"));
        }
    };
    std::fs::rename(&partial, cfg.dir.join(&name)).map_err(|e| e.to_string())?;
    prune(&cfg.dir, &format!("{PREFIX}{}-", job.header().cluster_id), cfg.keep);
    Ok(record)
}

/// What scheduled backup files are called: this, the cluster id, the index (12 digits,
/// so that names sort in the order taken) and the backup id.
const PREFIX: &str = "hapki-backup-";

/// Removes all but the newest `keep` backups of `prefix` in `dir`.
fn prune(dir: &Path, prefix: &str, keep: usize) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".hbk"))
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot list {} to remove old backups: {e}", dir.display());
            return;
        }
    };
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        match std::fs::remove_file(old) {
            Ok(()) => tracing::info!("removed the old backup {}", old.display()),
            Err(e) => tracing::warn!("cannot remove the old backup {}: {e}", old.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_of_this_cluster_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "hapki-backup-c1-000000000010-a.hbk",
            "hapki-backup-c1-000000000009-b.hbk",
            "hapki-backup-c1-000000000100-c.hbk",
            "hapki-backup-c2-000000000001-d.hbk",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        prune(dir.path(), "hapki-backup-c1-", 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "hapki-backup-c1-000000000010-a.hbk",
                "hapki-backup-c1-000000000100-c.hbk",
                "hapki-backup-c2-000000000001-d.hbk",
                "notes.txt"
            ]
        );
    }
}
