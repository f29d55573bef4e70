//! Certificate profiles: what a request may ask for (key, names, validity) and
//! what the issued certificate says (key usage, EKU, CA flag). Profiles are data,
//! stored in the replicated state; the built-in set mirrors SPEC §6.

use serde::{Deserialize, Serialize};

use crate::csr::VerifiedCsr;
use crate::key::PublicKeyKind;
use crate::name::{validate_dns_name, Attr, San, SubjectSpec};
use crate::DomainError;

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

/// Rules for subject alternative names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanPolicy {
    /// At least one SAN (or a CN that is copied into the SANs) must be present.
    #[serde(default)]
    pub required: bool,
    #[serde(default = "yes")]
    pub allow_dns: bool,
    #[serde(default = "yes")]
    pub allow_ip: bool,
    #[serde(default)]
    pub allow_email: bool,
    #[serde(default)]
    pub allow_uri: bool,
    /// DNS names must equal one of these or be below one; empty means any name.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// `*.example.com` names.
    #[serde(default)]
    pub allow_wildcards: bool,
    /// The CN is a host name: it must pass the DNS rules and is added to the SANs.
    #[serde(default)]
    pub cn_is_dns: bool,
    /// Most names in one certificate.
    #[serde(default = "max_names")]
    pub max_names: usize,
}

fn yes() -> bool {
    true
}
fn max_names() -> usize {
    100
}

impl SanPolicy {
    /// No subject alternative names at all (CA and OCSP responder certificates).
    pub fn none() -> Self {
        SanPolicy {
            allow_dns: false,
            allow_ip: false,
            ..SanPolicy::default()
        }
    }
}

impl Default for SanPolicy {
    fn default() -> Self {
        SanPolicy {
            required: false,
            allow_dns: true,
            allow_ip: true,
            allow_email: false,
            allow_uri: false,
            allowed_domains: Vec::new(),
            allow_wildcards: false,
            cn_is_dns: false,
            max_names: max_names(),
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
    /// Issues CA certificates (basicConstraints cA=TRUE).
    #[serde(default)]
    pub ca: bool,
    #[serde(default)]
    pub path_len: Option<u8>,
    /// Adds id-pkix-ocsp-nocheck (for OCSP signing certificates).
    #[serde(default)]
    pub ocsp_no_check: bool,
}

/// What policy approved: the subject and names to issue for, and the validity.
#[derive(Clone, Debug)]
pub struct Approved {
    pub subject: SubjectSpecOrRaw,
    pub sans: Vec<San>,
    pub validity_secs: u64,
    pub key_usage: Vec<KeyUsageBit>,
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
        for d in &self.san.allowed_domains {
            validate_dns_name(d)?;
        }
        Ok(())
    }

    /// Decides on a verified request: key, names and validity against the profile.
    /// `requested_days` is the validity the caller asked for, if any.
    pub fn evaluate(&self, csr: &VerifiedCsr, requested_days: Option<u32>) -> Result<Approved, DomainError> {
        self.check_key(csr.key)?;
        let days = requested_days.unwrap_or(self.validity_days);
        if days == 0 || days > self.max_validity_days {
            return Err(DomainError::policy(format!(
                "profile '{}' allows a validity of 1 to {} days; {days} were asked for",
                self.name, self.max_validity_days
            )));
        }
        let cn = self.check_cn(csr.common_name.as_deref())?;
        let mut sans = csr.sans.clone();
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
        self.check_sans(&sans)?;
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
            validity_secs: u64::from(days) * 86_400,
            key_usage: self.key_usage_for(csr.key),
        })
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

    fn check_sans(&self, sans: &[San]) -> Result<(), DomainError> {
        let p = &self.san;
        if p.required && sans.is_empty() {
            return Err(DomainError::policy(format!(
                "profile '{}' needs at least one subject alternative name (e.g. --san host.example.com)",
                self.name
            )));
        }
        if sans.len() > p.max_names {
            return Err(DomainError::policy(format!(
                "profile '{}' allows at most {} names; the request has {}",
                self.name,
                p.max_names,
                sans.len()
            )));
        }
        for san in sans {
            let refuse = |why: &str| {
                Err(DomainError::policy(format!(
                    "profile '{}' does not allow {san}: {why}",
                    self.name
                )))
            };
            match san {
                San::Dns(_) if !p.allow_dns => return refuse("DNS names are not allowed"),
                San::Ip(_) if !p.allow_ip => return refuse("IP addresses are not allowed"),
                San::Email(_) if !p.allow_email => return refuse("email addresses are not allowed"),
                San::Uri(_) if !p.allow_uri => return refuse("URIs are not allowed"),
                San::Dns(d) => {
                    if d.starts_with("*.") && !p.allow_wildcards {
                        return refuse("wildcard names are not allowed");
                    }
                    if !p.allowed_domains.is_empty() && !p.allowed_domains.iter().any(|dom| in_domain(d, dom)) {
                        return refuse(&format!(
                            "the name is outside the allowed domains ({})",
                            p.allowed_domains.join(", ")
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn in_domain(name: &str, domain: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let domain = domain.to_ascii_lowercase();
    name == domain || name.ends_with(&format!(".{domain}"))
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
        ca: false,
        path_len: None,
        ocsp_no_check: false,
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
            .evaluate(&csr(KeyType::EcP256, "a.example.com", &[]), Some(10_000))
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
