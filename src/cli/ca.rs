//! `hapki ca ...` and `hapki crl ...`.

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use serde_json::json;

use super::outfile::OutFile;
use super::output::{print, record, s, t};
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
            let body = json!({"common_name": cn, "subject": subject, "key_type": key, "validity_days": days, "default": default});
            if intermediate {
                let csr_file = OutFile::claim(&csr_out, false, false)?;
                let v = client.post("/v1/ca/intermediate", &body).await?;
                csr_file.write(
                    s(&v["csr"]).as_bytes(),
                    &format!(
                        "intermediate {} waits for a certificate: its CSR is in `hapki ca list --output json`",
                        s(&v["id"])
                    ),
                )?;
                record(
                    ctx.output,
                    &v,
                    vec![
                        ("id", s(&v["id"])),
                        ("csr", csr_out.display().to_string()),
                        (
                            "next",
                            format!(
                                "have the root sign {}, then `hapki ca install-cert CERT.pem --id {}`",
                                csr_out.display(),
                                s(&v["id"])
                            ),
                        ),
                    ],
                );
            } else {
                let v = client.post("/v1/ca/root", &body).await?;
                issuer_record(ctx, &v);
            }
        }
        CaCommand::InstallCert { file, id } => {
            let pem = String::from_utf8(read_file(&file)?).map_err(|_| Failure::usage("the file is not PEM"))?;
            let v = client
                .post(&format!("/v1/ca/{id}/certificate"), &json!({"certificate": pem}))
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
            let v = client
                .post(
                    "/v1/ca/import",
                    &json!({"pkcs12": data, "password": password, "default": default}),
                )
                .await?;
            issuer_record(ctx, &v);
        }
        CaCommand::List => {
            let v = client.get("/v1/ca").await?;
            let rows = v["issuers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            vec![
                                s(&i["id"]),
                                if i["default"].as_bool() == Some(true) {
                                    "*".into()
                                } else {
                                    String::new()
                                },
                                s(&i["status"]),
                                s(&i["name"]),
                                s(&i["key_type"]),
                                t(&i["not_after"]),
                                s(&i["crl_number"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(
                ctx.output,
                &v,
                &["id", "default", "status", "name", "key", "not after", "crl"],
                rows,
            );
        }
        CaCommand::SetDefault { id } => {
            let v = client.post(&format!("/v1/ca/{id}/default"), &json!({})).await?;
            record(ctx.output, &v, vec![("default", s(&v["default"]))]);
        }
    }
    Ok(())
}

fn issuer_record(ctx: &Ctx, v: &serde_json::Value) {
    record(
        ctx.output,
        v,
        vec![
            ("id", s(&v["id"])),
            ("name", s(&v["name"])),
            ("status", s(&v["status"])),
            ("default", s(&v["default"])),
            ("not after", t(&v["not_after"])),
        ],
    );
}

pub async fn run_crl(ctx: &Ctx, cmd: CrlCommand) -> CliResult {
    match cmd {
        CrlCommand::Rotate { issuer } => {
            let v = ctx.client()?.post("/v1/crl/rotate", &json!({"issuer": issuer})).await?;
            record(
                ctx.output,
                &v,
                vec![("issuer", s(&v["issuer"])), ("CRL number", s(&v["crl_number"]))],
            );
        }
    }
    Ok(())
}
