//! Issuing-CA rollover (`hapki ca rotate`): a successor with the same subject and a new
//! key, which becomes the default for new certificates at a chosen time. The predecessor
//! stays an issuer: its CRL is renewed and OCSP answers for what it issued, with the rest.
//!
//! - A root's successor signs with a certificate the old root issued to its new key, so
//!   relying parties that trust the old root build a path to it; its self-signed
//!   certificate is published beside, for trust stores to add before the old root ends.
//! - An intermediate whose parent is an issuer of this cluster gets its certificate from
//!   that parent; one whose parent is elsewhere gets a CSR to have signed, and takes over
//!   once `hapki ca install-cert` installs its certificate.

use hapki_domain::issue::{summarize, IssuerView};
use hapki_domain::key::{KeyType, PublicKeyKind, SigningKey};
use hapki_domain::pem::{encode, PemLabel};
use hapki_domain::serial::Serial;
use hapki_domain::successor::{successor_certificate, Signer};
use hapki_store::{Command, Rollover};

use hapki_api::ca::{RotateRequest, Rotated};

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};
use crate::pki::BACKDATE_SECS;

/// The key type that makes keys of `kind`.
fn same_key_type(kind: PublicKeyKind) -> Result<KeyType, PkiError> {
    Ok(match kind {
        PublicKeyKind::Ec { bits: 256 } => KeyType::EcP256,
        PublicKeyKind::Ec { bits: 384 } => KeyType::EcP384,
        PublicKeyKind::Rsa { bits: 2048 } => KeyType::Rsa2048,
        PublicKeyKind::Rsa { bits: 3072 } => KeyType::Rsa3072,
        PublicKeyKind::Rsa { bits: 4096 } => KeyType::Rsa4096,
        PublicKeyKind::Ed25519 => KeyType::Ed25519,
        other => {
            return Err(PkiError::invalid(format!(
                "hapki makes no {other} keys; name the successor's key type"
            )))
        }
    })
}

/// The state format that brought rollovers.
const ROLLOVER_FORMAT: u32 = 2;

impl Pki {
    /// Creates a successor for issuer `id` that becomes the default at `req.at` (now when
    /// absent) if `id` is the default then.
    pub async fn rotate_issuer(&self, caller: &Caller, id: &str, req: &RotateRequest) -> Result<Rotated, PkiError> {
        caller.may(Action::ManageCa)?;
        self.require_format(ROLLOVER_FORMAT, "an issuing-CA rollover")?;
        let reader = self.reader()?;
        if let Some(r) = reader.rollover_from(id)? {
            return Err(PkiError::conflict(format!(
                "issuer {id} is rolled over to {} already; rotate {} instead",
                r.to, r.to
            )));
        }
        let old = self.issuer(Some(id))?;
        let now = self.now();
        let at = req.at.unwrap_or(now);
        let summary = summarize(&old.record.cert_der)?;
        let days = match req.validity_days {
            Some(0) | Some(36_501..) => return Err(PkiError::invalid("validity_days must be between 1 and 36500")),
            Some(d) => u64::from(d) * 86_400,
            None => summary.not_after.saturating_sub(summary.not_before),
        };
        let key_type = match req.key_type {
            Some(k) => k,
            None => same_key_type(old.key.kind())?,
        };
        let key = SigningKey::generate(key_type)?;
        let serial = Serial::from_random(self.random());
        let mut validity = (now - BACKDATE_SECS, now + days);
        let self_signed_root = old.record.chain_der.is_empty() && summary.issuer == summary.subject;
        let parent = match old.record.chain_der.first() {
            Some(parent_der) if !self_signed_root => reader
                .issuers()?
                .into_iter()
                .find(|i| i.is_active() && &i.cert_der == parent_der)
                .map(|i| self.issuer(Some(&i.id)))
                .transpose()?,
            _ => None,
        };
        let (successor, self_signed_der, signed) = if self_signed_root {
            let cross = successor_certificate(
                &old.record.cert_der,
                &key.spki(),
                &serial,
                validity,
                Signer::Issuer(&old.view()),
            )?;
            let own_serial = Serial::from_random(self.random());
            let own = successor_certificate(
                &old.record.cert_der,
                &key.spki(),
                &own_serial,
                validity,
                Signer::SelfSigned(&key),
            )?;
            let record = self.issuer_record(&key, cross, vec![old.record.cert_der.clone()], now)?;
            (record, Some(own), "signed by the old root".to_string())
        } else if let Some(parent) = parent {
            validity.1 = validity.1.min(parent.record.not_after);
            let view: IssuerView<'_> = parent.view();
            let cert = successor_certificate(
                &old.record.cert_der,
                &key.spki(),
                &serial,
                validity,
                Signer::Issuer(&view),
            )?;
            let record = self.issuer_record(&key, cert, old.record.chain_der.clone(), now)?;
            (record, None, format!("signed by {}", parent.record.id))
        } else {
            let record = self.pending_issuer(&key, &old.subject)?;
            (record, None, "awaiting certificate".to_string())
        };
        let to = successor.id.clone();
        let rollover = Rollover {
            from: id.to_string(),
            to: to.clone(),
            at,
            created_at: now,
            switched: false,
            self_signed_der: self_signed_der.clone(),
        };
        self.propose_as(
            caller,
            Command::RollOverIssuer {
                successor: successor.clone(),
                rollover,
            },
        )
        .await?;
        tracing::info!("issuer {id} rolls over to {to} ({signed}), the default from {at}");
        if successor.is_active() {
            let index = self.cluster.status().last_applied.unwrap_or(0);
            self.refresh_crl(&to, index + 1).await?;
        }
        Ok(Rotated {
            from: id.to_string(),
            to,
            at,
            signed,
            certificate: successor
                .is_active()
                .then(|| encode(PemLabel::Certificate, &successor.cert_der)),
            chain: successor
                .chain_der
                .iter()
                .map(|d| encode(PemLabel::Certificate, d))
                .collect(),
            self_signed: self_signed_der.map(|d| encode(PemLabel::Certificate, &d)),
            csr: (!successor.is_active()).then(|| encode(PemLabel::CertificateRequest, &successor.csr_der)),
        })
    }

    /// On the leader: records each rollover that fell due, so the successor is the stored
    /// default from then on (until then the readers resolve it through the rollover).
    pub async fn complete_due_rollovers(&self) -> Result<(), PkiError> {
        if !self.cluster.status().is_leader || self.reader()?.state_format()? < ROLLOVER_FORMAT {
            return Ok(());
        }
        for due in self.reader()?.due_rollovers(self.now())? {
            self.propose_once(Command::CompleteRollover { from: due.from.clone() })
                .await?;
            tracing::info!("issuer {} took over from {} as planned", due.to, due.from);
        }
        Ok(())
    }
}
