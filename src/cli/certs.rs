//! `hapki cert ...`: issue, generate, get, list, revoke (clients of a node) and show (local).

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use hapki_api::certs::{
    CertList, CertQuery, CertView, GenerateRequest, Generated, IssueRequest, Issued, ReadQuery, RevokeRequest, Revoked,
};

use super::outfile::OutFile;
use super::output::{list, opt, ot, print, record, t, table_page};
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
        #[arg(long, conflicts_with = "ttl")]
        validity_days: Option<u32>,
        /// Validity as a duration (90s, 12h, 30d), instead of --validity-days
        #[arg(long)]
        ttl: Option<String>,
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
        #[arg(long, conflicts_with = "ttl")]
        validity_days: Option<u32>,
        /// Validity as a duration (90s, 12h, 30d), instead of --validity-days
        #[arg(long)]
        ttl: Option<String>,
        /// pem: NAME.key + NAME.pem; pkcs12: NAME.p12
        #[arg(long, default_value = "pem")]
        format: String,
        /// Password of the PKCS#12 file; other local users can read it from the process list,
        /// so prefer --password-file [env: HAPKI_P12_PASSWORD]
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// File whose first line is the PKCS#12 password
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Where to write: a name ending in .p12/.pfx (pkcs12), .pem/.crt or .key (pem) is used as
        /// given, the other file named after it; any other name is a base (NAME.p12, or NAME.key
        /// and NAME.pem)
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
        /// Also keep the key in the cluster's key archive (sealed), for recovery with approvals
        #[arg(long)]
        archive: bool,
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
        /// The subject's common name (web.example.com), every one below a domain
        /// (.example.com), or a whole subject (CN=web,O=Example); case-insensitive
        #[arg(long)]
        subject: Option<String>,
        /// A subject alternative name (web.example.com, 10.0.0.1, DNS:web.example.com), or
        /// every DNS name below a domain (.example.com); case-insensitive
        #[arg(long)]
        san: Option<String>,
        /// Not expired and expiring within this time (30d, 12h)
        #[arg(long)]
        expiring_within: Option<String>,
        /// Issuer id (see `ca list`)
        #[arg(long)]
        issuer: Option<String>,
        /// Profile name
        #[arg(long)]
        profile: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue where a page ended (the `--after` it printed)
        #[arg(long)]
        after: Option<String>,
        /// Every page, fetched and printed one after another (--limit per page); with
        /// --output json, one certificate per line
        #[arg(long)]
        all: bool,
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
            ttl,
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
            let body = IssueRequest {
                csr: pem,
                profile,
                issuer,
                validity_days,
                ttl,
            };
            let out = out.map(|path| OutFile::claim(&path, false, force)).transpose()?;
            let v: Issued = ctx.client()?.post("/v1/certs", &body).await?;
            let full = format!("{}{}", v.certificate, v.chain.concat());
            match out {
                Some(file) => {
                    let path = file.path().to_path_buf();
                    let serial = &v.serial;
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
            ttl,
            format,
            password,
            password_file,
            out,
            force,
            archive,
        } => {
            let password = match password_file {
                Some(path) => Some(super::secret_file(&path)?),
                None => password.or_else(|| std::env::var("HAPKI_P12_PASSWORD").ok()),
            };
            let key_type = key
                .parse()
                .map_err(|e: hapki_domain::DomainError| Failure::usage(e.to_string()))?;
            let pkcs12 = format == "pkcs12";
            let body = GenerateRequest {
                common_name: cn,
                sans: san,
                profile,
                key_type,
                issuer,
                validity_days,
                ttl,
                format: Some(format),
                password,
                archive,
            };
            // Every file is claimed first: the key exists only in the answer.
            let files = match generated_files(&out, pkcs12) {
                (p12, None) => (OutFile::claim(&p12, true, force)?, None),
                (key, Some(cert)) => (
                    OutFile::claim(&key, true, force)?,
                    Some(OutFile::claim(&cert, false, force)?),
                ),
            };
            let v: Generated = ctx.client()?.post("/v1/certs/generate", &body).await?;
            let serial = &v.issued.serial;
            let key_lost = format!(
                "the private key of certificate {serial} is lost: revoke it with \
                 `hapki cert revoke {serial} --reason superseded` and generate again"
            );
            match files {
                (p12_file, None) => {
                    let p12 = base64::engine::general_purpose::STANDARD
                        .decode(v.pkcs12.as_deref().unwrap_or_default())
                        .map_err(|_| Failure::other(format!("the server sent a damaged PKCS#12 file; {key_lost}")))?;
                    let path = p12_file.path().to_path_buf();
                    p12_file.write(&p12, &key_lost)?;
                    issued_summary(ctx, &v.issued, Some(&path));
                }
                (key_file, Some(cert_file)) => {
                    let key_path = key_file.path().to_path_buf();
                    let cert_path = cert_file.path().to_path_buf();
                    let key = v
                        .private_key
                        .as_deref()
                        .ok_or_else(|| Failure::other(format!("the server sent no key; {key_lost}")))?;
                    key_file.write(key.as_bytes(), &key_lost)?;
                    cert_file.write(
                        format!("{}{}", v.issued.certificate, v.issued.chain.concat()).as_bytes(),
                        &format!("fetch the certificate with `hapki cert get {serial} --out FILE`"),
                    )?;
                    issued_summary(ctx, &v.issued, Some(&cert_path));
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
            let query = query_string(&ReadQuery { consistent })?;
            let v: CertView = ctx
                .client()?
                .get(&format!("/v1/certs/{}{query}", urlencode(&serial)))
                .await?;
            if let Some(path) = out {
                write_file(
                    &path,
                    v.certificate.as_deref().unwrap_or_default().as_bytes(),
                    false,
                    true,
                )?;
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
            profile,
            limit,
            after,
            all,
            consistent,
        } => {
            let client = ctx.client()?;
            let headers = ["serial", "status", "subject", "not after", "profile"];
            let mut q = CertQuery {
                consistent,
                status,
                subject,
                san,
                expiring_within,
                issuer,
                profile,
                limit: Some(limit),
                after,
            };
            let mut first = true;
            loop {
                let query = query_string(&q)?;
                let v: CertList = client.get(&format!("/v1/certs{query}")).await?;
                let rows = v
                    .certs
                    .iter()
                    .map(|c| {
                        vec![
                            c.serial.clone(),
                            c.status.name().to_string(),
                            c.subject.clone(),
                            t(c.not_after),
                            c.profile.clone(),
                        ]
                    })
                    .collect();
                match (all, ctx.output) {
                    (false, _) => print(ctx.output, &v, &headers, rows),
                    (true, super::Output::Json) => {
                        for c in &v.certs {
                            println!("{}", serde_json::to_string(c).unwrap_or_default());
                        }
                    }
                    (true, super::Output::Table) => table_page(&headers, rows, first),
                }
                first = false;
                match v.next_after {
                    Some(next) if all => q.after = Some(next),
                    Some(next) => {
                        if ctx.output == super::Output::Table {
                            println!("(more: --after {next}, or --all for every page)");
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
        }
        CertCommand::Revoke { serial, reason } => {
            let v: Revoked = ctx
                .client()?
                .post(
                    &format!("/v1/certs/{}/revoke", urlencode(&serial)),
                    &RevokeRequest { reason: Some(reason) },
                )
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("revoked", v.serial.clone()),
                    ("reason", v.reason.clone()),
                    ("at", t(v.revoked_at)),
                    ("CRL number", v.crl_number.to_string()),
                ],
            );
            Ok(())
        }
    }
}

fn issued_summary(ctx: &Ctx, v: &Issued, path: Option<&std::path::Path>) {
    let mut fields = vec![
        ("serial", v.serial.clone()),
        ("subject", v.subject.clone()),
        ("profile", v.profile.clone()),
        ("not after", t(v.not_after)),
    ];
    if let Some(p) = path {
        fields.push(("written to", p.display().to_string()));
    }
    record(ctx.output, v, fields);
}

fn cert_fields(v: &CertView) -> Vec<(&'static str, String)> {
    vec![
        ("serial", v.serial.clone()),
        ("status", v.status.name().to_string()),
        ("subject", v.subject.clone()),
        ("names", list(&v.sans, ", ")),
        ("profile", v.profile.clone()),
        ("issuer", v.issuer_id.clone()),
        ("not before", t(v.not_before)),
        ("not after", t(v.not_after)),
        ("revoked at", ot(v.revoked_at)),
        ("reason", opt(v.revocation_reason.as_ref())),
    ]
}

/// A query as `?a=b&c=d`, or nothing when it has no field.
pub fn query_string<Q: serde::Serialize>(q: &Q) -> Result<String, Failure> {
    let text = serde_urlencoded::to_string(q).map_err(|e| Failure::other(format!("encoding the query: {e}")))?;
    Ok(if text.is_empty() { text } else { format!("?{text}") })
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

/// The files `cert generate --out OUT` writes: the PKCS#12 file, or the key and the certificate.
/// A name that already ends in the format's extension is used as given.
fn generated_files(out: &std::path::Path, pkcs12: bool) -> (PathBuf, Option<PathBuf>) {
    let ext = out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let with = |e: &str| {
        let mut name = out.as_os_str().to_owned();
        name.push(format!(".{e}"));
        PathBuf::from(name)
    };
    match (pkcs12, ext.as_deref()) {
        (true, Some("p12" | "pfx")) => (out.to_path_buf(), None),
        (true, _) => (with("p12"), None),
        (false, Some("pem" | "crt")) => (out.with_extension("key"), Some(out.to_path_buf())),
        (false, Some("key")) => (out.to_path_buf(), Some(out.with_extension("pem"))),
        (false, _) => (with("key"), Some(with("pem"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_with_the_format_extension_are_used_as_given() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(generated_files(&p("gen.p12"), true), (p("gen.p12"), None));
        assert_eq!(generated_files(&p("out/gen.PFX"), true), (p("out/gen.PFX"), None));
        assert_eq!(generated_files(&p("gen"), true), (p("gen.p12"), None));
        assert_eq!(
            generated_files(&p("web.example.com"), true),
            (p("web.example.com.p12"), None)
        );
        assert_eq!(
            generated_files(&p("web.pem"), false),
            (p("web.key"), Some(p("web.pem")))
        );
        assert_eq!(
            generated_files(&p("web.crt"), false),
            (p("web.key"), Some(p("web.crt")))
        );
        assert_eq!(
            generated_files(&p("web.key"), false),
            (p("web.key"), Some(p("web.pem")))
        );
        assert_eq!(
            generated_files(&p("web.example.com"), false),
            (p("web.example.com.key"), Some(p("web.example.com.pem")))
        );
    }
}
