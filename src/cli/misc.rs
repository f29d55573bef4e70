//! `hapki profile ...`, `hapki token ...` and `hapki status`.

use std::path::PathBuf;

use clap::Subcommand;
use hapki_api::profiles::ProfileList;
use hapki_api::sys::Status;
use hapki_api::tokens::{CreateTokenRequest, NewToken, TokenList, TokenRevoked};
use hapki_domain::profile::Profile;

use super::output::{json, opt, ot, print, record, wire_name};
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
fn list_or_any(names: &[String]) -> String {
    if names.is_empty() {
        "any".into()
    } else {
        names.join(",")
    }
}

fn profile_file(file: &std::path::Path) -> Result<Profile, Failure> {
    serde_json::from_slice(&read_file(file)?)
        .map_err(|e| Failure::usage(format!("{} is not a profile: {e}", file.display())))
}

pub async fn run_profile(ctx: &Ctx, cmd: ProfileCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        ProfileCommand::List => {
            let v: ProfileList = client.get("/v1/profiles").await?;
            let rows = v
                .profiles
                .iter()
                .map(|p| {
                    let eku: Vec<String> = p.ext_key_usage.iter().map(wire_name).collect();
                    vec![
                        p.name.clone(),
                        p.validity_days.to_string(),
                        eku.join(","),
                        p.description.clone(),
                    ]
                })
                .collect();
            print(ctx.output, &v, &["name", "days", "eku", "description"], rows);
        }
        ProfileCommand::Show { name } => {
            let v: Profile = client
                .get(&format!("/v1/profiles/{}", super::certs::urlencode(&name)))
                .await?;
            json(&v);
        }
        ProfileCommand::Create { file } => {
            let v: Profile = client.post("/v1/profiles", &profile_file(&file)?).await?;
            record(ctx.output, &v, vec![("created", v.name.clone())]);
        }
        ProfileCommand::Update { file } => {
            let body = profile_file(&file)?;
            let v: Profile = client
                .put(&format!("/v1/profiles/{}", super::certs::urlencode(&body.name)), &body)
                .await?;
            record(ctx.output, &v, vec![("updated", v.name.clone())]);
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
            let body = CreateTokenRequest {
                role,
                name,
                ttl,
                profiles,
                issuers,
            };
            let v: NewToken = client.post("/v1/tokens", &body).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("token", v.token.clone()),
                    ("id", v.id.clone()),
                    ("role", v.role.name().to_string()),
                    ("expires", ot(v.expires_at)),
                    ("profiles", list_or_any(&v.profiles)),
                    ("issuers", list_or_any(&v.issuers)),
                ],
            );
        }
        TokenCommand::List => {
            let v: TokenList = client.get("/v1/tokens").await?;
            let rows = v
                .tokens
                .iter()
                .map(|x| {
                    vec![
                        x.id.clone(),
                        x.role.name().to_string(),
                        x.name.clone(),
                        ot(x.expires_at),
                        list_or_any(&x.profiles),
                        list_or_any(&x.issuers),
                        x.revoked.to_string(),
                    ]
                })
                .collect();
            print(
                ctx.output,
                &v,
                &["id", "role", "name", "expires", "profiles", "issuers", "revoked"],
                rows,
            );
        }
        TokenCommand::Revoke { id } => {
            let v: TokenRevoked = client
                .delete(&format!("/v1/tokens/{}", super::certs::urlencode(&id)))
                .await?;
            record(ctx.output, &v, vec![("revoked", v.revoked.clone())]);
        }
    }
    Ok(())
}

pub async fn status(ctx: &Ctx) -> CliResult {
    let v: Status = ctx.client()?.get("/v1/sys/status").await?;
    record(
        ctx.output,
        &v,
        vec![
            ("node", v.raft.node_id.clone()),
            ("leader", opt(v.raft.leader.as_ref())),
            ("term", v.raft.term.to_string()),
            ("applied index", opt(v.raft.applied_index)),
            ("certificates", v.certificates.to_string()),
            ("issuers", v.issuers.to_string()),
            ("digest", v.digest.clone()),
            ("version", v.raft.version.clone()),
        ],
    );
    Ok(())
}
