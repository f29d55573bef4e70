//! `hapki ca ...` and `hapki crl ...`.

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use hapki_api::ca::{
    CrlRotated, DefaultIssuer, ExportRequest, Exported, ImportRequest, InstallCertRequest, IntermediateCsr, IssuerList,
    IssuerView, RootRequest, RotateCrlRequest,
};

use super::outfile::OutFile;
use super::output::{opt, ot, print, record};
use super::{read_file, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a root CA, or with --intermediate a CA key and a CSR for an external root
    Init {
        /// Common name of the CA
        #[arg(long, default_value = "hapki Root CA")]
        cn: String,
        /// Other subject attributes, e.g. "O=Example, C=US"
        #[arg(long)]
        subject: Option<String>,
        #[arg(long, default_value = "ec-p256")]
        key: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Make a CSR for an external or offline root instead of a self-signed root
        #[arg(long)]
        intermediate: bool,
        /// Where to write the intermediate's CSR
        #[arg(long, default_value = "intermediate.csr")]
        csr_out: PathBuf,
        /// Make it the default issuer
        #[arg(long)]
        default: bool,
    },
    /// Install the signed certificate (and chain) of an intermediate made with `ca init --intermediate`
    InstallCert {
        /// PEM file: the intermediate's certificate first, then its chain
        file: PathBuf,
        /// The intermediate's id (`hapki ca list`)
        #[arg(long)]
        id: String,
    },
    /// Import an existing CA key and chain from PKCS#12
    Import {
        #[arg(long)]
        pkcs12: PathBuf,
        /// Password of the file; prefer --password-file [env: HAPKI_P12_PASSWORD]
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// File whose first line is the password of the PKCS#12 file
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        default: bool,
    },
    /// Export an issuer's signing key and certificate and its OCSP signer's to PKCS#12, to
    /// import into a clone (`ca import --pkcs12`); admin only
    Export {
        #[arg(long)]
        id: String,
        /// The file to write (0600)
        #[arg(long)]
        pkcs12: PathBuf,
        /// File whose first line is the password for the file
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// List issuers
    List,
    /// Make an issuer the default
    SetDefault { id: String },
}

#[derive(Subcommand)]
pub enum CrlCommand {
    /// Publish a new CRL now
    Rotate {
        #[arg(long)]
        issuer: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: CaCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        CaCommand::Init {
            cn,
            subject,
            key,
            days,
            intermediate,
            csr_out,
            default,
        } => {
            let body = RootRequest {
                common_name: cn,
                subject,
                key_type: key
                    .parse()
                    .map_err(|e: hapki_domain::DomainError| Failure::usage(e.to_string()))?,
                validity_days: days,
                default,
            };
            if intermediate {
                let csr_file = OutFile::claim(&csr_out, false, false)?;
                let v: IntermediateCsr = client.post("/v1/ca/intermediate", &body).await?;
                csr_file.write(
                    v.csr.as_bytes(),
                    &format!(
                        "intermediate {} waits for a certificate: its CSR is in `hapki ca list --output json`",
                        v.id
                    ),
                )?;
                record(
                    ctx.output,
                    &v,
                    vec![
                        ("id", v.id.clone()),
                        ("csr", csr_out.display().to_string()),
                        (
                            "next",
                            format!(
                                "have the root sign {}, then `hapki ca install-cert CERT.pem --id {}`",
                                csr_out.display(),
                                v.id
                            ),
                        ),
                    ],
                );
            } else {
                let v: IssuerView = client.post("/v1/ca/root", &body).await?;
                issuer_record(ctx, &v);
            }
        }
        CaCommand::InstallCert { file, id } => {
            let pem = String::from_utf8(read_file(&file)?).map_err(|_| Failure::usage("the file is not PEM"))?;
            let v: IssuerView = client
                .post(
                    &format!("/v1/ca/{}/certificate", super::certs::urlencode(&id)),
                    &InstallCertRequest { certificate: pem },
                )
                .await?;
            issuer_record(ctx, &v);
        }
        CaCommand::Import {
            pkcs12,
            password,
            password_file,
            default,
        } => {
            let password = match password_file {
                Some(path) => super::secret_file(&path)?,
                None => password
                    .or_else(|| std::env::var("HAPKI_P12_PASSWORD").ok())
                    .ok_or_else(|| Failure::usage("pass --password-file FILE (or set HAPKI_P12_PASSWORD)"))?,
            };
            let data = base64::engine::general_purpose::STANDARD.encode(read_file(&pkcs12)?);
            let body = ImportRequest {
                pkcs12: data,
                password,
                default,
            };
            let v: IssuerView = client.post("/v1/ca/import", &body).await?;
            issuer_record(ctx, &v);
        }
        CaCommand::Export {
            id,
            pkcs12,
            password_file,
            force,
        } => {
            let password = super::secret_file(&password_file)?;
            let file = OutFile::claim(&pkcs12, true, force)?;
            let v: Exported = client
                .post(
                    &format!("/v1/ca/{}/export", super::certs::urlencode(&id)),
                    &ExportRequest { password },
                )
                .await?;
            let p12 = base64::engine::general_purpose::STANDARD
                .decode(&v.pkcs12)
                .map_err(|_| Failure::other("the node sent a damaged PKCS#12 file; export again"))?;
            let path = file.path().to_path_buf();
            file.write(&p12, "export again")?;
            record(
                ctx.output,
                &v,
                vec![
                    ("issuer", v.id.clone()),
                    ("entries", v.entries.join(", ")),
                    ("written to", path.display().to_string()),
                    (
                        "next",
                        "on the clone: hapki ca import --pkcs12 FILE --password-file F --default".into(),
                    ),
                ],
            );
        }
        CaCommand::List => {
            let v: IssuerList = client.get("/v1/ca").await?;
            let rows = v
                .issuers
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        if i.default { "*".into() } else { String::new() },
                        i.status.name().to_string(),
                        i.name.clone(),
                        i.key_type.clone(),
                        ot(i.not_after),
                        opt(i.crl_number),
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &["id", "default", "status", "name", "key", "not after", "crl"],
                rows,
            );
        }
        CaCommand::SetDefault { id } => {
            let v: DefaultIssuer = client
                .post(&format!("/v1/ca/{}/default", super::certs::urlencode(&id)), &())
                .await?;
            record(ctx.output, &v, vec![("default", v.default.clone())]);
        }
    }
    Ok(())
}

fn issuer_record(ctx: &Ctx, v: &IssuerView) {
    record(
        ctx.output,
        v,
        vec![
            ("id", v.id.clone()),
            ("name", v.name.clone()),
            ("status", v.status.name().to_string()),
            ("default", v.default.to_string()),
            ("not after", ot(v.not_after)),
        ],
    );
}

pub async fn run_crl(ctx: &Ctx, cmd: CrlCommand) -> CliResult {
    match cmd {
        CrlCommand::Rotate { issuer } => {
            let v: CrlRotated = ctx
                .client()?
                .post("/v1/crl/rotate", &RotateCrlRequest { issuer })
                .await?;
            record(
                ctx.output,
                &v,
                vec![("issuer", v.issuer.clone()), ("CRL number", v.crl_number.to_string())],
            );
        }
    }
    Ok(())
}
