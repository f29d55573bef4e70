//! State-machine tests: refusals change nothing, and the same commands give the
//! same digest on two stores.

use hapki_domain::profile::builtin_profiles;
use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;
use hapki_domain::wrap::Wrapped;

use super::*;

pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("db.redb")).unwrap();
    (dir, s)
}

pub(crate) fn run(store: &Store, cmds: &[Command]) -> Vec<CommandResult> {
    let txn = store.begin_apply().unwrap();
    let out = cmds.iter().map(|c| apply(&txn, c).unwrap()).collect();
    txn.commit().unwrap();
    out
}

pub(crate) fn issuer(id: &str) -> IssuerRecord {
    IssuerRecord {
        id: id.into(),
        name: format!("CN={id}"),
        key_type: "ec-p256".into(),
        cert_der: vec![0x30, 0],
        chain_der: vec![],
        csr_der: vec![],
        wrapped_key: Wrapped {
            version: 1,
            kek: 0,
            nonce: [0; 12],
            ciphertext: vec![1, 2, 3],
        },
        ocsp: None,
        created_at: 1,
        not_after: 10_000,
    }
}

pub(crate) fn cert(serial: u64, issuer_id: &str) -> CertRecord {
    CertRecord {
        serial: Serial::from_u64(serial),
        issuer_id: issuer_id.into(),
        profile: "server".into(),
        der: vec![0x30, 0],
        subject: format!("CN=host{serial}.example.com"),
        common_name: Some(format!("host{serial}.example.com")),
        sans: vec![format!("DNS:host{serial}.example.com")],
        not_before: 0,
        not_after: 1000 + serial,
        issued_at: 0,
        revoked: None,
        requested_by: None,
    }
}

/// A store at state format `format` with issuer `aa`, `extra` applied, then certificates
/// 1..=`certs` of `aa` (certificate n expires at 1000 + n).
pub(crate) fn issued_at(format: u32, extra: Vec<Command>, certs: u64) -> (tempfile::TempDir, Store) {
    let (d, s) = store();
    let mut cmds = vec![
        Command::AddIssuer {
            issuer: issuer("aa"),
            make_default: true,
        },
        Command::SetStateFormat { to: format },
    ];
    cmds.extend(extra);
    cmds.extend((1..=certs).map(|n| Command::IssueCert {
        cert: cert(n, "aa"),
        idempotency_key: None,
    }));
    assert!(run(&s, &cmds).iter().all(|r| *r == CommandResult::Applied));
    (d, s)
}

/// CRL head `number` of issuer `aa`, this update at 10 × `number`, next 100 s later.
pub(crate) fn complete_head(number: u64) -> Command {
    Command::PublishCrlHead {
        head: crate::CrlHead {
            issuer_id: "aa".into(),
            number,
            this_update: 10 * number,
            next_update: 10 * number + 100,
        },
    }
}

/// A revocation of certificate `serial` (key compromise, at 5).
pub(crate) fn revoke(serial: u64) -> Command {
    Command::Revoke {
        serial: Serial::from_u64(serial),
        reason: RevocationReason::KeyCompromise,
        at: 5,
        idempotency_key: None,
    }
}

pub(crate) fn history() -> Vec<Command> {
    let mut cmds = vec![
        Command::Bootstrap {
            cluster_id: "c1".into(),
            profiles: builtin_profiles(),
            settings: Settings::default(),
        },
        Command::AddIssuer {
            issuer: issuer("aa"),
            make_default: false,
        },
    ];
    for i in 1..=20 {
        cmds.push(Command::IssueCert {
            cert: cert(i, "aa"),
            idempotency_key: None,
        });
    }
    cmds.push(Command::Revoke {
        serial: Serial::from_u64(3),
        reason: RevocationReason::KeyCompromise,
        at: 50,
        idempotency_key: None,
    });
    cmds
}

#[test]
fn the_same_commands_give_the_same_digest() {
    let (_a, a) = store();
    let (_b, b) = store();
    run(&a, &history());
    let mut cmds = history();
    // Apply the same history in two batches: batching must not matter.
    let rest = cmds.split_off(7);
    run(&b, &cmds);
    run(&b, &rest);
    assert_eq!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );
    run(
        &b,
        &[Command::IssueCert {
            cert: cert(99, "aa"),
            idempotency_key: None,
        }],
    );
    assert_ne!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );
}

#[test]
fn refusals_change_nothing() {
    let (_d, s) = store();
    run(&s, &history());
    let before = s.reader().unwrap().digest().unwrap();
    let results = run(
        &s,
        &[
            Command::IssueCert {
                cert: cert(3, "aa"),
                idempotency_key: None,
            },
            Command::IssueCert {
                cert: cert(500, "unknown"),
                idempotency_key: None,
            },
            Command::Revoke {
                serial: Serial::from_u64(3),
                reason: RevocationReason::Superseded,
                at: 60,
                idempotency_key: None,
            },
            Command::Revoke {
                serial: Serial::from_u64(777),
                reason: RevocationReason::Superseded,
                at: 60,
                idempotency_key: None,
            },
            Command::AddIssuer {
                issuer: issuer("aa"),
                make_default: true,
            },
            Command::SetDefaultIssuer { id: "zz".into() },
            Command::PutProfile {
                profile: builtin_profiles().remove(0),
                create: true,
            },
            Command::RevokeToken { id: "nope".into() },
            Command::Bootstrap {
                cluster_id: "c2".into(),
                profiles: vec![],
                settings: Settings::default(),
            },
        ],
    );
    let codes: Vec<RejectCode> = results
        .iter()
        .map(|r| match r {
            CommandResult::Rejected { code, .. } => *code,
            CommandResult::Applied | CommandResult::Replayed { .. } => panic!("expected a refusal, got {results:?}"),
        })
        .collect();
    assert_eq!(codes[0], RejectCode::Conflict);
    assert_eq!(codes[1], RejectCode::NotFound);
    assert_eq!(codes[2], RejectCode::Conflict);
    assert_eq!(codes[3], RejectCode::NotFound);
    assert_eq!(s.reader().unwrap().digest().unwrap(), before);
}

#[test]
fn crl_numbers_only_go_up() {
    let (_d, s) = store();
    run(&s, &history());
    let crl = |n| Command::PublishCrl {
        crl: CrlRecord {
            issuer_id: "aa".into(),
            number: n,
            this_update: n,
            next_update: n + 1,
            entries: 0,
            der: vec![],
        },
    };
    let r = run(&s, &[crl(1), crl(2), crl(2), crl(1), crl(5)]);
    assert_eq!(r[0], CommandResult::Applied);
    assert_eq!(r[1], CommandResult::Applied);
    assert!(matches!(
        r[2],
        CommandResult::Rejected {
            code: RejectCode::Conflict,
            ..
        }
    ));
    assert!(matches!(
        r[3],
        CommandResult::Rejected {
            code: RejectCode::Conflict,
            ..
        }
    ));
    assert_eq!(r[4], CommandResult::Applied);
    assert_eq!(s.reader().unwrap().crl("aa").unwrap().unwrap().number, 5);
}

#[test]
fn filters_find_what_they_should() {
    let (_d, s) = store();
    run(&s, &history());
    let r = s.reader().unwrap();
    let all = CertFilter {
        limit: 1000,
        now: 0,
        ..Default::default()
    };
    assert_eq!(r.certs(&all).unwrap().certs.len(), 20);
    let revoked = r
        .certs(&CertFilter {
            status: Some(CertStatus::Revoked),
            ..all.clone()
        })
        .unwrap()
        .certs;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, Serial::from_u64(3));
    let san = r
        .certs(&CertFilter {
            san: Some("HOST12.example.COM".into()),
            ..all.clone()
        })
        .unwrap()
        .certs;
    assert_eq!(san.len(), 1);
    let expiring = r
        .certs(&CertFilter {
            expiring_before: Some(1005),
            ..all.clone()
        })
        .unwrap()
        .certs;
    assert_eq!(expiring.len(), 5);
    let page = r
        .certs(&CertFilter {
            after: Some(crate::Cursor::Serial(Serial::from_u64(18))),
            ..all.clone()
        })
        .unwrap()
        .certs;
    assert_eq!(page.len(), 2);
    assert_eq!(r.revoked_of("aa").unwrap().len(), 1);
    assert!(r.revoked_of("a").unwrap().is_empty());
}

#[test]
fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
    let (_a, a) = store();
    run(&a, &history());
    let mut buf = Vec::new();
    export_state(&a.db().begin_read().unwrap(), &mut buf).unwrap();
    let (_b, b) = store();
    run(
        &b,
        &[Command::IssueCert {
            cert: cert(1, "x"),
            idempotency_key: None,
        }],
    );
    let txn = b.begin_apply().unwrap();
    import_state(&txn, buf.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );

    let mut bad = buf.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let txn = b.begin_apply().unwrap();
    assert!(import_state(&txn, bad.as_slice()).is_err());
    txn.abort().unwrap();
    assert_eq!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );
}

#[test]
fn an_idempotency_key_records_one_certificate_and_replays_its_serial() {
    let (_d, s) = store();
    run(&s, &history());
    let key = Some([7u8; 32]);
    let r = run(
        &s,
        &[
            Command::IssueCert {
                cert: cert(500, "aa"),
                idempotency_key: key,
            },
            Command::IssueCert {
                cert: cert(501, "aa"),
                idempotency_key: key,
            },
        ],
    );
    assert_eq!(r[0], CommandResult::Applied);
    assert_eq!(
        r[1],
        CommandResult::Replayed {
            serial: Serial::from_u64(500)
        }
    );
    let reader = s.reader().unwrap();
    assert!(
        reader.cert(&Serial::from_u64(501)).unwrap().is_none(),
        "a replay must record nothing"
    );
    assert_eq!(
        reader.idempotent_serial(&[7u8; 32], 0).unwrap(),
        Some(Serial::from_u64(500))
    );
}

#[test]
fn a_revocation_replays_with_its_key_and_a_key_that_issued_is_another_request() {
    let (_d, s) = store();
    run(&s, &history());
    let issue_key = Some([8u8; 32]);
    let revoke_key = Some([9u8; 32]);
    let revoke = |key| Command::Revoke {
        serial: Serial::from_u64(600),
        reason: RevocationReason::Superseded,
        at: 70,
        idempotency_key: key,
    };
    let r = run(
        &s,
        &[
            Command::IssueCert {
                cert: cert(600, "aa"),
                idempotency_key: issue_key,
            },
            // The key that issued the certificate is not a revocation of it.
            revoke(issue_key),
            revoke(revoke_key),
            revoke(revoke_key),
            revoke(None),
        ],
    );
    assert_eq!(r[0], CommandResult::Applied);
    assert!(
        matches!(
            r[1],
            CommandResult::Rejected {
                code: RejectCode::Conflict,
                ..
            }
        ),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2], CommandResult::Applied);
    assert_eq!(
        r[3],
        CommandResult::Replayed {
            serial: Serial::from_u64(600)
        }
    );
    assert!(
        matches!(
            r[4],
            CommandResult::Rejected {
                code: RejectCode::Conflict,
                ..
            }
        ),
        "{:?}",
        r[4]
    );
}

#[test]
fn serial_leases_never_overlap() {
    let (_d, s) = store();
    run(&s, &history());
    let mut leases = Vec::new();
    for (node, size) in [(1u64, 10u64), (2, 10), (1, 25), (3, 1)] {
        let r = run(&s, &[Command::LeaseSerials { node, size }]);
        assert_eq!(r[0], CommandResult::Applied);
        let lease = s.reader().unwrap().serial_lease(node).unwrap().unwrap();
        assert_eq!(lease.end - lease.start, size);
        leases.push(lease);
    }
    for w in leases.windows(2) {
        assert_eq!(w[0].end, w[1].start, "ranges follow each other: {leases:?}");
    }
    let r = run(&s, &[Command::LeaseSerials { node: 1, size: 0 }]);
    assert!(matches!(
        r[0],
        CommandResult::Rejected {
            code: RejectCode::Invalid,
            ..
        }
    ));
}

pub(crate) fn sealed(kek: u32, byte: u8) -> hapki_domain::wrap::Wrapped {
    Wrapped {
        version: 1,
        kek,
        nonce: [byte; 12],
        ciphertext: vec![byte; 8],
    }
}

#[test]
fn a_kek_rotation_replaces_every_sealed_key_and_later_keys_must_use_the_new_kek() {
    use crate::records::RewrappedIssuer;
    let (_d, store) = store();
    run(&store, &history());
    run(
        &store,
        &[Command::AddIssuer {
            issuer: issuer("bb"),
            make_default: false,
        }],
    );
    let rotation = |from, to, issuers: Vec<RewrappedIssuer>| Command::RotateKek {
        from,
        to,
        issuers,
        internal_ca: None,
    };
    let all = || {
        vec![
            RewrappedIssuer {
                id: "aa".into(),
                key: sealed(1, 7),
                ocsp: None,
            },
            RewrappedIssuer {
                id: "bb".into(),
                key: sealed(1, 8),
                ocsp: None,
            },
        ]
    };
    let before = store.reader().unwrap().digest().unwrap();
    // Refused: an issuer left out, a key under the wrong KEK, a jump of two, the wrong start.
    let mut partial = all();
    partial.pop();
    let mut wrong = all();
    wrong[0].key = sealed(0, 9);
    for bad in [
        rotation(0, 1, partial),
        rotation(0, 1, wrong),
        rotation(0, 2, all()),
        rotation(1, 2, all()),
    ] {
        let r = run(&store, &[bad]);
        assert!(matches!(r[0], CommandResult::Rejected { .. }), "{r:?}");
    }
    assert_eq!(store.reader().unwrap().digest().unwrap(), before);
    assert_eq!(store.reader().unwrap().kek_id().unwrap(), 0);

    assert_eq!(run(&store, &[rotation(0, 1, all())]), vec![CommandResult::Applied]);
    let reader = store.reader().unwrap();
    assert_eq!(reader.kek_id().unwrap(), 1);
    assert_eq!(reader.issuer("aa").unwrap().unwrap().wrapped_key, sealed(1, 7));
    drop(reader);
    // A key sealed under the old KEK is refused from now on; one under the new KEK is taken.
    let mut late = issuer("ca3");
    late.wrapped_key = sealed(0, 3);
    let r = run(
        &store,
        &[Command::AddIssuer {
            issuer: late.clone(),
            make_default: false,
        }],
    );
    assert!(
        matches!(&r[0], CommandResult::Rejected { message, .. } if message.contains("rotated to KEK 1")),
        "{r:?}"
    );
    late.wrapped_key = sealed(1, 3);
    let r = run(
        &store,
        &[Command::AddIssuer {
            issuer: late,
            make_default: false,
        }],
    );
    assert_eq!(r, vec![CommandResult::Applied]);
}

#[test]
fn a_store_of_another_schema_version_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hapki.redb");
    run(&Store::open(&path).unwrap(), &history());
    for (version, says) in [(1u32, "schema version 1"), (4, "written by a newer hapki")] {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(crate::tables::SM_META)
            .unwrap()
            .insert(b"schema_version".as_slice(), version.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = Store::open(&path)
            .err()
            .expect("another layout must be refused")
            .to_string();
        assert!(err.contains(says), "{err}");
    }
}
