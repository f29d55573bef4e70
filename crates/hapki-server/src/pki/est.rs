//! EST (RFC 7030, with RFC 8951's clarifications) for devices: the CA certificates, an
//! enrollment by a requester token (HTTP Basic, the password is the token) or by a
//! certificate of this cluster for the same names, and a re-enrollment by the
//! certificate being renewed. A CSR that carries a challengePassword must carry the
//! connection's channel binding (the TLS exporter of RFC 9266, base64): proof that it
//! was made for this TLS connection. Issuance is the path of `POST /v1/certs`.

use hapki_domain::csr::{parse_and_verify, VerifiedCsr};
use hapki_domain::name::display_name;
use hapki_domain::profile::SubjectSpecOrRaw;
use hapki_store::CertRecord;

use super::issue::Recording;
use super::{Pki, PkiError};
use crate::auth::Caller;

/// What the TLS connection of a request showed: the client's certificate, and the
/// connection's channel binding.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    pub certificate: Option<Vec<u8>>,
    pub channel_binding: Option<[u8; 32]>,
}

/// The label EST requests without one use.
pub const DEFAULT_PROFILE: &str = "server";

impl Pki {
    /// `GET cacerts`: the chain of the issuer that signs profile `profile`'s requests.
    pub fn est_cacerts(&self, profile: &str) -> Result<Vec<u8>, PkiError> {
        self.profile(profile)?;
        let issuer = self.issuer(None)?;
        let chain: Vec<Vec<u8>> = std::iter::once(issuer.record.cert_der.clone())
            .chain(issuer.record.chain_der.iter().cloned())
            .collect();
        Ok(hapki_domain::pkcs7::certs_only(&chain)?)
    }

    /// The CSR of an EST request, verified, its channel binding checked.
    async fn est_csr(&self, who: &str, der: Vec<u8>, tls: &ClientTls) -> Result<VerifiedCsr, PkiError> {
        let csr = self.work.verify.run(who, move || parse_and_verify(&der)).await??;
        if let Some(given) = &csr.challenge_password {
            let expected = tls.channel_binding.map(|b| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            });
            if expected.as_deref() != Some(given.as_str()) {
                return Err(PkiError::forbidden(
                    "the CSR's challengePassword is not this TLS connection's channel binding (the RFC 9266 \
                     exporter, base64); make the CSR on the connection that sends it, or leave the attribute out",
                ));
            }
        }
        Ok(csr)
    }

    /// `POST simpleenroll` by `caller` (a token's).
    pub async fn est_enroll(
        &self,
        caller: &Caller,
        profile: &str,
        der: Vec<u8>,
        tls: &ClientTls,
    ) -> Result<Vec<u8>, PkiError> {
        let csr = self.est_csr(&caller.token_id, der, tls).await?;
        let issued = self
            .issue_verified(caller, &csr, profile, None, None, None, Recording::Cert)
            .await?;
        self.certs_only(&issued.certificate)
    }

    /// `POST simpleenroll` or `simplereenroll` by the holder of `tls.certificate`: a
    /// certificate of this cluster, valid now, for the CSR's very subject and names (RFC
    /// 7030 §4.2.2); the new one is of the same profile and requested by the same token.
    pub async fn est_reenroll(
        &self,
        profile: Option<&str>,
        der: Vec<u8>,
        tls: &ClientTls,
    ) -> Result<Vec<u8>, PkiError> {
        let current = self.est_client_cert(tls)?;
        if profile.is_some_and(|p| p != current.profile) {
            return Err(PkiError::forbidden(format!(
                "the client certificate is of profile '{}'; re-enroll at /.well-known/est/{}/ or the default label",
                current.profile, current.profile
            )));
        }
        let csr = self.est_csr(&format!("est:{}", current.serial), der, tls).await?;
        // What the profile would issue for the CSR must be what the certificate says.
        let approved = self.profile(&current.profile)?.evaluate(&csr, None)?;
        let subject = match approved.subject {
            SubjectSpecOrRaw::FromRequest(name) => name,
            SubjectSpecOrRaw::Built(spec) => spec.to_name()?,
        };
        let sans: Vec<String> = approved.sans.iter().map(|s| s.to_string()).collect();
        if display_name(&subject) != current.subject || sans != current.sans {
            return Err(PkiError::invalid(format!(
                "a re-enrollment asks for the certificate's own subject and names ({} {}); the CSR asks for {} {}",
                current.subject,
                current.sans.join(","),
                display_name(&subject),
                sans.join(",")
            )));
        }
        let caller = Caller::est(&current);
        let issued = self
            .issue_verified(
                &caller,
                &csr,
                &current.profile,
                Some(&current.issuer_id),
                None,
                None,
                Recording::Cert,
            )
            .await?;
        self.certs_only(&issued.certificate)
    }

    /// The record of the client certificate a connection showed, if it is one of this
    /// cluster's, unrevoked and unexpired.
    pub(crate) fn est_client_cert(&self, tls: &ClientTls) -> Result<CertRecord, PkiError> {
        let der = tls.certificate.as_deref().ok_or_else(|| {
            PkiError::unauthenticated("present the certificate to renew as the TLS client certificate")
        })?;
        self.known_client_cert(der)
    }

    /// `der` as this cluster issued it, unrevoked and unexpired.
    pub(crate) fn known_client_cert(&self, der: &[u8]) -> Result<CertRecord, PkiError> {
        let summary = hapki_domain::issue::summarize(der)
            .map_err(|_| PkiError::unauthenticated("the client certificate does not parse"))?;
        let record = self
            .reader()?
            .cert(&summary.serial)?
            .filter(|c| c.der == der)
            .ok_or_else(|| PkiError::unauthenticated("the client certificate was not issued by this cluster"))?;
        if record.revoked.is_some() {
            return Err(PkiError::unauthenticated(format!(
                "certificate {} is revoked",
                record.serial
            )));
        }
        if record.not_after <= self.now() {
            return Err(PkiError::unauthenticated(format!(
                "certificate {} has expired; enroll anew with a token",
                record.serial
            )));
        }
        Ok(record)
    }

    /// The leader's check of a re-enrollment a member forwards with the client
    /// certificate: that certificate is valid now, and the command records, for whoever
    /// asked for it, a certificate of the same issuer, profile, subject and names.
    pub(crate) fn authorize_forwarded_est(
        &self,
        certificate: &[u8],
        command: &hapki_store::Command,
    ) -> Result<(), PkiError> {
        use hapki_store::Command;
        let current = self.known_client_cert(certificate)?;
        let requester = crate::auth::est_requester(&current);
        let Command::Audited { meta, command } = command else {
            return Err(PkiError::forbidden("a forwarded re-enrollment must be audited"));
        };
        let Command::IssueCert {
            cert,
            idempotency_key: None,
        } = command.as_ref()
        else {
            return Err(PkiError::forbidden("a forwarded re-enrollment records one certificate"));
        };
        let successor = meta.actor.as_deref() == Some(requester.as_str())
            && cert.requested_by.as_deref() == Some(requester.as_str())
            && cert.issuer_id == current.issuer_id
            && cert.profile == current.profile
            && cert.subject == current.subject
            && cert.sans == current.sans;
        if !successor {
            return Err(PkiError::forbidden(
                "a forwarded re-enrollment records the successor of the client certificate only",
            ));
        }
        Ok(())
    }

    fn certs_only(&self, pem: &str) -> Result<Vec<u8>, PkiError> {
        let certs = hapki_domain::pem::certificates(pem.as_bytes())?;
        Ok(hapki_domain::pkcs7::certs_only(&certs)?)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use base64::Engine;
    use hapki_domain::key::{KeyType, SigningKey};
    use hapki_domain::name::{San, SubjectSpec};
    use hapki_store::{Command, Role};

    use super::ClientTls;
    use crate::pki::TokenGrant;
    use crate::testing::{csr_der, Answer, Api};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    async fn post(api: &Api, path: &str, token: Option<&str>, der: &[u8], tls: ClientTls) -> Answer {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/pkcs10");
        if let Some(t) = token {
            req = req.header(
                header::AUTHORIZATION,
                format!("Basic {}", B64.encode(format!("device:{t}"))),
            );
        }
        let mut req = req.body(Body::from(B64.encode(der))).unwrap();
        req.extensions_mut().insert(tls);
        api.send(req).await
    }

    /// The certificate (DER) of a certs-only answer.
    fn issued(a: &Answer) -> Vec<u8> {
        assert_eq!(a.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&a.bytes));
        let text: Vec<u8> = a.bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        let certs = hapki_domain::pkcs7::certificates(&B64.decode(text).unwrap()).unwrap();
        assert_eq!(certs.len(), 1);
        certs[0].clone()
    }

    fn bound_csr(cn: &str, challenge: &str) -> Vec<u8> {
        let key = SigningKey::generate(KeyType::EcP256).unwrap();
        let subject = SubjectSpec::cn(cn).to_name().unwrap();
        hapki_domain::csr::build_csr_with_challenge(&key, &subject, &[San::Dns(cn.into())], Some(challenge)).unwrap()
    }

    #[tokio::test]
    async fn a_challenge_password_must_be_the_connections_channel_binding() {
        let api = Api::new().await;
        let token = api.token(Role::Requester).await;
        let tls = ClientTls {
            certificate: None,
            channel_binding: Some([7; 32]),
        };
        let path = "/.well-known/est/simpleenroll";
        let good = bound_csr("bound.example.test", &B64.encode([7; 32]));
        issued(&post(&api, path, Some(&token), &good, tls.clone()).await);
        let before = api.digest();
        for (case, tls) in [
            ("another connection's", tls.clone()),
            ("no binding at all", ClientTls::default()),
        ] {
            let csr = match case {
                "another connection's" => bound_csr("bound.example.test", &B64.encode([8; 32])),
                _ => good.clone(),
            };
            let a = post(&api, path, Some(&token), &csr, tls).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{case}");
            assert!(String::from_utf8_lossy(&a.bytes).contains("channel binding"), "{case}");
        }
        assert_eq!(api.digest(), before, "a refused enrollment changes nothing");
    }

    #[tokio::test]
    async fn a_token_enrolls_only_within_its_profiles_and_a_certificate_renews_only_itself() {
        let api = Api::new().await;
        let path = "/.well-known/est/simpleenroll";
        let client_only = api
            .token_with(TokenGrant {
                profiles: vec!["client".into()],
                ..TokenGrant::role(Role::Requester, "devices")
            })
            .await;
        let csr = csr_der(KeyType::EcP256, "dev.example.test", &["dev.example.test"]);
        let a = post(&api, path, Some(&client_only), &csr, ClientTls::default()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&a.bytes));
        let a = post(&api, path, Some("not-a-token"), &csr, ClientTls::default()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));

        let token = api.token(Role::Requester).await;
        let first = issued(&post(&api, path, Some(&token), &csr, ClientTls::default()).await);
        let holder = ClientTls {
            certificate: Some(first.clone()),
            channel_binding: None,
        };
        let renew = "/.well-known/est/simplereenroll";
        let renewed = csr_der(KeyType::EcP256, "dev.example.test", &["dev.example.test"]);
        let second = issued(&post(&api, renew, None, &renewed, holder.clone()).await);
        let (a, b) = (
            hapki_domain::issue::summarize(&first).unwrap(),
            hapki_domain::issue::summarize(&second).unwrap(),
        );
        assert_ne!(a.serial, b.serial);
        assert_eq!(a.sans, b.sans);
        let record = api.pki.reader().unwrap().cert(&b.serial).unwrap().unwrap();
        let first_record = api.pki.reader().unwrap().cert(&a.serial).unwrap().unwrap();
        assert_eq!(
            record.requested_by, first_record.requested_by,
            "the renewal is the token's too"
        );
        // Other names, another label's profile, a revoked certificate: refused.
        let other = csr_der(KeyType::EcP256, "other.example.test", &["other.example.test"]);
        assert_eq!(
            post(&api, renew, None, &other, holder.clone()).await.status,
            StatusCode::BAD_REQUEST
        );
        let a = post(
            &api,
            "/.well-known/est/client/simplereenroll",
            None,
            &renewed,
            holder.clone(),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        api.pki
            .revoke(
                &crate::auth::Caller::node(),
                &a_serial(&first),
                hapki_domain::revocation::RevocationReason::Superseded,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            post(&api, renew, None, &renewed, holder.clone()).await.status,
            StatusCode::UNAUTHORIZED
        );

        // The leader's second look: the successor of a valid certificate only.
        let second_record = api.pki.reader().unwrap().cert(&b.serial).unwrap().unwrap();
        let meta = |actor: &str| hapki_store::AuditMeta {
            at: 1,
            actor: Some(actor.into()),
            actor_name: "x".into(),
            node: 1,
        };
        let requester = first_record.requested_by.clone().unwrap();
        let issue = |cert: hapki_store::CertRecord, actor: &str| Command::Audited {
            meta: meta(actor),
            command: Box::new(Command::IssueCert {
                cert,
                idempotency_key: None,
            }),
        };
        let mut successor = second_record.clone();
        successor.serial = hapki_domain::serial::Serial::from_u64(0x77);
        api.pki
            .authorize_forwarded_est(&second, &issue(successor.clone(), &requester))
            .unwrap();
        let mut renamed = successor.clone();
        renamed.sans = vec!["DNS:evil.example.test".into()];
        for (case, cert, cmd) in [
            (
                "a revoked certificate",
                first.clone(),
                issue(successor.clone(), &requester),
            ),
            ("other names", second.clone(), issue(renamed, &requester)),
            ("another actor", second.clone(), issue(successor.clone(), "t9")),
        ] {
            assert!(api.pki.authorize_forwarded_est(&cert, &cmd).is_err(), "{case}");
        }
    }

    fn a_serial(der: &[u8]) -> hapki_domain::serial::Serial {
        hapki_domain::issue::summarize(der).unwrap().serial
    }

    #[tokio::test]
    async fn cacerts_and_csrattrs_answer_base64_and_an_unknown_label_is_404() {
        let api = Api::new().await;
        let a = api
            .send(Request::get("/.well-known/est/cacerts").body(Body::empty()).unwrap())
            .await;
        assert_eq!(
            a.headers[header::CONTENT_TYPE],
            "application/pkcs7-mime; smime-type=certs-only"
        );
        let text: Vec<u8> = a.bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        let certs = hapki_domain::pkcs7::certificates(&B64.decode(text).unwrap()).unwrap();
        let root = api.pki.issuer(Some(&api.root)).unwrap();
        assert_eq!(certs, std::slice::from_ref(&root.record.cert_der));
        let a = api
            .send(Request::get("/.well-known/est/csrattrs").body(Body::empty()).unwrap())
            .await;
        assert_eq!(a.status, StatusCode::OK);
        let a = api
            .send(
                Request::get("/.well-known/est/nope/cacerts")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
}
