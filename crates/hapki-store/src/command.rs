//! Commands: every change to the replicated state is one of these, carried in
//! the Raft log. A command holds everything apply needs (times, serials, signed
//! DER), so that applying it is deterministic on every node.

use hapki_domain::profile::Profile;
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use serde::{Deserialize, Serialize};

use crate::archive::{Approval, ArchivedKey, RecoveryPolicy, TransportRecord};
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
    /// Sets the key archive's transport key, once.
    SetArchiveTransport { transport: TransportRecord },
    /// Archives the private key of a certificate this cluster issued; refused if one is.
    ArchiveKey { key: ArchivedKey },
    /// Records a certificate (as [`Command::IssueCert`]) and archives its key, in one step.
    IssueAndArchive {
        cert: CertRecord,
        idempotency_key: Option<[u8; 32]>,
        key: ArchivedKey,
    },
    /// Sets how many approvals a recovery needs and how long a request stays open.
    SetRecoveryPolicy { policy: RecoveryPolicy },
    /// Opens recovery request `id` for the archived key of `serial`, made by token `by`.
    RequestRecovery {
        id: String,
        serial: Serial,
        reason: String,
        by: String,
        by_name: String,
        at: u64,
    },
    /// Approves a recovery request; refused for its requester, a second approval by the
    /// same token, and a request fetched or expired.
    ApproveRecovery { id: String, approval: Approval },
    /// Marks a recovery request fetched by `by`, once it has its approvals; refused for
    /// anyone but its requester, a second time, and after it expired.
    FetchRecovery { id: String, by: String, at: u64 },
    /// [`Command::RotateKek`] that also seals every archived key and the transport key anew.
    RotateKekWithArchive {
        from: u32,
        to: u32,
        issuers: Vec<RewrappedIssuer>,
        internal_ca: Option<hapki_domain::wrap::Wrapped>,
        archived: Vec<(Serial, hapki_domain::wrap::Wrapped)>,
        transport: Option<hapki_domain::wrap::Wrapped>,
    },
    /// Records a backup that was taken; refused if its id is recorded.
    RecordBackup { backup: crate::backups::BackupRecord },
    /// Applies `command` and appends a record of it, with its outcome, to the audit log.
    Audited {
        meta: crate::audit::AuditMeta,
        command: Box<Command>,
    },
    /// Appends a record of an action that changes nothing else (a CA key exported).
    AuditEvent {
        meta: crate::audit::AuditMeta,
        action: String,
        object: String,
    },
    /// Records the audit key's signature over the head of the audit log.
    SealAudit { seal: hapki_domain::audit::Seal },
    /// Sets the audit signing key, once.
    SetAuditKey { key: crate::audit::AuditKeyRecord },
    /// A rotation ([`Command::RotateKek`] or [`Command::RotateKekWithArchive`]) that also
    /// seals the audit key anew; a state with an audit key takes no other.
    RotateKekWithAudit {
        rotation: Box<Command>,
        audit: hapki_domain::wrap::Wrapped,
    },
    /// Raises the state's format to `to` (format `to`): proposed once every voter applies it.
    SetStateFormat { to: u32 },
    /// Adds `successor` and plans its taking over from `rollover.from` (format 2).
    RollOverIssuer {
        successor: IssuerRecord,
        rollover: crate::rollover::Rollover,
    },
    /// Records that the rollover from issuer `from` is done (format 2).
    CompleteRollover { from: String },
    /// Publishes CRL `head.number` of `head.issuer_id` without its bytes: it lists every
    /// revocation of the issuer applied before it, and each node signs it (format 2).
    PublishCrlHead { head: crate::crl_head::CrlHead },
    /// Removes certificates that expired before `tidy.expired_before` (format 3); refused
    /// whole if any named one has not, has its key archived, or is revoked without its
    /// issuer's next CRL head in the batch.
    TidyExpired { tidy: crate::tidy::Tidy },
    /// Sets how expired certificates are tidied (format 3).
    SetTidyPolicy { policy: crate::tidy::TidyPolicy },
    /// Sets whether and how often delta CRLs are published (format 3).
    SetCrlPolicy { policy: crate::crl_delta::CrlPolicy },
    /// Publishes delta CRL `head.number` of `head.issuer_id` without its bytes: every
    /// revocation applied after complete CRL `head.base` and before it (format 3).
    PublishDeltaHead { head: crate::crl_delta::DeltaHead },
    /// Sets when an issuer's CRL is split into partitions (format 3).
    SetCrlPartitioning {
        policy: crate::crl_partition::CrlPartitioning,
    },
    /// Sets the secret ACME nonces and EAB keys are derived from, once (format 4).
    SetAcmeSecret { secret: crate::acme::AcmeSecret },
    /// Sets the settings of the ACME directory of `profile` (format 4).
    SetAcmeDirectory {
        profile: String,
        directory: crate::acme::AcmeDirectory,
    },
    /// Adds an External Account Binding key id (format 4).
    CreateEab { eab: crate::acme::EabRecord },
    /// Asks that the certificates of `issuer` be renewed before `hint.before` (format 4).
    SuggestRenewal {
        issuer: String,
        hint: crate::acme::RenewalHint,
    },
    /// A client's state-changing ACME request, with the nonce it redeems (format 4).
    Acme { request: crate::acme::AcmeRequest },
    /// A rotation that also seals the ACME secret anew (format 4): once the state holds
    /// that secret, rotations take this form.
    RotateKekWithAcme {
        rotation: Box<Command>,
        acme: hapki_domain::wrap::Wrapped,
    },
    /// Forgets at most `max` idempotency keys remembered longer than their window at time
    /// `at` ([`crate::idempotency`]; format 6): the same rows on every node.
    ForgetIdempotencyKeys { at: u64, max: u32 },
}

impl Command {
    /// The command that takes effect: the one inside an audited command or a rotation that
    /// also seals the audit key, otherwise this one. Listeners of applied commands match on it.
    pub fn inner(&self) -> &Command {
        match self {
            Command::Audited { command, .. } => command.inner(),
            Command::RotateKekWithAudit { rotation, .. } | Command::RotateKekWithAcme { rotation, .. } => {
                rotation.inner()
            }
            other => other,
        }
    }

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
            Command::SetArchiveTransport { .. } => "set_archive_transport",
            Command::ArchiveKey { .. } => "archive_key",
            Command::IssueAndArchive { .. } => "issue_and_archive",
            Command::SetRecoveryPolicy { .. } => "set_recovery_policy",
            Command::RequestRecovery { .. } => "request_recovery",
            Command::ApproveRecovery { .. } => "approve_recovery",
            Command::FetchRecovery { .. } => "fetch_recovery",
            Command::RotateKekWithArchive { .. } => "rotate_kek",
            Command::RecordBackup { .. } => "record_backup",
            Command::Audited { command, .. } => command.kind(),
            Command::AuditEvent { .. } => "audit_event",
            Command::SealAudit { .. } => "seal_audit",
            Command::SetAuditKey { .. } => "set_audit_key",
            Command::RotateKekWithAudit { .. } | Command::RotateKekWithAcme { .. } => "rotate_kek",
            Command::SetAcmeSecret { .. } => "set_acme_secret",
            Command::SetAcmeDirectory { .. } => "set_acme_directory",
            Command::CreateEab { .. } => "create_eab",
            Command::SuggestRenewal { .. } => "suggest_renewal",
            Command::Acme { request } => request.op.kind(),
            Command::SetStateFormat { .. } => "set_state_format",
            Command::RollOverIssuer { .. } => "roll_over_issuer",
            Command::PublishCrlHead { .. } => "publish_crl",
            Command::CompleteRollover { .. } => "complete_rollover",
            Command::TidyExpired { .. } => "tidy_expired",
            Command::SetTidyPolicy { .. } => "set_tidy_policy",
            Command::SetCrlPolicy { .. } => "set_crl_policy",
            Command::PublishDeltaHead { .. } => "publish_delta_crl",
            Command::SetCrlPartitioning { .. } => "set_crl_partitioning",
            Command::ForgetIdempotencyKeys { .. } => "forget_idempotency_keys",
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
    /// The command's author may not do this to this object (e.g. approve its own request).
    Forbidden,
    /// An ACME request's nonce was redeemed before or is out of its window.
    BadNonce,
}

impl RejectCode {
    /// The name audit records give it.
    pub fn name(self) -> &'static str {
        match self {
            RejectCode::Conflict => "conflict",
            RejectCode::NotFound => "not_found",
            RejectCode::Invalid => "invalid",
            RejectCode::Forbidden => "forbidden",
            RejectCode::BadNonce => "bad_nonce",
        }
    }
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
