//! `hapki tidy`: `status` (the policy, the latest batch, what waits) and `run` (batches
//! now, one request each, with a progress bar until nothing waits).

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use hapki_api::tidy::{TidyReport, TidyRun, TidyStatus};
use hapki_domain::time::rfc3339;
use indicatif::{ProgressBar, ProgressStyle};

use super::output::record;
use super::{CliResult, Ctx, Output};

#[derive(Subcommand)]
pub enum TidyCommand {
    /// The retention and batch settings, the latest batch, and how many certificates wait
    Status,
    /// Remove expired certificates past the retention now, batch by batch
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Stop after this many batches (default: until nothing waits)
    #[arg(long)]
    max_batches: Option<u32>,
}

/// Batches per request of `tidy run`.
const BATCHES_PER_REQUEST: u32 = 10;

pub async fn run(ctx: &Ctx, cmd: TidyCommand) -> CliResult {
    match cmd {
        TidyCommand::Status => {
            let v: TidyStatus = ctx.client()?.get("/v1/tidy").await?;
            let last = match &v.last {
                Some(l) => format!(
                    "{}: removed {} ({} revoked), expired before {}",
                    rfc3339(l.at),
                    l.removed,
                    l.revoked,
                    rfc3339(l.expired_before)
                ),
                None => "never".into(),
            };
            record(
                ctx.output,
                &v,
                vec![
                    ("retention", format!("{} s", v.retention_secs)),
                    ("batch", v.batch.to_string()),
                    ("share of the log", format!("{} %", v.share_percent)),
                    ("runs every", format!("{} s (on the leader)", v.every_secs)),
                    (
                        "pending",
                        format!("{} expired before {}", v.pending, rfc3339(v.expired_before)),
                    ),
                    ("last batch", last),
                    ("idempotency keys", v.idempotency_keys.to_string()),
                    (
                        "removed in all",
                        v.last.as_ref().map_or(0, |l| l.total_removed).to_string(),
                    ),
                ],
            );
            Ok(())
        }
        TidyCommand::Run(args) => tidy_now(ctx, args.max_batches).await,
    }
}

/// A few batches per request, so that the bar moves and an interrupted run keeps what it did.
async fn tidy_now(ctx: &Ctx, max_batches: Option<u32>) -> CliResult {
    let client = ctx.client()?;
    let status: TidyStatus = client.get("/v1/tidy").await?;
    let bar = bar(ctx.output, status.pending);
    let mut total = TidyReport::default();
    while max_batches.is_none_or(|max| total.batches < max) {
        let left = max_batches.map_or(BATCHES_PER_REQUEST, |max| {
            (max - total.batches).min(BATCHES_PER_REQUEST)
        });
        let step: TidyReport = client
            .post(
                "/v1/tidy",
                &TidyRun {
                    max_batches: Some(left),
                },
            )
            .await?;
        total.batches += step.batches;
        total.removed += step.removed;
        total.revoked += step.revoked;
        total.pending = step.pending;
        total.keys_forgotten += step.keys_forgotten;
        total.keys_pending = step.keys_pending;
        for id in step.crls {
            if !total.crls.contains(&id) {
                total.crls.push(id);
            }
        }
        bar.set_length(total.removed + step.pending);
        bar.set_position(total.removed);
        if step.batches == 0 || (step.pending == 0 && !step.keys_pending) {
            break;
        }
    }
    bar.finish_and_clear();
    record(
        ctx.output,
        &total,
        vec![
            ("removed", format!("{} ({} revoked)", total.removed, total.revoked)),
            ("idempotency keys forgotten", total.keys_forgotten.to_string()),
            ("batches", total.batches.to_string()),
            ("pending", total.pending.to_string()),
            (
                "new CRLs",
                if total.crls.is_empty() {
                    "none".into()
                } else {
                    total.crls.join(", ")
                },
            ),
        ],
    );
    if total.pending > 0 {
        eprintln!(
            "{} certificates still wait; run `hapki tidy run` again, or let the leader's schedule take them",
            total.pending
        );
    }
    Ok(())
}

fn bar(output: Output, len: u64) -> ProgressBar {
    if output != Output::Table || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("tidy [{bar:30}] {pos}/{len} certificates {per_sec}")
            .expect("literal template")
            .progress_chars("=> "),
    );
    b
}
