//! Feature gates: what each member's build applies, as this node last heard, and the two
//! rules built on it. A write of a state format above the cluster's is refused before it
//! is proposed, naming the members still to upgrade; and the leader raises the cluster's
//! format by itself once every member applies a higher one. The node's lifecycle polls the
//! members and hands their builds here ([`Pki::set_member_builds`]).

use std::sync::RwLock;

use hapki_api::node_id_hex;
use hapki_cluster::{NodeId, Origin};
use hapki_store::format::{self, first_release};
use hapki_store::{Command, RejectCode};

use super::{Pki, PkiError};
use crate::version::VERSION;

/// A member's build, or `None` where it did not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberBuild {
    pub id: NodeId,
    pub name: String,
    pub version: Option<String>,
    pub max_format: Option<u32>,
}

impl MemberBuild {
    /// This node's own build.
    pub fn this_node(id: NodeId, name: &str) -> MemberBuild {
        MemberBuild {
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

/// The members' builds, as last polled.
#[derive(Default)]
pub struct Builds(RwLock<Vec<MemberBuild>>);

impl Pki {
    /// Records the members' builds, as the lifecycle polled them.
    pub fn set_member_builds(&self, builds: Vec<MemberBuild>) {
        *self.builds.0.write().expect("builds lock") = builds;
    }

    /// The members' builds, as last polled.
    pub fn member_builds(&self) -> Vec<MemberBuild> {
        self.builds.0.read().expect("builds lock").clone()
    }

    /// The highest format every member applies, if each one answered.
    pub fn format_every_member_applies(&self) -> Option<u32> {
        let builds = self.member_builds();
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
            .member_builds()
            .iter()
            .filter(|b| b.max_format.is_none_or(|f| f < needed))
            .map(MemberBuild::describe)
            .collect();
        let waiting = if behind.is_empty() {
            "every member runs it now; the format rises within seconds, then retry".to_string()
        } else {
            format!(
                "still to upgrade: {}; the format rises by itself once the last member runs it",
                behind.join(", ")
            )
        };
        Err(PkiError::conflict(format!(
            "{what} needs state format {needed} (hapki {} or later on every member), and the cluster is at \
             format {state}: {waiting}",
            first_release(needed)
        )))
    }

    /// On the leader: raises the state's format to the highest every member applies, when
    /// that is above it. Returns the new format.
    pub async fn raise_format(&self) -> Result<Option<u32>, PkiError> {
        if !self.cluster.status().is_leader {
            return Ok(None);
        }
        let Some(to) = self.format_every_member_applies() else {
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
        tracing::info!("every member applies state format {to}: raised the cluster's format from {from} to {to}");
        Ok(Some(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_that_did_not_answer_is_named_as_such() {
        let b = MemberBuild {
            id: 0xab,
            name: "node-b".into(),
            version: None,
            max_format: None,
        };
        assert_eq!(b.describe(), "node-b (not answering)");
        let a = MemberBuild::this_node(1, "node-a");
        assert!(a.describe().starts_with("node-a (hapki "), "{}", a.describe());
    }
}
