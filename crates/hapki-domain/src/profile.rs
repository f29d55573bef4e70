//! Certificate profiles: what a request may ask for (key, names, validity) and
//! what the issued certificate says (key usage, EKU, CA flag). Profiles are data,
//! stored in the replicated state; the built-in set mirrors SPEC §6. The rules for
//! names (subject attributes, SANs and their allow lists) live in [`crate::policy`].

use serde::{Deserialize, Serialize};

use crate::csr::VerifiedCsr;
use crate::issue::PermittedNames;
use crate::key::PublicKeyKind;
use crate::name::{Attr, San, SubjectSpec};
pub use crate::policy::SanPolicy;
use crate::policy::{check_subject, validate_domain, Cidr};
use crate::DomainError;

const DAY: u64 = 86_400;

/// Key usage bits a profile can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsageBit {
    DigitalSignature,
    ContentCommitment,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
}

/// Extended key usages a profile can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtKeyUsage {
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    OcspSigning,
}

/// Which keys a profile accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// Allowed EC curve sizes (256, 384); empty refuses EC keys.
    #[serde(default)]
    pub ec_bits: Vec<u32>,
    /// Smallest RSA modulus; `None` refuses RSA keys.
    #[serde(default)]
    pub rsa_min_bits: Option<u32>,
    /// Whether Ed25519 keys are allowed.
    #[serde(default)]
    pub ed25519: bool,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            ec_bits: vec![256, 384],
            rsa_min_bits: Some(2048),
            ed25519: true,
        }
    }
}

/// A certificate profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keys: KeyPolicy,
    /// Validity when the request does not ask for one.
    pub validity_days: u32,
    /// Longest validity a request may ask for.
    pub max_validity_days: u32,
    pub key_usage: Vec<KeyUsageBit>,
    #[serde(default)]
    pub ext_key_usage: Vec<ExtKeyUsage>,
    #[serde(default)]
    pub san: SanPolicy,
    /// The CN every certificate of this profile carries (`postgres` for db-client).
    #[serde(default)]
    pub fixed_cn: Option<String>,
    /// Fixed subject attributes placed before the CN (`O=Example, OU=Servers`); when set,
    /// other attributes of the request's subject are dropped.
    #[serde(default)]
    pub subject_template: Option<String>,
    /// The attributes a request's subject may carry (`["CN", "O"]`); others are refused.
    /// Not used when the profile builds the subject (`subject_template` or `fixed_cn`).
    /// A subject never has more than one CN.
    #[serde(default = "cn_only")]
    pub allowed_subject_attrs: Vec<Attr>,
    /// Issues CA certificates (basicConstraints cA=TRUE).
    #[serde(default)]
    pub ca: bool,
    #[serde(default)]
    pub path_len: Option<u8>,
    /// Adds id-pkix-ocsp-nocheck (for OCSP signing certificates).
    #[serde(default)]
    pub ocsp_no_check: bool,
    /// CA profiles only: the DNS domains the issued CA may issue for (a critical
    /// nameConstraints extension, permittedSubtrees; `example.com` includes every name below it).
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    /// CA profiles only: the IP ranges (CIDR) the issued CA may issue for, as permittedSubtrees.
    #[serde(default)]
    pub permitted_ip: Vec<String>,
}

fn cn_only() -> Vec<Attr> {
    vec![Attr::Cn]
}

/// What policy approved: the subject and names to issue for, and the validity.
#[derive(Clone, Debug)]
pub struct Approved {
    pub subject: SubjectSpecOrRaw,
    pub sans: Vec<San>,
    pub validity_secs: u64,
    pub key_usage: Vec<KeyUsageBit>,
    /// The nameConstraints of a CA certificate, from `permitted_dns` and `permitted_ip`.
    pub name_constraints: Option<PermittedNames>,
}

/// The subject of an approved request: the CSR's own DER name, or one built from the profile.
#[derive(Clone, Debug)]
pub enum SubjectSpecOrRaw {
    FromRequest(x509_cert::name::Name),
    Built(SubjectSpec),
}

impl Profile {
    /// Checks the profile itself; run before it is stored.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |m: String| Err(DomainError::invalid(format!("profile '{}': {m}", self.name)));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("the name must be 1-64 letters, digits, '-' or '_'".into());
        }
        if self.validity_days == 0 || self.validity_days > self.max_validity_days {
            return bad("validity_days must be at least 1 and at most max_validity_days".into());
        }
        if self.max_validity_days > 36_500 {
            return bad("max_validity_days may be at most 36500".into());
        }
        if self.key_usage.is_empty() {
            return bad("key_usage must not be empty".into());
        }
        if self.keys.ec_bits.iter().any(|b| *b != 256 && *b != 384) {
            return bad("keys.ec_bits may contain only 256 and 384".into());
        }
        if self.keys.rsa_min_bits.is_some_and(|b| b < 2048) {
            return bad("keys.rsa_min_bits must be at least 2048".into());
        }
        if self.keys.ec_bits.is_empty() && self.keys.rsa_min_bits.is_none() && !self.keys.ed25519 {
            return bad("the profile allows no key type".into());
        }
        if self.ca != self.key_usage.contains(&KeyUsageBit::KeyCertSign) {
            return bad("key_cert_sign must be granted exactly when ca is true".into());
        }
        if let Some(t) = &self.subject_template {
            SubjectSpec::parse(t)?;
        }
        if let Err(m) = self.san.validate() {
            return bad(m);
        }
        if !self.ca && (!self.permitted_dns.is_empty() || !self.permitted_ip.is_empty()) {
            return bad(
                "permitted_dns and permitted_ip are name constraints for CA certificates; \
                 they need ca = true"
                    .into(),
            );
        }
        for d in &self.permitted_dns {
            if let Err(e) = validate_domain(d) {
                return bad(format!("permitted_dns: {e}"));
            }
        }
        for c in &self.permitted_ip {
            if let Err(e) = Cidr::parse(c) {
                return bad(format!("permitted_ip: {e}"));
            }
        }
        Ok(())
    }

    /// Whether the profile issues for these names (an ACME order's, before any CSR).
    pub fn check_names(&self, sans: &[San]) -> Result<(), DomainError> {
        self.san.check(&self.name, sans)
    }

    /// Decides on a verified request: key, names and validity against the profile.
    /// `requested_secs` is the validity the caller asked for, if any.
    pub fn evaluate(&self, csr: &VerifiedCsr, requested_secs: Option<u64>) -> Result<Approved, DomainError> {
        self.check_key(csr.key)?;
        let secs = requested_secs.unwrap_or(u64::from(self.validity_days) * DAY);
        if secs == 0 || secs > u64::from(self.max_validity_days) * DAY {
            let asked = if secs.is_multiple_of(DAY) {
                format!("{} days were", secs / DAY)
            } else {
                format!("{secs} s was")
            };
            return Err(DomainError::policy(format!(
                "profile '{}' allows a validity of 1 s to {} days; {asked} asked for",
                self.name, self.max_validity_days
            )));
        }
        let builds_subject = self.subject_template.is_some() || self.fixed_cn.is_some();
        check_subject(&self.name, &self.allowed_subject_attrs, &csr.subject, builds_subject)?;
        let cn = self.check_cn(csr.common_name.as_deref())?;
        let mut sans = csr.sans.clone();
        if let (false, Some(cn), None) = (self.san.cn_is_dns, &cn, &self.fixed_cn) {
            // A CN not copied into the SANs must still fit the allow lists (a fixed CN is the
            // operator's own choice).
            self.san.check_common_name(&self.name, cn)?;
        }
        if self.san.cn_is_dns {
            if let Some(cn) = &cn {
                let as_san = San::parse(cn).map_err(|_| {
                    DomainError::policy(format!(
                        "profile '{}' needs the CN to be a host name or IP address; '{cn}' is not",
                        self.name
                    ))
                })?;
                if !sans.contains(&as_san) {
                    sans.insert(0, as_san);
                }
            }
        }
        self.san.check(&self.name, &sans)?;
        let subject = match (&self.subject_template, &self.fixed_cn) {
            (None, None) => SubjectSpecOrRaw::FromRequest(csr.subject.clone()),
            (template, _) => {
                let mut spec = match template {
                    Some(t) => SubjectSpec::parse(t)?,
                    None => SubjectSpec::default(),
                };
                spec.0.retain(|(a, _)| *a != Attr::Cn);
                if let Some(cn) = cn {
                    spec.0.push((Attr::Cn, cn));
                }
                SubjectSpecOrRaw::Built(spec)
            }
        };
        if matches!(&subject, SubjectSpecOrRaw::FromRequest(n) if n.0.is_empty()) && sans.is_empty() {
            return Err(DomainError::policy(
                "the request has neither a subject nor a subject alternative name",
            ));
        }
        Ok(Approved {
            subject,
            sans,
            validity_secs: secs,
            key_usage: self.key_usage_for(csr.key),
            name_constraints: self.name_constraints()?,
        })
    }

    /// The nameConstraints a CA certificate of this profile carries, if any.
    fn name_constraints(&self) -> Result<Option<PermittedNames>, DomainError> {
        if !self.ca || (self.permitted_dns.is_empty() && self.permitted_ip.is_empty()) {
            return Ok(None);
        }
        Ok(Some(PermittedNames {
            dns: self.permitted_dns.iter().map(|d| d.to_ascii_lowercase()).collect(),
            ip: self
                .permitted_ip
                .iter()
                .map(|c| Cidr::parse(c))
                .collect::<Result<_, _>>()?,
        }))
    }

    /// Key usage bits that fit the key: keyEncipherment only for RSA, keyAgreement only for EC.
    pub fn key_usage_for(&self, key: PublicKeyKind) -> Vec<KeyUsageBit> {
        self.key_usage
            .iter()
            .copied()
            .filter(|b| match b {
                KeyUsageBit::KeyEncipherment | KeyUsageBit::DataEncipherment => {
                    matches!(key, PublicKeyKind::Rsa { .. })
                }
                KeyUsageBit::KeyAgreement => matches!(key, PublicKeyKind::Ec { .. }),
                _ => true,
            })
            .collect()
    }

    fn check_key(&self, key: PublicKeyKind) -> Result<(), DomainError> {
        let allowed = match key {
            PublicKeyKind::Ec { bits } => self.keys.ec_bits.contains(&bits),
            PublicKeyKind::Rsa { bits } => self.keys.rsa_min_bits.is_some_and(|min| bits >= min),
            PublicKeyKind::Ed25519 => self.keys.ed25519,
        };
        if allowed {
            return Ok(());
        }
        let mut choices = Vec::new();
        for b in &self.keys.ec_bits {
            choices.push(format!("EC P-{b}"));
        }
        if let Some(min) = self.keys.rsa_min_bits {
            choices.push(format!("RSA {min} bits or more"));
        }
        if self.keys.ed25519 {
            choices.push("Ed25519".into());
        }
        Err(DomainError::policy(format!(
            "profile '{}' does not accept a {key} key; it accepts {}",
            self.name,
            choices.join(", ")
        )))
    }

    fn check_cn(&self, cn: Option<&str>) -> Result<Option<String>, DomainError> {
        match (&self.fixed_cn, cn) {
            (Some(fixed), Some(asked)) if asked != fixed => Err(DomainError::policy(format!(
                "profile '{}' issues only CN={fixed}; the request asks for CN={asked}",
                self.name
            ))),
            (Some(fixed), _) => Ok(Some(fixed.clone())),
            (None, asked) => Ok(asked.map(str::to_string)),
        }
    }
}

/// The profiles every new cluster starts with.
pub fn builtin_profiles() -> Vec<Profile> {
    use ExtKeyUsage::*;
    use KeyUsageBit::*;
    let server_san = SanPolicy {
        required: true,
        cn_is_dns: true,
        ..SanPolicy::default()
    };
    let leaf = |name: &str, description: &str, eku: Vec<ExtKeyUsage>, san: SanPolicy| Profile {
        name: name.into(),
        description: description.into(),
        keys: KeyPolicy::default(),
        validity_days: 365,
        max_validity_days: 825,
        key_usage: vec![DigitalSignature, KeyEncipherment],
        ext_key_usage: eku,
        san,
        fixed_cn: None,
        subject_template: None,
        allowed_subject_attrs: cn_only(),
        ca: false,
        path_len: None,
        ocsp_no_check: false,
        permitted_dns: vec![],
        permitted_ip: vec![],
    };
    vec![
        leaf(
            "server",
            "TLS server: serverAuth, host names required",
            vec![ServerAuth],
            server_san.clone(),
        ),
        leaf(
            "client",
            "TLS client: clientAuth",
            vec![ClientAuth],
            SanPolicy {
                allow_email: true,
                allow_uri: true,
                ..SanPolicy::default()
            },
        ),
        leaf(
            "db-server",
            "Database cluster member: serverAuth and clientAuth for replication",
            vec![ServerAuth, ClientAuth],
            server_san.clone(),
        ),
        Profile {
            fixed_cn: Some("postgres".into()),
            ..leaf(
                "db-client",
                "Database client authenticated as user postgres",
                vec![ClientAuth],
                SanPolicy::default(),
            )
        },
        leaf(
            "subsystem",
            "Service-to-service identity: serverAuth and clientAuth",
            vec![ServerAuth, ClientAuth],
            SanPolicy {
                allow_uri: true,
                ..SanPolicy::default()
            },
        ),
        Profile {
            validity_days: 90,
            max_validity_days: 397,
            key_usage: vec![DigitalSignature],
            ocsp_no_check: true,
            ..leaf(
                "ocsp-signing",
                "Delegated OCSP responder",
                vec![OcspSigning],
                SanPolicy::none(),
            )
        },
        Profile {
            validity_days: 1825,
            max_validity_days: 3650,
            key_usage: vec![DigitalSignature, KeyCertSign, CrlSign],
            ca: true,
            path_len: Some(0),
            // A CA's subject usually names its organisation: `O=Example, CN=Issuing CA 1`.
            allowed_subject_attrs: vec![Attr::C, Attr::St, Attr::L, Attr::O, Attr::Ou, Attr::Cn],
            ..leaf(
                "sub-ca",
                "Subordinate CA that issues end-entity certificates",
                vec![],
                SanPolicy::none(),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::{build_csr, parse_and_verify};
    use crate::key::{KeyType, SigningKey};

    fn csr(kt: KeyType, cn: &str, sans: &[&str]) -> VerifiedCsr {
        let key = SigningKey::generate(kt).unwrap();
        let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
        let der = build_csr(&key, &SubjectSpec::cn(cn).to_name().unwrap(), &sans).unwrap();
        parse_and_verify(&der).unwrap()
    }

    fn profile(name: &str) -> Profile {
        builtin_profiles().into_iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn builtin_profiles_are_valid() {
        for p in builtin_profiles() {
            p.validate().unwrap();
        }
    }

    #[test]
    fn server_copies_cn_into_sans_and_requires_names() {
        let ok = profile("server")
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &[]), None)
            .unwrap();
        assert_eq!(ok.sans, vec![San::Dns("a.example.com".into())]);
        assert!(profile("server")
            .evaluate(&csr(KeyType::EcP256, "not a host", &[]), None)
            .is_err());
    }

    #[test]
    fn ca_and_ocsp_responder_profiles_take_no_names() {
        for name in ["sub-ca", "ocsp-signing"] {
            let p = profile(name);
            assert!(p.evaluate(&csr(KeyType::EcP256, "Issuing CA", &[]), None).is_ok());
            for san in ["a.example.com", "192.0.2.1"] {
                let err = p
                    .evaluate(&csr(KeyType::EcP256, "Issuing CA", &[san]), None)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(&format!("profile '{name}' does not allow")), "{err}");
            }
        }
    }

    #[test]
    fn key_usage_follows_the_key() {
        let p = profile("server");
        assert!(!p
            .key_usage_for(PublicKeyKind::Ec { bits: 256 })
            .contains(&KeyUsageBit::KeyEncipherment));
        assert!(p
            .key_usage_for(PublicKeyKind::Rsa { bits: 2048 })
            .contains(&KeyUsageBit::KeyEncipherment));
    }

    #[test]
    fn db_client_fixes_the_cn() {
        let p = profile("db-client");
        let ok = p.evaluate(&csr(KeyType::EcP256, "postgres", &[]), None).unwrap();
        assert!(
            matches!(ok.subject, SubjectSpecOrRaw::Built(ref s) if s.0 == vec![(Attr::Cn, "postgres".to_string())])
        );
        let err = p
            .evaluate(&csr(KeyType::EcP256, "mallory", &[]), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CN=postgres"), "{err}");
    }

    #[test]
    fn domains_wildcards_and_validity_are_enforced() {
        let mut p = profile("server");
        p.san.allowed_domains = vec!["example.com".into()];
        assert!(p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &["b.example.com"]), None)
            .is_ok());
        let err = p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &["evil.org"]), None)
            .unwrap_err();
        assert!(err.to_string().contains("outside the allowed domains"), "{err}");
        assert!(p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &["*.example.com"]), None)
            .is_err());
        assert!(p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &[]), Some(10_000 * DAY))
            .is_err());
        let short = p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &[]), Some(90))
            .unwrap();
        assert_eq!(
            short.validity_secs, 90,
            "a validity in seconds for short-lived certificates"
        );
        assert!(p
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &[]), Some(0))
            .is_err());
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let mut p = profile("server");
        p.keys.rsa_min_bits = Some(1024);
        assert!(p.validate().is_err());
        let mut p = profile("server");
        p.name = "bad name".into();
        assert!(p.validate().is_err());
        let mut p = profile("server");
        p.validity_days = 1000;
        assert!(p.validate().is_err());
    }
}
