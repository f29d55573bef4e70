//! `hapki backup`: `create` (the node streams the encrypted file; the key is made
//! here, shown once, written with `--key-out`, or encrypted to `--recipient`; the whole
//! file is opened again before it is declared good), `inspect` (the header, without the
//! key), `list` (the backups the cluster recorded) and `restore` (a file into a fresh
//! data directory, as a one-node cluster).

use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hapki_api::backups::{BackupList, BackupRequest, ID_HEADER};
use hapki_domain::backup::{self, BackupKey, Header};
use hapki_server::backups::KeyMaterial;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;

use super::outfile::OutFile;
use super::output::{print, record};
use super::server::NodeArgs;
use super::{read_file, CliResult, Ctx, Failure, Output};

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Take an encrypted backup of the whole state at one applied index
    Create {
        /// Where to write the backup file
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Write the backup key to this file (0600) instead of showing it
        #[arg(long, conflicts_with = "recipient")]
        key_out: Option<PathBuf>,
        /// Encrypt the backup key to this RSA public key or certificate (PEM); it is then never shown
        #[arg(long)]
        recipient: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
    /// What a backup file holds (index, time, cluster, counts), read without its key
    Inspect { file: PathBuf },
    /// The backups the cluster recorded
    List,
    /// Restore a backup into a fresh data directory, as a one-node cluster that others then join
    Restore {
        file: PathBuf,
        /// The backup key (as shown or written with --key-out), or the recipient's PKCS#8 PEM private key
        #[arg(long)]
        key_file: PathBuf,
        #[command(flatten)]
        node: Box<NodeArgs>,
    },
}

pub async fn run(ctx: &Ctx, command: BackupCommand) -> CliResult {
    match command {
        BackupCommand::Create {
            out,
            key_out,
            recipient,
            force,
        } => create(ctx, &out, key_out.as_deref(), recipient.as_deref(), force).await,
        BackupCommand::Inspect { file } => {
            let header = hapki_server::backups::inspect(&file).map_err(Failure::usage)?;
            show_header(ctx.output, &header, vec![]);
            Ok(())
        }
        BackupCommand::List => {
            let v: BackupList = ctx.client()?.get("/v1/backups").await?;
            let rows = v
                .backups
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        b.index.to_string(),
                        b.taken_at.clone(),
                        b.size.to_string(),
                        b.certificates.to_string(),
                        b.taken_by.clone(),
                        b.node.clone(),
                        b.file.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &["id", "index", "taken at", "bytes", "certificates", "by", "node", "file"],
                rows,
            );
            Ok(())
        }
        BackupCommand::Restore { file, key_file, node } => restore(ctx, &file, &key_file, *node).await,
    }
}

fn bar(output: Output, len: u64, what: &str) -> ProgressBar {
    if output != Output::Table || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("literal template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

async fn create(ctx: &Ctx, out: &Path, key_out: Option<&Path>, recipient: Option<&Path>, force: bool) -> CliResult {
    let recipient = recipient
        .map(|p| backup::recipient_key(&read_file(p)?).map_err(|e| Failure::usage(format!("{}: {e}", p.display()))))
        .transpose()?;
    // Both files are claimed before the node does any work.
    let mut file = OutFile::claim(out, true, force)?;
    let key_file = key_out.map(|p| OutFile::claim(p, true, force)).transpose()?;
    let key = BackupKey::from_bytes(random());
    let (sealed, fingerprint) = match &recipient {
        Some((spki, fp)) => (Some(backup::seal_key_to(spki, &key)?), Some(fp.clone())),
        None => (None, None),
    };
    let req = BackupRequest {
        key: key.to_text(),
        recipient: sealed,
        recipient_fingerprint: fingerprint.clone(),
    };
    let (url, mut resp) = ctx.client()?.respond(Method::POST, "/v1/backups", Some(&req)).await?;
    let id = resp
        .headers()
        .get(ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let progress = bar(ctx.output, resp.content_length().unwrap_or(0), "backup");
    let cut = |e: String| {
        Failure::other(format!(
            "the backup stopped before its end ({e}); nothing was kept: take it again"
        ))
    };
    let w = file.file();
    w.set_len(0).map_err(|e| cut(e.to_string()))?;
    let mut written = 0u64;
    while let Some(piece) = resp.chunk().await.map_err(|e| cut(format!("{url}: {e}")))? {
        w.write_all(&piece)
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", out.display())))?;
        written += piece.len() as u64;
        progress.set_position(written);
    }
    progress.finish_and_clear();
    file.commit()?;
    // The file is good only if every chunk opens with the key.
    let header = match verify(out, &key) {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(Failure::other(format!(
                "the backup {id} that arrived does not open ({e}); it was removed: take it again"
            )));
        }
    };
    let mut fields = vec![
        ("written to", out.display().to_string()),
        ("bytes", written.to_string()),
    ];
    match (key_file, &fingerprint) {
        (Some(k), _) => {
            k.write(
                format!("{}\n", key.to_text()).as_bytes(),
                "the backup cannot be opened without it: take it again",
            )?;
            fields.push((
                "key written to",
                key_out.expect("with a key file").display().to_string(),
            ));
        }
        (None, Some(fp)) => fields.push(("key encrypted to", format!("the recipient key {fp}"))),
        (None, None) => fields.push(("key", key.to_text())),
    }
    let restore_key = match (key_out, &fingerprint) {
        (Some(k), _) => k.display().to_string(),
        (None, Some(_)) => "RECIPIENT-KEY.pem".to_string(),
        (None, None) => "KEY-FILE".to_string(),
    };
    fields.push((
        "next",
        format!(
            "restore it with `hapki backup restore {} --key-file {restore_key} --data-dir NEW-DIR`",
            out.display()
        ),
    ));
    if key_out.is_none() && fingerprint.is_none() && ctx.output == Output::Table {
        eprintln!("The backup key is shown once, below; keep it apart from the file (or use --key-out next time).");
    }
    show_header(ctx.output, &header, fields);
    Ok(())
}

/// Opens every chunk of the backup at `path` with `key`.
fn verify(path: &Path, key: &BackupKey) -> Result<Header, String> {
    let input = BufReader::new(std::fs::File::open(path).map_err(|e| e.to_string())?);
    let (header, mut reader) = backup::open(input, key).map_err(|e| e.to_string())?;
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| e.to_string())?;
    Ok(header)
}

fn show_header(output: Output, h: &Header, mut fields: Vec<(&str, String)>) {
    let c = &h.counts;
    let mut all = vec![
        ("id", h.id.clone()),
        ("cluster", h.cluster_id.clone()),
        ("index", h.index.to_string()),
        ("taken at", hapki_domain::time::rfc3339(h.created_at)),
        ("digest", h.digest.clone()),
        ("certificates", format!("{} ({} revoked)", c.certificates, c.revoked)),
        ("issuers", c.issuers.to_string()),
        ("profiles", c.profiles.to_string()),
        ("tokens", c.tokens.to_string()),
        ("archived keys", c.archived_keys.to_string()),
        ("recovery requests", c.recovery_requests.to_string()),
        ("nodes", c.nodes.to_string()),
        ("written by", format!("hapki {}", h.version)),
        (
            "opened by",
            if h.recipient.is_some() {
                "the recipient's private key"
            } else {
                "its backup key"
            }
            .to_string(),
        ),
    ];
    all.append(&mut fields);
    let mut json = serde_json::to_value(h).unwrap_or_default();
    if let Some(o) = json.as_object_mut() {
        // What only the key opens is of no use to a reader of this output.
        o.remove("kek");
        o.remove("salt");
        o.remove("recipient");
        for (k, v) in &all {
            if matches!(
                *k,
                "written to" | "bytes" | "key" | "key written to" | "key encrypted to" | "restored digest"
            ) {
                o.insert(k.replace(' ', "_"), serde_json::Value::String(v.clone()));
            }
        }
    }
    record(output, &json, all);
}

async fn restore(ctx: &Ctx, file: &Path, key_file: &Path, node: NodeArgs) -> CliResult {
    let key = KeyMaterial::parse(&read_file(key_file)?)
        .map_err(|e| Failure::usage(format!("{}: {e}", key_file.display())))?;
    let config_file = node.config_file().map(Path::to_path_buf);
    let cfg = node.config()?;
    let len = std::fs::metadata(file)
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?
        .len();
    let progress = bar(ctx.output, len, "restore");
    let (cfg2, file2, p2) = (cfg.clone(), file.to_path_buf(), progress.clone());
    let restored = tokio::task::spawn_blocking(move || {
        hapki_server::backups::restore(&cfg2, &file2, &key, &move |n| p2.set_position(n))
    })
    .await
    .map_err(|e| Failure::other(e.to_string()))?;
    progress.finish_and_clear();
    let restored = restored.map_err(|e| Failure::other(format!("nothing was restored: {e}")))?;
    let dir = cfg.data_dir.display().to_string();
    let mut fields = vec![
        ("restored into", dir.clone()),
        ("node", hapki_api::node_id_hex(restored.node_id)),
        ("rows", restored.rows.to_string()),
        ("restored digest", restored.digest.clone()),
    ];
    let start = match &config_file {
        Some(f) => format!("hapki server --config {}", f.display()),
        None => {
            let mut start = format!("hapki server --data-dir {dir} --listen {}", cfg.listen);
            if let Some(h) = cfg.http_listen {
                start.push_str(&format!(" --http-listen {h}"));
            }
            if let Some(c) = cfg.cluster_listen {
                start.push_str(&format!(" --cluster-listen {c}"));
            }
            start
        }
    };
    fields.push(("next", format!("start it with `{start}`; the cluster's tokens work as before, and other nodes join it with `hapki cluster fulljoin`")));
    show_header(ctx.output, &restored.header, fields);
    Ok(())
}

fn random() -> [u8; 32] {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system CSPRNG does not fail");
    b
}
