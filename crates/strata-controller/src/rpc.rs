//! The wire format between controller nodes: length-prefixed JSON frames carrying one
//! [`Request`] or [`Response`] each.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. Frames larger
//! than [`MAX_FRAME`] are refused before anything is allocated, so a peer (or a stray client on
//! the port) cannot make a node allocate without bound. Nothing here knows about `Raft`; the
//! client ([`crate::network`]) and the server (the private `server` module) own the sockets.

use openraft::error::InstallSnapshotError;
use openraft::error::RaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;

use crate::image::ApplyError;
use crate::image::MetadataCommand;
use crate::image::MetadataImage;
use crate::TypeConfig;

type NodeId = u64;

/// The largest frame either side accepts (a snapshot travels in one frame).
pub const MAX_FRAME: u32 = 64 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("controller RPC connection failed during {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("controller RPC frame of {len} bytes exceeds the {max}-byte limit; is a non-controller client talking to the controller port?")]
    TooLarge { len: u64, max: u32 },
    #[error("controller RPC frame is not valid JSON for this version: {source}")]
    Decode {
        #[source]
        source: serde_json::Error,
    },
    #[error("controller RPC message could not be encoded: {source}")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
}

/// A call from one controller node to another.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command a follower forwards to the node it believes is leader.
    Propose {
        command: MetadataCommand,
        /// How long the leader may wait for the entry to commit.
        timeout_ms: u64,
    },
    /// Whether the receiver's metadata log is initialized: an empty lowest voter asks before
    /// it initializes a new cluster (see [`crate::rejoin`]).
    Status,
    /// A broker-only node (`process.roles=broker`) asks the leader to add it as a learner: it
    /// receives the metadata log without voting.
    AddLearner {
        node_id: NodeId,
        addr: String,
    },
    /// A voter change (`strata cluster add-voter` / `remove-voter`) forwarded to the leader.
    ChangeVoters {
        change: crate::voters::VoterChange,
        timeout_ms: u64,
    },
}

/// The answer to a [`Request`] of the same name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(ProposeOutcome),
    Status {
        /// The receiver holds an initialized membership (it is part of a running cluster).
        initialized: bool,
    },
    /// `Applied` once the membership with the learner committed; `NotLeader` names the leader.
    AddLearner(ProposeOutcome),
    ChangeVoters(crate::voters_driver::VoterOutcome),
}

/// What the leader did with a forwarded command.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProposeOutcome {
    /// Committed and applied at `index`; `image` is the image right after it.
    Applied { index: u64, image: MetadataImage },
    /// Committed at `index`, but validation rejected it (a no-op on every voter).
    Rejected { index: u64, error: ApplyError },
    /// The receiver is not the leader; it names the one it knows of, if any.
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// Not committed within the timeout (it may still commit later).
    TimedOut,
    /// Raft refused or failed the write.
    Failed { message: String },
}

/// Writes `msg` as one frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(msg).map_err(|source| FrameError::Encode { source })?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or(FrameError::TooLarge {
            len: body.len() as u64,
            max: MAX_FRAME,
        })?;
    let io = |op| move |source| FrameError::Io { op, source };
    w.write_all(&len.to_be_bytes()).await.map_err(io("write"))?;
    w.write_all(&body).await.map_err(io("write"))?;
    w.flush().await.map_err(io("flush"))
}

/// Reads one frame. `Ok(None)` means the peer closed the connection between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(source) => return Err(FrameError::Io { op: "read", source }),
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max: MAX_FRAME,
        });
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)
        .await
        .map_err(|source| FrameError::Io { op: "read", source })?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|source| FrameError::Decode { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_between_frames_is_clean() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let msg = Request::Propose {
            command: MetadataCommand::AllocateProducerIds { count: 5 },
            timeout_ms: 7,
        };
        write_frame(&mut a, &msg).await.unwrap();
        drop(a);
        let got: Option<Request> = read_frame(&mut b).await.unwrap();
        assert!(matches!(got, Some(Request::Propose { timeout_ms: 7, .. })));
        let eof: Option<Request> = read_frame(&mut b).await.unwrap();
        assert!(eof.is_none());
    }

    #[tokio::test]
    async fn oversized_and_garbage_frames_are_errors_not_panics() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let got: Result<Option<Request>, _> = read_frame(&mut b).await;
        assert!(matches!(got, Err(FrameError::TooLarge { .. })));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{x}").await.unwrap();
        let got: Result<Option<Request>, _> = read_frame(&mut b).await;
        assert!(matches!(got, Err(FrameError::Decode { .. })));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{").await.unwrap();
        drop(a);
        let got: Result<Option<Request>, _> = read_frame(&mut b).await;
        assert!(matches!(got, Err(FrameError::Io { .. })));
    }
}
