//! Name policy, rule by rule: each test gives a request a profile must refuse (a second CN,
//! a subject attribute the profile does not list, a CN, IP, e-mail address or URI outside
//! the allow lists) next to one it must accept, so that a rule is neither missing nor too wide.

use der::asn1::{Any, SetOfVec};
use der::Tag;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

use super::*;
use crate::csr::{build_csr, parse_and_verify, VerifiedCsr};
use crate::key::{KeyType, SigningKey};
use crate::name::SubjectSpec;
use crate::profile::{builtin_profiles, Profile, SubjectSpecOrRaw};

fn request(subject: &Name, sans: &[&str]) -> VerifiedCsr {
    let key = SigningKey::generate(KeyType::EcP256).unwrap();
    let sans: Vec<San> = sans.iter().map(|s| San::parse(s).unwrap()).collect();
    parse_and_verify(&build_csr(&key, subject, &sans).unwrap()).unwrap()
}

/// A request for `subject` written as `O=Example, CN=a.example.com`.
fn csr(subject: &str, sans: &[&str]) -> VerifiedCsr {
    request(&SubjectSpec::parse(subject).unwrap().to_name().unwrap(), sans)
}

fn profile(name: &str) -> Profile {
    builtin_profiles().into_iter().find(|p| p.name == name).unwrap()
}

fn refusal(p: &Profile, csr: &VerifiedCsr) -> String {
    match p.evaluate(csr, None) {
        Ok(_) => panic!("profile '{}' accepted a request it must refuse", p.name),
        Err(e) => {
            assert!(matches!(e, DomainError::Policy(_)), "{e:?}");
            e.to_string()
        }
    }
}

fn server_for_example_com() -> Profile {
    let mut p = profile("server");
    p.san.allowed_domains = vec!["example.com".into()];
    p
}

#[test]
fn a_subject_with_two_cns_is_refused() {
    let p = server_for_example_com();
    let err = refusal(&p, &csr("CN=a.example.com, CN=evil.org", &[]));
    assert!(err.contains("has 2 CNs; profile 'server' allows at most one"), "{err}");
    // Also where the profile builds the subject and would drop the rest.
    let err = refusal(&profile("db-client"), &csr("CN=postgres, CN=evil.org", &[]));
    assert!(err.contains("2 CNs"), "{err}");
    let mut templated = profile("server");
    templated.subject_template = Some("O=Example".into());
    assert!(refusal(&templated, &csr("CN=a.example.com, CN=b.example.com", &[])).contains("2 CNs"));
}

#[test]
fn subject_attributes_must_be_listed_by_the_profile() {
    let p = server_for_example_com();
    let err = refusal(&p, &csr("O=Google LLC, CN=a.example.com", &["IP:8.8.8.8"]));
    assert_eq!(
        err,
        "profile 'server' does not allow the subject attribute O; it allows CN"
    );
    let err = refusal(&p, &csr("O=Google LLC, OU=Ads, O=Other, CN=a.example.com", &[]));
    assert!(err.contains("the subject attributes O, OU; it allows CN"), "{err}");

    let mut with_o = p.clone();
    with_o.allowed_subject_attrs = vec![Attr::O, Attr::Cn];
    let ok = with_o.evaluate(&csr("O=Example, CN=a.example.com", &[]), None).unwrap();
    assert!(matches!(ok.subject, SubjectSpecOrRaw::FromRequest(_)));

    // Attribute types hapki does not set are named too (serialNumber here).
    let serial = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::SERIAL_NUMBER,
        value: Any::new(Tag::PrintableString, b"42".as_slice()).unwrap(),
    };
    let mut name = SubjectSpec::cn("a.example.com").to_name().unwrap();
    name.0
        .push(RelativeDistinguishedName(SetOfVec::try_from(vec![serial]).unwrap()));
    let err = refusal(&with_o, &request(&name, &[]));
    assert!(err.contains("subject attribute serialNumber; it allows O, CN"), "{err}");
}

#[test]
fn a_subject_template_still_drops_the_requests_other_attributes() {
    let mut p = profile("server");
    p.subject_template = Some("O=Example".into());
    let ok = p
        .evaluate(&csr("O=Google LLC, OU=Ads, CN=a.example.com", &[]), None)
        .unwrap();
    let SubjectSpecOrRaw::Built(spec) = ok.subject else {
        panic!("the template builds the subject");
    };
    assert_eq!(
        spec.0,
        vec![
            (Attr::O, "Example".to_string()),
            (Attr::Cn, "a.example.com".to_string())
        ]
    );
}

#[test]
fn a_cn_that_is_not_text_is_refused() {
    let cn = AttributeTypeAndValue {
        oid: oids::CN,
        value: Any::new(Tag::BmpString, [0u8, b'e', 0, b'v', 0, b'i', 0, b'l'].as_slice()).unwrap(),
    };
    let name = RdnSequence(vec![RelativeDistinguishedName(SetOfVec::try_from(vec![cn]).unwrap())]);
    let mut p = profile("client");
    p.san.allowed_domains = vec!["example.com".into()];
    let err = refusal(&p, &request(&name, &["DNS:a.example.com"]));
    assert!(err.contains("CN is not a UTF8String"), "{err}");
}

#[test]
fn the_cn_must_be_in_the_allowed_domains_even_when_not_copied_into_the_sans() {
    let mut p = profile("client");
    p.san.allowed_domains = vec!["example.com".into()];
    for cn in ["evil.org", "mail", "*.example.com"] {
        let err = refusal(&p, &csr(&format!("CN={cn}"), &[]));
        assert!(err.contains(&format!("does not allow CN={cn}")), "{err}");
    }
    for cn in ["alice.example.com", "EXAMPLE.COM", "Alice Smith"] {
        p.evaluate(&csr(&format!("CN={cn}"), &[]), None)
            .unwrap_or_else(|e| panic!("CN={cn}: {e}"));
    }
    // On a profile that copies the CN into the SANs, the SAN rules say the same.
    let err = refusal(&server_for_example_com(), &csr("CN=evil.org", &["a.example.com"]));
    assert!(
        err.contains("DNS:evil.org: the name is outside the allowed domains (example.com)"),
        "{err}"
    );
}

#[test]
fn ip_addresses_must_lie_in_the_allowed_ranges() {
    let mut p = server_for_example_com();
    p.san.allowed_ips = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
    p.validate().unwrap();
    for ip in ["10.1.2.3", "2001:db8::1"] {
        p.evaluate(&csr("CN=a.example.com", &[ip]), None)
            .unwrap_or_else(|e| panic!("{ip}: {e}"));
    }
    let err = refusal(&p, &csr("CN=a.example.com", &["IP:8.8.8.8"]));
    assert!(
        err.contains(
            "does not allow IP:8.8.8.8: the address is outside the allowed IP ranges (10.0.0.0/8, 2001:db8::/32)"
        ),
        "{err}"
    );
    assert!(refusal(&p, &csr("CN=8.8.8.8", &[])).contains("IP:8.8.8.8"));
    // Empty list: any address, as before.
    assert!(server_for_example_com()
        .evaluate(&csr("CN=a.example.com", &["IP:8.8.8.8"]), None)
        .is_ok());
}

#[test]
fn email_domains_and_uri_prefixes_are_enforced() {
    let mut p = profile("client");
    p.san.allowed_email_domains = vec!["example.com".into()];
    p.san.allowed_uri_prefixes = vec!["spiffe://example.org/".into()];
    p.validate().unwrap();
    for name in [
        "alice@example.com",
        "bob@Mail.Example.com",
        "spiffe://example.org/ns/prod/sa/web",
    ] {
        p.evaluate(&csr("CN=alice", &[name]), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, why) in [
        ("alice@evil.org", "outside the allowed e-mail domains (example.com)"),
        ("alice@evilexample.com", "outside the allowed e-mail domains"),
        (
            "spiffe://example.org.evil.com/web",
            "outside the allowed prefixes (spiffe://example.org/)",
        ),
        ("spiffe://evil.org/web", "outside the allowed prefixes"),
        ("spiffe://example.org/ns/../../evil", "'..' path segments"),
    ] {
        let err = refusal(&p, &csr("CN=alice", &[name]));
        assert!(err.contains(why), "{name}: {err}");
    }
    // Empty lists: any address and any URI, as before.
    assert!(profile("client")
        .evaluate(&csr("CN=alice", &["alice@evil.org", "URI:spiffe://evil.org/x"]), None)
        .is_ok());
}

#[test]
fn profiles_with_bad_lists_or_misplaced_name_constraints_are_refused() {
    let invalid = |p: Profile| p.validate().unwrap_err().to_string();
    let mut p = profile("server");
    p.san.allowed_ips = vec!["10.0.0.0/x".into()];
    assert!(invalid(p).starts_with("profile 'server': san.allowed_ips: '10.0.0.0/x'"));
    let mut p = profile("server");
    p.permitted_dns = vec!["example.com".into()];
    assert!(invalid(p).contains("need ca = true"));
    let mut p = profile("sub-ca");
    p.permitted_ip = vec!["10.0.0.0/33".into()];
    assert!(invalid(p).contains("permitted_ip: '10.0.0.0/33' is not a CIDR block"));
    let mut p = profile("sub-ca");
    p.permitted_dns = vec!["bad name".into()];
    assert!(invalid(p).contains("permitted_dns:"));
    let mut p = profile("sub-ca");
    p.permitted_dns = vec!["Example.COM".into()];
    p.permitted_ip = vec!["10.0.0.0/8".into()];
    p.validate().unwrap();
    let ok = p.evaluate(&csr("O=Example, CN=Issuing CA", &[]), None).unwrap();
    let nc = ok.name_constraints.expect("name constraints");
    assert_eq!(nc.dns, vec!["example.com".to_string()]);
    assert_eq!(nc.ip, vec![Cidr::parse("10.0.0.0/8").unwrap()]);
    assert!(profile("sub-ca")
        .evaluate(&csr("CN=Issuing CA", &[]), None)
        .unwrap()
        .name_constraints
        .is_none());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn cidr_blocks_parse_contain_and_encode() {
    let v4 = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(v4.contains(&ip("10.255.0.1")));
    assert!(!v4.contains(&ip("11.0.0.1")));
    assert!(!v4.contains(&ip("::ffff:10.0.0.1")));
    assert_eq!(v4.to_constraint_bytes(), vec![10, 0, 0, 0, 255, 0, 0, 0]);
    let v6 = Cidr::parse("2001:db8::/33").unwrap();
    assert!(v6.contains(&ip("2001:db8:7fff::1")));
    assert!(!v6.contains(&ip("2001:db8:8000::1")));
    assert_eq!(v6.mask()[..5], [255, 255, 255, 255, 128]);
    assert_eq!(v6.to_constraint_bytes().len(), 32);
    let host = Cidr::parse("192.0.2.7").unwrap();
    assert_eq!(host.to_string(), "192.0.2.7/32");
    assert!(host.contains(&ip("192.0.2.7")) && !host.contains(&ip("192.0.2.8")));
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(&ip("8.8.8.8")));
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/+8",
        "10.0.0/8",
        "example.com/8",
        "",
        "2001:db8::/129",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad}");
    }
    let err = Cidr::parse("10.1.0.0/8").unwrap_err().to_string();
    assert!(err.contains("write 10.0.0.0/8"), "{err}");
}

#[test]
fn lists_are_validated_naming_the_field() {
    let with = |f: fn(&mut SanPolicy)| {
        let mut p = SanPolicy {
            allow_email: true,
            allow_uri: true,
            ..SanPolicy::default()
        };
        f(&mut p);
        p.validate()
    };
    assert!(with(|_| {}).is_ok());
    let err = with(|p| p.allowed_ips = vec!["10.0.0.0/8".into(), "10.0.0.0/99".into()]).unwrap_err();
    assert!(err.starts_with("san.allowed_ips: '10.0.0.0/99'"), "{err}");
    let err = with(|p| p.allowed_email_domains = vec!["*.example.com".into()]).unwrap_err();
    assert!(err.starts_with("san.allowed_email_domains:"), "{err}");
    let err = with(|p| p.allowed_uri_prefixes = vec!["spiffe://example.org".into()]).unwrap_err();
    assert!(
        err.contains("san.allowed_uri_prefixes") && err.contains("close the authority"),
        "{err}"
    );
    assert!(with(|p| p.allowed_uri_prefixes = vec!["spiffe://example.org/".into(), "urn:uuid:".into()]).is_ok());
    let err = with(|p| {
        p.allow_ip = false;
        p.allowed_ips = vec!["10.0.0.0/8".into()];
    })
    .unwrap_err();
    assert!(err.contains("san.allow_ip is false"), "{err}");
}

#[test]
fn dot_segments_are_found() {
    assert!(has_dot_segment("spiffe://example.org/prod/../dev"));
    assert!(has_dot_segment("spiffe://example.org/prod/%2E%2e/dev"));
    assert!(has_dot_segment("spiffe://example.org/./x"));
    assert!(!has_dot_segment("spiffe://example.org/prod/svc.a?x=/../"));
}
