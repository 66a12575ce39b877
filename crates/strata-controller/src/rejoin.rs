//! A voter that starts with an empty metadata directory: a new cluster's voter, or a replaced
//! node (its disk was lost) coming back with the same node id.
//!
//! Raft assumes a voter never forgets what it acknowledged. A wiped voter breaks that: it may
//! have been part of the majority that committed an entry, and, now empty, vote for a candidate
//! that lacks it (openraft's FAQ, "Can I wipe out the data of ONE node"). So such a voter is
//! *catching up* until it holds everything that was committed before it came back, and while
//! it is catching up it neither grants votes nor campaigns.
//!
//! - A node whose log is empty at start writes the marker file `catching-up` into the metadata
//!   directory (so a crash during the catch-up does not turn a partial log into a trusted one)
//!   and removes it once [`caught_up`] holds.
//! - Caught up: a leader is known and this node has applied an entry of the leader's own term.
//!   A leader's first entry of its term comes after every entry committed by earlier leaders
//!   (leader completeness), and a follower applies only a prefix of the leader's log, so by then
//!   this node has every entry that was committed before it was wiped.
//! - While catching up, a vote request is granted only to the candidate of a new cluster (its
//!   last log entry is the initial membership, index 0), which is how the first election of a
//!   fresh quorum gets the votes of the voters that have not initialized themselves. Anything
//!   else is refused without touching the local vote.
//! - The lowest voter id initializes a new cluster only after asking its peers: if one of them
//!   already holds an initialized log, the empty lowest voter is a replaced node and catches up
//!   like any other ([`crate::rpc::Request::Status`]).
//!
//! The leader side needs openraft's `loosen-follower-log-revert` feature: without it a leader
//! panics when a follower's log goes backwards.
//!
//! Safety holds while no more voters fail than the quorum tolerates, counting the wiped one: in
//! a 3-voter quorum, a wiped voter must come back while the two others are up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use openraft::raft::VoteRequest;
use openraft::BasicNode;
use openraft::RaftMetrics;

use crate::disk::{sync_parent, StoreError};

/// The marker of a voter that is catching up, inside the metadata directory.
pub const MARKER: &str = "catching-up";

/// Whether this voter is catching up, backed by the marker file.
#[derive(Debug)]
pub(crate) struct CatchUp {
    marker: PathBuf,
    active: AtomicBool,
}

impl CatchUp {
    /// Starts catching up if `empty_log` (writing the marker) or if the marker is already there
    /// (a crash during an earlier catch-up).
    pub(crate) fn open(dir: &Path, empty_log: bool) -> Result<CatchUp, StoreError> {
        let marker = dir.join(MARKER);
        let active = empty_log || marker.exists();
        if active && !marker.exists() {
            std::fs::write(&marker, b"this voter started with an empty metadata log\n")
                .map_err(StoreError::io("create", &marker))?;
            sync_parent(&marker)?;
        }
        Ok(CatchUp {
            marker,
            active: AtomicBool::new(active),
        })
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The catch-up is over: remove the marker (durably) so that a restart trusts the log.
    pub(crate) fn finish(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.marker) {
            Ok(()) => sync_parent(&self.marker)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &self.marker)(e)),
        }
        self.active.store(false, Ordering::Release);
        Ok(())
    }
}

/// Whether a voter may pass `req` to Raft: always when it is not catching up, else only for
/// the first election of a new cluster.
pub(crate) fn may_vote(catching_up: bool, req: &VoteRequest<u64>) -> bool {
    !catching_up || matches!(req.last_log_id, Some(l) if l.index == 0)
}

/// Whether a catching-up voter now holds every entry committed before it came back.
pub(crate) fn caught_up(m: &RaftMetrics<u64, BasicNode>) -> bool {
    m.current_leader.is_some()
        && m.last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term && m.current_term > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_catching_up_voter_only_votes_in_a_new_clusters_first_election() {
        let bootstrap = VoteRequest::new(Vote::new(1, 1), Some(log_id(0, 0)));
        let running = VoteRequest::new(Vote::new(5, 2), Some(log_id(4, 17)));
        assert!(may_vote(false, &running));
        assert!(may_vote(false, &bootstrap));
        assert!(may_vote(true, &bootstrap));
        assert!(!may_vote(true, &running));
        assert!(!may_vote(true, &VoteRequest::new(Vote::new(1, 2), None)));
    }

    #[test]
    fn caught_up_needs_an_applied_entry_of_the_leaders_term() {
        let mut m = RaftMetrics::<u64, BasicNode>::new_initial(3);
        assert!(!caught_up(&m));
        m.current_term = 4;
        m.current_leader = Some(1);
        m.last_applied = Some(log_id(3, 40));
        assert!(
            !caught_up(&m),
            "entries of an earlier term may be followed by committed ones"
        );
        m.last_applied = Some(log_id(4, 41));
        assert!(caught_up(&m));
        m.current_leader = None;
        assert!(!caught_up(&m));
    }

    #[test]
    fn the_marker_survives_a_restart_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let c = CatchUp::open(dir.path(), true).unwrap();
        assert!(c.is_active());
        // Restarted with a partial log: still catching up.
        let c = CatchUp::open(dir.path(), false).unwrap();
        assert!(c.is_active());
        c.finish().unwrap();
        assert!(!c.is_active());
        assert!(!dir.path().join(MARKER).exists());
        assert!(!CatchUp::open(dir.path(), false).unwrap().is_active());
    }
}
