//! `hapki bench ocsp`: a load generator for an OCSP responder. It asks about the given
//! serials (and as many unknown ones again, a third of the mix), round-robin, by GET or
//! POST, at a fixed concurrency over keep-alive connections, and reports answers per
//! second, latency percentiles and its own CPU time per answer. With `--nonce` each
//! request carries a fresh nonce, so each answer must be signed for it.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use clap::{Args, ValueEnum};
use hapki_domain::issue::summarize;
use hapki_domain::ocsp::{request_der, IssuerHashes};
use hapki_domain::serial::Serial;

use super::bench::{percentile, progress, run_load, verdict, Load};
use super::output::record;
use super::{read_file, CliResult, Ctx, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OcspMethod {
    Get,
    Post,
}

#[derive(Args)]
pub struct OcspBenchArgs {
    /// The responder's URL, e.g. http://127.0.0.1:8080/ocsp (OpenBao: http://HOST:8200/v1/pki/ocsp)
    #[arg(long)]
    responder: String,
    /// The issuer's certificate (PEM)
    #[arg(long)]
    issuer: PathBuf,
    /// The serials to ask about, in hex, one per line
    #[arg(long)]
    serials: PathBuf,
    #[arg(long, value_enum, default_value = "get")]
    method: OcspMethod,
    /// A fresh nonce in every request
    #[arg(long)]
    nonce: bool,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
}

/// What `hapki bench ocsp` reports (`--output json`).
#[derive(serde::Serialize)]
struct OcspReport {
    method: String,
    nonce: bool,
    concurrency: usize,
    serials: usize,
    requests: usize,
    succeeded: usize,
    failed: usize,
    seconds: f64,
    responses_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    client_cpu_us_per_response: f64,
    first_error: Option<String>,
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A fresh 16-octet nonce, as the DER OCTET STRING RFC 8954 carries.
fn fresh_nonce() -> Vec<u8> {
    let mut value = [0u8; 16];
    aws_lc_rs::rand::fill(&mut value).expect("the system's randomness");
    let mut der = vec![0x04, 16];
    der.extend_from_slice(&value);
    der
}

pub async fn ocsp(ctx: &Ctx, args: OcspBenchArgs) -> CliResult {
    if args.concurrency == 0 || args.requests == 0 {
        return Err(Failure::usage("--concurrency and --requests must be at least 1"));
    }
    let pem = read_file(&args.issuer)?;
    let der = hapki_domain::pem::certificates(&pem)?
        .into_iter()
        .next()
        .ok_or_else(|| Failure::usage(format!("{} holds no certificate", args.issuer.display())))?;
    let issuer = summarize(&der)?;
    let hashes = Arc::new(IssuerHashes::new(
        &issuer.subject_der,
        issuer.spki.subject_public_key.raw_bytes(),
    ));
    let text =
        String::from_utf8(read_file(&args.serials)?).map_err(|_| Failure::usage("the serials file is not text"))?;
    let mut serials = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        serials.push(Serial::from_hex(line).map_err(|e| Failure::usage(format!("serial {line}: {e}")))?);
    }
    if serials.is_empty() {
        return Err(Failure::usage("the serials file lists no serial"));
    }
    // As many again that this issuer never issued: a third of the mix is `unknown`.
    let known = serials.len();
    for i in 0..known.div_ceil(2) {
        serials.push(Serial::from_u64(0x7e57_0000_0000 + i as u64));
    }
    let plain: Arc<Vec<Vec<u8>>> = Arc::new(
        serials
            .iter()
            .map(|s| request_der(&hashes, *s, None))
            .collect::<Result<_, _>>()?,
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .map_err(|e| Failure::other(e.to_string()))?;
    let bar = progress(args.requests, "asking")?;
    let cpu_before = cpu_seconds();
    let (url, method, nonce) = (
        args.responder.trim_end_matches('/').to_string(),
        args.method,
        args.nonce,
    );
    let load = {
        let (plain, serials, hashes) = (plain.clone(), Arc::new(serials.clone()), hashes.clone());
        run_load(args.concurrency, args.requests, &bar, move |i| {
            let (http, url, plain, serials, hashes) = (
                http.clone(),
                url.clone(),
                plain.clone(),
                serials.clone(),
                hashes.clone(),
            );
            async move {
                let k = i % plain.len();
                let body = if nonce {
                    request_der(&hashes, serials[k], Some(fresh_nonce())).map_err(|e| e.to_string())?
                } else {
                    plain[k].clone()
                };
                let resp = match method {
                    OcspMethod::Get => {
                        let b64 = base64::engine::general_purpose::STANDARD.encode(&body);
                        let path = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
                        http.get(format!("{url}/{path}")).send().await
                    }
                    OcspMethod::Post => {
                        http.post(&url)
                            .header("content-type", "application/ocsp-request")
                            .body(body)
                            .send()
                            .await
                    }
                }
                .map_err(|e| e.to_string())?;
                let status = resp.status();
                let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
                // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED (0: successful), ... }
                let successful = [2, 4]
                    .iter()
                    .any(|&at| bytes.get(at..at + 3) == Some(&[0x0a, 0x01, 0x00][..]));
                if status.is_success() && successful {
                    Ok(())
                } else {
                    Err(format!("{status}: not a successful OCSP response"))
                }
            }
        })
        .await?
    };
    let cpu = cpu_seconds() - cpu_before;
    bar.finish_and_clear();
    let Load {
        latencies,
        errors,
        first_error,
        elapsed,
    } = load;
    let ok = latencies.len();
    let rate = ok as f64 / elapsed.as_secs_f64();
    let out = OcspReport {
        method: format!("{:?}", args.method).to_lowercase(),
        nonce: args.nonce,
        concurrency: args.concurrency,
        serials: serials.len(),
        requests: args.requests,
        succeeded: ok,
        failed: errors,
        seconds: elapsed.as_secs_f64(),
        responses_per_sec: rate,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        client_cpu_us_per_response: cpu * 1e6 / ok.max(1) as f64,
        first_error,
    };
    record(
        ctx.output,
        &out,
        vec![
            ("method", out.method.clone()),
            ("nonce", out.nonce.to_string()),
            ("serials", format!("{known} known, {} unknown", serials.len() - known)),
            ("succeeded", format!("{ok} of {}", args.requests)),
            ("responses/s", format!("{rate:.0}")),
            ("p50", format!("{:.2} ms", out.p50_ms)),
            ("p99", format!("{:.2} ms", out.p99_ms)),
            (
                "client CPU",
                format!("{:.0} µs per response", out.client_cpu_us_per_response),
            ),
        ],
    );
    verdict(errors, out.first_error.as_deref(), "requests")
}
