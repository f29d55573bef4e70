//! The OCSP responder: a request is matched to the issuer it names, each serial
//! is looked up in the local replica, and the answer is signed by the issuer's
//! delegated responder, whose key is already in memory.

use hapki_domain::ocsp::{parse_request, refusal, requested_serial, OcspRefusal, Status};

use super::{now, Pki};

impl Pki {
    /// Answers a DER OCSP request with a DER OCSP response (never an HTTP error).
    pub fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        match self.ocsp_inner(request) {
            Ok(der) => der,
            Err(r) => refusal(r),
        }
    }

    fn ocsp_inner(&self, request: &[u8]) -> Result<Vec<u8>, OcspRefusal> {
        let req = parse_request(request)?;
        let internal = |e: crate::error::ApiError| {
            tracing::error!("OCSP: {}", e.message);
            OcspRefusal::InternalError
        };
        let issuers = self.active_issuers().map_err(internal)?;
        let issuer = issuers
            .iter()
            .find(|i| i.hashes.matches(&req.cert_ids[0]))
            .ok_or(OcspRefusal::Unauthorized)?;
        let responder = issuer.responder.as_ref().ok_or(OcspRefusal::Unauthorized)?;
        let reader = self.reader().map_err(internal)?;
        let mut answers = Vec::with_capacity(req.cert_ids.len());
        for id in &req.cert_ids {
            let status = match requested_serial(id) {
                Some(serial) if issuer.hashes.matches(id) => match reader.cert(&serial) {
                    Ok(Some(c)) if c.issuer_id == issuer.record.id => match c.revoked {
                        Some(r) => Status::Revoked {
                            at: r.at,
                            reason: r.reason,
                        },
                        None => Status::Good,
                    },
                    Ok(_) => Status::Unknown,
                    Err(e) => return Err(internal(e.into())),
                },
                _ => Status::Unknown,
            };
            answers.push((id.clone(), status));
        }
        let validity = reader.settings().map_err(|e| internal(e.into()))?.ocsp_validity_secs;
        let now = now();
        responder
            .respond(&answers, req.nonce.as_deref(), now, now + validity)
            .map_err(|e| {
                tracing::error!("OCSP signing failed: {e}");
                OcspRefusal::InternalError
            })
    }
}
