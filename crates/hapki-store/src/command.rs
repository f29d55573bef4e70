//! Commands: every change to the replicated state is one of these, carried in
//! the Raft log. A command holds everything apply needs (times, serials, signed
//! DER), so that applying it is deterministic on every node.

use hapki_domain::profile::Profile;
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use serde::{Deserialize, Serialize};

use crate::records::{
    CertRecord, CrlRecord, InternalCaRecord, IssuerRecord, NodeRecord, OcspSignerRecord, RewrappedIssuer, Settings,
    TokenRecord,
};

/// A change to the replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Starts a cluster's state: its id, the built-in profiles and settings.
    Bootstrap {
        cluster_id: String,
        profiles: Vec<Profile>,
        settings: Settings,
    },
    /// Adds an issuer (a root with its certificate, or an intermediate awaiting one).
    AddIssuer { issuer: IssuerRecord, make_default: bool },
    /// Installs the certificate of an intermediate that was waiting for it.
    InstallIssuerCert {
        id: String,
        cert_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        not_after: u64,
        ocsp: Option<OcspSignerRecord>,
    },
    /// Sets the cluster's internal CA, which issues the nodes' TLS certificates.
    SetInternalCa { ca: InternalCaRecord },
    /// Sets or replaces an issuer's delegated OCSP signer.
    SetOcspSigner {
        issuer_id: String,
        signer: OcspSignerRecord,
    },
    /// Makes an issuer the default.
    SetDefaultIssuer { id: String },
    /// Creates (`create` = true) or replaces a profile.
    PutProfile { profile: Profile, create: bool },
    /// Records an issued certificate; refused if the serial exists. With an idempotency key
    /// that was seen before, nothing is recorded and the first certificate's serial is returned.
    IssueCert {
        cert: CertRecord,
        idempotency_key: Option<[u8; 32]>,
    },
    /// Revokes a certificate; refused if unknown or already revoked. With an idempotency key
    /// that revoked this certificate before, nothing changes and the serial is returned.
    Revoke {
        serial: Serial,
        reason: RevocationReason,
        at: u64,
        idempotency_key: Option<[u8; 32]>,
    },
    /// Publishes a CRL; refused unless its number is above the current one.
    PublishCrl { crl: CrlRecord },
    /// Adds an API token.
    CreateToken { token: TokenRecord },
    /// Revokes an API token by id.
    RevokeToken { id: String },
    /// Replaces the replicated settings.
    PutSettings { settings: Settings },
    /// Records that a node's certificate was signed, so members let it call while it joins.
    AdmitNode { node: NodeRecord },
    /// Records that a node was removed; its certificates are refused from then on.
    RemoveNode { id: u64, at: u64 },
    /// Leases the next `size` sequential serials to `node`; its latest lease is readable
    /// from the replica once applied. Ranges never overlap: they come from one counter.
    LeaseSerials { node: u64, size: u64 },
    /// Moves every sealed key from KEK `from` to KEK `to` (= `from` + 1): each issuer's key and
    /// OCSP signer key, and the internal CA's, sealed anew. Refused unless the state is at
    /// `from` and the command covers every issuer.
    RotateKek {
        from: u32,
        to: u32,
        issuers: Vec<RewrappedIssuer>,
        internal_ca: Option<hapki_domain::wrap::Wrapped>,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Bootstrap { .. } => "bootstrap",
            Command::AddIssuer { .. } => "add_issuer",
            Command::InstallIssuerCert { .. } => "install_issuer_cert",
            Command::SetInternalCa { .. } => "set_internal_ca",
            Command::SetOcspSigner { .. } => "set_ocsp_signer",
            Command::SetDefaultIssuer { .. } => "set_default_issuer",
            Command::PutProfile { .. } => "put_profile",
            Command::IssueCert { .. } => "issue_cert",
            Command::Revoke { .. } => "revoke",
            Command::PublishCrl { .. } => "publish_crl",
            Command::CreateToken { .. } => "create_token",
            Command::RevokeToken { .. } => "revoke_token",
            Command::PutSettings { .. } => "put_settings",
            Command::AdmitNode { .. } => "admit_node",
            Command::RemoveNode { .. } => "remove_node",
            Command::LeaseSerials { .. } => "lease_serials",
            Command::RotateKek { .. } => "rotate_kek",
        }
    }
}

/// Why the state machine refused a command. A refusal changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectCode {
    /// The thing already exists or is already in that state.
    Conflict,
    /// A referenced thing does not exist.
    NotFound,
    /// The command is not valid in the current state.
    Invalid,
}

/// The outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    Applied,
    /// The idempotency key was used before: the command was not applied again, and this is
    /// the certificate the first one recorded.
    Replayed {
        serial: Serial,
    },
    Rejected {
        code: RejectCode,
        message: String,
    },
}

impl CommandResult {
    pub(crate) fn reject(code: RejectCode, message: impl Into<String>) -> Self {
        CommandResult::Rejected {
            code,
            message: message.into(),
        }
    }
}
