//! Feature gates: what each voter's build applies, as this node last heard, and the two
//! rules built on it. A write of a state format above the cluster's is refused before it
//! is proposed, naming the voters still to upgrade; and the leader raises the cluster's
//! format by itself once every voter applies a higher one. The node's lifecycle polls the
//! voters and hands their builds here ([`Pki::set_voter_builds`]).

use std::sync::RwLock;

use hapki_api::node_id_hex;
use hapki_cluster::{NodeId, Origin};
use hapki_store::format::{self, first_release};
use hapki_store::{Command, RejectCode};

use super::{Pki, PkiError};
use crate::version::VERSION;

/// A voter's build, or `None` where it did not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterBuild {
    pub id: NodeId,
    pub name: String,
    pub version: Option<String>,
    pub max_format: Option<u32>,
}

impl VoterBuild {
    /// This node's own build.
    pub fn this_node(id: NodeId, name: &str) -> VoterBuild {
        VoterBuild {
            id,
            name: name.to_string(),
            version: Some(VERSION.to_string()),
            max_format: Some(format::MAX),
        }
    }

    fn describe(&self) -> String {
        let name = if self.name.is_empty() {
            node_id_hex(self.id)
        } else {
            self.name.clone()
        };
        match (&self.version, self.max_format) {
            (Some(v), Some(f)) => format!("{name} (hapki {v}, format {f})"),
            _ => format!("{name} (not answering)"),
        }
    }
}

/// The voters' builds, as last polled.
#[derive(Default)]
pub struct Builds(RwLock<Vec<VoterBuild>>);

impl Pki {
    /// Records the voters' builds, as the lifecycle polled them.
    pub fn set_voter_builds(&self, builds: Vec<VoterBuild>) {
        *self.builds.0.write().expect("builds lock") = builds;
    }

    /// The voters' builds, as last polled.
    pub fn voter_builds(&self) -> Vec<VoterBuild> {
        self.builds.0.read().expect("builds lock").clone()
    }

    /// The highest format every voter applies, if each one answered.
    pub fn format_every_voter_applies(&self) -> Option<u32> {
        let builds = self.voter_builds();
        if builds.is_empty() {
            return None;
        }
        builds
            .iter()
            .map(|b| b.max_format)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    /// Refuses `cmd` unless this build and the cluster's state format apply it.
    pub(crate) fn check_format(&self, cmd: &Command) -> Result<(), PkiError> {
        if matches!(cmd, Command::SetStateFormat { .. }) {
            return Ok(());
        }
        self.require_format(cmd.format(), cmd.kind())
    }

    /// Refuses `what` unless this build and the cluster's state format apply `needed`.
    pub fn require_format(&self, needed: u32, what: &str) -> Result<(), PkiError> {
        if needed <= format::BASELINE {
            return Ok(());
        }
        if needed > format::MAX {
            return Err(PkiError::conflict(format!(
                "this node runs hapki {VERSION}, which applies state format {} at most, and {what} needs \
                 format {needed}: send it to a node of hapki {} or later, or upgrade this one",
                format::MAX,
                first_release(needed)
            )));
        }
        let state = self.reader()?.state_format()?;
        if needed <= state {
            return Ok(());
        }
        let behind: Vec<String> = self
            .voter_builds()
            .iter()
            .filter(|b| b.max_format.is_none_or(|f| f < needed))
            .map(VoterBuild::describe)
            .collect();
        let waiting = if behind.is_empty() {
            "every voter runs it now; the format rises within seconds, then retry".to_string()
        } else {
            format!(
                "still to upgrade: {}; the format rises by itself once the last voter runs it",
                behind.join(", ")
            )
        };
        Err(PkiError::conflict(format!(
            "{what} needs state format {needed} (hapki {} or later on every voter), and the cluster is at \
             format {state}: {waiting}",
            first_release(needed)
        )))
    }

    /// On the leader: raises the state's format to the highest every voter applies, when
    /// that is above it. Returns the new format.
    pub async fn raise_format(&self) -> Result<Option<u32>, PkiError> {
        if !self.cluster.status().is_leader {
            return Ok(None);
        }
        let Some(to) = self.format_every_voter_applies() else {
            return Ok(None);
        };
        let from = self.reader()?.state_format()?;
        if to <= from {
            return Ok(None);
        }
        match self.propose(&Origin::Node, Command::SetStateFormat { to }).await {
            Ok(()) => {}
            Err(PkiError::Rejected {
                code: RejectCode::Conflict,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        }
        tracing::info!("every voter applies state format {to}: raised the cluster's format from {from} to {to}");
        Ok(Some(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voter_that_did_not_answer_is_named_as_such() {
        let b = VoterBuild {
            id: 0xab,
            name: "node-b".into(),
            version: None,
            max_format: None,
        };
        assert_eq!(b.describe(), "node-b (not answering)");
        let a = VoterBuild::this_node(1, "node-a");
        assert!(a.describe().starts_with("node-a (hapki "), "{}", a.describe());
    }
}
