//! Subject names and subject alternative names: building them from what users
//! type (`CN:x subjectAltName:a,b` or flags), and reading them back for display
//! and policy checks. DNs are compared as DER, never as strings.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use der::asn1::{Any, Ia5String, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Tag, Tagged};
use serde::{Deserialize, Serialize};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::{oids, DomainError};

/// A subject alternative name hapki issues.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Email(String),
    Uri(String),
}

impl San {
    /// Parses `DNS:x`, `IP:x`, `email:x`, `URI:x`, or a bare value whose form says what it is.
    pub fn parse(s: &str) -> Result<San, DomainError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DomainError::invalid("empty subject alternative name"));
        }
        let (kind, value) = match s.split_once(':') {
            Some((k, v)) if ["dns", "ip", "email", "uri"].contains(&k.to_ascii_lowercase().as_str()) => {
                (k.to_ascii_lowercase(), v)
            }
            _ => (String::new(), s),
        };
        let san = match kind.as_str() {
            "dns" => San::Dns(value.to_ascii_lowercase()),
            "ip" => San::Ip(
                value
                    .parse()
                    .map_err(|_| DomainError::invalid(format!("'{value}' is not an IP address")))?,
            ),
            "email" => San::Email(value.to_string()),
            "uri" => San::Uri(value.to_string()),
            _ if value.parse::<IpAddr>().is_ok() => San::Ip(value.parse().expect("checked")),
            _ if value.contains("://") => San::Uri(value.to_string()),
            _ if value.contains('@') => San::Email(value.to_string()),
            _ => San::Dns(value.to_ascii_lowercase()),
        };
        san.validate()?;
        Ok(san)
    }

    fn validate(&self) -> Result<(), DomainError> {
        match self {
            San::Dns(d) => validate_dns_name(d),
            San::Email(e) if !e.is_ascii() || e.split('@').count() != 2 => {
                Err(DomainError::invalid(format!("'{e}' is not an email address")))
            }
            San::Uri(u) if !u.is_ascii() => Err(DomainError::invalid(format!("'{u}' is not an ASCII URI"))),
            _ => Ok(()),
        }
    }

    /// The X.509 GeneralName.
    pub fn to_general_name(&self) -> Result<GeneralName, DomainError> {
        let ia5 =
            |s: &str| Ia5String::new(s).map_err(|_| DomainError::invalid(format!("'{s}' is not IA5 (ASCII) text")));
        Ok(match self {
            San::Dns(d) => GeneralName::DnsName(ia5(d)?),
            San::Email(e) => GeneralName::Rfc822Name(ia5(e)?),
            San::Uri(u) => GeneralName::UniformResourceIdentifier(ia5(u)?),
            San::Ip(IpAddr::V4(a)) => GeneralName::IpAddress(OctetString::new(a.octets().to_vec())?),
            San::Ip(IpAddr::V6(a)) => GeneralName::IpAddress(OctetString::new(a.octets().to_vec())?),
        })
    }

    /// Reads a GeneralName; other forms than DNS, IP, email and URI are refused.
    pub fn from_general_name(gn: &GeneralName) -> Result<San, DomainError> {
        let san = match gn {
            GeneralName::DnsName(d) => San::Dns(d.as_str().to_ascii_lowercase()),
            GeneralName::Rfc822Name(e) => San::Email(e.as_str().to_string()),
            GeneralName::UniformResourceIdentifier(u) => San::Uri(u.as_str().to_string()),
            GeneralName::IpAddress(ip) => {
                let b = ip.as_bytes();
                match b.len() {
                    4 => San::Ip(IpAddr::from(<[u8; 4]>::try_from(b).expect("length checked"))),
                    16 => San::Ip(IpAddr::from(<[u8; 16]>::try_from(b).expect("length checked"))),
                    _ => return Err(DomainError::invalid("IP address SAN of a length other than 4 or 16")),
                }
            }
            _ => {
                return Err(DomainError::invalid(
                    "only DNS, IP, email and URI subject alternative names are supported",
                ))
            }
        };
        san.validate()?;
        Ok(san)
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(i) => write!(f, "IP:{i}"),
            San::Email(e) => write!(f, "email:{e}"),
            San::Uri(u) => write!(f, "URI:{u}"),
        }
    }
}

/// Checks a DNS name (LDH labels, an optional leading `*.`).
pub fn validate_dns_name(name: &str) -> Result<(), DomainError> {
    let bad = |why: &str| Err(DomainError::invalid(format!("'{name}' is not a valid DNS name: {why}")));
    if name.is_empty() || name.len() > 253 {
        return bad("empty or longer than 253 characters");
    }
    let body = name.strip_prefix("*.").unwrap_or(name);
    for label in body.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("empty label or label longer than 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return bad("labels may hold only letters, digits, '-' and '_'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
    }
    Ok(())
}

/// A subject attribute that users may set. In JSON (a profile's `allowed_subject_attrs`)
/// it is its label: `"CN"`, `"O"`, `"OU"`, `"C"`, `"ST"` or `"L"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Attr {
    C,
    St,
    L,
    O,
    Ou,
    Cn,
}

impl Attr {
    fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            Attr::C => "2.5.4.6",
            Attr::St => "2.5.4.8",
            Attr::L => "2.5.4.7",
            Attr::O => "2.5.4.10",
            Attr::Ou => "2.5.4.11",
            Attr::Cn => "2.5.4.3",
        })
    }
    /// The attribute whose type is `oid`, if hapki knows it.
    pub fn from_oid(oid: ObjectIdentifier) -> Option<Attr> {
        [Attr::C, Attr::St, Attr::L, Attr::O, Attr::Ou, Attr::Cn]
            .into_iter()
            .find(|a| a.oid() == oid)
    }

    /// The short label: `CN`, `O`, `OU`, `C`, `ST`, `L`.
    pub fn label(self) -> &'static str {
        match self {
            Attr::C => "C",
            Attr::St => "ST",
            Attr::L => "L",
            Attr::O => "O",
            Attr::Ou => "OU",
            Attr::Cn => "CN",
        }
    }
}

impl FromStr for Attr {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "C" => Attr::C,
            "ST" => Attr::St,
            "L" => Attr::L,
            "O" => Attr::O,
            "OU" => Attr::Ou,
            "CN" => Attr::Cn,
            _ => {
                return Err(DomainError::invalid(format!(
                    "unknown subject attribute '{s}'; use C, ST, L, O, OU or CN"
                )))
            }
        })
    }
}

impl TryFrom<String> for Attr {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Attr> for String {
    fn from(a: Attr) -> String {
        a.label().to_string()
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A subject: attributes in the order given, most general first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectSpec(pub Vec<(Attr, String)>);

impl SubjectSpec {
    /// A subject with only a common name.
    pub fn cn(cn: &str) -> Self {
        SubjectSpec(vec![(Attr::Cn, cn.to_string())])
    }

    /// Parses `O=Example, CN=foo` (the separator may be `,` or `/`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let mut out = Vec::new();
        for part in s.split([',', '/']).map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| DomainError::invalid(format!("'{part}' is not ATTR=value")))?;
            out.push((k.trim().parse()?, v.trim().to_string()));
        }
        Ok(SubjectSpec(out))
    }

    /// Encodes the name. Country is a PrintableString, everything else UTF8String.
    pub fn to_name(&self) -> Result<Name, DomainError> {
        let mut rdns = Vec::new();
        for (attr, value) in &self.0 {
            if value.is_empty() || value.len() > 64 {
                return Err(DomainError::invalid(format!(
                    "{} must be 1 to 64 characters",
                    attr.label()
                )));
            }
            let any = if *attr == Attr::C {
                if value.len() != 2 || !value.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(DomainError::invalid("C must be a two-letter country code like US"));
                }
                Any::new(Tag::PrintableString, value.as_bytes())?
            } else {
                Any::new(Tag::Utf8String, value.as_bytes())?
            };
            let atv = AttributeTypeAndValue {
                oid: attr.oid(),
                value: any,
            };
            rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
        }
        Ok(RdnSequence(rdns))
    }
}

/// The first common name of a subject, if any.
pub fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oids::CN)
        .and_then(|atv| attr_text(&atv.value))
}

/// The text of an attribute value, if it is a string type hapki reads.
pub(crate) fn attr_text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            String::from_utf8(value.value().to_vec()).ok()
        }
        _ => None,
    }
}

/// A name as text, most general attribute first (`C=US, O=Example, CN=foo`).
pub fn display_name(name: &Name) -> String {
    name.to_string().split(',').rev().collect::<Vec<_>>().join(", ")
}

/// DER of a name, the form in which names are compared.
pub fn name_der(name: &Name) -> Vec<u8> {
    name.to_der().expect("a decoded name re-encodes")
}

/// Decodes a DER name.
pub fn name_from_der(der: &[u8]) -> Result<Name, DomainError> {
    Name::from_der(der).map_err(|_| DomainError::invalid("malformed distinguished name"))
}

/// What `hapki csr NAME CN:x subjectAltName:a,b O:y` asks for (the syntax of seed 000).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsrArgs {
    pub subject: SubjectSpec,
    pub sans: Vec<San>,
}

impl CsrArgs {
    /// Parses the positional `KEY:value` words.
    pub fn parse(words: &[String]) -> Result<CsrArgs, DomainError> {
        let mut out = CsrArgs::default();
        for word in words {
            let (k, v) = word.split_once(':').ok_or_else(|| {
                DomainError::invalid(format!(
                    "'{word}' is not KEY:value; expected e.g. CN:host.example.com or subjectAltName:a.example.com,b.example.com"
                ))
            })?;
            if k.eq_ignore_ascii_case("subjectAltName") || k.eq_ignore_ascii_case("SAN") {
                let before = out.sans.len();
                for s in v.split(',').filter(|s| !s.trim().is_empty()) {
                    out.sans.push(San::parse(s)?);
                }
                if out.sans.len() == before {
                    return Err(DomainError::invalid(format!(
                        "'{word}' names no alternative name; expected e.g. {k}:a.example.com,b.example.com"
                    )));
                }
            } else {
                out.subject.0.push((k.parse()?, v.to_string()));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_syntax_parses_subject_and_sans() {
        let words: Vec<String> = [
            "CN:cms1.pod1.cms.lab",
            "subjectAltName:cms1a.pod1.cms.lab,10.0.0.1,a@b.c",
            "O:Lab",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args = CsrArgs::parse(&words).unwrap();
        assert_eq!(args.subject.0[0], (Attr::Cn, "cms1.pod1.cms.lab".into()));
        assert_eq!(args.sans[0], San::Dns("cms1a.pod1.cms.lab".into()));
        assert_eq!(args.sans[1], San::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(args.sans[2], San::Email("a@b.c".into()));
        let name = args.subject.to_name().unwrap();
        assert_eq!(common_name(&name).as_deref(), Some("cms1.pod1.cms.lab"));
    }

    #[test]
    fn bad_words_and_names_are_refused() {
        assert!(CsrArgs::parse(&["nonsense".into()]).is_err());
        assert!(CsrArgs::parse(&["XX:foo".into()]).is_err());
        for empty in ["subjectAltName:", "SAN: , "] {
            let err = CsrArgs::parse(&[empty.into()]).unwrap_err().to_string();
            assert!(err.contains("names no alternative name"), "{err}");
        }
        assert!(San::parse("bad_name-.example.com").is_err());
        assert!(San::parse("IP:300.1.1.1").is_err());
        assert!(SubjectSpec::parse("C=usa").unwrap().to_name().is_err());
    }

    #[test]
    fn attributes_read_from_oids_and_json() {
        for a in [Attr::C, Attr::St, Attr::L, Attr::O, Attr::Ou, Attr::Cn] {
            assert_eq!(Attr::from_oid(a.oid()), Some(a));
            assert_eq!(a.label().parse::<Attr>().unwrap(), a);
        }
        assert_eq!(Attr::from_oid(ObjectIdentifier::new_unwrap("2.5.4.5")), None);
        // Serde goes through the label (case-insensitive in, upper case out).
        use serde::de::value::{Error, StrDeserializer};
        let de = |s| Attr::deserialize(StrDeserializer::<Error>::new(s));
        assert_eq!(de("ou").unwrap(), Attr::Ou);
        assert_eq!(String::from(Attr::St), "ST");
        let err = de("DC").unwrap_err().to_string();
        assert!(err.contains("unknown subject attribute 'DC'"), "{err}");
    }

    #[test]
    fn general_names_round_trip() {
        for s in ["DNS:a.example.com", "IP:::1", "email:x@example.com", "URI:spiffe://x/y"] {
            let san = San::parse(s).unwrap();
            assert_eq!(San::from_general_name(&san.to_general_name().unwrap()).unwrap(), san);
        }
    }
}
