//! Least privilege on objects: what a caller may do with a given profile,
//! issuer or certificate, decided here and nowhere else, before anything is
//! proposed. Also the leader's second look at a write another member forwards:
//! the client's token is checked again, and a member on its own may propose
//! only the kinds of command members make.

use std::sync::Weak;

use hapki_cluster::{Authorizer, MembershipChange, NodeId, Origin};
use hapki_domain::profile::{ExtKeyUsage, Profile};
use hapki_store::{CertRecord, Command, NodeStanding, Role};

use super::Pki;
use crate::auth::{Action, Caller};
use crate::pki::PkiError;

/// Whether certificates of `profile` make their holder an authority: a CA, or an OCSP
/// responder whose word relying parties take about revocation. Only admins issue those.
pub fn makes_authority(profile: &Profile) -> bool {
    profile.ca || profile.ocsp_no_check || profile.ext_key_usage.contains(&ExtKeyUsage::OcspSigning)
}

impl Pki {
    /// Whether `caller` may issue with `profile` from issuer `issuer_id` (already resolved
    /// from the default when the request named none).
    pub fn authorize_issue(&self, caller: &Caller, profile: &Profile, issuer_id: &str) -> Result<(), PkiError> {
        caller.may(Action::Issue)?;
        if makes_authority(profile) && caller.role != Role::Admin {
            return Err(PkiError::forbidden(format!(
                "profile '{}' makes a CA or an OCSP responder; only an admin token may issue with it",
                profile.name
            )));
        }
        if !caller.profiles.is_empty() && !caller.profiles.iter().any(|p| p == &profile.name) {
            return Err(PkiError::forbidden(format!(
                "token {} may issue only with the profiles {}; ask for one of them",
                caller.token_id,
                caller.profiles.join(", ")
            )));
        }
        if !caller.issuers.is_empty() && !caller.issuers.iter().any(|i| i == issuer_id) {
            return Err(PkiError::forbidden(format!(
                "token {} may issue only from the issuers {}; pass --issuer with one of them",
                caller.token_id,
                caller.issuers.join(", ")
            )));
        }
        Ok(())
    }

    /// Whether `caller` may read `cert`: a requester reads only the certificates it asked for.
    pub fn authorize_read(&self, caller: &Caller, cert: &CertRecord) -> Result<(), PkiError> {
        caller.may(Action::ReadCert)?;
        if caller.role == Role::Requester && cert.requested_by.as_deref() != Some(caller.token_id.as_str()) {
            return Err(PkiError::forbidden(format!(
                "a requester token reads only the certificates it asked for; certificate {} was not issued to token {}",
                cert.serial, caller.token_id
            )));
        }
        Ok(())
    }

    /// Whether `caller` may revoke `cert`: a token limited to profiles or issuers revokes
    /// only certificates of those.
    pub fn authorize_revoke(&self, caller: &Caller, cert: &CertRecord) -> Result<(), PkiError> {
        caller.may(Action::Revoke)?;
        let in_scope = (caller.profiles.is_empty() || caller.profiles.contains(&cert.profile))
            && (caller.issuers.is_empty() || caller.issuers.contains(&cert.issuer_id));
        if !in_scope {
            return Err(PkiError::forbidden(format!(
                "token {} may revoke only certificates of its profiles and issuers; certificate {} is of profile '{}' from issuer {}",
                caller.token_id, cert.serial, cert.profile, cert.issuer_id
            )));
        }
        Ok(())
    }

    /// The leader's check of a command forwarded with a client's origin: the token is valid,
    /// its role allows the command, and an issuance is one the token may make for itself.
    pub(crate) fn authorize_forwarded(&self, token: &str, command: &Command) -> Result<(), PkiError> {
        let caller = self.caller(token)?;
        let action = match command {
            Command::Audited { meta, command } => {
                if meta.actor.as_deref() != Some(caller.token_id.as_str()) {
                    return Err(PkiError::forbidden(
                        "a forwarded audit record must name the token that asked",
                    ));
                }
                return self.authorize_forwarded(token, command);
            }
            Command::AuditEvent { meta, action, .. } => {
                if meta.actor.as_deref() != Some(caller.token_id.as_str()) {
                    return Err(PkiError::forbidden(
                        "a forwarded audit record must name the token that asked",
                    ));
                }
                match action.as_str() {
                    "export_ca" => Action::ManageCa,
                    other => {
                        return Err(PkiError::forbidden(format!(
                            "no client records an audit event '{other}'"
                        )))
                    }
                }
            }
            Command::RotateKekWithAudit { .. } => Action::ManageCluster,
            Command::IssueCert { cert, .. } => {
                if cert.requested_by.as_deref() != Some(caller.token_id.as_str()) {
                    return Err(PkiError::forbidden(
                        "a forwarded issuance must be recorded for the token that asked for it",
                    ));
                }
                let profile = self.profile(&cert.profile)?;
                return self.authorize_issue(&caller, &profile, &cert.issuer_id);
            }
            Command::Revoke { serial, .. } => {
                let cert = self
                    .reader()?
                    .cert(serial)?
                    .ok_or_else(|| PkiError::not_found(format!("no certificate with serial {serial}")))?;
                return self.authorize_revoke(&caller, &cert);
            }
            Command::IssueAndArchive { cert, key, .. } => {
                if cert.requested_by.as_deref() != Some(caller.token_id.as_str()) || key.archived_by != caller.token_id
                {
                    return Err(PkiError::forbidden(
                        "a forwarded issuance must be recorded for the token that asked for it",
                    ));
                }
                let profile = self.profile(&cert.profile)?;
                return self.authorize_issue(&caller, &profile, &cert.issuer_id);
            }
            Command::ArchiveKey { key } => {
                if key.archived_by != caller.token_id {
                    return Err(PkiError::forbidden(
                        "a forwarded archive must be recorded for the token that asked for it",
                    ));
                }
                let cert = self
                    .reader()?
                    .cert(&key.serial)?
                    .ok_or_else(|| PkiError::not_found(format!("no certificate with serial {}", key.serial)))?;
                return self.authorize_archive(&caller, &cert);
            }
            Command::RequestRecovery { by, .. } | Command::FetchRecovery { by, .. } if *by != caller.token_id => {
                return Err(PkiError::forbidden(
                    "a forwarded recovery step must be recorded for the token that took it",
                ))
            }
            Command::ApproveRecovery { approval, .. } if approval.token_id != caller.token_id => {
                return Err(PkiError::forbidden(
                    "a forwarded approval must be recorded for the token that gave it",
                ))
            }
            Command::RequestRecovery { .. } | Command::ApproveRecovery { .. } | Command::FetchRecovery { .. } => {
                Action::RecoverKey
            }
            Command::PublishCrl { .. } | Command::PublishCrlHead { .. } | Command::PublishDeltaHead { .. } => {
                Action::RotateCrl
            }
            Command::AddIssuer { .. }
            | Command::InstallIssuerCert { .. }
            | Command::SetDefaultIssuer { .. }
            | Command::SetOcspSigner { .. }
            | Command::RollOverIssuer { .. } => Action::ManageCa,
            Command::PutProfile { .. } => Action::ManageProfiles,
            Command::CreateToken { .. } | Command::RevokeToken { .. } => Action::ManageTokens,
            Command::PutSettings { .. }
            | Command::AdmitNode { .. }
            | Command::RemoveNode { .. }
            | Command::RotateKek { .. }
            | Command::RotateKekWithArchive { .. }
            | Command::SetRecoveryPolicy { .. }
            | Command::SetTidyPolicy { .. }
            | Command::SetCrlPolicy { .. }
            | Command::SetCrlPartitioning { .. } => Action::ManageCluster,
            Command::TidyExpired { .. } | Command::ForgetIdempotencyKeys { .. } => Action::Tidy,
            Command::SetAcmeDirectory { .. } => Action::ManageProfiles,
            Command::CreateEab { eab } => {
                if eab.created_by != caller.token_id {
                    return Err(PkiError::forbidden(
                        "a forwarded external account key must be recorded for the token that made it",
                    ));
                }
                Action::ManageTokens
            }
            Command::SuggestRenewal { hint, .. } => {
                if hint.set_by != caller.token_id {
                    return Err(PkiError::forbidden(
                        "a forwarded renewal hint must be recorded for the token that set it",
                    ));
                }
                Action::ManageCa
            }
            Command::RotateKekWithAcme { .. } => Action::ManageCluster,
            Command::Acme { .. } => {
                return Err(PkiError::forbidden(
                    "an ACME request is forwarded with its signed body, never with a token",
                ))
            }
            Command::RecordBackup { backup } => {
                if backup.taken_by.as_deref() != Some(caller.token_id.as_str()) {
                    return Err(PkiError::forbidden(
                        "a forwarded backup record must name the token that took it",
                    ));
                }
                Action::Backup
            }
            Command::Bootstrap { .. }
            | Command::SetInternalCa { .. }
            | Command::LeaseSerials { .. }
            | Command::SetArchiveTransport { .. }
            | Command::SealAudit { .. }
            | Command::SetAuditKey { .. }
            | Command::SetStateFormat { .. }
            | Command::SetAcmeSecret { .. }
            | Command::CompleteRollover { .. } => {
                return Err(PkiError::forbidden(format!(
                    "{} is made by nodes, never on a client's behalf",
                    command.kind()
                )))
            }
        };
        caller.may(action)
    }
}

/// What a member may propose on its own (no client behind it).
fn node_may_propose(from: NodeId, command: &Command) -> Result<(), String> {
    match command {
        Command::LeaseSerials { node, .. } if *node == from => Ok(()),
        Command::LeaseSerials { node, .. } => Err(format!(
            "node {from:016x} may lease serials for itself only, not for node {node:016x}"
        )),
        // The CRL owner's renewals, the OCSP signer's renewal, the internal CA of a new
        // cluster, the key archive's transport key.
        Command::PublishCrl { .. }
        | Command::PublishCrlHead { .. }
        | Command::PublishDeltaHead { .. }
        | Command::SetOcspSigner { .. }
        | Command::SetInternalCa { .. }
        | Command::SetArchiveTransport { .. }
        | Command::SetAcmeSecret { .. } => Ok(()),
        // The leader's scheduled backups.
        Command::RecordBackup { backup } if backup.taken_by.is_none() => Ok(()),
        // The audit log's seals and key; what a member does on its own, recorded as the node's.
        Command::SealAudit { .. } | Command::SetAuditKey { .. } => Ok(()),
        // The leader's feature gates, the rollovers that fall due, its scheduled tidy.
        Command::SetStateFormat { .. } | Command::CompleteRollover { .. } | Command::TidyExpired { .. } => Ok(()),
        Command::Audited { meta, command } if meta.actor.is_none() => node_may_propose(from, command),
        other => Err(format!(
            "a member may not propose {} on its own; it needs the token of the client that asked",
            other.kind()
        )),
    }
}

/// The leader's check of writes other members forward, installed on the Raft node.
pub struct ForwardGuard {
    pub pki: Weak<Pki>,
}

impl ForwardGuard {
    fn pki(&self) -> Result<std::sync::Arc<Pki>, String> {
        self.pki
            .upgrade()
            .ok_or_else(|| "the node is shutting down".to_string())
    }
}

impl Authorizer for ForwardGuard {
    fn command(&self, from: NodeId, origin: &Origin, command: &Command) -> Result<(), String> {
        match origin {
            Origin::Node => node_may_propose(from, command),
            Origin::Client { token } => self
                .pki()?
                .authorize_forwarded(token, command)
                .map_err(|e| e.to_string()),
            Origin::Acme { jws } => self
                .pki()?
                .authorize_forwarded_acme(jws, command)
                .map_err(|e| e.to_string()),
            Origin::Est { certificate } => self
                .pki()?
                .authorize_forwarded_est(certificate, command)
                .map_err(|e| e.to_string()),
        }
    }

    fn membership(&self, _from: NodeId, origin: &Origin, change: &MembershipChange) -> Result<(), String> {
        let pki = self.pki()?;
        match origin {
            Origin::Client { token } => {
                let caller = pki.caller(token).map_err(|e| e.to_string())?;
                caller.may(Action::ManageCluster).map_err(|e| e.to_string())
            }
            Origin::Acme { .. } | Origin::Est { .. } => {
                Err("an ACME or EST request never changes the membership".into())
            }
            // A member forwards the steps of a join (add, promote, give up) for a node the
            // cluster admitted; anything else needs an admin's token.
            Origin::Node => {
                let id = match change {
                    MembershipChange::AddLearner { id, .. }
                    | MembershipChange::Promote { id, .. }
                    | MembershipChange::Remove { id, .. } => *id,
                };
                let record = pki.reader().and_then(|r| Ok(r.node(id)?)).map_err(|e| e.to_string())?;
                match record {
                    Some(r) if r.standing == NodeStanding::Admitted => Ok(()),
                    _ => Err(format!(
                        "node {id:016x} was not admitted; a member changes the membership on its own only for a node that is joining"
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapki_domain::profile::builtin_profiles;

    #[test]
    fn ca_and_responder_profiles_make_authorities() {
        let authorities: Vec<String> = builtin_profiles()
            .into_iter()
            .filter(makes_authority)
            .map(|p| p.name)
            .collect();
        assert_eq!(authorities, ["ocsp-signing", "sub-ca"]);
    }

    #[test]
    fn a_member_on_its_own_makes_only_member_writes() {
        assert!(node_may_propose(7, &Command::LeaseSerials { node: 7, size: 10 }).is_ok());
        assert!(node_may_propose(7, &Command::LeaseSerials { node: 8, size: 10 }).is_err());
        let err = node_may_propose(7, &Command::RevokeToken { id: "x".into() }).unwrap_err();
        assert!(err.contains("may not propose revoke_token"), "{err}");
    }
}
