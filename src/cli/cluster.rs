//! `hapki cluster ...`: forming a cluster, joining nodes by CSR exchange,
//! following a join live, looking at the cluster, removing nodes and resetting one.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::output::{print, record, s};
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

fn rows(v: &Value) -> Vec<Vec<String>> {
    v["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    vec![
                        s(&n["id"]),
                        s(&n["name"]),
                        s(&n["role"]),
                        s(&n["api"]),
                        s(&n["cluster"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const HEADERS: [&str; 5] = ["id", "name", "role", "api", "cluster"];

pub async fn run(ctx: &Ctx, cmd: ClusterCommand) -> CliResult {
    match cmd {
        ClusterCommand::New => {
            let v = ctx.client()?.post("/v1/cluster/new", &json!({})).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("cluster", s(&v["cluster_id"])),
                    ("node", s(&v["node_id"])),
                    ("admin token", s(&v["admin_token"])),
                    ("admin token file", s(&v["admin_token_file"])),
                    ("API CA file", s(&v["api_ca_file"])),
                ],
            );
            if ctx.output == Output::Table {
                eprintln!(
                    "The node's HTTPS certificate now chains to the cluster's internal CA: use {} as --ca-cert.",
                    s(&v["api_ca_file"])
                );
            }
        }
        ClusterCommand::Csr(args) => {
            let v = ctx.client()?.post("/v1/cluster/csr", &json!({})).await?;
            write_or_print(ctx, &v, "csr", args.out.as_ref())?;
        }
        ClusterCommand::Join(args) => {
            let bundle = read(&args.cert)?;
            let client = client_with_bundle(ctx.client_config().clone(), &bundle)?;
            let status = client.get("/v1/cluster/status").await?;
            confirm(args.yes, &status)?;
            client
                .post(
                    "/v1/cluster/join",
                    &json!({ "member": args.member, "certificate": bundle }),
                )
                .await?;
            follow(ctx.output, &client).await?;
        }
        ClusterCommand::Fulljoin(args) => fulljoin(ctx, args).await?,
        ClusterCommand::Status => {
            let v = ctx.client()?.get("/v1/cluster/status").await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", s(&v["node_id"])),
                    ("name", s(&v["name"])),
                    ("status", s(&v["status"])),
                    ("reason", s(&v["phase"]["reason"])),
                    ("cluster", s(&v["cluster_id"])),
                    ("leader", s(&v["leader"])),
                    ("applied index", s(&v["applied_index"])),
                    ("version", s(&v["version"])),
                ],
            );
        }
        ClusterCommand::Info => {
            let v = ctx.client()?.get("/v1/cluster/info").await?;
            let list = |k: &str| {
                v[k].as_array()
                    .map(|a| a.iter().map(s).collect::<Vec<_>>().join("; "))
                    .unwrap_or_default()
            };
            record(
                ctx.output,
                &v,
                vec![
                    ("cluster", s(&v["cluster_id"])),
                    ("this node", s(&v["node_id"])),
                    ("status", s(&v["status"])),
                    ("leader", s(&v["leader"])),
                    ("applied index", s(&v["applied_index"])),
                    ("digest", s(&v["digest"])),
                    ("version", s(&v["version"])),
                    ("voters target", s(&v["voters_target"])),
                    ("replicated", list("replicated")),
                    ("node-local", list("node_local")),
                ],
            );
            if ctx.output == Output::Table {
                println!();
                print(ctx.output, &v, &HEADERS, rows(&v));
            }
        }
        ClusterCommand::Summary => summary(ctx).await?,
        ClusterCommand::Settings(args) => {
            let client = ctx.client()?;
            let mut change = serde_json::Map::new();
            if let Some(n) = args.voters_target {
                change.insert("voters_target".into(), json!(n));
            }
            if let Some(m) = args.serial_mode {
                change.insert("serial_mode".into(), json!(m));
            }
            if let Some(r) = args.serial_range {
                change.insert("serial_range".into(), json!(r));
            }
            let v = if change.is_empty() {
                client.get("/v1/cluster/settings").await?
            } else {
                client.put("/v1/cluster/settings", &Value::Object(change)).await?
            };
            let promoted = v["promoted"]
                .as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "-".into());
            record(
                ctx.output,
                &v,
                vec![
                    ("voters target", s(&v["voters_target"])),
                    ("serial mode", s(&v["serial_mode"])),
                    ("serial range", s(&v["serial_range"])),
                    ("publication base URL", s(&v["publication_base_url"])),
                    ("CRL validity (s)", s(&v["crl_validity_secs"])),
                    ("OCSP validity (s)", s(&v["ocsp_validity_secs"])),
                    ("promoted", promoted),
                ],
            );
        }
        ClusterCommand::Nodes(NodesCommand::List) => {
            let v = ctx.client()?.get("/v1/cluster/nodes").await?;
            print(ctx.output, &v, &HEADERS, rows(&v));
        }
        ClusterCommand::Nodes(NodesCommand::Create(args)) => {
            let csr = read(&args.csr)?;
            let v = ctx.client()?.post("/v1/cluster/nodes", &json!({ "csr": csr })).await?;
            let out = args
                .out
                .unwrap_or_else(|| PathBuf::from(format!("node-{}.pem", s(&v["node_id"]))));
            super::write_file(&out, s(&v["certificate"]).as_bytes(), false, true)?;
            let members = members(&v);
            record(
                ctx.output,
                &v,
                vec![
                    ("node", s(&v["node_id"])),
                    ("name", s(&v["name"])),
                    ("certificate", out.display().to_string()),
                    ("members", members.join(", ")),
                ],
            );
            if ctx.output == Output::Table {
                eprintln!(
                    "Next, on the new node: hapki cluster join --member {} --cert {}",
                    members.first().map(String::as_str).unwrap_or("HOST:PORT"),
                    out.display()
                );
            }
        }
        ClusterCommand::Nodes(NodesCommand::Get(args)) => {
            let v = ctx
                .client()?
                .get(&format!("/v1/cluster/nodes/{}", node_id(&args.id)?))
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", s(&v["id"])),
                    ("name", s(&v["name"])),
                    ("status", s(&v["status"])),
                    ("role", s(&v["role"])),
                    ("version", s(&v["version"])),
                    ("address", first(&v, &["address", "api"])),
                    ("applied index", s(&v["applied_index"])),
                    ("digest", s(&v["digest"])),
                ],
            );
        }
        ClusterCommand::Nodes(NodesCommand::Delete(args)) => {
            let v = ctx
                .client()?
                .delete(&format!("/v1/cluster/nodes/{}", node_id(&args.id)?))
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("removed", s(&v["removed"])),
                    ("promoted", s(&v["promoted"])),
                    ("next", s(&v["next"])),
                ],
            );
        }
        ClusterCommand::RotateKek => {
            let v = ctx.client()?.post("/v1/cluster/rotate-kek", &json!({})).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("from", s(&v["from"])),
                    ("to", s(&v["to"])),
                    ("keys", s(&v["keys"])),
                    ("nodes", s(&v["nodes"])),
                    (
                        "next",
                        "every node now seals with the new KEK; the old one opens nothing in the state".into(),
                    ),
                ],
            );
        }
        ClusterCommand::Delete(args) => {
            let client = ctx.client()?;
            let status = client.get("/v1/cluster/status").await?;
            confirm(args.yes, &status)?;
            let v = client
                .post("/v1/cluster/delete", &json!({ "force": args.force }))
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", s(&v["node_id"])),
                    ("status", s(&v["status"])),
                    ("next", s(&v["next"])),
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

fn first(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| &v[*k])
        .find(|x| !x.is_null())
        .map(s)
        .unwrap_or_else(|| "-".into())
}

fn members(v: &Value) -> Vec<String> {
    v["members"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default()
}

fn read(path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

fn write_or_print(ctx: &Ctx, v: &Value, field: &str, out: Option<&PathBuf>) -> CliResult {
    match out {
        Some(path) => {
            super::write_file(path, s(&v[field]).as_bytes(), false, true)?;
            record(
                ctx.output,
                v,
                vec![("node", s(&v["node_id"])), ("written", path.display().to_string())],
            );
        }
        None if ctx.output == Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        None => print!("{}", s(&v[field])),
    }
    Ok(())
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
fn confirm(yes: bool, status: &Value) -> CliResult {
    if yes {
        return Ok(());
    }
    let warning = format!(
        "All data on node {} ({}, now {}) will be deleted.",
        s(&status["node_id"]),
        s(&status["name"]),
        s(&status["status"])
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
        let v = match client.get("/v1/cluster/status").await {
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
        let history: Vec<String> = v["history"]
            .as_array()
            .map(|a| a.iter().map(|h| s(&h["status"])).collect())
            .unwrap_or_default();
        for label in history.iter().skip(shown) {
            if live {
                bar.println(label);
            } else if output == Output::Table {
                eprintln!("{label}");
            }
        }
        shown = history.len();
        let phase = &v["phase"];
        let status = s(&v["status"]);
        match phase["state"].as_str() {
            Some("joining") => {
                bar.set_position(phase["step"].as_u64().unwrap_or(1).saturating_sub(1));
                let detail = s(&phase["detail"]);
                bar.set_message(if detail == "-" || detail.is_empty() {
                    status
                } else {
                    format!("{status}: {detail}")
                });
            }
            Some("ready") => {
                bar.set_position(5);
                bar.finish_with_message("ready");
                if output == Output::Json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                return Ok(());
            }
            Some("killed") | Some("unknown") => {
                bar.abandon_with_message(status.clone());
                if output == Output::Json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                return Err(Failure::other(format!(
                    "the join failed, the node is {status}: {}; reset it with `hapki cluster delete`, then join again",
                    s(&phase["reason"])
                )));
            }
            _ => bar.set_message(status),
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
    let status = newnode.get("/v1/cluster/status").await?;
    confirm(args.yes, &status)?;
    let member_status = member.get("/v1/cluster/status").await?;
    let csr = newnode.post("/v1/cluster/csr", &json!({})).await?;
    if ctx.output == Output::Table {
        eprintln!("CSR of node {} made on {}", s(&csr["node_id"]), args.newnode);
    }
    let signed = member.post("/v1/cluster/nodes", &json!({ "csr": csr["csr"] })).await?;
    let bundle = s(&signed["certificate"]);
    // The member the admin named, if it has a cluster address; any member otherwise.
    let target = member_status["cluster"]
        .as_str()
        .map(str::to_string)
        .or_else(|| members(&signed).into_iter().next())
        .ok_or_else(|| Failure::other("the member reports no cluster address; start it with --cluster-listen"))?;
    if ctx.output == Output::Table {
        eprintln!("Node certificate signed by {}; joining through {target}", args.member);
    }
    let newnode = client_with_bundle(newnode_cfg, &bundle)?;
    newnode
        .post("/v1/cluster/join", &json!({ "member": target, "certificate": bundle }))
        .await?;
    follow(ctx.output, &newnode).await
}

async fn summary(ctx: &Ctx) -> CliResult {
    let v = ctx.client()?.get("/v1/cluster/summary").await?;
    let rows = v["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let errors = n["errors"]
                        .as_array()
                        .and_then(|e| e.last())
                        .map(|e| s(&e["message"]))
                        .unwrap_or_else(|| "-".into());
                    vec![
                        s(&n["id"]),
                        s(&n["name"]),
                        s(&n["status"]),
                        s(&n["role"]),
                        s(&n["version"]),
                        s(&n["address"]),
                        n["last_contact_ms"]
                            .as_u64()
                            .map(|ms| format!("{ms} ms ago"))
                            .unwrap_or_else(|| "-".into()),
                        s(&n["matched_index"]),
                        s(&n["lag_entries"]),
                        s(&n["lag_bytes"]),
                        n["apply_rate"]
                            .as_f64()
                            .map(|r| format!("{r:.1}/s"))
                            .unwrap_or_else(|| "-".into()),
                        s(&n["digest"]).chars().take(12).collect(),
                        errors,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print(
        ctx.output,
        &v,
        &[
            "id",
            "name",
            "status",
            "role",
            "version",
            "address",
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
        println!("{}  (computed {})", s(&v["overall"]), s(&v["computed_at"]));
    }
    Ok(())
}
