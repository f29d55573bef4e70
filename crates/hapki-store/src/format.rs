//! State formats: which commands a build can apply. Each format adds commands to the one
//! before; a command carries the format that introduced it ([`Command::format`]). The
//! replicated state records the cluster's format (`state_format` in `sm_meta`, 1 when
//! absent), which only rises, through [`Command::SetStateFormat`], once every member runs a
//! build that applies it. A command of a format above the state's is refused by every node
//! alike; one above what this build applies stops this node, as it would stop a build that
//! cannot decode it, instead of letting it diverge.
//!
//! The `state-format-1` cargo feature builds this code as the last release of format 1
//! did: it applies format 1 only, which is what the mixed-version upgrade test runs.

use redb::{ReadableTable, WriteTransaction};

use crate::command::{Command, CommandResult, RejectCode};
use crate::tables::SM_META;
use crate::StoreError;

/// The newest format this source knows.
pub const LATEST: u32 = 6;

/// The highest format this build applies.
#[cfg(feature = "state-format-1")]
pub const MAX: u32 = 1;
/// The highest format this build applies.
#[cfg(not(feature = "state-format-1"))]
pub const MAX: u32 = LATEST;

/// The format of a state that has never recorded one.
pub const BASELINE: u32 = 1;

/// The first release that applies each format, oldest first.
const RELEASES: [(u32, &str); 6] = [
    (1, "0.1.0"),
    (2, "0.2.0"),
    (3, "0.3.0"),
    (4, "0.5.0"),
    (5, "0.6.0"),
    (6, "0.7.0"),
];

/// The first release of hapki that applies `format`.
pub fn first_release(format: u32) -> &'static str {
    RELEASES
        .iter()
        .find(|(f, _)| *f >= format)
        .map_or("a newer release", |(_, v)| v)
}

/// What each format brought, for operators reading `cluster summary`.
pub fn describe(format: u32) -> &'static str {
    match format {
        1 => "issuance, revocation, CRL, OCSP, tokens, key archive, backups, audit log",
        2 => "issuing-CA rollover (`hapki ca rotate`), CRLs signed by each node from its replica",
        3 => "expiry tidy (`hapki tidy`), delta CRLs, partitioned CRLs",
        4 => "ACME directories with external account binding and renewal information",
        5 => "ACME revocation signed with the certificate's own key",
        6 => "idempotency keys forgotten after a day, by the tidy",
        _ => "unknown to this build",
    }
}

impl Command {
    /// The state format that introduced this command.
    pub fn format(&self) -> u32 {
        match self {
            Command::SetStateFormat { to } => *to,
            Command::Acme { request } if matches!(request.op, crate::acme::AcmeOp::RevokeByCertKey { .. }) => 5,
            Command::RollOverIssuer { .. } | Command::CompleteRollover { .. } | Command::PublishCrlHead { .. } => 2,
            Command::TidyExpired { .. }
            | Command::SetTidyPolicy { .. }
            | Command::SetCrlPolicy { .. }
            | Command::PublishDeltaHead { .. }
            | Command::SetCrlPartitioning { .. } => 3,
            Command::SetAcmeSecret { .. }
            | Command::SetAcmeDirectory { .. }
            | Command::CreateEab { .. }
            | Command::SuggestRenewal { .. }
            | Command::Acme { .. }
            | Command::RotateKekWithAcme { .. } => 4,
            Command::ForgetIdempotencyKeys { .. } => crate::idempotency::FORMAT,
            Command::Audited { command, .. } => command.format(),
            Command::RotateKekWithAudit { rotation, .. } => rotation.format(),
            _ => 1,
        }
    }
}

/// The state's format inside a write transaction.
pub(crate) fn current(txn: &WriteTransaction) -> Result<u32, StoreError> {
    let meta = txn.open_table(SM_META)?;
    let value = meta.get(b"state_format".as_slice())?.map(|v| v.value().to_vec());
    value
        .map(|b| crate::records::decode_u32("state_format", &b))
        .transpose()
        .map(|f| f.unwrap_or(BASELINE))
}

/// Checks `cmd` against this build and the state, before it is applied: an error stops
/// this node (it cannot apply what the cluster agreed on), a refusal is what every node
/// answers alike.
pub(crate) fn check(txn: &WriteTransaction, cmd: &Command) -> Result<Option<CommandResult>, StoreError> {
    let needed = cmd.format();
    if needed > MAX {
        return Err(StoreError::Format(format!(
            "the log holds a command ({}) of state format {needed}, and this build applies up to \
             format {MAX}: start hapki {} or later on this node",
            cmd.kind(),
            first_release(needed)
        )));
    }
    if matches!(cmd, Command::SetStateFormat { .. }) {
        return Ok(None);
    }
    let state = current(txn)?;
    Ok((needed > state).then(|| {
        CommandResult::reject(
            RejectCode::Invalid,
            format!(
                "{} needs state format {needed}, and the cluster is at format {state} until every \
                 member runs hapki {} or later",
                cmd.kind(),
                first_release(needed)
            ),
        )
    }))
}

/// Applies [`Command::SetStateFormat`]: the format only rises.
pub(crate) fn set(txn: &WriteTransaction, to: u32) -> Result<CommandResult, StoreError> {
    let state = current(txn)?;
    if to <= state {
        return Ok(CommandResult::reject(
            RejectCode::Conflict,
            format!("the state is at format {state} already"),
        ));
    }
    txn.open_table(SM_META)?
        .insert(b"state_format".as_slice(), to.to_be_bytes().as_slice())?;
    Ok(CommandResult::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{issuer, run, store};
    use crate::{Rollover, Store};

    fn rollover(from: &str, to: &str) -> Command {
        let mut successor = issuer(to);
        successor.name = format!("CN={from}");
        Command::RollOverIssuer {
            successor,
            rollover: Rollover {
                from: from.into(),
                to: to.into(),
                at: 100,
                created_at: 1,
                switched: false,
                self_signed_der: None,
            },
        }
    }

    #[test]
    fn a_command_of_a_format_above_the_state_is_refused_until_the_format_rises() {
        let (_dir, store) = store();
        run(&store, &crate::tests::history());
        let before = store.reader().unwrap().digest().unwrap();
        let refused = run(&store, &[rollover("aa", "i9")]);
        assert!(
            matches!(&refused[0], CommandResult::Rejected { code: RejectCode::Invalid, message } if message.contains("needs state format 2")),
            "{refused:?}"
        );
        assert_eq!(
            store.reader().unwrap().digest().unwrap(),
            before,
            "a refusal writes nothing"
        );
        assert_eq!(store.reader().unwrap().state_format().unwrap(), 1);

        let applied = run(
            &store,
            &[
                Command::SetStateFormat { to: 2 },
                Command::SetStateFormat { to: 2 },
                rollover("aa", "i9"),
            ],
        );
        assert_eq!(applied[0], CommandResult::Applied);
        assert!(
            matches!(
                applied[1],
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            ),
            "the format only rises"
        );
        assert_eq!(applied[2], CommandResult::Applied, "{applied:?}");
        let reader = store.reader().unwrap();
        assert_eq!(reader.state_format().unwrap(), 2);
        assert_eq!(reader.default_issuer_at(99).unwrap().as_deref(), Some("aa"));
        assert_eq!(
            reader.default_issuer_at(100).unwrap().as_deref(),
            Some("i9"),
            "due at its time"
        );
        drop(reader);
        let done = run(
            &store,
            &[Command::CompleteRollover { from: "aa".into() }, rollover("aa", "i8")],
        );
        assert_eq!(done[0], CommandResult::Applied);
        assert!(
            matches!(
                done[1],
                CommandResult::Rejected {
                    code: RejectCode::Conflict,
                    ..
                }
            ),
            "one rollover per issuer"
        );
        assert_eq!(
            store.reader().unwrap().default_issuer_id().unwrap().as_deref(),
            Some("i9")
        );
    }

    #[test]
    fn a_store_of_a_format_above_this_build_is_refused_at_open_naming_the_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hapki.redb");
        let store = Store::open(&path).unwrap();
        run(&store, &[Command::SetStateFormat { to: MAX }]);
        drop(store);
        Store::open(&path).expect("a store at this build's format opens");
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SM_META)
            .unwrap()
            .insert(b"state_format".as_slice(), (LATEST + 1).to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = Store::open(&path).err().expect("a newer format is refused").to_string();
        assert!(
            err.contains(&format!("state format {}", LATEST + 1)) && err.contains("start hapki"),
            "{err}"
        );
    }

    #[test]
    fn each_format_names_the_release_that_brought_it() {
        assert_eq!(first_release(1), "0.1.0");
        assert_eq!(first_release(2), "0.2.0");
        assert_eq!(first_release(3), "0.3.0");
        assert_eq!(first_release(LATEST + 1), "a newer release");
    }

    #[test]
    fn a_wrapped_command_has_the_format_of_what_it_wraps() {
        let inner = Command::CompleteRollover { from: "a".into() };
        let meta = crate::AuditMeta {
            at: 1,
            actor: None,
            actor_name: String::new(),
            node: 1,
        };
        let audited = Command::Audited {
            meta,
            command: Box::new(inner),
        };
        assert_eq!(audited.format(), 2);
        assert_eq!(Command::RevokeToken { id: "x".into() }.format(), 1);
        assert_eq!(Command::SetStateFormat { to: 2 }.format(), 2);
    }
}
