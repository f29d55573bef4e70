//! Messages between members on the mutual-TLS cluster channel, beyond Raft's
//! own: the steps of a join, each node's report for `cluster summary`, KEK
//! hand-over, CRLs built by the leader for a follower, and the refusal every
//! channel route answers with.

use serde::{Deserialize, Serialize};

use crate::cluster::NodeAddr;

/// Every route of the cluster channel: one table.
pub mod paths {
    /// Raft's append-entries and vote RPCs, and a snapshot streamed in one request.
    pub const APPEND: &str = "/raft/append";
    pub const VOTE: &str = "/raft/vote";
    pub const SNAPSHOT: &str = "/raft/snapshot/stream";
    /// A follower hands a command to the leader (any node serves writes).
    pub const PROPOSE: &str = "/cluster/propose";
    /// A follower asks the leader for a read index (linearizable reads anywhere).
    pub const READ_INDEX: &str = "/cluster/read-index";
    /// A member hands a membership change to the leader.
    pub const MEMBERSHIP: &str = "/cluster/membership";
    /// A joining node introduces itself and gets the cluster's id and KEK.
    pub const HELLO: &str = "/cluster/join/hello";
    pub const ADD: &str = "/cluster/join/add";
    pub const PROMOTE: &str = "/cluster/join/promote";
    pub const ABORT: &str = "/cluster/join/abort";
    pub const REPORT: &str = "/cluster/report";
    /// A member hands out the next KEK of a rotation.
    pub const KEK_OFFER: &str = "/cluster/kek/offer";
    /// A member that lacks the state's KEK asks another for it.
    pub const KEK_FETCH: &str = "/cluster/kek/fetch";
    /// The leader builds a CRL for a follower that took a revocation.
    pub const CRL: &str = "/cluster/crl";
    /// A member's build: its version and the highest state format it applies.
    pub const BUILD: &str = "/cluster/build";
}

/// A joining node introduces itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    pub addr: NodeAddr,
    pub version: String,
    /// The highest state format the joining node applies (1 for builds that do not say).
    #[serde(default = "baseline_format")]
    pub max_format: u32,
}

fn baseline_format() -> u32 {
    1
}

/// A member's build, for the feature gates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBuild {
    pub version: String,
    pub max_format: u32,
}

/// What a joining node needs before it can take part: the cluster's id and KEK.
#[derive(Clone, Serialize, Deserialize)]
pub struct Welcome {
    pub cluster_id: String,
    /// The cluster KEK, hex; it travels only inside the mutual-TLS channel.
    pub kek: String,
    /// Its number.
    pub kek_id: u32,
    pub version: String,
    pub voters_target: u8,
}

/// A KEK handed between members, inside the mutual-TLS channel only.
#[derive(Clone, Serialize, Deserialize)]
pub struct KekTransfer {
    pub id: u32,
    /// The KEK, hex.
    pub kek: String,
}

impl KekTransfer {
    pub fn new(id: u32, kek: &[u8; 32]) -> KekTransfer {
        KekTransfer {
            id,
            kek: hex::encode(kek),
        }
    }

    /// The KEK's bytes, if well formed.
    pub fn bytes(&self) -> Option<[u8; 32]> {
        hex::decode(&self.kek).ok().and_then(|k| k.try_into().ok())
    }
}

/// What a membership change on the leader did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipOutcome {
    /// Whether the node named by the change is a voter afterwards.
    pub voter: bool,
    /// A learner promoted to take a removed voter's place.
    pub promoted: Option<u64>,
}

/// A follower asks the CRL owner (the leader) for a CRL of `issuer_id` built from at least `needed_index`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CrlRequest {
    pub issuer_id: String,
    pub needed_index: u64,
}

/// Why a member refused a channel request; the body of every non-2xx answer on the channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", content = "message", rename_all = "snake_case")]
pub enum Refusal {
    /// The caller was removed from this cluster.
    Removed(String),
    /// The caller is not a member, or presents another key than the one recorded for it.
    NotTrusted(String),
    /// The caller may not ask this (not admitted, not a node's write).
    Forbidden(String),
    /// The request conflicts with the state (major versions differ, a KEK is already held).
    Conflict(String),
    /// The request is malformed.
    Invalid(String),
    /// What was asked for is not here.
    NotFound(String),
    /// This member cannot answer now (not ready, no longer the leader); ask again or another.
    Unavailable(String),
    /// This member failed; its log says why.
    Internal(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Removed(m)
            | Refusal::NotTrusted(m)
            | Refusal::Forbidden(m)
            | Refusal::Conflict(m)
            | Refusal::Invalid(m)
            | Refusal::NotFound(m)
            | Refusal::Unavailable(m)
            | Refusal::Internal(m) => m,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kek_travels_as_hex_and_only_32_bytes_come_back() {
        let t = KekTransfer::new(3, &[0xab; 32]);
        assert_eq!(t.kek, "ab".repeat(32));
        assert_eq!(t.bytes(), Some([0xab; 32]));
        for bad in ["ab", &"zz".repeat(32), &"é".repeat(32)] {
            let t = KekTransfer {
                id: 1,
                kek: bad.to_string(),
            };
            assert_eq!(t.bytes(), None, "{bad}");
        }
    }

    #[test]
    fn a_refusal_names_its_kind() {
        let r = Refusal::Removed("node 1 was removed".into());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"refusal":"removed","message":"node 1 was removed"}"#);
        assert_eq!(serde_json::from_str::<Refusal>(&json).unwrap(), r);
    }
}
