use super::*;
use crate::tests::{issued_at, issuer, revoke, run, store};
use crate::{Command, Store};

/// Issuer `aa` and certificates 1..=10, certificate n expiring at 1000 + n, at format 3.
fn issued() -> (tempfile::TempDir, Store) {
    issued_at(3, vec![], 10)
}

fn head(number: u64) -> CrlHead {
    CrlHead {
        issuer_id: "aa".into(),
        number,
        this_update: 2000,
        next_update: 3000,
    }
}

fn tidy(expired_before: u64, serials: &[u64], heads: Vec<CrlHead>) -> Command {
    Command::TidyExpired {
        tidy: Tidy {
            at: 2000,
            expired_before,
            serials: serials.iter().map(|n| Serial::from_u64(*n)).collect(),
            crl_heads: heads,
        },
    }
}

fn candidates(s: &Store, before: u64) -> Vec<u64> {
    s.reader()
        .unwrap()
        .tidy_candidates(before, 100)
        .unwrap()
        .iter()
        .map(|c| u64::from_be_bytes(c.serial.0[12..].try_into().unwrap()))
        .collect()
}

fn rejected(r: &CommandResult, says: &str) -> bool {
    matches!(r, CommandResult::Rejected { code: RejectCode::Invalid, message } if message.contains(says))
}

#[test]
fn candidates_are_the_certificates_expired_before_the_bound_earliest_first() {
    let (_d, s) = issued();
    assert_eq!(
        candidates(&s, 1001),
        Vec::<u64>::new(),
        "1 expires at 1001: not before it"
    );
    assert_eq!(candidates(&s, 1004), [1, 2, 3]);
    assert_eq!(
        s.reader().unwrap().tidy_candidates(1011, 2).unwrap().len(),
        2,
        "the limit holds"
    );
    assert_eq!(s.reader().unwrap().tidy_pending(1006).unwrap(), 5);
}

#[test]
fn a_tidy_removes_what_it_names_records_it_and_digests_as_the_same_commands_elsewhere() {
    let (_d, s) = issued();
    let (_e, other) = issued();
    let cmd = tidy(1004, &[1, 2, 3], vec![]);
    assert_eq!(run(&s, std::slice::from_ref(&cmd)), [CommandResult::Applied]);
    run(&other, &[cmd]);
    let r = s.reader().unwrap();
    assert_eq!(r.cert_count().unwrap(), 7);
    assert!(r.cert(&Serial::from_u64(2)).unwrap().is_none());
    assert_eq!(candidates(&s, 1006), [4, 5], "the index follows");
    let last = r.last_tidy().unwrap().unwrap();
    assert_eq!((last.removed, last.revoked, last.total_removed), (3, 0, 3));
    assert_eq!(r.digest().unwrap(), other.reader().unwrap().digest().unwrap());

    // A certificate already gone is passed over; the total adds up.
    assert_eq!(run(&s, &[tidy(1006, &[3, 4, 5], vec![])]), [CommandResult::Applied]);
    let last = s.reader().unwrap().last_tidy().unwrap().unwrap();
    assert_eq!((last.removed, last.total_removed), (2, 5));
}

#[test]
fn a_certificate_not_expired_before_the_bound_refuses_the_whole_batch() {
    let (_d, s) = issued();
    let before = s.reader().unwrap().digest().unwrap();
    let r = run(&s, &[tidy(1004, &[1, 2, 3, 4], vec![])]);
    assert!(rejected(&r[0], "not before 1004"), "{r:?}");
    assert_eq!(s.reader().unwrap().digest().unwrap(), before);
    let too_many: Vec<u64> = (1..=u64::from(MAX_BATCH) + 1).collect();
    assert!(rejected(&run(&s, &[tidy(1004, &too_many, vec![])])[0], "at most"));
}

#[test]
fn revoked_certificates_leave_with_the_next_crl_head_of_their_issuer() {
    let (_d, s) = issued();
    run(
        &s,
        &[
            revoke(2),
            revoke(7),
            Command::PublishCrlHead { head: head(1) },
            revoke(3),
        ],
    );
    let before = s.reader().unwrap().digest().unwrap();
    let r = run(&s, &[tidy(1004, &[1, 2, 3], vec![])]);
    assert!(rejected(&r[0], "no next CRL"), "{r:?}");
    let r = run(&s, &[tidy(1004, &[1, 2, 3], vec![head(1)])]);
    assert!(
        matches!(
            &r[0],
            CommandResult::Rejected {
                code: RejectCode::Conflict,
                ..
            }
        ),
        "a head must rise: {r:?}"
    );
    assert_eq!(s.reader().unwrap().digest().unwrap(), before, "refusals change nothing");

    assert_eq!(
        run(&s, &[tidy(1004, &[1, 2, 3], vec![head(2)])]),
        [CommandResult::Applied]
    );
    let r = s.reader().unwrap();
    let (latest, listed) = r.head_entries("aa").unwrap().unwrap();
    assert_eq!(latest.number, 2);
    assert_eq!(
        listed.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [Serial::from_u64(7)],
        "2 and 3 left the CRL, 7 has not expired"
    );
    assert_eq!(r.revoked_of("aa").unwrap().len(), 1);
    assert_eq!(r.last_tidy().unwrap().unwrap().revoked, 2);
}

#[test]
fn a_certificate_with_an_archived_key_is_kept() {
    let (_d, s) = issued();
    let key = crate::ArchivedKey {
        serial: Serial::from_u64(2),
        wrapped_key: crate::tests::sealed(0, 2),
        archived_at: 5,
        archived_by: "tok-a".into(),
        archived_by_name: "alice".into(),
        source: crate::ArchiveSource::Client,
    };
    assert_eq!(run(&s, &[Command::ArchiveKey { key }]), [CommandResult::Applied]);
    assert_eq!(candidates(&s, 1004), [1, 3], "the archived one is no candidate");
    assert_eq!(s.reader().unwrap().tidy_pending(1004).unwrap(), 2);
    assert!(rejected(&run(&s, &[tidy(1004, &[2], vec![])])[0], "archived"));
}

#[test]
fn a_tidy_needs_state_format_3_and_a_policy_is_checked() {
    let (_d, s) = store();
    run(
        &s,
        &[Command::AddIssuer {
            issuer: issuer("aa"),
            make_default: true,
        }],
    );
    let r = run(&s, &[tidy(1004, &[1], vec![])]);
    assert!(matches!(&r[0], CommandResult::Rejected { message, .. } if message.contains("format 3")));

    let (_e, s) = issued();
    assert_eq!(s.reader().unwrap().tidy_policy().unwrap(), TidyPolicy::default());
    let bad = TidyPolicy {
        share_percent: 0,
        ..TidyPolicy::default()
    };
    assert!(rejected(
        &run(&s, &[Command::SetTidyPolicy { policy: bad }])[0],
        "share"
    ));
    let good = TidyPolicy {
        retention_secs: 0,
        batch: 50,
        share_percent: 25,
    };
    assert_eq!(
        run(&s, &[Command::SetTidyPolicy { policy: good }]),
        [CommandResult::Applied]
    );
    assert_eq!(s.reader().unwrap().tidy_policy().unwrap(), good);
}

#[test]
fn a_snapshot_brings_the_state_and_the_receiver_builds_its_index() {
    let (_d, s) = issued();
    run(&s, &[tidy(1004, &[1, 2, 3], vec![])]);
    let mut bytes = Vec::new();
    crate::export_state(&s.db().begin_read().unwrap(), &mut bytes).unwrap();
    let (_e, other) = store();
    let txn = other.db().begin_write().unwrap();
    crate::import_state(&txn, bytes.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(candidates(&other, 1008), [4, 5, 6, 7]);
    assert_eq!(
        other.reader().unwrap().digest().unwrap(),
        s.reader().unwrap().digest().unwrap()
    );
}
