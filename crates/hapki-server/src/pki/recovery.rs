//! Recovering an archived key with M-of-N approvals: an agent or admin asks
//! (with a reason), other tokens approve, and the requester fetches the key once
//! as a password-protected PKCS#12. Each step is a command in the log, so it may
//! be taken on any node; the rules are the state machine's
//! (`hapki_store::archive`), checked here first for a clear answer.

use hapki_api::keys::{ApprovalView, Recovered, RecoveryList, RecoveryRequestBody, RecoveryView};
use hapki_domain::serial::Serial;
use hapki_domain::time::rfc3339;
use hapki_store::{Approval, Command, RecoveryPolicy, RecoveryRequest, StateReader};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

/// The longest reason a request keeps.
const MAX_REASON: usize = 1000;

impl Pki {
    /// `POST /v1/keys/recoveries`: opens a request for the archived key of `serial`.
    pub async fn request_recovery(&self, caller: &Caller, req: &RecoveryRequestBody) -> Result<RecoveryView, PkiError> {
        caller.may(Action::RecoverKey)?;
        let serial = Serial::from_hex(&req.serial)?;
        let reason = req.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(PkiError::invalid(format!(
                "a recovery needs a reason (--reason) of 1 to {MAX_REASON} characters on one line"
            )));
        }
        if self.reader()?.archived_key(&serial)?.is_none() {
            return Err(PkiError::not_found(format!(
                "no key is archived for certificate {serial}; `hapki key list` shows the archived keys"
            )));
        }
        let id = hex::encode(self.random::<8>());
        self.propose_as(
            caller,
            Command::RequestRecovery {
                id: id.clone(),
                serial,
                reason: reason.to_string(),
                by: caller.token_id.clone(),
                by_name: caller.name.clone(),
                at: self.now(),
            },
        )
        .await?;
        self.recovery(caller, &id)
    }

    /// One recovery request.
    pub fn recovery(&self, caller: &Caller, id: &str) -> Result<RecoveryView, PkiError> {
        caller.may(Action::RecoverKey)?;
        let reader = self.reader()?;
        let request = find(&reader, id)?;
        recovery_view(&reader, &request, self.now())
    }

    /// `GET /v1/keys/recoveries`: every request, newest first.
    pub fn recoveries(&self, caller: &Caller) -> Result<RecoveryList, PkiError> {
        caller.may(Action::RecoverKey)?;
        let reader = self.reader()?;
        let now = self.now();
        let mut all = reader.recoveries()?;
        all.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(a.id.cmp(&b.id)));
        let recoveries = all
            .iter()
            .map(|r| recovery_view(&reader, r, now))
            .collect::<Result<_, _>>()?;
        Ok(RecoveryList { recoveries })
    }

    /// `POST /v1/keys/recoveries/{id}/approve`.
    pub async fn approve_recovery(&self, caller: &Caller, id: &str) -> Result<RecoveryView, PkiError> {
        caller.may(Action::RecoverKey)?;
        find(&self.reader()?, id)?;
        let approval = Approval {
            token_id: caller.token_id.clone(),
            token_name: caller.name.clone(),
            at: self.now(),
        };
        self.propose_as(
            caller,
            Command::ApproveRecovery {
                id: id.to_string(),
                approval,
            },
        )
        .await?;
        self.recovery(caller, id)
    }

    /// `POST /v1/keys/recoveries/{id}/fetch`: marks the request fetched through the log
    /// (so a second fetch, here or on another node, is refused), then answers the key.
    pub async fn fetch_recovery(&self, caller: &Caller, id: &str, password: &str) -> Result<Recovered, PkiError> {
        caller.may(Action::RecoverKey)?;
        if password.is_empty() {
            return Err(PkiError::invalid("the PKCS#12 file needs a password (--password-file)"));
        }
        let request = find(&self.reader()?, id)?;
        // Everything the answer needs is checked before the one fetch is spent.
        let reader = self.reader()?;
        let key = reader
            .archived_key(&request.serial)?
            .ok_or_else(|| PkiError::internal(format!("the archived key of {} vanished", request.serial)))?;
        let cert = reader
            .cert(&request.serial)?
            .ok_or_else(|| PkiError::internal(format!("certificate {} vanished", request.serial)))?;
        self.issuer(Some(&cert.issuer_id))?;
        drop(reader);
        self.propose_as(
            caller,
            Command::FetchRecovery {
                id: id.to_string(),
                by: caller.token_id.clone(),
                at: self.now(),
            },
        )
        .await?;
        let pkcs12 = self.archived_pkcs12(caller, &cert, &key, password.to_string()).await?;
        tracing::info!(
            "recovery {id}: the key of certificate {} was released to token {}",
            request.serial,
            caller.token_id
        );
        Ok(Recovered {
            id: id.to_string(),
            serial: request.serial.to_hex(),
            pkcs12,
        })
    }

    /// The recovery policy in force.
    pub fn recovery_policy(&self) -> Result<RecoveryPolicy, PkiError> {
        Ok(self.reader()?.recovery_policy()?)
    }
}

fn find(reader: &StateReader, id: &str) -> Result<RecoveryRequest, PkiError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PkiError::invalid(format!(
            "'{id}' is not a recovery request id (16 hex digits, as `hapki key recover list` shows)"
        )));
    }
    reader
        .recovery(id)?
        .ok_or_else(|| PkiError::not_found(format!("no recovery request {id}; `hapki key recover list` shows them")))
}

fn recovery_view(reader: &StateReader, r: &RecoveryRequest, now: u64) -> Result<RecoveryView, PkiError> {
    let subject = reader.cert(&r.serial)?.map(|c| c.subject).unwrap_or_default();
    Ok(RecoveryView {
        id: r.id.clone(),
        serial: r.serial.to_hex(),
        subject,
        reason: r.reason.clone(),
        requested_by: r.requested_by.clone(),
        requested_by_name: r.requested_by_name.clone(),
        requested_at: rfc3339(r.requested_at),
        expires_at: rfc3339(r.expires_at),
        status: r.status(now).into(),
        required: r.required,
        approvals: r
            .approvals
            .iter()
            .map(|a| ApprovalView {
                token_id: a.token_id.clone(),
                token_name: a.token_name.clone(),
                at: rfc3339(a.at),
            })
            .collect(),
        fetched_at: r.fetched_at.map(rfc3339),
    })
}
