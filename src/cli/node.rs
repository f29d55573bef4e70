//! `hapki node`: what an operator does to one node rather than to the cluster:
//! unseal it now, move it to another root of trust. Also the root-of-trust
//! flags `hapki server` shares.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use hapki_api::node::{MigrateRootOfTrust, RootOfTrustMigrated, RootOfTrustSpec, Unsealed, DEFAULT_KEY_LABEL};

use super::output::{opt, record};
use super::{CliResult, Ctx, Failure};

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Try to open this node's root of trust now, instead of waiting for its next try
    Unseal,
    /// Move this node's sealed KEK and channel key under another root of trust while it
    /// runs, then remove the old key file
    MigrateRootOfTrust(MigrateArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RootKind {
    File,
    Pkcs11,
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The root of trust to move to
    #[arg(long, value_enum)]
    to: RootKind,
    /// file: where the new key file goes [default: <data-dir>/unseal.key]
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// pkcs11: the module (shared library) on the node, e.g. /usr/lib/softhsm/libsofthsm2.so
    #[arg(long)]
    module: Option<PathBuf>,
    /// pkcs11: the token's label
    #[arg(long)]
    token_label: Option<String>,
    /// pkcs11: a file on the node holding the user PIN
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// pkcs11: the wrapping key's label on the token [default: hapki-root-of-trust]
    #[arg(long)]
    key_label: Option<String>,
}

/// The root-of-trust flags of `hapki server`.
#[derive(Args)]
pub struct RootOfTrustArgs {
    /// What seals this node's KEK: a key file or an AES key on a PKCS#11 token [default: what
    /// the data directory records, else file]
    #[arg(long, value_enum)]
    root_of_trust: Option<RootKind>,
    /// file: the unseal key, when not <data-dir>/unseal.key (e.g. on another mount)
    #[arg(long)]
    unseal_key_file: Option<PathBuf>,
    /// pkcs11: the module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so
    #[arg(long)]
    pkcs11_module: Option<PathBuf>,
    /// pkcs11: the token's label
    #[arg(long)]
    pkcs11_token_label: Option<String>,
    /// pkcs11: a file holding the user PIN (its first line)
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
    /// pkcs11: the wrapping key's label on the token [default: hapki-root-of-trust]
    #[arg(long)]
    pkcs11_key_label: Option<String>,
}

impl RootOfTrustArgs {
    /// The root of trust the flags name, if any.
    pub fn spec(&self) -> Result<Option<RootOfTrustSpec>, Failure> {
        let kind = match (self.root_of_trust, &self.unseal_key_file, &self.pkcs11_module) {
            (Some(k), ..) => k,
            (None, Some(_), _) => RootKind::File,
            (None, None, Some(_)) => RootKind::Pkcs11,
            (None, None, None) => return Ok(None),
        };
        spec(
            kind,
            self.unseal_key_file.clone(),
            self.pkcs11_module.clone(),
            self.pkcs11_token_label.clone(),
            self.pkcs11_pin_file.clone(),
            self.pkcs11_key_label.clone(),
            "--pkcs11-",
        )
        .map(Some)
    }
}

/// A root of trust from its parts; `prefix` is how the flags are spelt, for the errors.
fn spec(
    kind: RootKind,
    key_file: Option<PathBuf>,
    module: Option<PathBuf>,
    token_label: Option<String>,
    pin_file: Option<PathBuf>,
    key_label: Option<String>,
    prefix: &str,
) -> Result<RootOfTrustSpec, Failure> {
    match kind {
        RootKind::File => {
            if module.is_some() || token_label.is_some() || pin_file.is_some() || key_label.is_some() {
                return Err(Failure::usage(format!(
                    "a file root of trust takes no {prefix}module, {prefix}token-label, {prefix}pin-file or {prefix}key-label"
                )));
            }
            Ok(RootOfTrustSpec::File { key_file })
        }
        RootKind::Pkcs11 => {
            if key_file.is_some() {
                return Err(Failure::usage("a PKCS#11 root of trust has no key file"));
            }
            let need = |v: Option<String>, flag: &str| {
                v.filter(|s| !s.is_empty())
                    .ok_or_else(|| Failure::usage(format!("a PKCS#11 root of trust needs {prefix}{flag}")))
            };
            let module = module.map(|p| p.display().to_string());
            let pin = pin_file.map(|p| p.display().to_string());
            Ok(RootOfTrustSpec::Pkcs11 {
                module: need(module, "module")?.into(),
                token_label: need(token_label, "token-label")?,
                pin_file: need(pin, "pin-file")?.into(),
                key_label: key_label.unwrap_or_else(|| DEFAULT_KEY_LABEL.to_string()),
            })
        }
    }
}

pub async fn run(ctx: &Ctx, command: NodeCommand) -> CliResult {
    match command {
        NodeCommand::Unseal => {
            let v: Unsealed = ctx.client()?.post("/v1/node/unseal", &()).await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.node_id.clone()),
                    ("status", v.status.clone()),
                    ("root of trust", v.root_of_trust.clone()),
                ],
            );
        }
        NodeCommand::MigrateRootOfTrust(a) => {
            let to = spec(a.to, a.key_file, a.module, a.token_label, a.pin_file, a.key_label, "--")?;
            let v: RootOfTrustMigrated = ctx
                .client()?
                .post("/v1/node/root-of-trust", &MigrateRootOfTrust { to })
                .await?;
            record(
                ctx.output,
                &v,
                vec![
                    ("node", v.node_id.clone()),
                    ("from", v.from.clone()),
                    ("to", v.to.clone()),
                    ("removed", opt(v.removed.as_ref())),
                    ("next", v.next.clone()),
                ],
            );
        }
    }
    Ok(())
}
