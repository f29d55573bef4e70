//! `hapki cluster ...`: what the cluster looks like from a node.

use clap::Subcommand;

use super::output::{print, record, s};
use super::{CliResult, Ctx};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// This node, the members, and which data is replicated and which node-local
    Info,
    /// Cluster nodes
    #[command(subcommand)]
    Nodes(NodesCommand),
}

#[derive(Subcommand)]
pub enum NodesCommand {
    /// List the members
    List,
}

fn rows(v: &serde_json::Value) -> Vec<Vec<String>> {
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
    let client = ctx.client()?;
    match cmd {
        ClusterCommand::Info => {
            let v = client.get("/v1/cluster/info").await?;
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
                    ("leader", s(&v["leader"])),
                    ("applied index", s(&v["applied_index"])),
                    ("digest", s(&v["digest"])),
                    ("version", s(&v["version"])),
                    ("replicated", list("replicated")),
                    ("node-local", list("node_local")),
                ],
            );
            if ctx.output == super::Output::Table {
                println!();
                print(ctx.output, &v, &HEADERS, rows(&v));
            }
        }
        ClusterCommand::Nodes(NodesCommand::List) => {
            let v = client.get("/v1/cluster/nodes").await?;
            print(ctx.output, &v, &HEADERS, rows(&v));
        }
    }
    Ok(())
}
