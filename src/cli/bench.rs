//! `hapki bench issue`: a load generator for certificate issuance. It sends
//! fresh EC P-256 CSRs at a fixed concurrency to hapki (`POST /v1/certs`) or,
//! for a side-by-side figure, to OpenBao's PKI engine (`POST /v1/<mount>/sign/<role>`),
//! and reports throughput and latency percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use hapki_api::certs::{IssueRequest, Issued, RevokeRequest, Revoked};
use hapki_domain::csr::build_csr;
use hapki_domain::key::{KeyType, SigningKey};
use hapki_domain::name::{San, SubjectSpec};
use hapki_domain::pem::{encode, PemLabel};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::output::record;
use super::{CliResult, Ctx, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Hapki,
    Openbao,
}

/// What `hapki bench` reports (`--output json`; `bench/issue.sh` reads it).
#[derive(serde::Serialize)]
struct BenchReport {
    target: String,
    concurrency: usize,
    requests: usize,
    succeeded: usize,
    failed: usize,
    seconds: f64,
    certs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    first_error: Option<String>,
}

/// What a load goes to: hapki, or OpenBao's PKI engine for a side-by-side figure.
#[derive(Args)]
pub struct TargetArgs {
    /// What to load: hapki (uses --url/--token/--ca-cert) or openbao
    #[arg(long, value_enum, default_value = "hapki")]
    pub target: Target,
    /// hapki profile
    #[arg(long, default_value = "server")]
    pub profile: String,
    /// OpenBao address, e.g. http://127.0.0.1:8200
    #[arg(long)]
    pub openbao_url: Option<String>,
    /// OpenBao token [env: BAO_TOKEN]
    #[arg(long)]
    pub openbao_token: Option<String>,
    /// OpenBao PKI mount and role
    #[arg(long, default_value = "pki")]
    pub openbao_mount: String,
    #[arg(long, default_value = "server")]
    pub openbao_role: String,
    /// hapki: the certificates' validity as a duration (90s, 12h), instead of the profile's
    #[arg(long)]
    pub ttl: Option<String>,
    /// hapki: send no Idempotency-Key (to fill a store whose keys would have been forgotten,
    /// as in a store filled over months; a retried request may then issue twice)
    #[arg(long)]
    pub no_idempotency_key: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    on: TargetArgs,
    /// Requests in flight at once
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Requests to send in all
    #[arg(long, default_value_t = 5000)]
    requests: usize,
}

pub async fn issue(ctx: &Ctx, args: BenchArgs) -> CliResult {
    if args.concurrency == 0 || args.requests == 0 {
        return Err(Failure::usage("--concurrency and --requests must be at least 1"));
    }
    let bar = progress(args.requests, "making CSRs")?;
    let csrs = Arc::new(make_csrs(args.requests, &bar)?);
    let sender = Sender::new(ctx, &args.on)?;
    bar.reset();
    bar.set_message("issuing");
    let load = {
        let (csrs, sender) = (csrs.clone(), sender.clone());
        run_load(args.concurrency, args.requests, &bar, move |i| {
            let (csrs, sender) = (csrs.clone(), sender.clone());
            async move { sender.send(i, &csrs[i]).await.map(|_| ()) }
        })
        .await?
    };
    let Load {
        latencies,
        errors,
        first_error,
        elapsed,
    } = load;
    bar.finish_and_clear();
    let pct = |p: f64| percentile(&latencies, p);
    let ok = latencies.len();
    let rate = ok as f64 / elapsed.as_secs_f64();
    let out = BenchReport {
        target: format!("{:?}", args.on.target).to_lowercase(),
        concurrency: args.concurrency,
        requests: args.requests,
        succeeded: ok,
        failed: errors,
        seconds: elapsed.as_secs_f64(),
        certs_per_sec: rate,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        first_error,
    };
    record(
        ctx.output,
        &out,
        vec![
            ("target", format!("{:?}", args.on.target).to_lowercase()),
            ("concurrency", args.concurrency.to_string()),
            ("succeeded", format!("{ok} of {}", args.requests)),
            ("certs/s", format!("{rate:.0}")),
            ("p50", format!("{:.2} ms", pct(0.50))),
            ("p99", format!("{:.2} ms", pct(0.99))),
        ],
    );
    verdict(errors, out.first_error.as_deref(), "requests")
}

/// What a load run saw: each success's latency (sorted), the failures and the first one's
/// message, and the wall time.
pub struct Load {
    pub latencies: Vec<std::time::Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: std::time::Duration,
}

/// Runs `requests` calls of `send(i)`, `concurrency` at a time, ticking `bar` for each.
pub async fn run_load<F, Fut>(concurrency: usize, requests: usize, bar: &ProgressBar, send: F) -> Result<Load, Failure>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (send, next, bar) = (send.clone(), next.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return (latencies, errors, first_error);
                }
                let t0 = Instant::now();
                match send(i).await {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                bar.inc(1);
            }
        }));
    }
    let mut load = Load {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Default::default(),
    };
    for t in tasks {
        let (l, e, f) = t.await.map_err(|e| Failure::other(e.to_string()))?;
        load.latencies.extend(l);
        load.errors += e;
        if load.first_error.is_none() {
            load.first_error = f;
        }
    }
    load.elapsed = started.elapsed();
    load.latencies.sort();
    Ok(load)
}

/// A progress bar of `n` steps labelled `msg`.
pub fn progress(n: usize, msg: &'static str) -> Result<ProgressBar, Failure> {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:12} [{bar:40}] {pos}/{len} {per_sec}")
            .map_err(|e| Failure::other(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    Ok(bar)
}

/// A run with failures fails, naming the first; `what` is what failed (`requests`).
pub fn verdict(errors: usize, first: Option<&str>, what: &str) -> CliResult {
    if errors > 0 {
        return Err(Failure::other(format!(
            "{errors} {what} failed; first: {}",
            first.unwrap_or("?")
        )));
    }
    Ok(())
}

/// The `p` quantile of sorted `latencies`, in milliseconds.
pub fn percentile(latencies: &[std::time::Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies[idx].as_secs_f64() * 1000.0
}

pub fn make_csrs(n: usize, bar: &ProgressBar) -> Result<Vec<String>, Failure> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = SigningKey::generate(KeyType::EcP256)?;
        let cn = format!("bench-{i}.example.com");
        let der = build_csr(&key, &SubjectSpec::cn(&cn).to_name()?, &[San::Dns(cn.clone())])?;
        out.push(encode(PemLabel::CertificateRequest, &der));
        bar.inc(1);
    }
    Ok(out)
}

/// Issues (and revokes) on hapki or OpenBao.
#[derive(Clone)]
pub enum Sender {
    Hapki {
        client: Arc<crate::client::Client>,
        profile: String,
        ttl: Option<String>,
    },
    Openbao {
        http: reqwest::Client,
        /// The mount's base, e.g. http://127.0.0.1:8200/v1/pki
        base: String,
        role: String,
        token: String,
    },
}

impl Sender {
    pub fn new(ctx: &Ctx, args: &TargetArgs) -> Result<Sender, Failure> {
        Ok(match args.target {
            Target::Hapki => Sender::Hapki {
                client: Arc::new(match args.no_idempotency_key {
                    true => ctx.client()?.without_idempotency_keys(),
                    false => ctx.client()?,
                }),
                profile: args.profile.clone(),
                ttl: args.ttl.clone(),
            },
            Target::Openbao => {
                let base = args
                    .openbao_url
                    .clone()
                    .ok_or_else(|| Failure::usage("--openbao-url is required"))?;
                let token = args
                    .openbao_token
                    .clone()
                    .or_else(|| std::env::var("BAO_TOKEN").ok())
                    .ok_or_else(|| Failure::usage("--openbao-token or BAO_TOKEN is required"))?;
                Sender::Openbao {
                    http: reqwest::Client::new(),
                    base: format!("{}/v1/{}", base.trim_end_matches('/'), args.openbao_mount),
                    role: args.openbao_role.clone(),
                    token,
                }
            }
        })
    }

    /// Issues certificate `i` from `csr`; returns its serial as the target writes it.
    pub async fn send(&self, i: usize, csr: &str) -> Result<String, String> {
        match self {
            Sender::Hapki { client, profile, ttl } => {
                let req = IssueRequest {
                    csr: csr.to_string(),
                    profile: profile.clone(),
                    issuer: None,
                    validity_days: None,
                    ttl: ttl.clone(),
                };
                client
                    .post::<_, Issued>("/v1/certs", &req)
                    .await
                    .map(|issued| issued.serial)
                    .map_err(|e| e.to_string())
            }
            Sender::Openbao { base, role, .. } => {
                let body = json!({"csr": csr, "common_name": format!("bench-{i}.example.com")});
                let data = self.openbao(&format!("{base}/sign/{role}"), &body).await?;
                data["serial_number"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("OpenBao answered no serial_number: {data}"))
            }
        }
    }

    /// Revokes `serial`; hapki answers once a CRL lists it, OpenBao (as configured by
    /// bench/lib.sh) once it rebuilt its CRL.
    pub async fn revoke(&self, serial: &str) -> Result<(), String> {
        match self {
            Sender::Hapki { client, .. } => {
                let body = RevokeRequest {
                    reason: Some("superseded".into()),
                };
                client
                    .post::<_, Revoked>(&format!("/v1/certs/{serial}/revoke"), &body)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Sender::Openbao { base, .. } => self
                .openbao(&format!("{base}/revoke"), &json!({"serial_number": serial}))
                .await
                .map(|_| ()),
        }
    }

    /// POSTs `body` to OpenBao at `url`; returns the answer's `data`.
    async fn openbao(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let Sender::Openbao { http, token, .. } = self else {
            return Err("not OpenBao".into());
        };
        let resp = http
            .post(url)
            .header("X-Vault-Token", token)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{}: {}", resp.status(), resp.text().await.unwrap_or_default()));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        Ok(v["data"].clone())
    }
}
