//! The channel's client side: openraft's network. Each RPC is one HTTPS POST
//! with a [`hapki_store::codec`] body to the target's cluster address, presenting this node's
//! certificate. A snapshot is one POST whose body streams the rows as they are read
//! (see [`crate::snapshot`]). Until the node has an identity, every peer is unreachable.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::future::Future;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::storage::Snapshot;
use openraft::OptionalSend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use hapki_api::channel::Refusal;
use hapki_store::codec;

use super::paths;
use super::pins::Pins;
use super::tls::NodeIdentity;
use crate::contact::Contacts;
use crate::snapshot::SnapshotData;
use crate::types::{Entry, NodeAddr, NodeId, TypeConfig, Vote};

/// How long a snapshot may take to arrive and be installed: the channel server's request
/// deadline (server.rs).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Most bytes of log entries one AppendEntries carries (a single larger entry still goes
/// alone). openraft gives each AppendEntries one heartbeat interval to be answered; a node far
/// behind would otherwise be sent bodies too large to arrive in time, resent whole after each
/// timeout, and never catch up. A cut request is answered as a partial success, and openraft
/// sends the rest next.
const APPEND_BYTES: usize = 512 * 1024;

/// Creates connections to peers; shares one HTTP client (and its connection pool).
#[derive(Clone, Default)]
pub struct ChannelNetwork {
    client: Arc<RwLock<Option<reqwest::Client>>>,
    /// What servers are checked against.
    pub pins: Pins,
    /// When each peer last answered.
    pub contacts: Contacts,
}

impl ChannelNetwork {
    /// Gives the network this node's identity; RPCs are possible from then on.
    pub fn set_identity(&self, identity: &NodeIdentity) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(identity.pinned_client_config(self.pins.clone())?)
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(5))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        *self.client.write().expect("client lock") = Some(client);
        Ok(())
    }

    /// The HTTP client of the channel, if the node has an identity.
    pub fn http(&self) -> Option<reqwest::Client> {
        self.client.read().expect("client lock").clone()
    }

    /// Calls a route of another node's channel (`cluster` is its `host:port`) with a JSON body;
    /// a refusal comes back as its status and text.
    pub async fn call_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        cluster: &str,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let http = self
            .http()
            .ok_or_else(|| PeerError::Unreachable("this node has no cluster identity yet".into()))?;
        let resp = http
            .post(format!("https://{cluster}{path}"))
            .timeout(timeout)
            .json(req)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(format!("{cluster}: {}", error_chain(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(PeerError::Refused {
                status: status.as_u16(),
                refusal: refusal_of(&bytes),
            });
        }
        resp.json()
            .await
            .map_err(|e| PeerError::Unreachable(format!("{cluster}: undecodable answer: {e}")))
    }
}

/// Why a call to another node's channel failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0}")]
    Unreachable(String),
    #[error("refused ({status}): {refusal}")]
    Refused { status: u16, refusal: Refusal },
}

/// The refusal a member answered with; a body that is not one (a proxy's page, a route
/// the member does not have) is kept as text.
pub(crate) fn refusal_of(body: &[u8]) -> Refusal {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Refusal::Internal(String::from_utf8_lossy(body).chars().take(500).collect()))
}

/// An error and its sources in one line (reqwest hides the cause of a failed connection).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
    base: String,
    network: ChannelNetwork,
}

impl RaftNetworkFactory<TypeConfig> for ChannelNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> Self::Network {
        PeerConnection {
            target,
            base: format!("https://{}", node.cluster),
            network: self.clone(),
        }
    }
}

#[derive(Debug)]
struct ChannelError(String);

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChannelError {}

/// Why a call got no answer from the peer's Raft.
enum NoAnswer {
    /// Not reached, or refused by the peer's channel: openraft backs off before trying again.
    Unreachable(String),
    /// Reached, but its answer was lost or undecodable.
    Network(NetworkError),
}

impl NoAnswer {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, NodeAddr, E> {
        match self {
            NoAnswer::Unreachable(msg) => RPCError::Unreachable(Unreachable::new(&ChannelError(msg))),
            NoAnswer::Network(e) => RPCError::Network(e),
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig, Fatal<NodeId>> {
        match self {
            NoAnswer::Unreachable(msg) => StreamingError::Unreachable(Unreachable::new(&ChannelError(msg))),
            NoAnswer::Network(e) => StreamingError::Network(e),
        }
    }
}

impl PeerConnection {
    /// POSTs `body` to `path` on the peer and decodes what its Raft answered.
    async fn post<Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: reqwest::Body,
        timeout: Duration,
    ) -> Result<Resp, NoAnswer> {
        let Some(http) = self.network.http() else {
            return Err(NoAnswer::Unreachable("this node has no cluster identity yet".into()));
        };
        let resp = http
            .post(format!("{}{path}", self.base))
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                NoAnswer::Unreachable(format!(
                    "node {:016x} at {}: {}",
                    self.target,
                    self.base,
                    error_chain(&e)
                ))
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| NoAnswer::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            return Err(NoAnswer::Unreachable(format!(
                "node {:016x} refused {path} ({status}): {}",
                self.target,
                String::from_utf8_lossy(&bytes)
            )));
        }
        let answer = codec::decode(&bytes).map_err(|e| NoAnswer::Network(NetworkError::new(&e)))?;
        self.network.contacts.touch(self.target);
        Ok(answer)
    }

    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeAddr, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, E> = self
            .post(path, codec::encode(req).into(), option.hard_ttl())
            .await
            .map_err(NoAnswer::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        let cut = keep_within(&mut rpc.entries, APPEND_BYTES);
        let last = rpc.entries.last().map(|e| e.log_id);
        let response = self.call(paths::APPEND, &rpc, &option).await?;
        Ok(match response {
            AppendEntriesResponse::Success if cut => AppendEntriesResponse::PartialSuccess(last),
            other => other,
        })
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let SnapshotData::Live(txn) = *snapshot.snapshot else {
            let why = "only the applied state is sent as a snapshot".to_string();
            return Err(NoAnswer::Unreachable(why).into_streaming());
        };
        let rows = crate::snapshot::chunks(txn, crate::snapshot::header(&vote, &snapshot.meta));
        let stream = futures_util::stream::unfold(rows, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let send = self.post::<Result<SnapshotResponse<NodeId>, Fatal<NodeId>>>(
            paths::SNAPSHOT,
            reqwest::Body::wrap_stream(stream),
            SNAPSHOT_TIMEOUT,
        );
        tokio::select! {
            r = send => r
                .map_err(NoAnswer::into_streaming)?
                .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e))),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        self.call(paths::VOTE, &rpc, &option).await
    }
}

/// Drops the entries after the first whose encoding would take the request past `budget`
/// bytes; the first entry always stays. True if any were dropped.
fn keep_within(entries: &mut Vec<Entry>, budget: usize) -> bool {
    // The usual request (a heartbeat, or one batch) has nothing to measure.
    if entries.len() < 2 {
        return false;
    }
    let mut total = 0;
    let keep = entries
        .iter()
        .position(|e| {
            total += codec::encoded_len(e);
            total > budget
        })
        .map_or(entries.len(), |i| i.max(1));
    let cut = keep < entries.len();
    entries.truncate(keep);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Batch;
    use hapki_store::Command;
    use openraft::{EntryPayload, LogId};

    fn entry(index: u64, bytes: usize) -> Entry {
        let id = "x".repeat(bytes);
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Batch {
                commands: vec![Command::RevokeToken { id }],
            }),
        }
    }

    fn indexes(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn entries_past_the_byte_budget_are_left_for_the_next_request() {
        let mut entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1000)).collect();
        assert!(keep_within(&mut entries, 3500));
        assert_eq!(indexes(&entries), [1, 2, 3]);

        // Within the budget: nothing is dropped.
        let mut entries: Vec<Entry> = (1..=3).map(|i| entry(i, 1000)).collect();
        assert!(!keep_within(&mut entries, 3500));
        assert_eq!(indexes(&entries), [1, 2, 3]);

        // One entry larger than the budget still goes, alone.
        let mut entries = vec![entry(7, 10_000), entry(8, 10)];
        assert!(keep_within(&mut entries, 3500));
        assert_eq!(indexes(&entries), [7]);

        // A heartbeat has nothing to cut.
        let mut entries = Vec::new();
        assert!(!keep_within(&mut entries, 3500));
    }
}
