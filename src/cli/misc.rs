//! `hapki profile ...`, `hapki token ...` and `hapki status`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::output::{print, record, s, t};
use super::{read_file, CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// List profiles
    List,
    /// Show a profile as JSON
    Show { name: String },
    /// Create a profile from a JSON file (the shape `profile show` prints)
    Create {
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace a profile from a JSON file
    Update {
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is shown once
    Create {
        /// admin, agent or requester
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Lifetime, e.g. 30d or 12h; no expiry when absent
        #[arg(long)]
        ttl: Option<String>,
        /// Profiles the token may issue with, comma-separated; any its role allows when absent
        #[arg(long, value_delimiter = ',')]
        profiles: Vec<String>,
        /// Issuer ids the token may issue from, comma-separated; any when absent
        #[arg(long, value_delimiter = ',')]
        issuers: Vec<String>,
    },
    /// List tokens (never their secrets)
    List,
    /// Revoke a token by id
    Revoke { id: String },
}

/// A token's limit for a table: the names, or `any` when it has none.
fn list_or_any(v: &Value) -> String {
    let names: Vec<String> = v.as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
    if names.is_empty() {
        "any".into()
    } else {
        names.join(",")
    }
}

fn profile_file(file: &std::path::Path) -> Result<Value, Failure> {
    serde_json::from_slice(&read_file(file)?).map_err(|e| Failure::usage(format!("{}: not JSON: {e}", file.display())))
}

pub async fn run_profile(ctx: &Ctx, cmd: ProfileCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        ProfileCommand::List => {
            let v = client.get("/v1/profiles").await?;
            let rows = v["profiles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let eku = p["ext_key_usage"]
                                .as_array()
                                .map(|e| e.iter().map(s).collect::<Vec<_>>().join(","))
                                .unwrap_or_default();
                            vec![s(&p["name"]), s(&p["validity_days"]), eku, s(&p["description"])]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(ctx.output, &v, &["name", "days", "eku", "description"], rows);
        }
        ProfileCommand::Show { name } => {
            let v = client
                .get(&format!("/v1/profiles/{}", super::certs::urlencode(&name)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        ProfileCommand::Create { file } => {
            let v = client.post("/v1/profiles", &profile_file(&file)?).await?;
            record(ctx.output, &v, vec![("created", s(&v["name"]))]);
        }
        ProfileCommand::Update { file } => {
            let body = profile_file(&file)?;
            let name = body["name"]
                .as_str()
                .ok_or_else(|| Failure::usage("the profile has no \"name\""))?
                .to_string();
            let v = client
                .put(&format!("/v1/profiles/{}", super::certs::urlencode(&name)), &body)
                .await?;
            record(ctx.output, &v, vec![("updated", s(&v["name"]))]);
        }
    }
    Ok(())
}

pub async fn run_token(ctx: &Ctx, cmd: TokenCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        TokenCommand::Create {
            role,
            name,
            ttl,
            profiles,
            issuers,
        } => {
            let body = json!({"role": role, "name": name, "ttl": ttl, "profiles": profiles, "issuers": issuers});
            let v = client.post("/v1/tokens", &body).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("token", s(&v["token"])),
                    ("id", s(&v["id"])),
                    ("role", s(&v["role"])),
                    ("expires", t(&v["expires_at"])),
                    ("profiles", list_or_any(&v["profiles"])),
                    ("issuers", list_or_any(&v["issuers"])),
                ],
            );
        }
        TokenCommand::List => {
            let v = client.get("/v1/tokens").await?;
            let rows = v["tokens"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            vec![
                                s(&x["id"]),
                                s(&x["role"]),
                                s(&x["name"]),
                                t(&x["expires_at"]),
                                list_or_any(&x["profiles"]),
                                list_or_any(&x["issuers"]),
                                s(&x["revoked"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(
                ctx.output,
                &v,
                &["id", "role", "name", "expires", "profiles", "issuers", "revoked"],
                rows,
            );
        }
        TokenCommand::Revoke { id } => {
            let v = client
                .delete(&format!("/v1/tokens/{}", super::certs::urlencode(&id)))
                .await?;
            record(ctx.output, &v, vec![("revoked", s(&v["revoked"]))]);
        }
    }
    Ok(())
}

pub async fn status(ctx: &Ctx) -> CliResult {
    let v = ctx.client()?.get("/v1/sys/status").await?;
    record(
        ctx.output,
        &v,
        vec![
            ("node", s(&v["node_id"])),
            ("leader", s(&v["leader"])),
            ("term", s(&v["term"])),
            ("applied index", s(&v["applied_index"])),
            ("certificates", s(&v["certificates"])),
            ("issuers", s(&v["issuers"])),
            ("digest", s(&v["digest"])),
            ("version", s(&v["version"])),
        ],
    );
    Ok(())
}
