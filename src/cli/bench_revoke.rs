//! `hapki bench revoke`: a load generator for revocation, on hapki or on OpenBao's PKI
//! engine. It issues `--requests` certificates first (at the same concurrency, timed
//! apart), then revokes them all and reports revocations per second and latency
//! percentiles. hapki answers a revocation once a published CRL lists it, OpenBao (as
//! bench/lib.sh configures it, without auto-rebuild) once it has rebuilt its CRL, so the
//! p99 latency bounds how long a certificate stays off the CRL after its revocation is
//! acknowledged.

use std::sync::{Arc, Mutex};

use clap::Args;

use super::bench::{percentile, progress, run_load, verdict, Load, Sender, TargetArgs};
use super::output::record;
use super::{CliResult, Ctx, Failure};

#[derive(Args)]
pub struct RevokeBenchArgs {
    #[command(flatten)]
    on: TargetArgs,
    /// Requests in flight at once
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Certificates to issue, then revoke
    #[arg(long, default_value_t = 5000)]
    requests: usize,
}

/// What `hapki bench revoke` reports (`--output json`).
#[derive(serde::Serialize)]
struct RevokeReport {
    target: String,
    concurrency: usize,
    requests: usize,
    issue_seconds: f64,
    revoked: usize,
    failed: usize,
    seconds: f64,
    revocations_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    first_error: Option<String>,
}

pub async fn revoke(ctx: &Ctx, args: RevokeBenchArgs) -> CliResult {
    if args.concurrency == 0 || args.requests == 0 {
        return Err(Failure::usage("--concurrency and --requests must be at least 1"));
    }
    let sender = Sender::new(ctx, &args.on)?;
    let making = progress(args.requests, "making CSRs")?;
    let csrs = Arc::new(super::bench::make_csrs(args.requests, &making)?);
    making.finish_and_clear();

    let issuing = progress(args.requests, "issuing")?;
    let serials = Arc::new(Mutex::new(vec![String::new(); args.requests]));
    let issued = {
        let (sender, csrs, serials) = (sender.clone(), csrs.clone(), serials.clone());
        run_load(args.concurrency, args.requests, &issuing, move |i| {
            let (sender, csrs, serials) = (sender.clone(), csrs.clone(), serials.clone());
            async move {
                let serial = sender.send(i, &csrs[i]).await?;
                serials.lock().expect("serials")[i] = serial;
                Ok(())
            }
        })
        .await?
    };
    issuing.finish_and_clear();
    if issued.errors > 0 {
        return Err(Failure::other(format!(
            "{} issuances failed; first: {}",
            issued.errors,
            issued.first_error.unwrap_or_default()
        )));
    }

    let revoking = progress(args.requests, "revoking")?;
    let load = {
        let (sender, serials) = (sender.clone(), serials.clone());
        run_load(args.concurrency, args.requests, &revoking, move |i| {
            let (sender, serials) = (sender.clone(), serials.clone());
            async move {
                let serial = serials.lock().expect("serials")[i].clone();
                sender.revoke(&serial).await
            }
        })
        .await?
    };
    revoking.finish_and_clear();
    let Load {
        latencies,
        errors,
        first_error,
        elapsed,
    } = load;
    let ok = latencies.len();
    let out = RevokeReport {
        target: format!("{:?}", args.on.target).to_lowercase(),
        concurrency: args.concurrency,
        requests: args.requests,
        issue_seconds: issued.elapsed.as_secs_f64(),
        revoked: ok,
        failed: errors,
        seconds: elapsed.as_secs_f64(),
        revocations_per_sec: ok as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        first_error,
    };
    record(
        ctx.output,
        &out,
        vec![
            ("target", out.target.clone()),
            ("issued", format!("{} in {:.1} s", args.requests, out.issue_seconds)),
            ("revoked", format!("{ok} of {}", args.requests)),
            ("revocations/s", format!("{:.0}", out.revocations_per_sec)),
            ("p50", format!("{:.2} ms", out.p50_ms)),
            (
                "p99",
                format!("{:.2} ms (each answered once a CRL lists it)", out.p99_ms),
            ),
        ],
    );
    verdict(errors, out.first_error.as_deref(), "revocations")
}
