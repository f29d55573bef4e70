//! Reading certificates: one by serial, or a page of those a filter finds, as
//! the API shows them. A requester reads only the certificates it asked for.

use hapki_api::certs::{CertList, CertQuery, CertState, CertView};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::serial::Serial;
use hapki_store::{CertFilter, CertRecord, CertStatus, Cursor};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

impl Pki {
    /// The certificate with serial `serial` (hex), read through the leader when `consistent`.
    pub async fn cert(&self, caller: &Caller, serial: &str, consistent: bool) -> Result<CertView, PkiError> {
        caller.may(Action::ReadCert)?;
        let serial = Serial::from_hex(serial)?;
        if consistent {
            self.cluster.linearizable().await?;
        }
        let cert = self
            .reader()?
            .cert(&serial)?
            .ok_or_else(|| PkiError::NoCertificate(serial.to_string()))?;
        self.authorize_read(caller, &cert)?;
        Ok(cert_view(cert, true, self.now()))
    }

    /// A page of the certificates `q` finds.
    pub async fn certs(&self, caller: &Caller, q: CertQuery) -> Result<CertList, PkiError> {
        caller.may(Action::ListCerts)?;
        if q.consistent {
            self.cluster.linearizable().await?;
        }
        let now = self.now();
        let status = match q.status.as_deref() {
            None | Some("all") => None,
            Some("valid") => Some(CertStatus::Valid),
            Some("revoked") => Some(CertStatus::Revoked),
            Some("expired") => Some(CertStatus::Expired),
            Some(other) => {
                return Err(PkiError::invalid(format!(
                    "status '{other}' is not valid, revoked, expired or all"
                )))
            }
        };
        let limit = q.limit.unwrap_or(100);
        if limit == 0 || limit > 1000 {
            return Err(PkiError::invalid("limit must be between 1 and 1000"));
        }
        let filter = CertFilter {
            status,
            subject: q.subject,
            san: q.san,
            expiring_before: q
                .expiring_within
                .as_deref()
                .map(super::parse_duration)
                .transpose()?
                .map(|d| now + d),
            issuer_id: q.issuer,
            profile: q.profile,
            after: q
                .after
                .as_deref()
                .map(str::parse::<Cursor>)
                .transpose()
                .map_err(PkiError::invalid)?,
            limit,
            now,
        };
        let page = self.reader()?.certs(&filter)?;
        Ok(CertList {
            certs: page.certs.into_iter().map(|c| cert_view(c, false, now)).collect(),
            next_after: page.next.map(|c| c.to_string()),
        })
    }
}

/// A certificate as the API shows it, with its PEM when `with_pem`.
fn cert_view(c: CertRecord, with_pem: bool, now: u64) -> CertView {
    let status = match (&c.revoked, c.not_after <= now) {
        (Some(_), _) => CertState::Revoked,
        (None, true) => CertState::Expired,
        (None, false) => CertState::Valid,
    };
    CertView {
        serial: c.serial.to_hex(),
        issuer_id: c.issuer_id,
        profile: c.profile,
        subject: c.subject,
        sans: c.sans,
        not_before: c.not_before,
        not_after: c.not_after,
        issued_at: c.issued_at,
        status,
        revoked_at: c.revoked.map(|r| r.at),
        revocation_reason: c.revoked.map(|r| r.reason.to_string()),
        certificate: with_pem.then(|| encode(PemLabel::Certificate, &c.der)),
    }
}
