//! Who is calling and what they may do. A bearer token names a role and may be
//! limited to named profiles and issuers; each operation of the CA service
//! states the action it performs and checks the caller's role against it. What a caller may do with a
//! given profile, issuer or certificate is decided in the service layer
//! (`pki::authz`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use hapki_store::Role;

use crate::pki::Pki;
use crate::pki::PkiError;

/// Something a caller may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Issue,
    ReadCert,
    ListCerts,
    Revoke,
    RotateCrl,
    ReadStatus,
    ManageCa,
    ManageProfiles,
    ManageTokens,
    ManageCluster,
    /// Archive keys, read the transport certificate, list archived keys.
    ArchiveKey,
    /// Request, approve and fetch key recoveries.
    RecoverKey,
    /// Take and list backups (they hold every key, sealed under a key the taker gets).
    Backup,
    /// Read, export and verify the audit log.
    ReadAudit,
    /// Remove expired certificates now (the leader does on its schedule).
    Tidy,
}

impl Action {
    /// What the action is, in words, for refusals.
    fn describe(self) -> &'static str {
        match self {
            Action::Issue => "issue certificates",
            Action::ReadCert => "read certificates",
            Action::ListCerts => "list certificates",
            Action::Revoke => "revoke certificates",
            Action::RotateCrl => "publish CRLs",
            Action::ReadStatus => "read the status",
            Action::ManageCa => "manage CAs",
            Action::ManageProfiles => "manage profiles",
            Action::ManageTokens => "manage tokens",
            Action::ManageCluster => "manage the cluster",
            Action::ArchiveKey => "archive keys",
            Action::RecoverKey => "recover archived keys",
            Action::Backup => "take backups",
            Action::ReadAudit => "read the audit log",
            Action::Tidy => "tidy expired certificates",
        }
    }

    fn allowed(self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Agent => !matches!(
                self,
                Action::ManageCa
                    | Action::ManageProfiles
                    | Action::ManageTokens
                    | Action::ManageCluster
                    | Action::Backup
                    | Action::ReadAudit
                    | Action::Tidy
            ),
            // A requester issues, reads back what it issued and archives its keys (checked
            // per certificate).
            Role::Requester => matches!(self, Action::Issue | Action::ReadCert | Action::ArchiveKey),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_id: String,
    /// The token's name (`node` for the node itself), as audit records give it.
    pub name: String,
    pub role: Role,
    /// Profiles the token may issue with; empty means any its role allows.
    pub profiles: Vec<String>,
    /// Issuers the token may issue from; empty means any.
    pub issuers: Vec<String>,
    /// The bearer token as presented: a write forwarded to the leader carries it, and the
    /// leader checks it again. None for the node itself.
    credential: Option<Credential>,
}

/// What a client showed: a bearer token, held in memory and never printed, or the signed
/// body of an ACME request.
#[derive(Clone)]
enum Credential {
    Token(String),
    Acme(Arc<Vec<u8>>),
    /// The client certificate an EST re-enrollment showed (DER).
    Est(Arc<Vec<u8>>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("<redacted>"),
            Credential::Acme(_) => f.write_str("<acme request>"),
            Credential::Est(_) => f.write_str("<est client certificate>"),
        }
    }
}

impl Caller {
    /// The caller of a request that presented `token`, whose record is `record`.
    pub fn new(token: &str, record: hapki_store::TokenRecord) -> Caller {
        Caller {
            token_id: record.id,
            name: record.name,
            role: record.role,
            profiles: record.profiles,
            issuers: record.issuers,
            credential: Some(Credential::Token(token.to_string())),
        }
    }

    /// The caller of an EST re-enrollment by the holder of `cert`: whoever asked for that
    /// certificate, for its profile and issuer alone. A write it causes is forwarded with
    /// the certificate, which the leader checks again.
    pub fn est(cert: &hapki_store::CertRecord) -> Caller {
        Caller {
            token_id: est_requester(cert),
            name: format!("EST re-enrollment of {}", cert.serial),
            role: Role::Requester,
            profiles: vec![cert.profile.clone()],
            issuers: vec![cert.issuer_id.clone()],
            credential: Some(Credential::Est(Arc::new(cert.der.clone()))),
        }
    }

    /// The caller of an ACME request signed by `account` (verified), whose body was `jws`:
    /// a requester of the account's directory's profile alone. A write it causes is
    /// forwarded with that body, which the leader verifies again.
    pub fn acme(account: &hapki_store::acme::AcmeAccount, jws: &[u8]) -> Caller {
        Caller {
            token_id: account.requester(),
            name: format!("ACME account {}", account.id),
            role: Role::Requester,
            profiles: vec![account.profile.clone()],
            issuers: Vec::new(),
            credential: Some(Credential::Acme(Arc::new(jws.to_vec()))),
        }
    }

    /// The node itself, for what it does on its own (its first CA, the initial admin token):
    /// every role's action, and its writes are the node's, which the leader checks as such.
    pub fn node() -> Caller {
        Caller {
            token_id: "node".into(),
            name: "node".into(),
            role: Role::Admin,
            profiles: Vec::new(),
            issuers: Vec::new(),
            credential: None,
        }
    }

    /// Whether this is the node itself, with no client behind it.
    pub fn is_node(&self) -> bool {
        self.credential.is_none()
    }

    /// On whose behalf a write this caller causes is made, for the leader to check again.
    pub fn origin(&self) -> hapki_cluster::Origin {
        match &self.credential {
            Some(Credential::Token(t)) => hapki_cluster::Origin::Client { token: t.clone() },
            Some(Credential::Acme(jws)) => hapki_cluster::Origin::Acme { jws: jws.to_vec() },
            Some(Credential::Est(cert)) => hapki_cluster::Origin::Est {
                certificate: cert.to_vec(),
            },
            None => hapki_cluster::Origin::Node,
        }
    }

    /// Fails with 403 unless the caller's role allows `action`.
    pub fn may(&self, action: Action) -> Result<(), PkiError> {
        if action.allowed(self.role) {
            Ok(())
        } else {
            let role = self.role.name();
            let article = if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            Err(PkiError::forbidden(format!(
                "{article} {role} token may not {}; use a token with a role that may (`hapki token create --role ...`)",
                action.describe()
            )))
        }
    }
}

impl FromRequestParts<Arc<Pki>> for Caller {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(parts: &mut Parts, pki: &Arc<Pki>) -> Result<Self, Self::Rejection> {
        Ok(authenticate(pki, &parts.headers)?)
    }
}

/// Who a re-enrolled certificate is recorded as requested by: the one its predecessor was.
pub fn est_requester(cert: &hapki_store::CertRecord) -> String {
    cert.requested_by
        .clone()
        .unwrap_or_else(|| format!("est:{}", cert.serial))
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, PkiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| PkiError::unauthenticated("missing bearer token: pass --token or set HAPKI_TOKEN"))?;
    let value = header
        .to_str()
        .map_err(|_| PkiError::unauthenticated("the Authorization header is not text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| PkiError::unauthenticated("the Authorization header must be `Bearer <token>`"))
}

/// The caller a request's bearer token names. A refusal goes to this node's log (not
/// the replicated audit log), at most one line per [`FAILURE_REPORT_EVERY`].
pub fn authenticate(pki: &Pki, headers: &HeaderMap) -> Result<Caller, PkiError> {
    let caller = bearer(headers).and_then(|t| pki.caller(t));
    if let Err(e) = &caller {
        FAILURES.note(&e.to_string());
    }
    caller
}

/// How often refused authentications are reported in the node's log, at most.
pub const FAILURE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

static FAILURES: FailureLog = FailureLog {
    state: std::sync::Mutex::new(None),
};

/// Counts refused authentications and reports them together.
struct FailureLog {
    /// When the last line was written, and how many were refused since.
    state: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl FailureLog {
    fn note(&self, reason: &str) {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().expect("failure log lock");
        match &mut *state {
            Some((last, count)) if now.duration_since(*last) < FAILURE_REPORT_EVERY => *count += 1,
            other => {
                let before = other.map_or(0, |(_, c)| c);
                tracing::warn!(
                    "authentication refused: {reason}{}",
                    if before > 0 {
                        format!(
                            " ({before} more refused in the {} s before)",
                            FAILURE_REPORT_EVERY.as_secs()
                        )
                    } else {
                        String::new()
                    }
                );
                *other = Some((now, 0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_they_should() {
        assert!(Action::ManageCa.allowed(Role::Admin));
        assert!(!Action::ManageCa.allowed(Role::Agent));
        assert!(Action::Revoke.allowed(Role::Agent));
        assert!(!Action::Revoke.allowed(Role::Requester));
        assert!(Action::Issue.allowed(Role::Requester));
        assert!(!Action::ListCerts.allowed(Role::Requester));
        assert!(!Action::ReadStatus.allowed(Role::Requester));
        assert!(!Action::Revoke.allowed(Role::Requester));
        assert!(Action::ArchiveKey.allowed(Role::Requester));
        assert!(!Action::RecoverKey.allowed(Role::Requester));
        assert!(Action::RecoverKey.allowed(Role::Agent));
    }
}
