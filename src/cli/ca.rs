//! `hapki ca ...` and `hapki crl ...`.

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use hapki_api::ca::{
    CrlRotated, DefaultIssuer, ExportRequest, Exported, ImportRequest, InstallCertRequest, IntermediateCsr, IssuerList,
    IssuerView, RootRequest, RotateCrlRequest, RotateRequest, Rotated,
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
    /// Roll an issuer over: a successor with the same subject and a new key, the default for
    /// new certificates from --at on; the old one keeps its CRL and OCSP for what it issued
    Rotate {
        /// The issuer to roll over (`hapki ca list`)
        #[arg(long)]
        id: String,
        /// When the successor becomes the default: `now`, `+30d`, RFC 3339
        /// (`2027-03-01T00:00:00Z`) or Unix seconds
        #[arg(long, default_value = "now")]
        at: String,
        /// The successor's validity in days; the old issuer's length by default
        #[arg(long)]
        days: Option<u32>,
        /// The successor's key type; the old issuer's by default
        #[arg(long)]
        key: Option<String>,
        /// Where to write the successor's certificate and chain (or its CSR, when its parent
        /// is outside this cluster)
        #[arg(long, default_value = "successor.pem")]
        out: PathBuf,
        /// For a root: where to write the successor's self-signed certificate, for trust stores
        #[arg(long, default_value = "successor-root.pem")]
        self_signed_out: PathBuf,
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
        CaCommand::Rotate {
            id,
            at,
            days,
            key,
            out,
            self_signed_out,
        } => {
            let body = RotateRequest {
                at: Some(parse_when(&at, now_secs())?),
                validity_days: days,
                key_type: key
                    .map(|k| k.parse())
                    .transpose()
                    .map_err(|e: hapki_domain::DomainError| Failure::usage(e.to_string()))?,
            };
            let out_file = OutFile::claim(&out, false, false)?;
            let v: Rotated = client
                .post(&format!("/v1/ca/{}/rotate", super::certs::urlencode(&id)), &body)
                .await?;
            let pem = match (&v.certificate, &v.csr) {
                (Some(cert), _) => std::iter::once(cert).chain(&v.chain).cloned().collect::<String>(),
                (None, Some(csr)) => csr.clone(),
                (None, None) => String::new(),
            };
            out_file.write(pem.as_bytes(), "`hapki ca list --output json` shows it")?;
            let mut fields = vec![
                ("from", v.from.clone()),
                ("to", v.to.clone()),
                ("default from", hapki_domain::time::rfc3339(v.at)),
                ("signed", v.signed.clone()),
                ("written to", out.display().to_string()),
            ];
            if let Some(own) = &v.self_signed {
                let file = OutFile::claim(&self_signed_out, false, false)?;
                file.write(own.as_bytes(), "`hapki ca list --output json` shows it")?;
                fields.push(("self-signed", self_signed_out.display().to_string()));
                fields.push((
                    "next",
                    format!(
                        "add {} to trust stores before the old root ends; until then the old root's trust covers the successor",
                        self_signed_out.display()
                    ),
                ));
            } else if v.csr.is_some() {
                fields.push((
                    "next",
                    format!(
                        "have the parent sign {}, then `hapki ca install-cert CERT.pem --id {}`",
                        out.display(),
                        v.to
                    ),
                ));
            }
            record(ctx.output, &v, fields);
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
                        match (&i.successor, i.switch_at) {
                            (Some(to), Some(at)) => format!("→ {to} from {}", hapki_domain::time::rfc3339(at)),
                            _ => opt(i.predecessor.as_ref().map(|p| format!("after {p}"))),
                        },
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &["id", "default", "status", "name", "key", "not after", "crl", "rollover"],
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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `now`, `+N` with a unit (`30d`, `12h`, `45m`, `90s`), RFC 3339 in UTC
/// (`2027-03-01T00:00:00Z`), or Unix seconds.
fn parse_when(s: &str, now: u64) -> Result<u64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "'{s}' is not a time: use now, +30d, 2027-03-01T00:00:00Z or Unix seconds"
        ))
    };
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('+') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let mult = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        return num
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .and_then(|d| now.checked_add(d))
            .ok_or_else(bad);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let t = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    let h: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || h.len() != 3 {
        return Err(bad());
    }
    let n = |v: &str| v.parse::<u16>().map_err(|_| bad());
    let at = der::DateTime::new(
        n(d[0])?,
        n(d[1])? as u8,
        n(d[2])? as u8,
        n(h[0])? as u8,
        n(h[1])? as u8,
        n(h[2])? as u8,
    )
    .map_err(|_| bad())?;
    Ok(at.unix_duration().as_secs())
}

#[cfg(test)]
mod tests {
    use super::parse_when;

    #[test]
    fn a_switch_time_is_now_relative_rfc_3339_or_unix_seconds() {
        assert_eq!(parse_when("now", 100).unwrap(), 100);
        assert_eq!(parse_when("+2d", 100).unwrap(), 100 + 2 * 86_400);
        assert_eq!(parse_when("2027-01-01T00:00:00Z", 0).unwrap(), 1_798_761_600);
        assert_eq!(parse_when("1798761600", 0).unwrap(), 1_798_761_600);
        for bad in ["tomorrow", "+3w", "2027-13-01T00:00:00Z", "2027-01-01 00:00:00"] {
            assert!(parse_when(bad, 0).is_err(), "{bad}");
        }
    }
}
