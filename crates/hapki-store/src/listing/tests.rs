//! Listings: what each filter finds through its index, and pages that neither repeat nor
//! skip a certificate while others are issued between them.

use hapki_domain::serial::Serial;

use super::*;
use crate::tests::{cert, issued_at, revoke, run};
use crate::{Command, CommandResult, Store};

/// Certificates 1..=10 of `aa` (host{n}.example.com, expiring at 1000 + n) and three more
/// with names of other kinds.
fn named() -> (tempfile::TempDir, Store) {
    let (d, s) = issued_at(3, vec![], 10);
    let mut web = cert(101, "aa");
    web.subject = "CN=Web.Example.com, O=Example".into();
    web.common_name = Some("Web.Example.com".into());
    web.sans = vec![
        "DNS:web.example.com".into(),
        "DNS:*.web.example.com".into(),
        "IP:10.0.0.1".into(),
    ];
    web.profile = "client".into();
    let mut alice = cert(102, "aa");
    alice.subject = "CN=alice".into();
    alice.common_name = Some("alice".into());
    alice.sans = vec!["email:alice@example.com".into()];
    let mut other = cert(103, "aa");
    other.subject = "CN=example.org".into();
    other.common_name = Some("example.org".into());
    other.sans = vec!["DNS:example.org".into(), "DNS:notexample.com".into()];
    let issue = |c: CertRecord| Command::IssueCert {
        cert: c,
        idempotency_key: None,
    };
    assert!(run(&s, &[issue(web), issue(alice), issue(other)])
        .iter()
        .all(|r| *r == CommandResult::Applied));
    (d, s)
}

fn all() -> CertFilter {
    CertFilter {
        limit: 1000,
        now: 0,
        ..Default::default()
    }
}

/// The serials (as numbers) a filter lists.
fn listed(s: &Store, filter: CertFilter) -> Vec<u64> {
    let page = s.reader().unwrap().certs(&filter).unwrap();
    page.certs
        .iter()
        .map(|c| u64::from_be_bytes(c.serial.0[12..].try_into().unwrap()))
        .collect()
}

fn san(q: &str) -> CertFilter {
    CertFilter {
        san: Some(q.into()),
        ..all()
    }
}

fn subject(q: &str) -> CertFilter {
    CertFilter {
        subject: Some(q.into()),
        ..all()
    }
}

#[test]
fn a_san_is_found_by_its_whole_name_in_any_case_and_with_or_without_its_type() {
    let (_d, s) = named();
    assert_eq!(listed(&s, san("web.example.com")), [101]);
    assert_eq!(listed(&s, san("WEB.Example.COM")), [101]);
    assert_eq!(listed(&s, san("DNS:web.example.com")), [101]);
    assert_eq!(listed(&s, san("*.web.example.com")), [101], "a wildcard is a name too");
    assert_eq!(listed(&s, san("10.0.0.1")), [101]);
    assert_eq!(listed(&s, san("IP:10.0.0.1")), [101]);
    assert_eq!(listed(&s, san("alice@example.com")), [102]);
    assert_eq!(listed(&s, san("host7.example.com")), [7]);
    assert!(
        listed(&s, san("web.example")).is_empty(),
        "part of a name is not the name"
    );
    assert!(listed(&s, san("example.com")).is_empty());
    assert!(listed(&s, san("alice")).is_empty(), "a common name is not a SAN");
    assert!(listed(&s, san("no-such-name")).is_empty());
}

#[test]
fn a_leading_dot_finds_every_dns_name_below_a_domain_and_no_other() {
    let (_d, s) = named();
    let mut below = listed(&s, san(".example.com"));
    below.sort();
    assert_eq!(
        below,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101],
        "not notexample.com, not alice@"
    );
    assert_eq!(listed(&s, san(".web.example.com")), [101]);
    assert_eq!(listed(&s, san(".org")), [103]);
    assert!(
        listed(&s, san(".host7.example.com")).is_empty(),
        "the domain itself is not below it"
    );
}

#[test]
fn a_subject_is_found_by_its_common_name_or_as_a_whole() {
    let (_d, s) = named();
    assert_eq!(listed(&s, subject("web.example.com")), [101]);
    assert_eq!(listed(&s, subject("ALICE")), [102]);
    assert_eq!(listed(&s, subject("CN=web.example.com, O=Example")), [101]);
    assert_eq!(listed(&s, subject("cn=WEB.example.com,o=example")), [101]);
    assert!(listed(&s, subject("CN=web.example.com, O=Other")).is_empty());
    assert!(
        listed(&s, subject("alice@example.com")).is_empty(),
        "a SAN is not a common name"
    );
    assert_eq!(listed(&s, subject(".example.org")), Vec::<u64>::new());
    assert_eq!(listed(&s, subject(".com")).len(), 11);
    assert!(
        listed(&s, subject("O=Example")).is_empty(),
        "a whole subject, not part of one"
    );
}

#[test]
fn the_other_filters_hold_on_what_the_index_finds() {
    let (_d, s) = named();
    run(&s, &[revoke(101)]);
    let revoked_web = CertFilter {
        status: Some(CertStatus::Revoked),
        ..san(".example.com")
    };
    assert_eq!(listed(&s, revoked_web), [101]);
    let profile = CertFilter {
        profile: Some("client".into()),
        ..all()
    };
    assert_eq!(listed(&s, profile), [101]);
    let other_issuer = CertFilter {
        issuer_id: Some("bb".into()),
        ..san("web.example.com")
    };
    assert!(listed(&s, other_issuer).is_empty());
}

#[test]
fn expired_and_expiring_read_the_expiry_index_soonest_first() {
    let (_d, s) = named();
    // Certificate n expires at 1000 + n: at 1005, 1..=5 have expired.
    let expired = CertFilter {
        status: Some(CertStatus::Expired),
        now: 1005,
        ..all()
    };
    assert_eq!(listed(&s, expired), [1, 2, 3, 4, 5]);
    let expiring = CertFilter {
        expiring_before: Some(1102),
        now: 1005,
        ..all()
    };
    assert_eq!(listed(&s, expiring), [6, 7, 8, 9, 10, 101, 102]);
    let both = CertFilter {
        status: Some(CertStatus::Expired),
        expiring_before: Some(2000),
        now: 1005,
        ..all()
    };
    assert!(listed(&s, both).is_empty(), "an expired certificate is not expiring");
}

/// Every page of `filter` with one certificate a page, issuing a new certificate named
/// after `name(n)` between pages; the serials listed.
fn page_through(s: &Store, filter: CertFilter, name: impl Fn(u64) -> String) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after = None;
    for n in 0..100u64 {
        let page = s
            .reader()
            .unwrap()
            .certs(&CertFilter {
                limit: 2,
                after: after.clone(),
                ..filter.clone()
            })
            .unwrap();
        seen.extend(
            page.certs
                .iter()
                .map(|c| u64::from_be_bytes(c.serial.0[12..].try_into().unwrap())),
        );
        // Round-trips through its text, as a client sends it back.
        after = page.next.map(|c| c.to_string().parse::<Cursor>().unwrap());
        if after.is_none() {
            return seen;
        }
        let mut c = cert(500 + n, "aa");
        c.common_name = Some(name(n));
        c.sans = vec![format!("DNS:{}", name(n))];
        c.not_after = 5000 + n;
        run(
            s,
            &[Command::IssueCert {
                cert: c,
                idempotency_key: None,
            }],
        );
    }
    panic!("the listing never ended");
}

#[test]
fn pages_neither_repeat_nor_skip_while_certificates_are_issued_between_them() {
    let (_d, s) = named();
    // New names sort after every existing one ("zz…" reversed is "com.example.zz…"), so
    // each page sees the ones issued before it.
    let below = page_through(&s, san(".example.com"), |n| format!("zz{n:03}.example.com"));
    let mut sorted = below.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), below.len(), "no certificate twice: {below:?}");
    for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101] {
        assert!(below.contains(&n), "{n} was skipped: {below:?}");
    }
    assert!(below.contains(&500), "one issued after the first page is listed too");

    let by_serial = page_through(&s, all(), |n| format!("new{n}.example.net"));
    let mut sorted = by_serial.clone();
    sorted.sort();
    assert_eq!(sorted, by_serial, "in serial order");
    sorted.dedup();
    assert_eq!(sorted.len(), by_serial.len());

    let expiring = page_through(
        &s,
        CertFilter {
            expiring_before: Some(1_000_000),
            now: 1005,
            ..all()
        },
        |n| format!("late{n}.example.net"),
    );
    let mut sorted = expiring.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), expiring.len(), "no certificate twice: {expiring:?}");
    assert_eq!(&expiring[..5], [6, 7, 8, 9, 10], "soonest first");
}

#[test]
fn a_cursor_of_another_listing_or_not_a_cursor_is_refused() {
    let (_d, s) = named();
    let page = s
        .reader()
        .unwrap()
        .certs(&CertFilter {
            limit: 1,
            ..san(".example.com")
        })
        .unwrap();
    let name_cursor = page.next.unwrap();
    assert!(name_cursor.to_string().starts_with('n'));
    let err = s
        .reader()
        .unwrap()
        .certs(&CertFilter {
            after: Some(name_cursor),
            ..all()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let serial = Cursor::Serial(Serial::from_u64(3));
    let err = s
        .reader()
        .unwrap()
        .certs(&CertFilter {
            after: Some(serial),
            ..san(".example.com")
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    for bad in ["nzz", "t00", "n", "xyz", ""] {
        assert!(bad.parse::<Cursor>().is_err(), "{bad:?} parsed");
    }
    assert_eq!("0a".parse::<Cursor>().unwrap(), Cursor::Serial(Serial::from_u64(10)));
}
