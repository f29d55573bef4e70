use hapki_domain::revocation::RevocationReason;
use hapki_domain::serial::Serial;

use redb::ReadableTableMetadata;

use super::*;
use crate::tests::{cert, issued_at, run};
use crate::{Command, CommandResult, Store};

const DAY: u64 = WINDOW_SECS;

fn issue(serial: u64, key: u8, at: u64) -> Command {
    let mut c = cert(serial, "aa");
    c.issued_at = at;
    Command::IssueCert {
        cert: c,
        idempotency_key: Some([key; 32]),
    }
}

fn revoke(serial: u64, key: u8, at: u64) -> Command {
    Command::Revoke {
        serial: Serial::from_u64(serial),
        reason: RevocationReason::Superseded,
        at,
        idempotency_key: Some([key; 32]),
    }
}

fn replayed(serial: u64) -> CommandResult {
    CommandResult::Replayed {
        serial: Serial::from_u64(serial),
    }
}

fn found(s: &Store, key: u8, at: u64) -> Option<Serial> {
    s.reader().unwrap().idempotent_serial(&[key; 32], at).unwrap()
}

fn forget(s: &Store, at: u64, max: u32) -> u64 {
    let before = s.reader().unwrap().idempotency_keys().unwrap();
    let pending = s.reader().unwrap().forgettable_idempotency_keys(at, max).unwrap();
    assert_eq!(
        run(s, &[Command::ForgetIdempotencyKeys { at, max }]),
        [CommandResult::Applied]
    );
    let removed = before - s.reader().unwrap().idempotency_keys().unwrap();
    assert_eq!(removed, pending, "the reader counts what the command removes");
    removed
}

#[test]
fn a_key_is_found_the_day_it_was_used_and_the_day_after_then_not() {
    let (_d, s) = issued_at(FORMAT, vec![], 0);
    let at = 100 * DAY + 3_600;
    assert_eq!(run(&s, &[issue(1, 7, at)]), [CommandResult::Applied]);
    assert_eq!(
        run(&s, &[issue(2, 7, at + DAY - 1)]),
        [replayed(1)],
        "a day later: the same request"
    );
    assert_eq!(
        run(&s, &[issue(3, 7, 102 * DAY - 1)]),
        [replayed(1)],
        "until the end of the next day"
    );
    assert_eq!(found(&s, 7, 102 * DAY - 1), Some(Serial::from_u64(1)));
    assert_eq!(found(&s, 7, 102 * DAY), None, "the reader agrees with apply");
    assert_eq!(
        run(&s, &[issue(4, 7, 102 * DAY)]),
        [CommandResult::Applied],
        "two days on the key is a new request"
    );
}

#[test]
fn a_revocation_key_is_dated_by_the_revocation() {
    let (_d, s) = issued_at(FORMAT, vec![], 3);
    let at = 50 * DAY;
    assert_eq!(run(&s, &[revoke(2, 9, at)]), [CommandResult::Applied]);
    assert_eq!(run(&s, &[revoke(2, 9, at + DAY)]), [replayed(2)]);
    let r = run(&s, &[revoke(3, 9, at + DAY)]);
    assert!(
        matches!(&r[0], CommandResult::Rejected { message, .. } if message.contains("used for another request")),
        "{r:?}"
    );
}

#[test]
fn forgetting_removes_days_no_lookup_reads_any_more_oldest_first_and_bounded() {
    let (_d, s) = issued_at(FORMAT, vec![], 0);
    run(
        &s,
        &[
            issue(1, 1, 10 * DAY),
            issue(2, 2, 10 * DAY + 5),
            issue(3, 3, 11 * DAY),
            issue(4, 4, 12 * DAY),
        ],
    );
    assert_eq!(forget(&s, 12 * DAY, 100), 2, "day 10 only: day 11 is read on day 12");
    assert_eq!(found(&s, 1, 11 * DAY), None);
    assert_eq!(found(&s, 3, 12 * DAY), Some(Serial::from_u64(3)));
    assert_eq!(forget(&s, 13 * DAY, 100), 1, "then day 11");
    assert_eq!(found(&s, 4, 13 * DAY), Some(Serial::from_u64(4)));
    run(&s, &[issue(5, 5, 13 * DAY), issue(6, 6, 13 * DAY)]);
    assert_eq!(forget(&s, 20 * DAY, 2), 2, "at most max");
    assert_eq!(forget(&s, 20 * DAY, 2), 1);
    assert_eq!(forget(&s, 20 * DAY, 2), 0, "nothing left to forget");
}

#[test]
fn keys_written_before_format_6_are_still_found_then_forgotten_with_their_certificate() {
    let (_d, s) = issued_at(5, vec![], 0);
    run(
        &s,
        &[issue(1, 1, 10 * DAY), issue(2, 2, 30 * DAY), issue(3, 3, 10 * DAY)],
    );
    let undated = s
        .reader()
        .unwrap()
        .txn()
        .open_table(SM_IDEMPOTENCY)
        .unwrap()
        .len()
        .unwrap();
    assert_eq!(undated, 3, "format 5 writes undated rows");
    run(&s, &[Command::SetStateFormat { to: FORMAT }]);
    assert_eq!(
        run(&s, &[issue(9, 1, 31 * DAY)]),
        [replayed(1)],
        "an undated key is found whatever the day"
    );
    run(&s, &[revoke(3, 4, 30 * DAY)]);
    assert_eq!(s.reader().unwrap().idempotency_keys().unwrap(), 4, "one dated row now");
    // At day 31: certificate 1 was issued 21 days ago; 2 a day ago; 3 was revoked a day ago.
    assert_eq!(forget(&s, 31 * DAY, 100), 1);
    assert_eq!(found(&s, 1, 31 * DAY), None);
    assert_eq!(found(&s, 2, 31 * DAY), Some(Serial::from_u64(2)));
    assert_eq!(
        found(&s, 3, 31 * DAY),
        Some(Serial::from_u64(3)),
        "kept while its revocation is recent"
    );
    assert_eq!(forget(&s, 40 * DAY, 100), 3, "later all three: two undated, one dated");
    assert_eq!(s.reader().unwrap().idempotency_keys().unwrap(), 0);
}

#[test]
fn forgetting_needs_format_6_and_is_the_same_on_two_stores() {
    let (_d, old) = issued_at(5, vec![], 0);
    let r = run(&old, &[Command::ForgetIdempotencyKeys { at: 1, max: 1 }]);
    assert!(
        matches!(&r[0], CommandResult::Rejected { message, .. } if message.contains("state format 6")),
        "{r:?}"
    );
    let cmds = [
        issue(1, 1, 10 * DAY),
        issue(2, 2, 10 * DAY),
        issue(3, 3, 11 * DAY),
        Command::ForgetIdempotencyKeys { at: 12 * DAY, max: 1 },
    ];
    let (_d1, a) = issued_at(FORMAT, vec![], 0);
    let (_d2, b) = issued_at(FORMAT, vec![], 0);
    run(&a, &cmds);
    run(&b, &cmds);
    assert_eq!(
        a.reader().unwrap().digest().unwrap(),
        b.reader().unwrap().digest().unwrap()
    );
    assert_eq!(a.reader().unwrap().idempotency_keys().unwrap(), 2);
}
