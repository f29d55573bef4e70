//! The ACME objects as clients read them, worked out from the stored records and the
//! time: an order's and an authorization's status, the challenges an authorization
//! offers, errors kept with a failed challenge, and RFC 9773's renewal windows and
//! certificate ids.

use hapki_api::acme as wire;
use hapki_domain::jws::b64;
use hapki_domain::serial::Serial;
use hapki_domain::time::rfc3339;
use hapki_store::acme::{AcmeAuthz, AcmeOrder, AuthzStatus, Identifier, RenewalHint};
use hapki_store::CertRecord;

use super::error::{AcmeError, Kind};
use super::{Directory, RENEWAL_RETRY_SECS};

/// An order with its authorizations at a moment.
pub struct OrderState {
    pub order: AcmeOrder,
    pub authzs: Vec<AcmeAuthz>,
    pub now: u64,
}

impl OrderState {
    /// `pending`, `ready`, `valid` or `invalid` (finalize is done within the request, so
    /// an order is never seen `processing`).
    pub fn status(&self) -> &'static str {
        if self.order.certificate.is_some() {
            return "valid";
        }
        if self.order.expires_at <= self.now {
            return "invalid";
        }
        let states: Vec<&str> = self.authzs.iter().map(|a| authz_status(a, self.now)).collect();
        if states.iter().any(|s| *s != "pending" && *s != "valid") {
            "invalid"
        } else if states.iter().all(|s| *s == "valid") {
            "ready"
        } else {
            "pending"
        }
    }

    pub fn object(&self, dir: &Directory) -> wire::Order {
        let status = self.status();
        let error = (status == "invalid" && self.order.certificate.is_none()).then(|| wire::Problem {
            kind: format!("urn:ietf:params:acme:error:{}", Kind::Unauthorized.name()),
            detail: if self.order.expires_at <= self.now {
                "the order expired before it was finalized".into()
            } else {
                "an authorization of the order failed or was deactivated".into()
            },
            status: 403,
        });
        wire::Order {
            status: status.into(),
            expires: rfc3339(self.order.expires_at),
            identifiers: self.order.identifiers.iter().map(wire_identifier).collect(),
            authorizations: self
                .order
                .authorizations
                .iter()
                .map(|a| dir.url(&format!("authz/{a}")))
                .collect(),
            finalize: dir.url(&format!("order/{}/finalize", self.order.id)),
            certificate: self.order.certificate.map(|s| dir.url(&format!("cert/{}", s.to_hex()))),
            replaces: self.order.replaces.clone(),
            error,
        }
    }
}

fn wire_identifier(i: &Identifier) -> wire::Identifier {
    wire::Identifier {
        kind: i.kind.clone(),
        value: i.value.clone(),
    }
}

fn authz_status(a: &AcmeAuthz, now: u64) -> &'static str {
    match &a.status {
        AuthzStatus::Invalid { .. } => "invalid",
        AuthzStatus::Deactivated => "deactivated",
        _ if a.expires_at <= now => "expired",
        AuthzStatus::Pending => "pending",
        AuthzStatus::Valid { .. } => "valid",
    }
}

/// The challenges an authorization offers: a wildcard is proved in DNS only, an IP
/// address over HTTP only.
pub fn challenge_kinds(a: &AcmeAuthz) -> Vec<&'static str> {
    match (a.identifier.kind.as_str(), a.wildcard) {
        ("ip", _) => vec!["http-01"],
        (_, true) => vec!["dns-01"],
        _ => vec!["http-01", "dns-01", "tls-alpn-01"],
    }
}

pub fn authz_object(dir: &Directory, a: &AcmeAuthz, now: u64) -> wire::Authorization {
    let kinds = challenge_kinds(a);
    // Once one challenge decided, the authorization shows that one alone.
    let shown: Vec<&str> = match &a.status {
        AuthzStatus::Valid { challenge, .. } | AuthzStatus::Invalid { challenge, .. } => {
            kinds.into_iter().filter(|k| k == challenge).collect()
        }
        _ => kinds,
    };
    wire::Authorization {
        status: authz_status(a, now).into(),
        expires: rfc3339(a.expires_at),
        identifier: wire_identifier(&a.identifier),
        challenges: shown.into_iter().map(|k| challenge_object(dir, a, k)).collect(),
        wildcard: a.wildcard,
    }
}

pub fn challenge_object(dir: &Directory, a: &AcmeAuthz, kind: &str) -> wire::Challenge {
    let (status, validated, error) = match &a.status {
        AuthzStatus::Valid { challenge, at } if challenge == kind => ("valid", Some(rfc3339(*at)), None),
        AuthzStatus::Invalid { challenge, error, .. } if challenge == kind => {
            ("invalid", None, Some(decode_problem(error)))
        }
        AuthzStatus::Pending => ("pending", None, None),
        _ => ("invalid", None, None),
    };
    wire::Challenge {
        kind: kind.into(),
        url: dir.url(&format!("chall/{}/{kind}", a.id)),
        status: status.into(),
        token: a.token.clone(),
        validated,
        error,
    }
}

/// How a failed challenge's error is kept in the state.
pub fn encode_problem(e: &AcmeError) -> String {
    format!("{}|{}", e.kind.name(), e.detail)
}

fn decode_problem(s: &str) -> wire::Problem {
    let (kind, detail) = s.split_once('|').unwrap_or(("incorrectResponse", s));
    wire::Problem {
        kind: format!("urn:ietf:params:acme:error:{kind}"),
        detail: detail.into(),
        status: 403,
    }
}

/// A certificate's RFC 9773 id: its authority key id and serial, each base64url.
#[cfg(test)]
pub fn renewal_id(key_id: &[u8], serial: &Serial) -> String {
    use hapki_domain::jws::b64_encode;
    let sig = serial.significant();
    let content = if sig[0] & 0x80 != 0 {
        [&[0u8][..], sig].concat()
    } else {
        sig.to_vec()
    };
    format!("{}.{}", b64_encode(key_id), b64_encode(&content))
}

/// The serial and authority key id an RFC 9773 id names.
pub fn parse_renewal_id(id: &str) -> Result<(Serial, Vec<u8>), AcmeError> {
    let bad = || {
        AcmeError::malformed(format!(
            "'{id}' is not a certificate id (base64url key id, '.', base64url serial)"
        ))
    };
    let (aki, serial) = id.split_once('.').ok_or_else(bad)?;
    let aki = b64("the key id", aki).map_err(|_| bad())?;
    let serial = b64("the serial", serial).map_err(|_| bad())?;
    if aki.is_empty() || serial.is_empty() || serial[0] & 0x80 != 0 {
        return Err(bad());
    }
    Ok((Serial::from_bytes(&serial).ok_or_else(bad)?, aki))
}

/// The renewal window of `cert`: the last third of its life, ending a sixth before it
/// expires; at once if it is revoked; ending by the issuer's hint if one is set earlier.
pub fn renewal_window(cert: &CertRecord, hint: Option<&RenewalHint>, now: u64) -> wire::RenewalInfo {
    let life = cert.not_after.saturating_sub(cert.not_before);
    let (mut start, mut end) = (cert.not_after - life / 3, cert.not_after - life / 6);
    let mut why = None;
    if let Some(r) = &cert.revoked {
        // In the past: clients renew at once.
        start = r.at.min(now).saturating_sub(2 * RENEWAL_RETRY_SECS);
        end = r.at.min(now).saturating_sub(RENEWAL_RETRY_SECS);
        why = Some("the certificate is revoked");
    } else if let Some(h) = hint.filter(|h| h.before < end && h.set_at >= cert.not_before.saturating_sub(86_400)) {
        end = h.before.max(cert.not_before + 1);
        start = start.min(end.saturating_sub(3_600)).max(cert.not_before);
        why = Some("an operator asked for the issuer's certificates to be renewed");
    }
    wire::RenewalInfo {
        suggested_window: wire::Window {
            start: rfc3339(start),
            end: rfc3339(end),
        },
        explanation_url: why
            .map(|_| "https://github.com/hapki/hapki/blob/main/docs/acme.md#renewal-information".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_id_round_trips_and_keeps_a_leading_zero() {
        for serial in [
            Serial::from_u64(0x1234),
            Serial::from_u64(0x80),
            Serial::from_random([0xff; 16]),
        ] {
            let id = renewal_id(&[1, 2, 3], &serial);
            assert_eq!(parse_renewal_id(&id).unwrap(), (serial, vec![1, 2, 3]));
        }
        assert!(renewal_id(&[1], &Serial::from_u64(0x80)).ends_with(".AIA"));
        for bad in ["", "abc", "AQ.", ".AQ", "AQ.gA", "A!.AQ"] {
            assert!(parse_renewal_id(bad).is_err(), "{bad}");
        }
    }
}
