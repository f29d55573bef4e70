//! The OCSP responder: a request is matched to the issuer it names, each serial
//! is looked up in the local replica, and the answer is signed by the issuer's
//! delegated responder, whose key is already in memory. An answer for one certificate
//! without a nonce is kept and served again ([`super::ocsp_cache`]).

use hapki_domain::ocsp::{parse_request, refusal, requested_serial, OcspRefusal, Status};

use std::sync::Arc;

use axum::body::Bytes;

use super::ocsp_cache::Kept;
use super::{Pki, PkiError};

/// An OCSP response and, when caches may keep it, the moments it is valid between.
pub struct OcspAnswer {
    pub der: Bytes,
    pub cacheable: Option<Freshness>,
    /// The moment the answer was given (a kept one was signed earlier).
    pub at: u64,
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
    pub fn ocsp(self: &Arc<Self>, request: &[u8]) -> OcspAnswer {
        match self.ocsp_inner(request, true) {
            Ok((answer, status, cache)) => {
                metrics::counter!(crate::metrics::OCSP_RESPONSES, "status" => status, "cache" => cache).increment(1);
                answer
            }
            Err(r) => {
                metrics::counter!(crate::metrics::OCSP_RESPONSES, "status" => "refused", "cache" => NONE).increment(1);
                OcspAnswer {
                    der: refusal(r).into(),
                    cacheable: None,
                    at: self.now(),
                }
            }
        }
    }

    /// Signs the successor of a kept answer, off the request that found it due.
    fn refresh_ocsp(self: &Arc<Self>, request: &[u8]) {
        let (pki, request) = (Arc::downgrade(self), request.to_vec());
        tokio::spawn(async move {
            let Some(pki) = pki.upgrade() else { return };
            if let Err(r) = pki.ocsp_inner(&request, false) {
                tracing::warn!("signing a kept OCSP answer anew failed: {r:?}");
            }
        });
    }

    /// The answer, the status of its first certificate and how it came about; `use_kept`
    /// false signs anew (and keeps) even if an answer is kept.
    fn ocsp_inner(
        self: &Arc<Self>,
        request: &[u8],
        use_kept: bool,
    ) -> Result<(OcspAnswer, &'static str, &'static str), OcspRefusal> {
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
        if let Some((serial, id)) = keepable.as_ref().filter(|_| use_kept) {
            if let Some(hit) = self.ocsp_cache.get(serial, id, now) {
                if hit.refresh {
                    self.refresh_ocsp(request);
                }
                let answer = OcspAnswer {
                    der: hit.kept.der,
                    cacheable: Some(hit.kept.fresh),
                    at: now,
                };
                return Ok((answer, hit.kept.status, HIT));
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
        let der: Bytes = responder
            .respond(&answers, req.nonce.as_deref(), now, now + validity)
            .map_err(|e| {
                tracing::error!("OCSP signing failed: {e}");
                OcspRefusal::InternalError
            })?
            .into();
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
                self.ocsp_cache
                    .keep(generation, serial, id, Kept::new(der.clone(), fresh, first));
                MISS
            }
            _ => NONE,
        };
        Ok((
            OcspAnswer {
                der,
                cacheable,
                at: now,
            },
            first,
            cache,
        ))
    }
}
