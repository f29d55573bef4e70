//! `hapki key`: the key archive. `transport-cert`, `archive` (the key is
//! encrypted here to the transport certificate, never sent in the clear),
//! `list`, and `recover request|list|show|approve|fetch`.

use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand};
use hapki_api::keys::{
    ArchiveRequest, ArchivedKeyList, ArchivedKeyView, FetchRequest, KeyQuery, Recovered, RecoveryList,
    RecoveryRequestBody, RecoveryView, TransportCert,
};
use hapki_domain::issue::summarize;
use hapki_domain::key::SigningKey;
use hapki_domain::pem::{certificates, decode_one, PemLabel};

use super::certs::{query_string, urlencode};
use super::outfile::OutFile;
use super::output::{opt, print, record};
use super::{read_file, secret_file, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// The certificate archived keys are encrypted to (an RSA key the internal CA certifies)
    TransportCert {
        /// Write it (then the internal CA) here instead of printing it
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Archive the private key of a certificate this cluster issued, encrypted to the transport certificate
    Archive {
        /// The certificate (PEM)
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PKCS#8 PEM, as `hapki csr` and `openssl genpkey` write it)
        #[arg(long)]
        key: PathBuf,
    },
    /// Archived keys: serial, subject, when and by whom
    List(ListArgs),
    /// Recover an archived key with approvals from other agents or admins
    #[command(subcommand)]
    Recover(RecoverCommand),
}

#[derive(Args)]
pub struct ListArgs {
    /// Subject contains this (case-insensitive)
    #[arg(long)]
    subject: Option<String>,
    #[arg(long)]
    serial: Option<String>,
    /// Archived by this token id
    #[arg(long)]
    by: Option<String>,
    /// generated or client
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Subcommand)]
pub enum RecoverCommand {
    /// Ask to recover the archived key of certificate SERIAL; prints the request id
    Request {
        serial: String,
        /// Why (kept with the request, shown to approvers)
        #[arg(long)]
        reason: String,
    },
    /// Every recovery request and where it stands
    List,
    /// One recovery request
    Show { id: String },
    /// Approve a recovery request (not your own)
    Approve { id: String },
    /// Fetch the key of an approved request you made, once, as a PKCS#12 file
    Fetch {
        id: String,
        /// File whose first line is the PKCS#12 password
        #[arg(long)]
        password_file: PathBuf,
        /// Where to write the PKCS#12 file (key, certificate and chain)
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(ctx: &Ctx, command: KeyCommand) -> CliResult {
    match command {
        KeyCommand::TransportCert { out } => {
            let v: TransportCert = ctx.client()?.get("/v1/keys/transport").await?;
            let pem = format!("{}{}", v.certificate, v.chain.concat());
            match out {
                Some(path) => {
                    super::write_file(&path, pem.as_bytes(), false, true)?;
                    record(
                        ctx.output,
                        &v,
                        vec![("written to", path.display().to_string()), ("format", v.format.clone())],
                    );
                }
                None if ctx.output == super::Output::Json => super::output::json(&v),
                None => print!("{pem}"),
            }
        }
        KeyCommand::Archive { cert, key } => archive(ctx, &cert, &key).await?,
        KeyCommand::List(a) => {
            let q = KeyQuery {
                subject: a.subject,
                serial: a.serial,
                by: a.by,
                source: a.source,
                limit: a.limit,
            };
            let v: ArchivedKeyList = ctx.client()?.get(&format!("/v1/keys{}", query_string(&q)?)).await?;
            let rows = v.keys.iter().map(key_row).collect();
            print(
                ctx.output,
                &v,
                &["serial", "subject", "archived at", "by", "source"],
                rows,
            );
        }
        KeyCommand::Recover(c) => recover(ctx, c).await?,
    }
    Ok(())
}

fn key_row(k: &ArchivedKeyView) -> Vec<String> {
    let by = if k.archived_by_name.is_empty() {
        k.archived_by.clone()
    } else {
        format!("{} ({})", k.archived_by, k.archived_by_name)
    };
    vec![
        k.serial.clone(),
        k.subject.clone(),
        k.archived_at.clone(),
        by,
        k.source.clone(),
    ]
}

/// Encrypts the key to the transport certificate and sends it with its certificate.
async fn archive(ctx: &Ctx, cert: &std::path::Path, key: &std::path::Path) -> CliResult {
    let cert_pem = String::from_utf8(read_file(cert)?)
        .map_err(|_| Failure::usage(format!("{} is not a PEM file", cert.display())))?;
    let cert_der = certificates(cert_pem.as_bytes())?
        .into_iter()
        .next()
        .ok_or_else(|| Failure::usage(format!("{} holds no certificate", cert.display())))?;
    let pkcs8 = decode_one(&read_file(key)?, &[PemLabel::PrivateKey]).map_err(|e| {
        Failure::usage(format!(
            "{}: {e}; the key must be PKCS#8 PEM (convert with `openssl pkcs8 -topk8 -nocrypt`)",
            key.display()
        ))
    })?;
    // Checked here too, so a wrong pair is refused before anything is sent.
    let signing = SigningKey::from_pkcs8(&pkcs8)?;
    let summary = summarize(&cert_der)?;
    let cert_spki = der::Encode::to_der(&summary.spki).map_err(|e| Failure::other(e.to_string()))?;
    if signing.spki_der() != cert_spki.as_slice() {
        return Err(Failure::usage(format!(
            "{} is not the key of {}: their public keys differ",
            key.display(),
            cert.display()
        )));
    }
    let client = ctx.client()?;
    let transport: TransportCert = client.get("/v1/keys/transport").await?;
    let transport_der = certificates(transport.certificate.as_bytes())?
        .into_iter()
        .next()
        .ok_or_else(|| Failure::other("the node sent no transport certificate"))?;
    let transport_spki =
        der::Encode::to_der(&summarize(&transport_der)?.spki).map_err(|e| Failure::other(e.to_string()))?;
    let encrypted_key = hapki_domain::jwe::encrypt(&transport_spki, &pkcs8)?;
    let v: ArchivedKeyView = client
        .post(
            "/v1/keys",
            &ArchiveRequest {
                certificate: cert_pem,
                encrypted_key,
            },
        )
        .await?;
    record(
        ctx.output,
        &v,
        vec![
            ("serial", v.serial.clone()),
            ("subject", v.subject.clone()),
            ("archived at", v.archived_at.clone()),
            (
                "next",
                "recover it with `hapki key recover request SERIAL --reason ...` and two approvals".into(),
            ),
        ],
    );
    Ok(())
}

async fn recover(ctx: &Ctx, command: RecoverCommand) -> CliResult {
    let client = ctx.client()?;
    match command {
        RecoverCommand::Request { serial, reason } => {
            let v: RecoveryView = client
                .post("/v1/keys/recoveries", &RecoveryRequestBody { serial, reason })
                .await?;
            show(ctx, &v);
            if ctx.output == super::Output::Table {
                println!();
                println!(
                    "next: {} other agents or admins run `hapki key recover approve {}`; then you run \
                     `hapki key recover fetch {} --password-file F --out KEY.p12` before {}",
                    v.required, v.id, v.id, v.expires_at
                );
            }
        }
        RecoverCommand::List => {
            let v: RecoveryList = client.get("/v1/keys/recoveries").await?;
            let rows = v
                .recoveries
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.serial.clone(),
                        r.subject.clone(),
                        r.status.clone(),
                        format!("{}/{}", r.approvals.len(), r.required),
                        r.requested_by.clone(),
                        r.expires_at.clone(),
                        r.reason.clone(),
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &[
                    "id",
                    "serial",
                    "subject",
                    "status",
                    "approvals",
                    "requested by",
                    "expires",
                    "reason",
                ],
                rows,
            );
        }
        RecoverCommand::Show { id } => {
            let v: RecoveryView = client.get(&format!("/v1/keys/recoveries/{}", urlencode(&id))).await?;
            show(ctx, &v);
        }
        RecoverCommand::Approve { id } => {
            let v: RecoveryView = client
                .post(&format!("/v1/keys/recoveries/{}/approve", urlencode(&id)), &())
                .await?;
            show(ctx, &v);
        }
        RecoverCommand::Fetch {
            id,
            password_file,
            out,
            force,
        } => {
            let password = secret_file(&password_file)?;
            let file = OutFile::claim(&out, true, force)?;
            let v: Recovered = client
                .post(
                    &format!("/v1/keys/recoveries/{}/fetch", urlencode(&id)),
                    &FetchRequest { password },
                )
                .await?;
            let p12 = base64::engine::general_purpose::STANDARD
                .decode(&v.pkcs12)
                .map_err(|_| Failure::other("the node sent a damaged PKCS#12 file; request the recovery again"))?;
            let path = file.path().to_path_buf();
            file.write(
                &p12,
                "the recovery is spent: request it again (`hapki key recover request`)",
            )?;
            record(
                ctx.output,
                &v,
                vec![
                    ("request", v.id.clone()),
                    ("serial", v.serial.clone()),
                    ("written to", path.display().to_string()),
                ],
            );
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, v: &RecoveryView) {
    let approvals: Vec<String> = v
        .approvals
        .iter()
        .map(|a| format!("{} ({}) at {}", a.token_id, a.token_name, a.at))
        .collect();
    record(
        ctx.output,
        v,
        vec![
            ("id", v.id.clone()),
            ("serial", v.serial.clone()),
            ("subject", v.subject.clone()),
            ("status", v.status.clone()),
            ("approvals", format!("{} of {}", v.approvals.len(), v.required)),
            (
                "approved by",
                if approvals.is_empty() {
                    "-".into()
                } else {
                    approvals.join(", ")
                },
            ),
            ("requested by", format!("{} ({})", v.requested_by, v.requested_by_name)),
            ("reason", v.reason.clone()),
            ("expires", v.expires_at.clone()),
            ("fetched", opt(v.fetched_at.as_ref())),
        ],
    );
}
