//! `hapki acme`: the operator's side of ACME: External Account Binding keys for a
//! directory, whether a directory requires them, and renewal hints for an issuer.

use clap::{Args, Subcommand};
use hapki_api::acme::{DirectorySettings, EabKey, EabRequest, RenewalHint, SuggestRenewal};
use hapki_domain::time::rfc3339;

use super::output::record;
use super::{CliResult, Ctx};

#[derive(Subcommand)]
pub enum AcmeCommand {
    /// External Account Binding keys, which let an ACME client create an account
    #[command(subcommand)]
    Eab(EabCommand),
    /// Show or set whether a profile's ACME directory requires External Account Binding
    Settings(SettingsArgs),
    /// Ask ACME clients (through renewal information) to renew an issuer's certificates now
    SuggestRenewal(SuggestArgs),
}

#[derive(Subcommand)]
pub enum EabCommand {
    /// A new key id and HMAC key for one account of a profile's directory (shown once)
    Create(EabArgs),
}

#[derive(Args)]
pub struct EabArgs {
    /// The profile whose ACME directory the account is for
    #[arg(long)]
    profile: String,
    /// Days the key may bind an account [default: 7]
    #[arg(long)]
    valid_days: Option<u32>,
}

#[derive(Args)]
pub struct SettingsArgs {
    /// The profile whose ACME directory this is
    #[arg(long)]
    profile: String,
    /// Require (true) or not (false) an External Account Binding for new accounts
    #[arg(long)]
    require_eab: Option<bool>,
}

#[derive(Args)]
pub struct SuggestArgs {
    /// The issuer whose certificates should be renewed
    #[arg(long)]
    issuer: String,
    /// Renew before this time (seconds since the epoch) [default: now]
    #[arg(long)]
    before: Option<u64>,
}

pub async fn run(ctx: &Ctx, cmd: AcmeCommand) -> CliResult {
    let client = ctx.client()?;
    match cmd {
        AcmeCommand::Eab(EabCommand::Create(args)) => {
            let key: EabKey = client
                .post(
                    "/v1/acme/eab",
                    &EabRequest {
                        profile: args.profile,
                        valid_days: args.valid_days,
                    },
                )
                .await?;
            record(
                ctx.output,
                &key,
                vec![
                    ("kid", key.kid.clone()),
                    ("hmac_key", key.hmac_key.clone()),
                    ("profile", key.profile.clone()),
                    ("directory", key.directory.clone()),
                    ("binds an account until", rfc3339(key.expires_at)),
                ],
            );
            eprintln!(
                "Give the client the kid and hmac_key (certbot: --eab-kid KID --eab-hmac-key KEY); the key is not shown again."
            );
            Ok(())
        }
        AcmeCommand::Settings(args) => {
            let path = format!("/v1/acme/directories/{}", args.profile);
            let settings: DirectorySettings = match args.require_eab {
                Some(require_eab) => {
                    client
                        .put(
                            &path,
                            &DirectorySettings {
                                profile: args.profile.clone(),
                                require_eab,
                                directory: String::new(),
                            },
                        )
                        .await?
                }
                None => client.get(&path).await?,
            };
            record(
                ctx.output,
                &settings,
                vec![
                    ("profile", settings.profile.clone()),
                    ("directory", settings.directory.clone()),
                    ("require_eab", settings.require_eab.to_string()),
                ],
            );
            Ok(())
        }
        AcmeCommand::SuggestRenewal(args) => {
            let hint: RenewalHint = client
                .post(
                    "/v1/acme/suggest-renewal",
                    &SuggestRenewal {
                        issuer: args.issuer,
                        before: args.before,
                    },
                )
                .await?;
            record(
                ctx.output,
                &hint,
                vec![("issuer", hint.issuer.clone()), ("renew before", rfc3339(hint.before))],
            );
            eprintln!("ACME clients that ask for renewal information (certbot 4.1 and later) renew these certificates on their next run.");
            Ok(())
        }
    }
}
