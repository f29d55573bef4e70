//! Local tools that need no server: `csr`, `bundle`, `cert show`.

use std::path::PathBuf;

use clap::Args;
use hapki_domain::csr::build_csr;
use hapki_domain::issue::summarize;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{CsrArgs as Words, San, SubjectSpec};
use hapki_domain::pem::{certificates, encode, PemLabel};
use serde_json::json;

use super::output::record;
use super::{read_file, write_file, CliResult, Ctx, Failure};

#[derive(Args)]
pub struct CsrArgs {
    /// Base name: writes NAME.key and NAME.csr
    name: String,
    /// `CN:host.example.com`, `subjectAltName:a.example.com,b.example.com`, `O:Example`, ...
    words: Vec<String>,
    /// Common name
    #[arg(long)]
    cn: Option<String>,
    /// Subject alternative name (DNS name, IP, email or URI); repeat for more
    #[arg(long)]
    san: Vec<String>,
    /// Other subject attributes, e.g. "O=Example, OU=Web, C=US"
    #[arg(long)]
    subject: Option<String>,
    /// Key type
    #[arg(long, default_value = "ec-p256")]
    key: String,
    /// Replace existing NAME.key and NAME.csr
    #[arg(long)]
    force: bool,
}

pub fn csr(ctx: &Ctx, args: CsrArgs) -> CliResult {
    let mut words = Words::parse(&args.words)?;
    if let Some(s) = &args.subject {
        let mut spec = SubjectSpec::parse(s)?;
        spec.0.append(&mut words.subject.0);
        words.subject = spec;
    }
    if let Some(cn) = &args.cn {
        words.subject.0.push((hapki_domain::name::Attr::Cn, cn.clone()));
    }
    for s in &args.san {
        words.sans.push(San::parse(s)?);
    }
    if words.subject.0.is_empty() && words.sans.is_empty() {
        return Err(Failure::usage(
            "give a subject or names: e.g. `hapki csr web CN:web.example.com` or --cn/--san",
        ));
    }
    let key_type: KeyType = args.key.parse()?;
    let key = SigningKey::generate(key_type)?;
    let csr = build_csr(&key, &words.subject.to_name()?, &words.sans)?;
    let key_path = PathBuf::from(format!("{}.key", args.name));
    let csr_path = PathBuf::from(format!("{}.csr", args.name));
    if !args.force && (key_path.exists() || csr_path.exists()) {
        return Err(Failure::usage(format!(
            "{} or {} exists; choose another name or pass --force",
            key_path.display(),
            csr_path.display()
        )));
    }
    write_file(
        &key_path,
        encode(PemLabel::PrivateKey, &key.to_pkcs8()?).as_bytes(),
        true,
        args.force,
    )?;
    write_file(
        &csr_path,
        encode(PemLabel::CertificateRequest, &csr).as_bytes(),
        false,
        args.force,
    )?;
    let out = json!({"key": key_path, "csr": csr_path, "key_type": key_type.name()});
    record(
        ctx.output,
        &out,
        vec![
            ("key", format!("{} ({})", key_path.display(), key_type)),
            ("csr", csr_path.display().to_string()),
            (
                "next",
                format!(
                    "hapki cert issue --csr {} --profile {}",
                    csr_path.display(),
                    likely_profile(&words)
                ),
            ),
        ],
    );
    Ok(())
}

/// The built-in profile a CSR most likely wants, for the hint after `hapki csr`:
/// `db-client` for the CN `postgres`, `server` for host names, `client` otherwise.
fn likely_profile(words: &Words) -> &'static str {
    let cn = words
        .subject
        .0
        .iter()
        .find(|(a, _)| *a == hapki_domain::name::Attr::Cn)
        .map(|(_, v)| v.as_str());
    match cn {
        Some("postgres") if words.sans.is_empty() => "db-client",
        _ if !words.sans.is_empty() || cn.is_some_and(|c| c.contains('.')) => "server",
        _ => "client",
    }
}

#[derive(Args)]
pub struct BundleArgs {
    /// Output file
    #[arg(short, long)]
    out: PathBuf,
    /// Certificate files (PEM or DER)
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Replace the output file if it exists
    #[arg(long)]
    force: bool,
}

pub fn bundle(args: BundleArgs) -> CliResult {
    let mut pem = String::new();
    let mut seen = std::collections::HashSet::new();
    for f in &args.files {
        let certs = certificates(&read_file(f)?).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
        for der in certs {
            summarize(&der).map_err(|e| Failure::usage(format!("{}: {e}", f.display())))?;
            if seen.insert(der.clone()) {
                pem.push_str(&encode(PemLabel::Certificate, &der));
            }
        }
    }
    write_file(&args.out, pem.as_bytes(), false, args.force)?;
    println!("wrote {} certificates to {}", seen.len(), args.out.display());
    Ok(())
}

/// `hapki cert show FILE`.
pub fn show(ctx: &Ctx, file: &std::path::Path) -> CliResult {
    let certs = certificates(&read_file(file)?).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let mut shown = Vec::new();
    for (i, der) in certs.iter().enumerate() {
        let s = summarize(der).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
        let fingerprint = hex::encode(hapki_domain::issue::sha256(der));
        let sans: Vec<String> = s.sans.iter().map(|x| x.to_string()).collect();
        let out = json!({
            "subject": s.subject, "issuer": s.issuer, "serial": s.serial.to_hex(),
            "not_before": s.not_before, "not_after": s.not_after, "sans": sans,
            "key": s.key, "ca": s.is_ca, "sha256_fingerprint": fingerprint,
        });
        if ctx.output == super::Output::Json {
            shown.push(out);
            continue;
        }
        if i > 0 {
            println!();
        }
        record(
            ctx.output,
            &out,
            vec![
                ("subject", s.subject.clone()),
                ("issuer", s.issuer.clone()),
                ("serial", s.serial.to_hex()),
                ("not before", hapki_domain::time::rfc3339(s.not_before)),
                ("not after", hapki_domain::time::rfc3339(s.not_after)),
                ("names", if sans.is_empty() { "-".into() } else { sans.join(", ") }),
                ("key", s.key.clone()),
                ("CA", s.is_ca.to_string()),
                ("SHA-256", fingerprint),
            ],
        );
    }
    if ctx.output == super::Output::Json {
        // One JSON document for the whole file, leaf first.
        record(ctx.output, &json!({ "certificates": shown }), Vec::new());
    }
    Ok(())
}
