//! ACME state: nonces redeemed once within their window, accounts bound to one key
//! and one EAB key, orders finalized once, refusals that change nothing.

use hapki_domain::profile::builtin_profiles;

use super::*;
use crate::tests::{cert, issuer, run, sealed, store};
use crate::{Settings, Store};

const AT: u64 = 5_000;

fn ready_store() -> (tempfile::TempDir, Store) {
    let (d, s) = store();
    let r = run(
        &s,
        &[
            Command::Bootstrap {
                cluster_id: "c1".into(),
                profiles: builtin_profiles(),
                settings: Settings::default(),
            },
            Command::AddIssuer {
                issuer: issuer("aa"),
                make_default: true,
            },
            Command::SetStateFormat { to: 4 },
        ],
    );
    assert!(r.iter().all(|r| *r == CommandResult::Applied), "{r:?}");
    (d, s)
}

fn nonce(at: u64, n: u8) -> [u8; 24] {
    let mut b = [n; 24];
    b[..8].copy_from_slice(&at.to_be_bytes());
    b
}

fn request(n: u8, account: &str, op: AcmeOp) -> Command {
    Command::Acme {
        request: AcmeRequest {
            nonce: nonce(AT, n),
            at: AT,
            account: account.into(),
            op,
        },
    }
}

fn account(id: &str, thumb: u8, eab: Option<&str>) -> AcmeAccount {
    AcmeAccount {
        id: id.into(),
        profile: "server".into(),
        jwk: format!("{{\"k\":{thumb}}}"),
        thumbprint: [thumb; 32],
        contact: vec![],
        status: AccountStatus::Valid,
        eab_kid: eab.map(str::to_string),
        created_at: AT,
    }
}

fn new_account(n: u8, id: &str, thumb: u8, eab: Option<&str>) -> Command {
    request(
        n,
        id,
        AcmeOp::NewAccount {
            account: account(id, thumb, eab),
        },
    )
}

fn order(id: &str, authz: &str) -> AcmeOp {
    AcmeOp::NewOrder {
        order: AcmeOrder {
            id: id.into(),
            account: "a1".into(),
            profile: "server".into(),
            identifiers: vec![Identifier {
                kind: "dns".into(),
                value: "host9.example.com".into(),
            }],
            authorizations: vec![authz.into()],
            created_at: AT,
            expires_at: AT + 3600,
            replaces: None,
            certificate: None,
        },
        authorizations: vec![AcmeAuthz {
            id: authz.into(),
            account: "a1".into(),
            identifier: Identifier {
                kind: "dns".into(),
                value: "host9.example.com".into(),
            },
            wildcard: false,
            token: "tok".into(),
            status: AuthzStatus::Pending,
            expires_at: AT + 3600,
        }],
    }
}

fn acme_cert(serial: u64, account: &str) -> CertRecord {
    let mut c = cert(serial, "aa");
    c.requested_by = Some(requester(account));
    c
}

fn rejected(r: &CommandResult, code: RejectCode) -> bool {
    matches!(r, CommandResult::Rejected { code: c, .. } if *c == code)
}

#[test]
fn a_nonce_is_redeemed_once_and_only_by_a_change_that_applied() {
    let (_d, s) = ready_store();
    let r = run(&s, &[new_account(1, "a1", 1, None), new_account(1, "a2", 2, None)]);
    assert_eq!(r[0], CommandResult::Applied);
    assert!(rejected(&r[1], RejectCode::BadNonce), "{:?}", r[1]);
    assert!(s.reader().unwrap().acme_nonce_redeemed(&nonce(AT, 1)).unwrap());
    // A refused request (key of a1) leaves its nonce unredeemed.
    let before = s.reader().unwrap().digest().unwrap();
    let r = run(&s, &[new_account(2, "a3", 1, None)]);
    assert!(rejected(&r[0], RejectCode::Conflict), "{:?}", r[0]);
    assert!(!s.reader().unwrap().acme_nonce_redeemed(&nonce(AT, 2)).unwrap());
    assert_eq!(s.reader().unwrap().digest().unwrap(), before);
    // Out of the window either way.
    for t in [AT - NONCE_WINDOW_SECS - 1, AT + NONCE_WINDOW_SECS + 1] {
        let cmd = Command::Acme {
            request: AcmeRequest {
                nonce: nonce(t, 3),
                at: AT,
                account: "a4".into(),
                op: AcmeOp::NewAccount {
                    account: account("a4", 4, None),
                },
            },
        };
        assert!(rejected(&run(&s, &[cmd])[0], RejectCode::BadNonce));
    }
}

#[test]
fn redeemed_nonces_are_pruned_once_out_of_their_window() {
    let (_d, s) = ready_store();
    run(&s, &[new_account(1, "a1", 1, None)]);
    let later = AT + NONCE_WINDOW_SECS + 10;
    let cmd = Command::Acme {
        request: AcmeRequest {
            nonce: nonce(later, 2),
            at: later,
            account: "a1".into(),
            op: AcmeOp::UpdateAccount {
                contact: Some(vec!["mailto:ops@example.com".into()]),
                deactivate: false,
            },
        },
    };
    assert_eq!(run(&s, &[cmd])[0], CommandResult::Applied);
    let r = s.reader().unwrap();
    assert!(!r.acme_nonce_redeemed(&nonce(AT, 1)).unwrap());
    assert!(r.acme_nonce_redeemed(&nonce(later, 2)).unwrap());
    assert_eq!(
        r.acme_account("a1").unwrap().unwrap().contact,
        ["mailto:ops@example.com"]
    );
}

#[test]
fn an_eab_key_binds_one_account_of_its_directory_before_it_expires() {
    let (_d, s) = ready_store();
    let eab = |kid: &str, profile: &str| Command::CreateEab {
        eab: EabRecord {
            kid: kid.into(),
            profile: profile.into(),
            created_at: AT,
            created_by: "t1".into(),
            expires_at: AT + 10,
            bound_to: None,
        },
    };
    let r = run(
        &s,
        &[
            Command::SetAcmeDirectory {
                profile: "server".into(),
                directory: AcmeDirectory { require_eab: true },
            },
            eab("k1", "server"),
            eab("k2", "client"),
            eab("k1", "server"),
            eab("k3", "no-such-profile"),
        ],
    );
    assert_eq!(
        r[..3],
        [CommandResult::Applied, CommandResult::Applied, CommandResult::Applied]
    );
    assert!(rejected(&r[3], RejectCode::Conflict));
    assert!(rejected(&r[4], RejectCode::NotFound));
    let r = run(
        &s,
        &[
            new_account(1, "a0", 9, None),
            new_account(2, "a1", 1, Some("k2")),
            new_account(3, "a1", 1, Some("k1")),
            new_account(4, "a2", 2, Some("k1")),
            new_account(5, "a3", 3, Some("nope")),
        ],
    );
    assert!(rejected(&r[0], RejectCode::Forbidden), "no binding: {:?}", r[0]);
    assert!(
        rejected(&r[1], RejectCode::Forbidden),
        "another directory's key: {:?}",
        r[1]
    );
    assert_eq!(r[2], CommandResult::Applied);
    assert!(rejected(&r[3], RejectCode::Forbidden), "bound already: {:?}", r[3]);
    assert!(rejected(&r[4], RejectCode::Forbidden));
    let reader = s.reader().unwrap();
    assert_eq!(reader.acme_eab("k1").unwrap().unwrap().bound_to.as_deref(), Some("a1"));
    assert_eq!(reader.acme_account_by_key(&[1; 32]).unwrap().unwrap().id, "a1");
    drop(reader);
    let late = Command::Acme {
        request: AcmeRequest {
            nonce: nonce(AT + 20, 6),
            at: AT + 20,
            account: "a4".into(),
            op: AcmeOp::NewAccount {
                account: account("a4", 4, Some("k2")),
            },
        },
    };
    assert!(rejected(&run(&s, &[late])[0], RejectCode::Forbidden));
}

#[test]
fn an_order_is_finalized_once_its_authorizations_are_valid_and_once_only() {
    let (_d, s) = ready_store();
    let r = run(
        &s,
        &[
            new_account(1, "a1", 1, None),
            new_account(2, "b1", 2, None),
            request(3, "a1", order("o1", "z1")),
            request(
                4,
                "a1",
                AcmeOp::Finalize {
                    order: "o1".into(),
                    cert: acme_cert(9, "a1"),
                },
            ),
            request(
                5,
                "b1",
                AcmeOp::Validated {
                    authz: "z1".into(),
                    challenge: "http-01".into(),
                    error: None,
                },
            ),
            request(
                6,
                "a1",
                AcmeOp::Validated {
                    authz: "z1".into(),
                    challenge: "http-01".into(),
                    error: None,
                },
            ),
            request(
                7,
                "a1",
                AcmeOp::Finalize {
                    order: "o1".into(),
                    cert: acme_cert(10, "b1"),
                },
            ),
            request(
                8,
                "a1",
                AcmeOp::Finalize {
                    order: "o1".into(),
                    cert: acme_cert(9, "a1"),
                },
            ),
            request(
                9,
                "a1",
                AcmeOp::Finalize {
                    order: "o1".into(),
                    cert: acme_cert(11, "a1"),
                },
            ),
        ],
    );
    assert_eq!(
        r[..3],
        [CommandResult::Applied, CommandResult::Applied, CommandResult::Applied]
    );
    assert!(rejected(&r[3], RejectCode::Forbidden), "not ready: {:?}", r[3]);
    assert!(
        rejected(&r[4], RejectCode::NotFound),
        "another account's authz: {:?}",
        r[4]
    );
    assert_eq!(r[5], CommandResult::Applied);
    assert!(
        rejected(&r[6], RejectCode::Forbidden),
        "recorded for another account: {:?}",
        r[6]
    );
    assert_eq!(r[7], CommandResult::Applied);
    assert_eq!(
        r[8],
        CommandResult::Replayed {
            serial: Serial::from_u64(9)
        }
    );
    let reader = s.reader().unwrap();
    assert_eq!(
        reader.acme_order("o1").unwrap().unwrap().certificate,
        Some(Serial::from_u64(9))
    );
    assert!(reader.cert(&Serial::from_u64(11)).unwrap().is_none());
    assert_eq!(reader.acme_orders_of("a1").unwrap(), ["o1"]);
    assert!(reader.acme_orders_of("b1").unwrap().is_empty());
    drop(reader);
    // Only the ordering account revokes it, and a deactivated account does nothing.
    let revoke = |n, acct: &str| {
        request(
            n,
            acct,
            AcmeOp::Revoke {
                serial: Serial::from_u64(9),
                reason: RevocationReason::KeyCompromise,
            },
        )
    };
    let r = run(
        &s,
        &[
            revoke(10, "b1"),
            request(
                11,
                "b1",
                AcmeOp::UpdateAccount {
                    contact: None,
                    deactivate: true,
                },
            ),
            request(12, "b1", order("o2", "z2")),
            revoke(13, "a1"),
        ],
    );
    assert!(rejected(&r[0], RejectCode::Forbidden));
    assert_eq!(r[1], CommandResult::Applied);
    assert!(rejected(&r[2], RejectCode::Forbidden), "deactivated: {:?}", r[2]);
    assert_eq!(r[3], CommandResult::Applied);
    assert!(s
        .reader()
        .unwrap()
        .cert(&Serial::from_u64(9))
        .unwrap()
        .unwrap()
        .revoked
        .is_some());
    // A revocation signed with the certificate's key: format 5, in that certificate's name,
    // of a certificate the state holds; it needs no account.
    let by_key = |n, serial: u64, name: Option<&str>| {
        let serial = Serial::from_u64(serial);
        request(
            n,
            &name.map_or_else(|| crate::acme::cert_key_account(&serial), str::to_string),
            AcmeOp::RevokeByCertKey {
                serial,
                reason: RevocationReason::KeyCompromise,
            },
        )
    };
    let r = run(
        &s,
        &[
            by_key(14, 9, None),
            Command::SetStateFormat { to: 5 },
            by_key(15, 9, Some("a1")),
            by_key(16, 77, None),
            by_key(17, 9, None),
        ],
    );
    assert!(rejected(&r[0], RejectCode::Invalid), "format 4: {:?}", r[0]);
    assert_eq!(r[1], CommandResult::Applied);
    assert!(
        rejected(&r[2], RejectCode::Forbidden),
        "in an account's name: {:?}",
        r[2]
    );
    assert!(rejected(&r[3], RejectCode::NotFound), "unknown: {:?}", r[3]);
    assert!(rejected(&r[4], RejectCode::Conflict), "revoked already: {:?}", r[4]);
}

#[test]
fn a_key_change_moves_the_account_to_a_key_no_other_account_holds() {
    let (_d, s) = ready_store();
    let change = |n, thumb| {
        request(
            n,
            "a1",
            AcmeOp::KeyChange {
                jwk: "new".into(),
                thumbprint: [thumb; 32],
            },
        )
    };
    let r = run(
        &s,
        &[
            new_account(1, "a1", 1, None),
            new_account(2, "a2", 2, None),
            change(3, 2),
            change(4, 3),
        ],
    );
    assert!(rejected(&r[2], RejectCode::Conflict));
    assert_eq!(r[3], CommandResult::Applied);
    let reader = s.reader().unwrap();
    assert!(reader.acme_account_by_key(&[1; 32]).unwrap().is_none());
    assert_eq!(reader.acme_account_by_key(&[3; 32]).unwrap().unwrap().jwk, "new");
}

#[test]
fn acme_commands_need_format_4_and_the_secret_is_set_once_and_sealed_anew_by_rotations() {
    let (_d, s) = store();
    let r = run(&s, &[new_account(1, "a1", 1, None)]);
    assert!(rejected(&r[0], RejectCode::Invalid), "format 1: {:?}", r[0]);
    let (_d, s) = ready_store();
    let secret = |kek| Command::SetAcmeSecret {
        secret: AcmeSecret {
            wrapped: sealed(kek, 1),
            created_at: AT,
        },
    };
    let r = run(&s, &[secret(0), secret(0)]);
    assert_eq!(r[0], CommandResult::Applied);
    assert!(rejected(&r[1], RejectCode::Conflict));
    let mut rewrapped = issuer("aa");
    rewrapped.wrapped_key = sealed(1, 2);
    let rotation = Command::RotateKek {
        from: 0,
        to: 1,
        issuers: vec![crate::RewrappedIssuer {
            id: "aa".into(),
            key: sealed(1, 2),
            ocsp: None,
        }],
        internal_ca: None,
    };
    let r = run(
        &s,
        &[
            rotation.clone(),
            Command::RotateKekWithAcme {
                rotation: Box::new(rotation.clone()),
                acme: sealed(0, 3),
            },
            Command::RotateKekWithAcme {
                rotation: Box::new(rotation),
                acme: sealed(1, 3),
            },
        ],
    );
    assert!(rejected(&r[0], RejectCode::Conflict), "without the secret: {:?}", r[0]);
    assert!(
        rejected(&r[1], RejectCode::Conflict),
        "sealed under the old KEK: {:?}",
        r[1]
    );
    assert_eq!(r[2], CommandResult::Applied);
    let reader = s.reader().unwrap();
    assert_eq!(reader.kek_id().unwrap(), 1);
    assert_eq!(reader.acme_secret().unwrap().unwrap().wrapped, sealed(1, 3));
}
