//! `hapki cluster ...`: forming a cluster, joining nodes by CSR exchange,
//! following a join live, looking at the cluster, removing nodes and resetting one.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hapki_api::cluster::{
    ClusterCreated, ClusterInfo, ClusterSettings, ClusterStatus, CreateNodeRequest, DeleteRequest, JoinRequest,
    JoinStarted, Member, MemberList, NodeCsr, NodeRemoved, Phase, Resetting, Rotation, SettingsChange, SignedNode,
    Summary, SummaryRow,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::{json, list, opt, print, record};
use super::{CliResult, Client, ClientConfig, Ctx, Failure, Output};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Make this fresh node a one-node cluster (--token is its bootstrap token)
    New,
    /// Make a key and CSR for this fresh node to join a cluster (--token is its bootstrap token)
    Csr(CsrArgs),
    /// Join this fresh node to a cluster (--token is its bootstrap token); its data is deleted
    Join(JoinArgs),
    /// csr, nodes create and join in one go, from an admin's workstation
    Fulljoin(FulljoinArgs),
    /// Where this node stands: not clustered, joining (with the phase), ready, killed
    Status,
    /// This node, the members, and which data is replicated and which node-local
    Info,
    /// Every node's status, role, version, lag and errors, and an overall GOOD or BAD
    Summary,
    /// Show the replicated cluster settings, or change the voters target or serial mode
    Settings(SettingsArgs),
    /// Cluster nodes
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Reset this node (after it was removed) so it can join again or start a new cluster
    Delete(DeleteArgs),
    /// Seal every CA, OCSP and internal key under a new cluster KEK (every member must be up)
    RotateKek,
}

#[derive(Subcommand)]
pub enum NodesCommand {
    /// List the members
    List,
    /// Sign a joining node's CSR; writes the certificate file `cluster join --cert` takes
    Create(CreateArgs),
    /// One node as the summary shows it
    Get(IdArgs),
    /// Remove another node from the cluster
    Delete(IdArgs),
}

#[derive(Args)]
pub struct CsrArgs {
    /// Write the CSR here instead of printing it
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The CSR `hapki cluster csr` made on the joining node
    #[arg(long)]
    csr: PathBuf,
    /// Where to write the node certificate and the cluster's internal CA [default: node-<id>.pem]
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct JoinArgs {
    /// A member's cluster address, host:port (as `cluster nodes create` lists)
    #[arg(long)]
    member: String,
    /// The certificate file `cluster nodes create` wrote
    #[arg(long)]
    cert: PathBuf,
    /// Do not ask before deleting this node's data
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
pub struct FulljoinArgs {
    /// URL of a member's API (the global --token and --ca-cert are for it)
    #[arg(long)]
    member: String,
    /// URL of the fresh node's API
    #[arg(long)]
    newnode: String,
    /// The fresh node's bootstrap token (`<data-dir>/bootstrap-token` on it); prefer --newnode-token-file
    #[arg(
        long,
        required_unless_present = "newnode_token_file",
        conflicts_with = "newnode_token_file"
    )]
    newnode_token: Option<String>,
    /// File holding the fresh node's bootstrap token (a copy of `<data-dir>/bootstrap-token` on it)
    #[arg(long)]
    newnode_token_file: Option<PathBuf>,
    /// The fresh node's `<data-dir>/api-ca.pem`
    #[arg(long)]
    newnode_ca_cert: Option<PathBuf>,
    /// Do not ask before deleting the fresh node's data
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
pub struct SettingsArgs {
    /// How many voters the cluster keeps: 3 or 5 (learners are promoted up to it)
    #[arg(long)]
    voters_target: Option<u8>,
    /// random (126 random bits) or sequential (ranges leased to each node through the log)
    #[arg(long)]
    serial_mode: Option<String>,
    /// In sequential mode, how many serials a node leases at a time
    #[arg(long)]
    serial_range: Option<u64>,
    /// How many approvals a key recovery needs, from tokens other than the requester's (1-10)
    #[arg(long)]
    recovery_approvals: Option<u8>,
    /// How long an expired certificate is kept before the tidy removes it (30d, 12h, seconds)
    #[arg(long, value_parser = parse_duration)]
    tidy_retention: Option<u64>,
    /// Certificates per tidy batch (1-10000)
    #[arg(long)]
    tidy_batch: Option<u32>,
    /// The share of the log's time (percent, 1-100) a tidy may use
    #[arg(long)]
    tidy_share: Option<u8>,
    /// How often delta CRLs are published, in seconds (0: none)
    #[arg(long)]
    delta_crl_secs: Option<u64>,
    /// Revoked certificates per CRL partition: past it, new certificates name one of
    /// several partition CRLs (0: one CRL per issuer)
    #[arg(long)]
    crl_partition_size: Option<u64>,
}

#[derive(Args)]
pub struct IdArgs {
    /// Node id, as `hapki cluster nodes list` shows it
    #[arg(long)]
    id: String,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Do not ask before deleting this node's data
    #[arg(long)]
    yes: bool,
    /// Reset even if this node still counts itself a member (its cluster is gone)
    #[arg(long)]
    force: bool,
}

fn rows(nodes: &[Member]) -> Vec<Vec<String>> {
    nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.name.clone(),
                n.role.name().to_string(),
                n.api.clone(),
                n.cluster.clone(),
            ]
        })
        .collect()
}

const HEADERS: [&str; 5] = ["id", "name", "role", "api", "cluster"];

pub async fn run(ctx: &Ctx, cmd: ClusterCommand) -> CliResult {
    match cmd {
        ClusterCommand::New => {
            let v: ClusterCreated = ctx.client()?.post("/v1/cluster/new", &()).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("cluster", opt(v.cluster_id.as_ref())),
                    ("node", v.node_id.clone()),
                    ("admin token", v.admin_token.clone()),
                    ("admin token file", v.admin_token_file.clone()),
                    ("API CA file", v.api_ca_file.clone()),
                ],
            );
            if ctx.output == Output::Table {
                eprintln!(
                    "The node's HTTPS certificate now chains to the cluster's internal CA: use {} as --ca-cert.",
                    v.api_ca_file
                );
            }
        }
        ClusterCommand::Csr(args) => {
            let v: NodeCsr = ctx.client()?.post("/v1/cluster/csr", &()).await?;
            match args.out {
                Some(path) => {
                    super::write_file(&path, v.csr.as_bytes(), false, true)?;
                    record(
                        ctx.output,
                        &v,
                        vec![("node", v.node_id.clone()), ("written", path.display().to_string())],
                    );
                }
                None if ctx.output == Output::Json => json(&v),
                None => print!("{}", v.csr),
            }
        }
        ClusterCommand::Join(args) => {
            let bundle = read(&args.cert)?;
            let client = client_with_bundle(ctx.client_config().clone(), &bundle)?;
            let status: ClusterStatus = client.get("/v1/cluster/status").await?;
            confirm(args.yes, &status)?;
            let req = JoinRequest {
                member: args.member,
                certificate: bundle,
            };
            let _: JoinStarted = client.post("/v1/cluster/join", &req).await?;
            follow(ctx.output, &client).await?;
        }
        ClusterCommand::Fulljoin(args) => fulljoin(ctx, args).await?,
        ClusterCommand::Status => {
            let v: ClusterStatus = ctx.client()?.get("/v1/cluster/status").await?;
            let reason = match &v.phase {
                Phase::Killed { reason } | Phase::Unknown { reason } => Some(reason.clone()),
                _ => None,
            };
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.node_id.clone()),
                    ("name", v.name.clone()),
                    ("status", v.status.clone()),
                    ("reason", opt(reason)),
                    ("cluster", opt(v.cluster_id.as_ref())),
                    ("leader", opt(v.leader.as_ref())),
                    ("applied index", opt(v.applied_index)),
                    ("version", v.version.clone()),
                ],
            );
        }
        ClusterCommand::Info => {
            let v: ClusterInfo = ctx.client()?.get("/v1/cluster/info").await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("cluster", opt(v.cluster_id.as_ref())),
                    ("this node", v.node_id.clone()),
                    ("status", v.status.clone()),
                    ("leader", opt(v.leader.as_ref())),
                    ("applied index", opt(v.applied_index)),
                    ("digest", v.digest.clone()),
                    ("version", v.version.clone()),
                    ("voters target", v.voters_target.to_string()),
                    ("replicated", v.replicated.join("; ")),
                    ("node-local", v.node_local.join("; ")),
                ],
            );
            if ctx.output == Output::Table {
                println!();
                print(ctx.output, &v, &HEADERS, rows(&v.nodes));
            }
        }
        ClusterCommand::Summary => summary(ctx).await?,
        ClusterCommand::Settings(args) => {
            let client = ctx.client()?;
            let change = SettingsChange {
                voters_target: args.voters_target,
                serial_mode: args.serial_mode,
                serial_range: args.serial_range,
                recovery_approvals: args.recovery_approvals,
                tidy_retention_secs: args.tidy_retention,
                tidy_batch: args.tidy_batch,
                tidy_share_percent: args.tidy_share,
                delta_crl_secs: args.delta_crl_secs,
                crl_partition_size: args.crl_partition_size,
            };
            let nothing = change.voters_target.is_none()
                && change.serial_mode.is_none()
                && change.serial_range.is_none()
                && change.recovery_approvals.is_none()
                && change.tidy_retention_secs.is_none()
                && change.tidy_batch.is_none()
                && change.tidy_share_percent.is_none()
                && change.delta_crl_secs.is_none()
                && change.crl_partition_size.is_none();
            let v: ClusterSettings = if nothing {
                client.get("/v1/cluster/settings").await?
            } else {
                client.put("/v1/cluster/settings", &change).await?
            };
            record(
                ctx.output,
                &v,
                vec![
                    ("voters target", v.voters_target.to_string()),
                    ("serial mode", v.serial_mode.clone()),
                    ("serial range", v.serial_range.to_string()),
                    ("publication base URL", v.publication_base_url.clone()),
                    ("CRL validity (s)", v.crl_validity_secs.to_string()),
                    ("OCSP validity (s)", v.ocsp_validity_secs.to_string()),
                    ("recovery approvals", v.recovery_approvals.to_string()),
                    ("tidy retention (s)", v.tidy_retention_secs.to_string()),
                    ("tidy batch", v.tidy_batch.to_string()),
                    ("tidy share (%)", v.tidy_share_percent.to_string()),
                    ("delta CRLs every (s)", v.delta_crl_secs.to_string()),
                    ("CRL partition size", v.crl_partition_size.to_string()),
                    ("promoted", list(&v.promoted, ", ")),
                ],
            );
        }
        ClusterCommand::Nodes(NodesCommand::List) => {
            let v: MemberList = ctx.client()?.get("/v1/cluster/nodes").await?;
            print(ctx.output, &v, &HEADERS, rows(&v.nodes));
        }
        ClusterCommand::Nodes(NodesCommand::Create(args)) => {
            let csr = read(&args.csr)?;
            let v: SignedNode = ctx
                .client()?
                .post("/v1/cluster/nodes", &CreateNodeRequest { csr })
                .await?;
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from(format!("node-{}.pem", v.node_id)));
            super::write_file(&out, v.certificate.as_bytes(), false, true)?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.node_id.clone()),
                    ("name", v.name.clone()),
                    ("certificate", out.display().to_string()),
                    ("members", v.members.join(", ")),
                ],
            );
            if ctx.output == Output::Table {
                eprintln!(
                    "Next, on the new node: hapki cluster join --member {} --cert {}",
                    v.members.first().map(String::as_str).unwrap_or("HOST:PORT"),
                    out.display()
                );
            }
        }
        ClusterCommand::Nodes(NodesCommand::Get(args)) => {
            let v: SummaryRow = ctx
                .client()?
                .get(&format!("/v1/cluster/nodes/{}", node_id(&args.id)?))
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.id.clone()),
                    ("name", v.name.clone()),
                    ("status", v.status.clone()),
                    ("role", v.role.clone()),
                    ("version", opt(v.version.as_ref())),
                    ("address", v.address.clone()),
                    ("root of trust", opt(v.root_of_trust.as_ref())),
                    ("applied index", opt(v.applied_index)),
                    ("digest", opt(v.digest.as_ref())),
                    ("reason", opt(v.reason.as_ref())),
                ],
            );
        }
        ClusterCommand::Nodes(NodesCommand::Delete(args)) => {
            let v: NodeRemoved = ctx
                .client()?
                .delete(&format!("/v1/cluster/nodes/{}", node_id(&args.id)?))
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("removed", v.removed.clone()),
                    ("promoted", opt(v.promoted.as_ref())),
                    ("next", v.next.clone()),
                ],
            );
        }
        ClusterCommand::RotateKek => {
            let v: Rotation = ctx.client()?.post("/v1/cluster/rotate-kek", &()).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("from", v.from.to_string()),
                    ("to", v.to.to_string()),
                    ("keys", v.keys.to_string()),
                    ("nodes", v.nodes.to_string()),
                    (
                        "next",
                        "every node now seals with the new KEK; the old one opens nothing in the state".into(),
                    ),
                ],
            );
        }
        ClusterCommand::Delete(args) => {
            let client = ctx.client()?;
            let status: ClusterStatus = client.get("/v1/cluster/status").await?;
            confirm(args.yes, &status)?;
            let v: Resetting = client
                .post("/v1/cluster/delete", &DeleteRequest { force: args.force })
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.node_id.clone()),
                    ("status", v.status.clone()),
                    ("next", v.next.clone()),
                ],
            );
        }
    }
    Ok(())
}

/// A node id as `cluster nodes list` shows it (hex digits), checked before it goes into a URL.
fn node_id(id: &str) -> Result<&str, Failure> {
    let id = id.trim();
    if id.is_empty() || id.len() > 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::usage(format!(
            "'{id}' is not a node id: 16 hex digits, as `hapki cluster nodes list` shows"
        )));
    }
    Ok(id)
}

fn read(path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// A client that also trusts the internal CA in a node certificate bundle: the joining
/// node's HTTPS certificate moves to it when the join completes.
fn client_with_bundle(mut cfg: ClientConfig, bundle: &str) -> Result<Client, Failure> {
    let certs = hapki_domain::pem::certificates(bundle.as_bytes())
        .map_err(|e| Failure::usage(format!("the certificate file: {e}")))?;
    cfg.extra_roots.extend(certs.into_iter().skip(1));
    Ok(Client::new(cfg)?)
}

/// Asks before a node's data is deleted; `--yes` answers for scripts.
fn confirm(yes: bool, status: &ClusterStatus) -> CliResult {
    if yes {
        return Ok(());
    }
    let warning = format!(
        "All data on node {} ({}, now {}) will be deleted.",
        status.node_id, status.name, status.status
    );
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!("{warning} Pass --yes to go ahead.")));
    }
    eprint!("{warning} Continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::other(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::other("not confirmed; nothing was changed"))
    }
}

/// Follows a join on the joining node until it is `ready`, `killed` or `unknown`,
/// printing each phase as it is reached under a progress bar.
async fn follow(output: Output, client: &Client) -> CliResult {
    let live = output == Output::Table && std::io::stderr().is_terminal();
    let bar = if live {
        let b = ProgressBar::new(5);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:25}] {pos}/{len} {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut shown = 0usize;
    let mut failures = 0;
    loop {
        let v: ClusterStatus = match client.get("/v1/cluster/status").await {
            Ok(v) => {
                failures = 0;
                v
            }
            Err(e) if failures < 50 => {
                failures += 1;
                bar.set_message(format!("waiting for the node: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => {
                bar.abandon();
                return Err(e.into());
            }
        };
        for change in v.history.iter().skip(shown) {
            let label = &change.status;
            if live {
                bar.println(label);
            } else if output == Output::Table {
                eprintln!("{label}");
            }
        }
        shown = v.history.len();
        let status = v.status.clone();
        match &v.phase {
            Phase::Joining { step, detail, .. } => {
                bar.set_position(u64::from(step.saturating_sub(1)));
                bar.set_message(if detail.is_empty() {
                    status
                } else {
                    format!("{status}: {detail}")
                });
            }
            Phase::Ready => {
                bar.set_position(5);
                bar.finish_with_message("ready");
                if output == Output::Json {
                    json(&v);
                }
                return Ok(());
            }
            Phase::Killed { reason } | Phase::Unknown { reason } => {
                bar.abandon_with_message(status.clone());
                if output == Output::Json {
                    json(&v);
                }
                return Err(Failure::other(format!(
                    "the join failed, the node is {status}: {reason}; reset it with `hapki cluster delete`, then join again"
                )));
            }
            Phase::Sealed { reason } => {
                bar.abandon_with_message(status.clone());
                return Err(Failure::other(format!(
                    "the node is sealed: {reason}; it unseals by itself once its root of trust is back (or `hapki node unseal`)"
                )));
            }
            Phase::NotClustered => bar.set_message(status),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn fulljoin(ctx: &Ctx, args: FulljoinArgs) -> CliResult {
    if args.newnode_ca_cert.is_none() && args.newnode.starts_with("https://") {
        // --ca-cert is the members' CA; a fresh node serves a throwaway CA of its own.
        return Err(Failure::usage(
            "pass --newnode-ca-cert with the fresh node's <data-dir>/api-ca.pem: until it joins, it is not served by the cluster's CA (--ca-cert)",
        ));
    }
    let mut member_cfg = ctx.client_config().clone();
    member_cfg.urls = vec![args.member.clone()];
    let member = Client::new(member_cfg)?;
    let newnode_cfg = ClientConfig {
        urls: vec![args.newnode.clone()],
        token: Some(match (&args.newnode_token, &args.newnode_token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(path)) => super::secret_file(path)?,
            (None, None) => return Err(Failure::usage("pass --newnode-token-file (or --newnode-token)")),
        }),
        ca_cert: args.newnode_ca_cert.clone(),
        extra_roots: Vec::new(),
        retry: ctx.client_config().retry,
    };
    let newnode = Client::new(newnode_cfg.clone())?;
    let status: ClusterStatus = newnode.get("/v1/cluster/status").await?;
    confirm(args.yes, &status)?;
    let member_status: ClusterStatus = member.get("/v1/cluster/status").await?;
    let csr: NodeCsr = newnode.post("/v1/cluster/csr", &()).await?;
    if ctx.output == Output::Table {
        eprintln!("CSR of node {} made on {}", csr.node_id, args.newnode);
    }
    let signed: SignedNode = member
        .post("/v1/cluster/nodes", &CreateNodeRequest { csr: csr.csr })
        .await?;
    let bundle = signed.certificate.clone();
    // The member the admin named, if it has a cluster address; any member otherwise.
    let target = member_status
        .cluster
        .or_else(|| signed.members.first().cloned())
        .ok_or_else(|| Failure::other("the member reports no cluster address; start it with --cluster-listen"))?;
    if ctx.output == Output::Table {
        eprintln!("Node certificate signed by {}; joining through {target}", args.member);
    }
    let newnode = client_with_bundle(newnode_cfg, &bundle)?;
    let req = JoinRequest {
        member: target,
        certificate: bundle,
    };
    let _: JoinStarted = newnode.post("/v1/cluster/join", &req).await?;
    follow(ctx.output, &newnode).await
}

async fn summary(ctx: &Ctx) -> CliResult {
    let v: Summary = ctx.client()?.get("/v1/cluster/summary").await?;
    let rows = v
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.name.clone(),
                n.status.clone(),
                n.role.clone(),
                opt(n.version.as_ref()),
                opt(n.max_format),
                n.address.clone(),
                opt(n.root_of_trust.as_ref()),
                opt(n.last_contact_ms.map(|ms| format!("{ms} ms ago"))),
                opt(n.matched_index),
                opt(n.lag_entries),
                opt(n.lag_bytes),
                opt(n.apply_rate.map(|r| format!("{r:.1}/s"))),
                n.digest
                    .as_deref()
                    .map(|d| d.chars().take(12).collect())
                    .unwrap_or_else(|| "-".into()),
                opt(n.errors.last().map(|e| &e.message)),
            ]
        })
        .collect();
    print(
        ctx.output,
        &v,
        &[
            "id",
            "name",
            "status",
            "role",
            "version",
            "format",
            "address",
            "root of trust",
            "last contact",
            "matched",
            "lag",
            "lag bytes",
            "apply rate",
            "digest",
            "recent error",
        ],
        rows,
    );
    if ctx.output == Output::Table {
        println!();
        let rising = match v.members_apply {
            Some(f) if f > v.effective_format => format!("; every member applies {f}, so it rises within seconds"),
            Some(_) => String::new(),
            None => "; not every member answered".into(),
        };
        println!("effective state format: {}{rising}", v.effective_format);
        println!("{}  (computed {})", v.overall, v.computed_at);
    }
    Ok(())
}

/// A duration given as `30d`, `12h`, `45m`, `90s` or seconds.
fn parse_duration(s: &str) -> Result<u64, String> {
    hapki_server::pki::parse_duration(s).map_err(|e| e.to_string())
}
