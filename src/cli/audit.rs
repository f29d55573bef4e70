//! `hapki audit`: `list` (filters, paging), `export` (JSON lines), `verify` (the node
//! checks its log, or this CLI checks an exported file with the audit certificate) and
//! `certificate` (the audit key's certificate, for offline checks).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hapki_api::audit::{AuditCertificate, AuditList, AuditQuery, AuditVerified, ExportLine, Report};
use hapki_domain::audit;
use reqwest::Method;

use super::certs::query_string;
use super::outfile::OutFile;
use super::output::{print, record};
use super::{read_file, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Audit records, oldest first: who did what to which object, on which node, with what outcome
    List(ListArgs),
    /// Every record and seal, as JSON lines, for an offline check or an archive
    Export {
        #[arg(short = 'o', long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Check the chain and its seals: the node's log, or an exported file with --file and --cert
    Verify {
        /// An exported file to check here, without a node
        #[arg(long, requires = "cert")]
        file: Option<PathBuf>,
        /// The audit certificate (from `hapki audit certificate`) the seals must be signed by
        #[arg(long, requires = "file")]
        cert: Option<PathBuf>,
    },
    /// The audit key's certificate (then the internal CA), for `verify --cert`
    Certificate {
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct ListArgs {
    /// Only this action (issue_cert, revoke, create_token, put_profile, export_ca, ...)
    #[arg(long)]
    action: Option<String>,
    /// Only this token, by id or name (`node` for the cluster's own work)
    #[arg(long)]
    actor: Option<String>,
    /// Only records whose object contains this (a serial, a token id, a profile name)
    #[arg(long)]
    object: Option<String>,
    /// Records after this position
    #[arg(long)]
    after: Option<u64>,
    /// At most this many (default 100, at most 1000)
    #[arg(long)]
    limit: Option<usize>,
}

pub async fn run(ctx: &Ctx, command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::List(a) => {
            let q = AuditQuery {
                after: a.after,
                limit: a.limit,
                action: a.action,
                actor: a.actor,
                object: a.object,
            };
            let v: AuditList = ctx.client()?.get(&format!("/v1/audit{}", query_string(&q)?)).await?;
            let rows = v
                .records
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        hapki_domain::time::rfc3339(r.at),
                        match &r.actor {
                            Some(id) => format!("{} ({id})", r.actor_name),
                            None => r.actor_name.clone(),
                        },
                        r.node.clone(),
                        r.action.clone(),
                        r.object.clone(),
                        r.outcome.clone(),
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &["#", "at", "actor", "node", "action", "object", "outcome"],
                rows,
            );
            Ok(())
        }
        AuditCommand::Export { out, force } => export(ctx, &out, force).await,
        AuditCommand::Verify { file, cert } => match (file, cert) {
            (Some(file), Some(cert)) => {
                let report = verify_file(&file, &cert)?;
                show(ctx, &report, report.records, Some(&file))
            }
            _ => {
                let v: AuditVerified = ctx.client()?.get("/v1/audit/verify").await?;
                show(ctx, &v.report, v.head, None)
            }
        },
        AuditCommand::Certificate { out, force } => {
            let v: AuditCertificate = ctx.client()?.get("/v1/audit/certificate").await?;
            let pem = std::iter::once(v.certificate.as_str())
                .chain(v.chain.iter().map(String::as_str))
                .collect::<String>();
            match out {
                Some(path) => {
                    OutFile::claim(&path, false, force)?.write(pem.as_bytes(), "write it again")?;
                    record(
                        ctx.output,
                        &serde_json::json!({"written_to": path.display().to_string()}),
                        vec![
                            ("written to", path.display().to_string()),
                            (
                                "next",
                                format!(
                                    "check an export with `hapki audit verify --file FILE --cert {}`",
                                    path.display()
                                ),
                            ),
                        ],
                    );
                }
                None => print!("{pem}"),
            }
            Ok(())
        }
    }
}

async fn export(ctx: &Ctx, out: &Path, force: bool) -> CliResult {
    let mut file = OutFile::claim(out, false, force)?;
    let (url, resp) = ctx
        .client()?
        .respond::<()>(Method::GET, "/v1/audit/export", None)
        .await?;
    let body = resp
        .bytes()
        .await
        .map_err(|e| Failure::other(format!("{url}: the export stopped before its end ({e}); take it again")))?;
    let (mut records, mut seals) = (0u64, 0u64);
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<ExportLine>(line) {
            Ok(ExportLine::Record { .. }) => records += 1,
            Ok(ExportLine::Seal(_)) => seals += 1,
            Ok(ExportLine::Header { .. }) => {}
            Err(e) => {
                return Err(Failure::other(format!(
                    "{url}: the export holds a line that is not one: {e}"
                )))
            }
        }
    }
    std::io::Write::write_all(file.file(), &body)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", out.display())))?;
    file.commit()?;
    record(
        ctx.output,
        &serde_json::json!({"written_to": out.display().to_string(), "records": records, "seals": seals}),
        vec![
            ("written to", out.display().to_string()),
            ("records", records.to_string()),
            ("seals", seals.to_string()),
            (
                "next",
                format!(
                    "check it with `hapki audit verify --file {} --cert audit.pem` (`hapki audit certificate -o audit.pem`)",
                    out.display()
                ),
            ),
        ],
    );
    Ok(())
}

/// Checks an exported file against the audit certificate in `cert`.
fn verify_file(file: &Path, cert: &Path) -> Result<Report, Failure> {
    let pem = String::from_utf8_lossy(&read_file(cert)?).into_owned();
    let der = hapki_domain::pem::decode_all(&pem)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|(label, _)| label == "CERTIFICATE"))
        .map(|(_, der)| der)
        .ok_or_else(|| Failure::usage(format!("{}: no certificate in it", cert.display())))?;
    let public = audit::ed25519_public(&der).map_err(|e| Failure::usage(format!("{}: {e}", cert.display())))?;
    // Two passes, so that no record is held: the header and the seals, then the records.
    let (mut seals, mut head) = (Vec::new(), None);
    for_each_line(file, |n, line| {
        match line {
            ExportLine::Header { head: h, .. } if n == 0 => head = Some(h),
            ExportLine::Header { .. } => {
                return Err(Failure::usage(format!(
                    "{} line {}: a second header",
                    file.display(),
                    n + 1
                )))
            }
            ExportLine::Seal(s) => seals.push(s),
            ExportLine::Record { .. } => {}
        }
        Ok(())
    })?;
    let Some(head) = head else {
        return Err(Failure::usage(format!(
            "{}: not an audit export (`hapki audit export` writes one)",
            file.display()
        )));
    };
    let mut check = audit::Verifier::new(&seals, &public);
    let mut last = 0;
    for_each_line(file, |_, line| {
        if let ExportLine::Record { position, record } = line {
            last = position;
            check.push(position, &record);
        }
        Ok(())
    })?;
    let mut report = check.finish();
    if report.fault.is_none() && last < head {
        report.fault = Some(audit::Fault {
            seq: last + 1,
            kind: audit::FaultKind::Removed,
            message: format!(
                "the export says the log ends at record {head}, but its records end at {last}: records from {} were removed",
                last + 1
            ),
        });
    }
    Ok(report)
}

/// Each line of an export, with its number from 0, to `f`.
fn for_each_line(file: &Path, mut f: impl FnMut(usize, ExportLine) -> Result<(), Failure>) -> Result<(), Failure> {
    let input = std::fs::File::open(file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line = line.map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<ExportLine>(&line).map_err(|e| {
            Failure::usage(format!(
                "{} line {}: not an audit export line ({e})",
                file.display(),
                n + 1
            ))
        })?;
        f(n, parsed)?;
    }
    Ok(())
}

fn show(ctx: &Ctx, report: &Report, head: u64, file: Option<&Path>) -> CliResult {
    let what = file.map_or("the audit log".to_string(), |f| f.display().to_string());
    let mut fields = vec![
        ("checked", what.clone()),
        ("records", report.records.to_string()),
        ("last record", head.to_string()),
        ("seals", report.seals.to_string()),
        ("sealed through", report.sealed_through.to_string()),
    ];
    match &report.fault {
        None => {
            fields.push((
                "result",
                "OK: every record is in its chain and the seals are the audit key's".into(),
            ));
            record(ctx.output, report, fields);
            Ok(())
        }
        Some(f) => {
            fields.push(("result", format!("FAILED at record {}: {}", f.seq, f.message)));
            record(ctx.output, report, fields);
            Err(Failure::other(format!(
                "{what} was tampered with: {} (record {})",
                f.message, f.seq
            )))
        }
    }
}
