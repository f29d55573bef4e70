use super::*;
use crate::tests::{complete_head as complete, issued_at, revoke, run, store};
use crate::{Command, Store};

/// Issuer `aa`, certificates 1..=6, at format 3, with deltas `on` or not.
fn issued(on: bool) -> (tempfile::TempDir, Store) {
    let policy = Command::SetCrlPolicy {
        policy: CrlPolicy { delta_secs: 5 },
    };
    issued_at(3, if on { vec![policy] } else { vec![] }, 6)
}

fn delta(number: u64, base: u64) -> Command {
    Command::PublishDeltaHead {
        head: DeltaHead {
            issuer_id: "aa".into(),
            number,
            base,
            this_update: 10 * number,
            next_update: 10 * number + 100,
        },
    }
}

fn on_delta(s: &Store) -> Option<(u64, Vec<u64>)> {
    let (head, entries) = s.reader().unwrap().delta_entries("aa").unwrap()?;
    let serials = entries
        .iter()
        .map(|(s, _)| u64::from_be_bytes(s.0[12..].try_into().unwrap()))
        .collect();
    Some((head.number, serials))
}

fn on_complete(s: &Store) -> Vec<u64> {
    let (_, entries) = s.reader().unwrap().head_entries("aa").unwrap().unwrap();
    entries
        .iter()
        .map(|(s, _)| u64::from_be_bytes(s.0[12..].try_into().unwrap()))
        .collect()
}

fn refused(r: &CommandResult, code: RejectCode, says: &str) -> bool {
    matches!(r, CommandResult::Rejected { code: c, message } if *c == code && message.contains(says))
}

#[test]
fn a_delta_lists_what_was_revoked_after_its_base_and_before_it() {
    let (_d, s) = issued(true);
    run(&s, &[revoke(1), complete(1), revoke(2), revoke(3)]);
    assert!(s.reader().unwrap().has_deltas("aa", 1).unwrap());
    assert_eq!(on_delta(&s), None, "no delta of base 1 yet");
    assert_eq!(s.reader().unwrap().revoked_since_delta("aa").unwrap(), 2);

    assert_eq!(
        run(&s, &[delta(2, 1), revoke(4)]),
        [CommandResult::Applied, CommandResult::Applied]
    );
    assert_eq!(on_delta(&s), Some((2, vec![2, 3])), "4 came after the delta");
    assert_eq!(on_complete(&s), [1], "the complete CRL is as its head was");
    assert_eq!(s.reader().unwrap().revoked_since_delta("aa").unwrap(), 1);
    assert_eq!(run(&s, &[delta(3, 1)]), [CommandResult::Applied]);
    assert_eq!(on_delta(&s), Some((3, vec![2, 3, 4])));
    assert_eq!(s.reader().unwrap().latest_crl_number("aa").unwrap(), Some(3));

    // A complete CRL takes a number above the deltas; its deltas start over.
    let r = run(&s, &[complete(3)]);
    assert!(refused(&r[0], RejectCode::Conflict, "not above the current 3"), "{r:?}");
    assert_eq!(run(&s, &[complete(4)]), [CommandResult::Applied]);
    assert_eq!(on_complete(&s), [1, 2, 3, 4]);
    assert_eq!(on_delta(&s), None);
    assert!(s.reader().unwrap().has_deltas("aa", 4).unwrap());
    assert_eq!(run(&s, &[delta(5, 4)]), [CommandResult::Applied]);
    assert_eq!(on_delta(&s), Some((5, vec![])), "nothing revoked since base 4");
}

#[test]
fn a_delta_must_name_the_latest_base_rise_and_have_deltas_on() {
    let (_d, s) = issued(true);
    run(&s, &[complete(1), revoke(1), delta(2, 1)]);
    let before = s.reader().unwrap().digest().unwrap();
    let r = run(&s, &[delta(3, 0), delta(2, 1), delta(9, 7)]);
    assert!(refused(&r[0], RejectCode::Conflict, "latest is 1"), "{r:?}");
    assert!(refused(&r[1], RejectCode::Conflict, "not above the current 2"), "{r:?}");
    assert!(refused(&r[2], RejectCode::Conflict, "latest is 1"), "{r:?}");
    assert_eq!(s.reader().unwrap().digest().unwrap(), before, "refusals change nothing");

    let (_e, off) = issued(false);
    run(&off, &[complete(1), revoke(1)]);
    assert!(!off.reader().unwrap().has_deltas("aa", 1).unwrap());
    let r = run(&off, &[delta(2, 1)]);
    assert!(refused(&r[0], RejectCode::Invalid, "has no delta CRLs"), "{r:?}");
}

#[test]
fn turning_deltas_off_keeps_the_published_base_as_it_was() {
    let (_d, s) = issued(true);
    run(&s, &[complete(1), revoke(1), delta(2, 1)]);
    run(
        &s,
        &[Command::SetCrlPolicy {
            policy: CrlPolicy { delta_secs: 0 },
        }],
    );
    assert!(
        s.reader().unwrap().has_deltas("aa", 1).unwrap(),
        "base 1 was published with deltas"
    );
    assert_eq!(on_delta(&s), Some((2, vec![1])));
    run(&s, &[complete(3)]);
    assert!(!s.reader().unwrap().has_deltas("aa", 3).unwrap());
    assert_eq!(on_delta(&s), None);
}

#[test]
fn the_same_commands_give_the_same_digest_and_a_snapshot_carries_the_deltas() {
    let cmds = [complete(1), revoke(1), delta(2, 1), revoke(2)];
    let (_d, a) = issued(true);
    let (_e, b) = issued(true);
    run(&a, &cmds);
    for c in &cmds {
        run(&b, std::slice::from_ref(c));
    }
    assert_eq!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );
    let mut bytes = Vec::new();
    crate::export_state(&a.db().begin_read().unwrap(), &mut bytes).unwrap();
    let (_f, c) = store();
    let txn = c.db().begin_write().unwrap();
    crate::import_state(&txn, bytes.as_slice()).unwrap();
    txn.commit().unwrap();
    assert_eq!(on_delta(&c), Some((2, vec![1])));
    assert_eq!(c.reader().unwrap().revoked_since_delta("aa").unwrap(), 1);
}
