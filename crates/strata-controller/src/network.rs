//! The Raft transport seam. With a single voter nothing is ever sent, so every RPC fails with
//! [`openraft::error::Unreachable`].
//!
//! More voters plug in here: a gRPC/TCP [`RaftNetworkFactory`] whose clients carry
//! `append_entries`, `vote` and `install_snapshot` to the peer named by the `BasicNode` address
//! in the membership, plus a server on each node that feeds received requests to
//! `Raft::{append_entries, vote, install_snapshot}`. Nothing else in this crate changes.

use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;

use crate::TypeConfig;

type NodeId = u64;
type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Why a peer could not be reached: there is no transport yet.
#[derive(Debug, thiserror::Error)]
#[error("no Raft transport to controller {target}: this build runs a single-voter controller")]
pub struct NoTransport {
    target: NodeId,
}

/// A network factory whose clients can reach no one.
#[derive(Clone, Debug, Default)]
pub struct NoNetwork;

/// A client for one peer that fails every RPC with `Unreachable`.
#[derive(Debug)]
pub struct NoPeer {
    target: NodeId,
}

impl NoPeer {
    // The error type is openraft's, fixed by the trait this helps implement.
    #[allow(clippy::result_large_err)]
    fn unreachable<T, E: std::error::Error>(&self) -> RpcResult<T, E> {
        Err(RPCError::Unreachable(Unreachable::new(&NoTransport {
            target: self.target,
        })))
    }
}

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> NoPeer {
        NoPeer { target }
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.unreachable()
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.unreachable()
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.unreachable()
    }
}
