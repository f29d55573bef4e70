//! `hapki cert ...`: issue, generate, get, list, revoke (clients of a node) and show (local).

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use super::outfile::OutFile;
use super::output::{print, record, s, t};
use super::{local, read_file, write_file, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a certificate for a CSR
    Issue {
        /// CSR file (PEM or DER)
        #[arg(long)]
        csr: PathBuf,
        /// Profile (`hapki profile list`)
        #[arg(long)]
        profile: String,
        /// Issuer id; the default issuer when absent
        #[arg(long)]
        issuer: Option<String>,
        /// Validity in days; the profile's default when absent
        #[arg(long)]
        validity_days: Option<u32>,
        /// Write the certificate and its chain here (PEM); printed when absent
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace --out if it exists
        #[arg(long)]
        force: bool,
    },
    /// Generate a key on the server and issue a certificate for it
    Generate {
        #[arg(long)]
        cn: Option<String>,
        #[arg(long)]
        san: Vec<String>,
        #[arg(long)]
        profile: String,
        #[arg(long, default_value = "ec-p256")]
        key: String,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        validity_days: Option<u32>,
        /// pem: NAME.key + NAME.pem; pkcs12: NAME.p12
        #[arg(long, default_value = "pem")]
        format: String,
        /// Password of the PKCS#12 file [env: HAPKI_P12_PASSWORD]
        #[arg(long)]
        password: Option<String>,
        /// Base name of the files written
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Show one certificate by serial
    Get {
        serial: String,
        /// Write the certificate (PEM) here
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read through the leader, so the answer reflects every write acknowledged before it
        #[arg(long)]
        consistent: bool,
    },
    /// List certificates
    List {
        /// valid, revoked, expired or all
        #[arg(long)]
        status: Option<String>,
        /// Part of the subject
        #[arg(long)]
        subject: Option<String>,
        /// Part of a subject alternative name
        #[arg(long)]
        san: Option<String>,
        /// Not expired and expiring within this time (30d, 12h)
        #[arg(long)]
        expiring_within: Option<String>,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this serial
        #[arg(long)]
        after: Option<String>,
        /// Read through the leader, so the answer reflects every write acknowledged before it
        #[arg(long)]
        consistent: bool,
    },
    /// Revoke a certificate
    Revoke {
        serial: String,
        /// keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation,
        /// privilegeWithdrawn, aACompromise or unspecified
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Show a certificate file (no server needed)
    Show { file: PathBuf },
}

pub async fn run(ctx: &Ctx, cmd: CertCommand) -> CliResult {
    match cmd {
        CertCommand::Show { file } => local::show(ctx, &file),
        CertCommand::Issue {
            csr,
            profile,
            issuer,
            validity_days,
            out,
            force,
        } => {
            let raw = read_file(&csr)?;
            let pem = if raw.first() == Some(&0x30) {
                // DER: send it as PEM.
                hapki_domain::pem::encode(hapki_domain::pem::PemLabel::CertificateRequest, &raw)
            } else {
                String::from_utf8(raw)
                    .map_err(|_| Failure::usage(format!("{} is neither PEM nor DER", csr.display())))?
            };
            let body = json!({"csr": pem, "profile": profile, "issuer": issuer, "validity_days": validity_days});
            let out = out.map(|path| OutFile::claim(&path, false, force)).transpose()?;
            let v = ctx.client()?.post("/v1/certs", &body).await?;
            let full = format!("{}{}", s(&v["certificate"]), chain(&v));
            match out {
                Some(file) => {
                    let path = file.path().to_path_buf();
                    let serial = s(&v["serial"]);
                    file.write(
                        full.as_bytes(),
                        &format!("certificate {serial} was issued: fetch it with `hapki cert get {serial} --out FILE`"),
                    )?;
                    issued_summary(ctx, &v, Some(&path));
                }
                None if ctx.output == super::Output::Json => issued_summary(ctx, &v, None),
                None => print!("{full}"),
            }
            Ok(())
        }
        CertCommand::Generate {
            cn,
            san,
            profile,
            key,
            issuer,
            validity_days,
            format,
            password,
            out,
            force,
        } => {
            let password = password.or_else(|| std::env::var("HAPKI_P12_PASSWORD").ok());
            let body = json!({
                "common_name": cn, "sans": san, "profile": profile, "key_type": key, "issuer": issuer,
                "validity_days": validity_days, "format": format, "password": password,
            });
            // Every file is claimed first: the key exists only in the answer.
            let base = out.display().to_string();
            let files = if format == "pkcs12" {
                (
                    OutFile::claim(&PathBuf::from(format!("{base}.p12")), true, force)?,
                    None,
                )
            } else {
                let key = OutFile::claim(&PathBuf::from(format!("{base}.key")), true, force)?;
                let cert = OutFile::claim(&PathBuf::from(format!("{base}.pem")), false, force)?;
                (key, Some(cert))
            };
            let v = ctx.client()?.post("/v1/certs/generate", &body).await?;
            let serial = s(&v["serial"]);
            let key_lost = format!(
                "the private key of certificate {serial} is lost: revoke it with \
                 `hapki cert revoke {serial} --reason superseded` and generate again"
            );
            match files {
                (p12_file, None) => {
                    let p12 = base64::engine::general_purpose::STANDARD
                        .decode(s(&v["pkcs12"]))
                        .map_err(|_| Failure::other(format!("the server sent a damaged PKCS#12 file; {key_lost}")))?;
                    let path = p12_file.path().to_path_buf();
                    p12_file.write(&p12, &key_lost)?;
                    issued_summary(ctx, &v, Some(&path));
                }
                (key_file, Some(cert_file)) => {
                    let key_path = key_file.path().to_path_buf();
                    let cert_path = cert_file.path().to_path_buf();
                    key_file.write(s(&v["private_key"]).as_bytes(), &key_lost)?;
                    cert_file.write(
                        format!("{}{}", s(&v["certificate"]), chain(&v)).as_bytes(),
                        &format!("fetch the certificate with `hapki cert get {serial} --out FILE`"),
                    )?;
                    issued_summary(ctx, &v, Some(&cert_path));
                    if ctx.output == super::Output::Table {
                        println!("key         {}", key_path.display());
                    }
                }
            }
            Ok(())
        }
        CertCommand::Get {
            serial,
            out,
            consistent,
        } => {
            let query = if consistent { "?consistent=true" } else { "" };
            let v = ctx
                .client()?
                .get(&format!("/v1/certs/{}{query}", urlencode(&serial)))
                .await?;
            if let Some(path) = out {
                write_file(&path, s(&v["certificate"]).as_bytes(), false, true)?;
            }
            record(ctx.output, &v, cert_fields(&v));
            Ok(())
        }
        CertCommand::List {
            status,
            subject,
            san,
            expiring_within,
            issuer,
            limit,
            after,
            consistent,
        } => {
            let mut q = vec![("limit".to_string(), limit.to_string())];
            if consistent {
                q.push(("consistent".to_string(), "true".to_string()));
            }
            for (k, v) in [
                ("status", status),
                ("subject", subject),
                ("san", san),
                ("expiring_within", expiring_within),
                ("issuer", issuer),
                ("after", after),
            ] {
                if let Some(v) = v {
                    q.push((k.to_string(), v));
                }
            }
            let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
            let v = ctx.client()?.get(&format!("/v1/certs?{}", query.join("&"))).await?;
            let rows = v["certs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            vec![
                                s(&c["serial"]),
                                s(&c["status"]),
                                s(&c["subject"]),
                                t(&c["not_after"]),
                                s(&c["profile"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(
                ctx.output,
                &v,
                &["serial", "status", "subject", "not after", "profile"],
                rows,
            );
            if ctx.output == super::Output::Table && !v["next_after"].is_null() {
                println!("(more: --after {})", s(&v["next_after"]));
            }
            Ok(())
        }
        CertCommand::Revoke { serial, reason } => {
            let v = ctx
                .client()?
                .post(
                    &format!("/v1/certs/{}/revoke", urlencode(&serial)),
                    &json!({"reason": reason}),
                )
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("revoked", s(&v["serial"])),
                    ("reason", s(&v["reason"])),
                    ("at", t(&v["revoked_at"])),
                    ("CRL number", s(&v["crl_number"])),
                ],
            );
            Ok(())
        }
    }
}

fn chain(v: &Value) -> String {
    v["chain"]
        .as_array()
        .map(|a| a.iter().map(s).collect::<String>())
        .unwrap_or_default()
}

fn issued_summary(ctx: &Ctx, v: &Value, path: Option<&std::path::Path>) {
    let mut fields = vec![
        ("serial", s(&v["serial"])),
        ("subject", s(&v["subject"])),
        ("profile", s(&v["profile"])),
        ("not after", t(&v["not_after"])),
    ];
    if let Some(p) = path {
        fields.push(("written to", p.display().to_string()));
    }
    record(ctx.output, v, fields);
}

fn cert_fields(v: &Value) -> Vec<(&'static str, String)> {
    let sans = v["sans"]
        .as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    vec![
        ("serial", s(&v["serial"])),
        ("status", s(&v["status"])),
        ("subject", s(&v["subject"])),
        ("names", sans),
        ("profile", s(&v["profile"])),
        ("issuer", s(&v["issuer_id"])),
        ("not before", t(&v["not_before"])),
        ("not after", t(&v["not_after"])),
        ("revoked at", t(&v["revoked_at"])),
        ("reason", s(&v["revocation_reason"])),
    ]
}

/// Percent-encodes a query or path value.
pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
