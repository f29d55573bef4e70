//! Command-line definitions and dispatch. Global client options come from
//! flags, then `HAPKI_*` environment variables, then `~/.config/hapki/config.toml`.

mod acme;
mod audit;
mod backup;
mod bench;
mod bench_ocsp;
mod bench_revoke;
mod ca;
mod certs;
mod cluster;
mod keys;
mod local;
mod misc;
mod node;
mod outfile;
mod output;
mod server;
mod tidy;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::client::{Client, ClientConfig, ClientError};

/// A failure with the exit code the process ends with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn other(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<hapki_domain::DomainError> for Failure {
    fn from(e: hapki_domain::DomainError) -> Self {
        Failure::usage(e.to_string())
    }
}

pub type CliResult = Result<(), Failure>;

/// Output format of listings and results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Cli {
    /// Whether this runs a node (every other command is a client or a local tool).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Server(_))
    }
}

#[derive(Parser)]
#[command(
    name = "hapki",
    version,
    about = "A highly available certificate authority and OCSP responder"
)]
pub struct Cli {
    /// Node URL, or a comma-separated failover list tried in order [env: HAPKI_URL]
    #[arg(long, global = true)]
    url: Option<String>,
    /// Bearer token; visible to other local users on the command line, so prefer --token-file [env: HAPKI_TOKEN]
    #[arg(long, global = true)]
    token: Option<String>,
    /// File holding the bearer token (e.g. <data-dir>/admin-token) [env: HAPKI_TOKEN_FILE]
    #[arg(long, global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// CA certificate that the node's HTTPS certificate chains to (<data-dir>/api-ca.pem) [env: HAPKI_CA_CERT]
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Output format [env: HAPKI_OUTPUT]
    #[arg(long, global = true, value_enum)]
    output: Option<Output>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node
    Server(server::ServerArgs),
    /// Make a private key and a CSR: `hapki csr NAME CN:host subjectAltName:a,b`
    Csr(local::CsrArgs),
    /// Concatenate certificates into a trust bundle
    Bundle(local::BundleArgs),
    /// Certificates: issue, generate, get, list, revoke, show
    #[command(subcommand)]
    Cert(certs::CertCommand),
    /// Certificate authorities
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Certificate revocation lists
    #[command(subcommand)]
    Crl(ca::CrlCommand),
    /// Certificate profiles
    #[command(subcommand)]
    Profile(misc::ProfileCommand),
    /// API tokens
    #[command(subcommand)]
    Token(misc::TokenCommand),
    /// The key archive: archive keys, list them, recover one with approvals
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Encrypted backups of the whole state: create, inspect, list, restore
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// The signed audit log: list, export, verify
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The expiry tidy: what it removes and when, and a run now
    #[command(subcommand)]
    Tidy(tidy::TidyCommand),
    /// ACME directories: External Account Binding keys, settings, renewal hints
    #[command(subcommand)]
    Acme(acme::AcmeCommand),
    /// This node's status and state digest
    Status,
    /// The cluster: members, roles, replicated and node-local data
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// This node itself: unseal it, move it to another root of trust
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Load generators (issuance throughput and latency)
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Issue certificates from fresh EC P-256 CSRs at a fixed concurrency
    Issue(bench::BenchArgs),
    /// Ask an OCSP responder about many serials at a fixed concurrency (GET or POST)
    Ocsp(bench_ocsp::OcspBenchArgs),
    /// Issue certificates, then revoke them all at a fixed concurrency
    Revoke(bench_revoke::RevokeBenchArgs),
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    retry_secs: Option<f64>,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
    output: Option<String>,
}

/// What every client command gets: the output format and a way to build a client.
pub struct Ctx {
    pub output: Output,
    client: ClientConfig,
}

impl Ctx {
    pub fn client(&self) -> Result<Client, Failure> {
        Ok(Client::new(self.client.clone())?)
    }

    /// The client settings, to derive a client for another node from.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client
    }
}

fn load_ctx(cli: &Cli) -> Result<Ctx, Failure> {
    let file = match std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/hapki/config.toml")) {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            toml::from_str::<FileConfig>(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
        }
        _ => FileConfig::default(),
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = cli
        .url
        .clone()
        .or_else(|| env("HAPKI_URL"))
        .or(file.url)
        .unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let output = match cli.output {
        Some(o) => o,
        None => match env("HAPKI_OUTPUT").or(file.output).as_deref() {
            None | Some("table") => Output::Table,
            Some("json") => Output::Json,
            Some(other) => return Err(Failure::usage(format!("output '{other}' is not table or json"))),
        },
    };
    let retry_secs = match env("HAPKI_RETRY_SECS").or(file.retry_secs.map(|r| r.to_string())) {
        None => std::time::Duration::from_secs(10),
        Some(v) => std::time::Duration::from_secs_f64(
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
                .ok_or_else(|| Failure::usage(format!("retry seconds '{v}' is not a number of seconds (0-3600)")))?,
        ),
    };
    Ok(Ctx {
        output,
        client: ClientConfig {
            urls: url
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect(),
            token: match cli
                .token_file
                .clone()
                .or_else(|| env("HAPKI_TOKEN_FILE").map(PathBuf::from))
            {
                Some(path) if cli.token.is_none() => Some(secret_file(&path)?),
                _ => cli.token.clone().or_else(|| env("HAPKI_TOKEN")).or(file.token),
            },
            ca_cert: cli
                .ca_cert
                .clone()
                .or_else(|| env("HAPKI_CA_CERT").map(PathBuf::from))
                .or(file.ca_cert),
            extra_roots: Vec::new(),
            retry: retry_secs,
        },
    })
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> CliResult {
    let ctx = load_ctx(&cli)?;
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Csr(args) => local::csr(&ctx, args),
        Command::Bundle(args) => local::bundle(args),
        Command::Cert(c) => certs::run(&ctx, c).await,
        Command::Ca(c) => ca::run(&ctx, c).await,
        Command::Crl(c) => ca::run_crl(&ctx, c).await,
        Command::Profile(c) => misc::run_profile(&ctx, c).await,
        Command::Token(c) => misc::run_token(&ctx, c).await,
        Command::Key(c) => keys::run(&ctx, c).await,
        Command::Backup(c) => backup::run(&ctx, c).await,
        Command::Audit(c) => audit::run(&ctx, c).await,
        Command::Tidy(c) => tidy::run(&ctx, c).await,
        Command::Acme(c) => acme::run(&ctx, c).await,
        Command::Status => misc::status(&ctx).await,
        Command::Cluster(c) => cluster::run(&ctx, c).await,
        Command::Node(c) => node::run(&ctx, c).await,
        Command::Bench(BenchCommand::Issue(args)) => bench::issue(&ctx, args).await,
        Command::Bench(BenchCommand::Ocsp(args)) => bench_ocsp::ocsp(&ctx, args).await,
        Command::Bench(BenchCommand::Revoke(args)) => bench_revoke::revoke(&ctx, args).await,
    }
}

/// Writes a file, refusing to replace one unless `force`.
pub fn write_file(path: &std::path::Path, data: &[u8], secret: bool, force: bool) -> CliResult {
    outfile::OutFile::claim(path, secret, force)?.write(data, "")
}

/// Reads a file with an error that names it.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// A secret kept in a file (a token, a password): its first line, without the line ending.
pub fn secret_file(path: &std::path::Path) -> Result<String, Failure> {
    let text = String::from_utf8(read_file(path)?)
        .map_err(|_| Failure::usage(format!("{} does not hold text", path.display())))?;
    let secret = text.lines().next().unwrap_or("").trim_end_matches('\r').to_string();
    if secret.is_empty() {
        return Err(Failure::usage(format!("{} is empty", path.display())));
    }
    Ok(secret)
}
