//! The Raft network. A one-member cluster never sends an RPC; until the
//! mutual-TLS cluster channel is configured every peer is reported unreachable,
//! which openraft treats as a node that is down.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use crate::types::{NodeAddr, NodeId, TypeConfig};

/// Creates connections to peers.
#[derive(Clone, Default)]
pub struct Network;

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, _node: &NodeAddr) -> Self::Network {
        PeerConnection { target }
    }
}

impl PeerConnection {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, NodeAddr, E> {
        let msg = format!(
            "node {:016x}: the cluster channel is not configured on this node",
            self.target
        );
        RPCError::Network(NetworkError::new(&std::io::Error::other(msg)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId, InstallSnapshotError>>>
    {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeAddr, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}
