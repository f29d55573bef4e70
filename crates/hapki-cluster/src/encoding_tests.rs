//! Every type the Raft log, its bookkeeping and the cluster channel carry goes through
//! [`hapki_store::codec`] and back unchanged (postcard is not self-describing, so a serde
//! attribute that needs to look ahead would fail here), and the schema-2 layout of the
//! Raft tables, written out by hand, migrates to it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use hapki_store::codec::{decode, encode};
use hapki_store::{Command, CommandResult, RejectCode};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{CommittedLeaderId, EntryPayload, ErrorSubject, ErrorVerb, Membership};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::membership::{MembershipChange, MembershipOutcome};
use crate::origin::{ForwardedChange, ForwardedCommand, Origin};
use crate::proposer::Committed;
use crate::types::*;
use crate::{upgrade, ProposeError};

/// Decoding what was encoded gives the same value, and encoding it again the same bytes.
fn round_trips<T: Serialize + DeserializeOwned + Debug>(value: &T) {
    let bytes = encode(value);
    let back: T = decode(&bytes).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    assert_eq!(format!("{back:?}"), format!("{value:?}"));
    assert_eq!(encode(&back), bytes);
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 7), index)
}

fn addr(n: u64) -> NodeAddr {
    NodeAddr {
        name: format!("n{n}"),
        api: format!("10.0.0.{n}:8443"),
        cluster: format!("10.0.0.{n}:8444"),
    }
}

fn membership() -> Membership<NodeId, NodeAddr> {
    Membership::new(
        vec![BTreeSet::from([1, 2])],
        BTreeMap::from([(1, addr(1)), (2, addr(2)), (3, addr(3))]),
    )
}

fn entries() -> Vec<Entry> {
    let command = Command::RevokeToken { id: "0123".into() };
    [
        EntryPayload::Blank,
        EntryPayload::Normal(Batch {
            commands: vec![command.clone(), command],
        }),
        EntryPayload::Membership(membership()),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, payload)| Entry {
        log_id: log_id(2, i as u64 + 1),
        payload,
    })
    .collect()
}

fn every_propose_error() -> Vec<ProposeError> {
    vec![
        ProposeError::NotLeader {
            leader: Some(3),
            leader_api: Some("10.0.0.3:8443".into()),
        },
        ProposeError::Raft("r".into()),
        ProposeError::ShuttingDown,
        ProposeError::LeaderUnreachable("u".into()),
        ProposeError::Refused("f".into()),
        ProposeError::NoQuorum("q".into()),
        ProposeError::Forbidden("x".into()),
        ProposeError::Removed("gone".into()),
    ]
}

#[test]
fn the_log_and_its_bookkeeping_round_trip() {
    for entry in entries() {
        round_trips(&entry);
    }
    round_trips(&Vote::new(4, 7));
    round_trips(&Vote::new_committed(4, 7));
    round_trips(&Some(log_id(4, 9)));
    round_trips(&None::<LogId>);
    round_trips(&StoredMembership::new(Some(log_id(1, 3)), membership()));
    round_trips(&StoredMembership::default());
    round_trips(&BatchResult {
        results: vec![
            CommandResult::Applied,
            CommandResult::Rejected {
                code: RejectCode::NotFound,
                message: "m".into(),
            },
        ],
    });
}

#[test]
fn every_raft_rpc_and_its_answers_round_trip() {
    round_trips(&AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 7),
        prev_log_id: Some(log_id(1, 0)),
        entries: entries(),
        leader_commit: Some(log_id(2, 2)),
    });
    let storage: StorageError = crate::log_store::io_err(ErrorSubject::Logs, ErrorVerb::Write, "disk full");
    let answers: Vec<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> = vec![
        Ok(AppendEntriesResponse::Success),
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(2, 1)))),
        Ok(AppendEntriesResponse::Conflict),
        Ok(AppendEntriesResponse::HigherVote(Vote::new(9, 1))),
        Err(RaftError::Fatal(Fatal::StorageError(storage))),
        Err(RaftError::Fatal(Fatal::Stopped)),
    ];
    for answer in &answers {
        round_trips(answer);
    }
    round_trips(&VoteRequest::new(Vote::new(3, 7), Some(log_id(2, 5))));
    round_trips(&Ok::<_, RaftError<NodeId>>(VoteResponse::new(
        Vote::new(3, 7),
        None,
        true,
    )));
    // A streamed snapshot's header, and what installing it answers.
    round_trips(&(
        Vote::new_committed(2, 7),
        SnapshotMeta {
            last_log_id: Some(log_id(2, 3)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
            snapshot_id: "2-3".into(),
        },
    ));
    let answers: Vec<Result<SnapshotResponse<NodeId>, Fatal<NodeId>>> =
        vec![Ok(SnapshotResponse { vote: Vote::new(2, 7) }), Err(Fatal::Stopped)];
    for answer in &answers {
        round_trips(answer);
    }
}

#[test]
fn forwarded_writes_and_their_answers_round_trip() {
    for origin in [
        Origin::Node,
        Origin::Client {
            token: "hapki_t".into(),
        },
    ] {
        round_trips(&ForwardedCommand {
            origin: origin.clone(),
            command: Command::RemoveNode { id: 3, at: 4 },
        });
        for change in [
            MembershipChange::AddLearner { id: 3, addr: addr(3) },
            MembershipChange::Promote {
                id: 3,
                voters_target: 3,
            },
            MembershipChange::Remove {
                id: 3,
                voters_target: 5,
            },
        ] {
            round_trips(&ForwardedChange {
                origin: origin.clone(),
                change,
            });
        }
    }
    round_trips(&Ok::<_, ProposeError>(Committed {
        result: CommandResult::Replayed {
            serial: hapki_domain::serial::Serial::from_u64(5),
        },
        index: 12,
    }));
    round_trips(&Ok::<_, ProposeError>(MembershipOutcome {
        voter: true,
        promoted: Some(4),
    }));
    round_trips(&Ok::<u64, ProposeError>(77));
    for e in every_propose_error() {
        round_trips(&Err::<u64, _>(e));
    }
}

fn u64le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// A log id of schema 2: term, leader node id, index.
fn legacy_log_id(term: u64, node: u64, index: u64) -> Vec<u8> {
    [u64le(term), u64le(node), u64le(index)].concat()
}

fn legacy_string(s: &str) -> Vec<u8> {
    [u64le(s.len() as u64), s.as_bytes().to_vec()].concat()
}

#[test]
fn the_raft_tables_of_schema_2_migrate() {
    // A vote: term 4, node 7, committed.
    let vote = [u64le(4), u64le(7), vec![1]].concat();
    let migrated: Vote = decode(&upgrade::raft_meta("vote", &vote).unwrap()).unwrap();
    assert_eq!(migrated, Vote::new_committed(4, 7));
    let applied = [vec![1], legacy_log_id(2, 7, 9)].concat();
    let migrated: Option<LogId> = decode(&upgrade::raft_meta("applied", &applied).unwrap()).unwrap();
    assert_eq!(migrated, Some(log_id(2, 9)));
    let migrated: LogId = decode(&upgrade::raft_meta("last_purged", &legacy_log_id(1, 7, 3)).unwrap()).unwrap();
    assert_eq!(migrated, log_id(1, 3));
    assert!(
        upgrade::raft_meta("snapshot", &vote).is_err(),
        "schema 2 had no such key"
    );

    // A blank entry: its log id, then variant 0.
    let blank = [legacy_log_id(2, 7, 1), vec![0, 0, 0, 0]].concat();
    let entry: Entry = decode(&upgrade::log_entry(&blank).unwrap()).unwrap();
    assert_eq!(format!("{entry:?}"), format!("{:?}", entries()[0]));

    // A batch of one command: variant 1, the batch's commands (count, then RevokeToken,
    // variant 11 of Command, and its id).
    let normal = [
        legacy_log_id(2, 7, 2),
        vec![1, 0, 0, 0],
        u64le(2),
        vec![11, 0, 0, 0],
        legacy_string("0123"),
        vec![11, 0, 0, 0],
        legacy_string("0123"),
    ]
    .concat();
    let entry: Entry = decode(&upgrade::log_entry(&normal).unwrap()).unwrap();
    assert_eq!(format!("{entry:?}"), format!("{:?}", entries()[1]));

    // A membership: the configs (one set of 1 and 2), the nodes (1, 2, 3 and their
    // addresses: name, API, cluster); in an entry, variant 2.
    let mut legacy_membership = [u64le(1), u64le(2), u64le(1), u64le(2), u64le(3)].concat();
    for n in 1..=3u64 {
        let a = addr(n);
        legacy_membership.extend(
            [
                u64le(n),
                legacy_string(&a.name),
                legacy_string(&a.api),
                legacy_string(&a.cluster),
            ]
            .concat(),
        );
    }
    let member = [legacy_log_id(2, 7, 3), vec![2, 0, 0, 0], legacy_membership.clone()].concat();
    let entry: Entry = decode(&upgrade::log_entry(&member).unwrap()).unwrap();
    assert_eq!(format!("{entry:?}"), format!("{:?}", entries()[2]));
    let stored = [vec![1], legacy_log_id(2, 7, 3), legacy_membership].concat();
    let migrated: StoredMembership = decode(&upgrade::raft_meta("membership", &stored).unwrap()).unwrap();
    assert_eq!(migrated, StoredMembership::new(Some(log_id(2, 3)), membership()));

    assert!(upgrade::log_entry(&blank[..20]).is_err(), "a damaged entry is refused");
}
