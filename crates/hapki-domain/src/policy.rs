//! Name policy: what a request's subject and subject alternative names may hold
//! under a profile. It owns [`SanPolicy`] (which kinds of names, and the allow
//! lists for DNS domains, IP ranges, e-mail domains and URI prefixes), the subject
//! rules (at most one CN, only the attributes a profile lists), and [`Cidr`], the
//! address blocks used by the allow lists and by CA name constraints.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use x509_cert::name::Name;

use crate::name::{attr_text, validate_dns_name, Attr, San};
use crate::{oids, DomainError};

/// Rules for subject alternative names.
///
/// The allow lists also bind the CN when it reads as a name of their kind: with
/// `allowed_domains = ["example.com"]`, `CN=evil.org` (or `CN=mail`) is refused even on
/// a profile that does not copy the CN into the SANs. A CN that cannot be a host name,
/// address or URI (`Issuing CA`, `Alice Smith`) is not a name and is not checked.
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
    /// IP addresses must lie in one of these CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`;
    /// a bare address is a block of one); empty means any address.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// The domain of an e-mail address (after the `@`) must equal one of these or be
    /// below one; empty means any.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// URIs must start with one of these (`spiffe://example.org/`); empty means any.
    /// A prefix with an authority must close it with `/`, so that `spiffe://example.org`
    /// cannot match `spiffe://example.org.evil.com`.
    #[serde(default)]
    pub allowed_uri_prefixes: Vec<String>,
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

impl Default for SanPolicy {
    fn default() -> Self {
        SanPolicy {
            required: false,
            allow_dns: true,
            allow_ip: true,
            allow_email: false,
            allow_uri: false,
            allowed_domains: Vec::new(),
            allowed_ips: Vec::new(),
            allowed_email_domains: Vec::new(),
            allowed_uri_prefixes: Vec::new(),
            allow_wildcards: false,
            cn_is_dns: false,
            max_names: max_names(),
        }
    }
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

    /// Checks the lists; the error names the field (`san.allowed_ips: ...`).
    pub(crate) fn validate(&self) -> Result<(), String> {
        for d in &self.allowed_domains {
            validate_dns_name(d).map_err(|e| format!("san.allowed_domains: {e}"))?;
        }
        for c in &self.allowed_ips {
            Cidr::parse(c).map_err(|e| format!("san.allowed_ips: {e}"))?;
        }
        for d in &self.allowed_email_domains {
            validate_domain(d).map_err(|e| format!("san.allowed_email_domains: {e}"))?;
        }
        for p in &self.allowed_uri_prefixes {
            validate_uri_prefix(p).map_err(|e| format!("san.allowed_uri_prefixes: {e}"))?;
        }
        let unused = [
            (
                !self.allowed_ips.is_empty() && !self.allow_ip,
                "allowed_ips",
                "allow_ip",
            ),
            (
                !self.allowed_email_domains.is_empty() && !self.allow_email,
                "allowed_email_domains",
                "allow_email",
            ),
            (
                !self.allowed_uri_prefixes.is_empty() && !self.allow_uri,
                "allowed_uri_prefixes",
                "allow_uri",
            ),
        ];
        if let Some((_, list, flag)) = unused.iter().find(|u| u.0) {
            return Err(format!("san.{list} is set but san.{flag} is false"));
        }
        Ok(())
    }

    /// Checks the names a certificate would carry: their number, kinds and allow lists.
    pub(crate) fn check(&self, profile: &str, sans: &[San]) -> Result<(), DomainError> {
        if self.required && sans.is_empty() {
            return Err(DomainError::policy(format!(
                "profile '{profile}' needs at least one subject alternative name (e.g. --san host.example.com)"
            )));
        }
        if sans.len() > self.max_names {
            return Err(DomainError::policy(format!(
                "profile '{profile}' allows at most {} names; the request has {}",
                self.max_names,
                sans.len()
            )));
        }
        for san in sans {
            let kind_refused = match san {
                San::Dns(_) if !self.allow_dns => Some("DNS names are not allowed"),
                San::Ip(_) if !self.allow_ip => Some("IP addresses are not allowed"),
                San::Email(_) if !self.allow_email => Some("email addresses are not allowed"),
                San::Uri(_) if !self.allow_uri => Some("URIs are not allowed"),
                _ => None,
            };
            if let Some(why) = kind_refused.map(str::to_string).or_else(|| self.list_refusal(san)) {
                return Err(DomainError::policy(format!(
                    "profile '{profile}' does not allow {san}: {why}"
                )));
            }
        }
        Ok(())
    }

    /// Checks a CN that is not copied into the SANs against the allow lists, when it
    /// reads as a name (see the type's documentation). The kind flags (`allow_dns`, ...)
    /// are for SANs only: a CA may be called `CN=ca.example.com` on a profile without SANs.
    pub(crate) fn check_common_name(&self, profile: &str, cn: &str) -> Result<(), DomainError> {
        let Ok(name) = San::parse(cn) else {
            return Ok(());
        };
        match self.list_refusal(&name) {
            Some(why) => Err(DomainError::policy(format!(
                "profile '{profile}' does not allow CN={cn}: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Why a name breaks the wildcard rule or an allow list, if it does.
    fn list_refusal(&self, san: &San) -> Option<String> {
        let listed = |list: &[String]| list.join(", ");
        match san {
            San::Dns(d) if d.starts_with("*.") && !self.allow_wildcards => {
                Some("wildcard names are not allowed".into())
            }
            San::Dns(d)
                if !self.allowed_domains.is_empty() && !self.allowed_domains.iter().any(|dom| in_domain(d, dom)) =>
            {
                Some(format!(
                    "the name is outside the allowed domains ({})",
                    listed(&self.allowed_domains)
                ))
            }
            San::Ip(ip)
                if !self.allowed_ips.is_empty()
                    && !self
                        .allowed_ips
                        .iter()
                        .any(|c| Cidr::parse(c).is_ok_and(|c| c.contains(ip))) =>
            {
                Some(format!(
                    "the address is outside the allowed IP ranges ({})",
                    listed(&self.allowed_ips)
                ))
            }
            San::Email(e) if !self.allowed_email_domains.is_empty() => {
                let domain = e
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                (!self.allowed_email_domains.iter().any(|dom| in_domain(&domain, dom))).then(|| {
                    format!(
                        "the address's domain is outside the allowed e-mail domains ({})",
                        listed(&self.allowed_email_domains)
                    )
                })
            }
            San::Uri(u) if !self.allowed_uri_prefixes.is_empty() => {
                if has_dot_segment(u) {
                    Some("a URI with '.' or '..' path segments cannot be checked against the allowed prefixes".into())
                } else if !self.allowed_uri_prefixes.iter().any(|p| u.starts_with(p.as_str())) {
                    Some(format!(
                        "the URI is outside the allowed prefixes ({})",
                        listed(&self.allowed_uri_prefixes)
                    ))
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// Whether `name` equals `domain` or lies below it (a leading `*.` is ignored).
pub(crate) fn in_domain(name: &str, domain: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let domain = domain.to_ascii_lowercase();
    name == domain || name.ends_with(&format!(".{domain}"))
}

/// A domain of a list (no wildcard).
pub(crate) fn validate_domain(d: &str) -> Result<(), DomainError> {
    if d.starts_with("*.") {
        return Err(DomainError::invalid(format!(
            "'{d}': give the domain without '*.'; names below it are included"
        )));
    }
    validate_dns_name(d)
}

fn validate_uri_prefix(p: &str) -> Result<(), DomainError> {
    let bad = |why: &str| Err(DomainError::invalid(format!("'{p}' {why}")));
    if !p.is_ascii() || p.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return bad("must be ASCII without spaces");
    }
    let Some((scheme, rest)) = p.split_once(':') else {
        return bad("has no scheme (e.g. spiffe://example.org/)");
    };
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return bad("has no valid scheme (e.g. spiffe://example.org/)");
    }
    if let Some(after) = rest.strip_prefix("//") {
        match after.split_once('/') {
            Some((authority, _)) if !authority.is_empty() => {}
            _ => {
                return bad(&format!(
                    "must close the authority with '/' (e.g. '{p}/'), or '{p}.evil.com' would match"
                ))
            }
        }
    }
    Ok(())
}

/// Whether a URI's path has a `.` or `..` segment (also percent-encoded), which would let
/// `spiffe://example.org/prod/../dev` pass a `spiffe://example.org/prod/` prefix.
fn has_dot_segment(uri: &str) -> bool {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    uri[..end].split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    })
}

/// Checks a request's subject: at most one CN, which must be text hapki reads, and,
/// unless the profile builds the subject itself (`builds_subject`: a template or a fixed
/// CN, where the request's other attributes are dropped), only attributes in `allowed`.
pub(crate) fn check_subject(
    profile: &str,
    allowed: &[Attr],
    subject: &Name,
    builds_subject: bool,
) -> Result<(), DomainError> {
    let atvs = || subject.0.iter().flat_map(|rdn| rdn.0.iter());
    let cns: Vec<_> = atvs().filter(|atv| atv.oid == oids::CN).collect();
    if cns.len() > 1 {
        return Err(DomainError::policy(format!(
            "the request's subject has {} CNs; profile '{profile}' allows at most one",
            cns.len()
        )));
    }
    if cns.iter().any(|atv| attr_text(&atv.value).is_none()) {
        return Err(DomainError::policy(
            "the request's CN is not a UTF8String, PrintableString, IA5String or TeletexString",
        ));
    }
    if builds_subject {
        return Ok(());
    }
    let mut refused: Vec<String> = Vec::new();
    for atv in atvs() {
        let label = match Attr::from_oid(atv.oid) {
            Some(a) if allowed.contains(&a) => continue,
            Some(a) => a.label().to_string(),
            None => const_oid::db::DB
                .by_oid(&atv.oid)
                .map_or_else(|| atv.oid.to_string(), str::to_string),
        };
        if !refused.contains(&label) {
            refused.push(label);
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let allows = if allowed.is_empty() {
        "none".to_string()
    } else {
        allowed.iter().map(|a| a.label()).collect::<Vec<_>>().join(", ")
    };
    Err(DomainError::policy(format!(
        "profile '{profile}' does not allow the subject attribute{} {}; it allows {allows}",
        if refused.len() > 1 { "s" } else { "" },
        refused.join(", ")
    )))
}

/// A block of IP addresses: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a block of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix`; bits after the prefix must be zero.
    ///
    /// ```
    /// use hapki_domain::policy::Cidr;
    /// let net = Cidr::parse("10.0.0.0/8").unwrap();
    /// assert!(net.contains(&"10.1.2.3".parse().unwrap()));
    /// assert!(Cidr::parse("10.0.0.1/8").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Cidr, DomainError> {
        let s = s.trim();
        let bad = |why: String| DomainError::invalid(format!("'{s}' is not a CIDR block: {why}"));
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| bad(format!("'{addr_text}' is not an IP address")))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad(format!("the prefix length must be a number from 0 to {max}")))?,
        };
        let cidr = Cidr { addr, prefix };
        let network = cidr.network();
        if network != octets(addr) {
            let net_addr = match network.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(network.as_slice()).expect("4 octets")),
                _ => IpAddr::from(<[u8; 16]>::try_from(network.as_slice()).expect("16 octets")),
            };
            return Err(bad(format!(
                "bits are set after the /{prefix} prefix; write {net_addr}/{prefix}"
            )));
        }
        Ok(cidr)
    }

    /// Whether `ip` lies in the block (an IPv4 address never lies in an IPv6 block).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && masked(&octets(*ip), &self.mask()) == octets(self.addr)
    }

    /// The netmask: 4 or 16 octets.
    pub fn mask(&self) -> Vec<u8> {
        let len = if self.addr.is_ipv4() { 4 } else { 16 };
        (0..len)
            .map(|i| match usize::from(self.prefix).saturating_sub(i * 8).min(8) {
                0 => 0,
                bits => 0xffu8 << (8 - bits),
            })
            .collect()
    }

    /// The iPAddress form of a name constraint (RFC 5280 §4.2.1.10): address then mask,
    /// 8 octets for IPv4, 32 for IPv6.
    pub fn to_constraint_bytes(&self) -> Vec<u8> {
        let mut out = octets(self.addr);
        out.extend(self.mask());
        out
    }

    fn network(&self) -> Vec<u8> {
        masked(&octets(self.addr), &self.mask())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn masked(bytes: &[u8], mask: &[u8]) -> Vec<u8> {
    bytes.iter().zip(mask).map(|(b, m)| b & m).collect()
}

#[cfg(test)]
mod tests;
