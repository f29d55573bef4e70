//! The OCSP responder: a request is matched to the issuer it names, each serial
//! is looked up in the local replica, and the answer is signed by the issuer's
//! delegated responder, whose key is already in memory. An answer for one certificate
//! without a nonce is kept and served again ([`super::ocsp_cache`]).

use hapki_domain::ocsp::{parse_request, refusal, requested_serial, OcspRefusal, Status};

use super::ocsp_cache::Kept;
use super::{Pki, PkiError};

/// An OCSP response and, when caches may keep it, the moments it is valid between.
pub struct OcspAnswer {
    pub der: Vec<u8>,
    pub cacheable: Option<Freshness>,
}

/// thisUpdate and nextUpdate of a response that carries no nonce (RFC 5019 §6.2).
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    pub this_update: u64,
    pub next_update: u64,
}

/// How an answer came about, for metrics: kept from an earlier request, signed now and
/// kept, or signed for this request only (a nonce, several certificates, a refusal).
const HIT: &str = "hit";
const MISS: &str = "miss";
const NONE: &str = "none";

impl Pki {
    /// Answers a DER OCSP request with a DER OCSP response (never an HTTP error).
    pub fn ocsp(&self, request: &[u8]) -> OcspAnswer {
        match self.ocsp_inner(request) {
            Ok((answer, status, cache)) => {
                metrics::counter!(crate::metrics::OCSP_RESPONSES, "status" => status, "cache" => cache).increment(1);
                answer
            }
            Err(r) => {
                metrics::counter!(crate::metrics::OCSP_RESPONSES, "status" => "refused", "cache" => NONE).increment(1);
                OcspAnswer {
                    der: refusal(r),
                    cacheable: None,
                }
            }
        }
    }

    /// The answer, the status of its first certificate and how it came about.
    fn ocsp_inner(&self, request: &[u8]) -> Result<(OcspAnswer, &'static str, &'static str), OcspRefusal> {
        let req = parse_request(request)?;
        let internal = |e: PkiError| {
            tracing::error!("OCSP: {}", e);
            OcspRefusal::InternalError
        };
        let now = self.now();
        // One certificate, no nonce: an answer that may be kept and served again.
        let keepable = match (&req.cert_ids[..], &req.nonce) {
            ([id], None) => requested_serial(id).map(|serial| {
                let der = der::Encode::to_der(id).expect("a parsed CertId encodes");
                (serial.0, der)
            }),
            _ => None,
        };
        if let Some((serial, id)) = &keepable {
            if let Some(kept) = self.ocsp_cache.get(serial, id, now) {
                let answer = OcspAnswer {
                    der: kept.der,
                    cacheable: Some(kept.fresh),
                };
                return Ok((answer, kept.status, HIT));
            }
        }
        // Read before the replica: an invalidation after this drops what is built here.
        let generation = self.ocsp_cache.generation();
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
        let der = responder
            .respond(&answers, req.nonce.as_deref(), now, now + validity)
            .map_err(|e| {
                tracing::error!("OCSP signing failed: {e}");
                OcspRefusal::InternalError
            })?;
        // A response that echoes a nonce answers one request only.
        let cacheable = req.nonce.is_none().then_some(Freshness {
            this_update: now,
            next_update: now + validity,
        });
        let first = match answers.first().map(|(_, s)| s) {
            Some(Status::Good) => "good",
            Some(Status::Revoked { .. }) => "revoked",
            _ => "unknown",
        };
        let cache = match (keepable, cacheable) {
            (Some((serial, id)), Some(fresh)) => {
                let kept = Kept {
                    der: der.clone(),
                    fresh,
                    status: first,
                };
                self.ocsp_cache.keep(generation, serial, id, kept);
                MISS
            }
            _ => NONE,
        };
        Ok((OcspAnswer { der, cacheable }, first, cache))
    }
}
