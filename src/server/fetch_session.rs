//! Incremental fetch sessions (KIP-227): a client fetching many partitions sends the
//! whole list once, then only what changed, and the broker answers only the partitions
//! with something new. Without them every fetch of a consumer of 1,000 partitions
//! carries 1,000 partitions both ways.
//!
//! This module is the session cache as a pure state machine: [`FetchSessions::begin`]
//! turns a request's session fields and partitions into the full list to fetch (or a
//! Kafka error), and [`FetchSessions::finish`] decides which answers an incremental
//! response carries, remembering what each partition last told the client. The Fetch
//! handler does the I/O between the two. Time comes in as `now_ms`.
//!
//! The request's `(session_id, session_epoch)`, as KIP-227 defines them:
//! - `(0, -1)`: a full fetch without a session;
//! - `(0, 0)`: a full fetch that opens a session (if a slot is free);
//! - `(id, n > 0)`: an incremental fetch: `n` must be the session's next epoch; the
//!   partitions listed are added or updated, `forgotten_topics_data` removed;
//! - `(id, -1)`: close the session, then a full sessionless fetch;
//! - `(id, 0)`: close the session and open a new one with this full fetch.
//!
//! Slots are limited by `max.incremental.fetch.session.cache.slots`. When they are all
//! taken, a new session evicts the least recently used one idle for [`EVICTION_MS`], or
//! is declined (answered with session id 0: the client goes on with full fetches), a
//! simpler rule than Kafka's privilege ordering with the same guarantee: an active
//! session is never evicted by a newcomer.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::ResponseError;

use crate::replica::TopicRef;

/// A session idle this long may be evicted to make room for a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default).
pub const EVICTION_MS: i64 = 120_000;

/// The epoch meaning "no session" / "close the session".
const FINAL_EPOCH: i32 = -1;
const INITIAL_EPOCH: i32 = 0;

/// One partition of a fetch, as the client last described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub fetch_offset: i64,
    pub max_bytes: usize,
    pub current_leader_epoch: i32,
}

/// What a partition last told the client; a change is news even without records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

pub type Key = (TopicRef, i32);

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    partitions: IndexMap<Key, (Wanted, Option<Told>)>,
    last_used_ms: i64,
}

/// What the handler fetches and how it answers.
#[derive(Debug)]
pub struct Begun {
    /// The session id to answer with (0: no session).
    pub session_id: i32,
    /// Incremental: answer only the partitions [`FetchSessions::finish`] keeps.
    pub incremental: bool,
    /// Every partition to fetch, in the session's order.
    pub partitions: Vec<(Key, Wanted)>,
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    max_slots: usize,
    next_id: i32,
}

impl FetchSessions {
    /// `max_slots` 0 turns sessions off: every fetch is answered sessionless.
    pub fn new(max_slots: usize, first_id: i32) -> FetchSessions {
        FetchSessions {
            sessions: HashMap::new(),
            max_slots,
            next_id: first_id.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Reads a request's session fields; `listed` are its partitions, `forgotten`
    /// the partitions it asks to drop from the session.
    pub fn begin(
        &mut self,
        session_id: i32,
        epoch: i32,
        listed: Vec<(Key, Wanted)>,
        forgotten: Vec<Key>,
        now_ms: i64,
    ) -> Result<Begun, ResponseError> {
        if session_id == 0 || epoch == FINAL_EPOCH || epoch == INITIAL_EPOCH {
            // A full fetch. A named session is closed first (closing one we do not have is
            // harmless; 0 is never a session's id); epoch 0 opens a new one.
            self.sessions.remove(&session_id);
            return Ok(if epoch == INITIAL_EPOCH {
                self.open(listed, now_ms)
            } else {
                sessionless(listed)
            });
        }
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if epoch != session.next_epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        for key in forgotten {
            session.partitions.shift_remove(&key);
        }
        for (key, wanted) in listed {
            match session.partitions.get_mut(&key) {
                Some(entry) => entry.0 = wanted,
                None => {
                    session.partitions.insert(key, (wanted, None));
                }
            }
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used_ms = now_ms;
        Ok(Begun {
            session_id,
            incremental: true,
            partitions: session
                .partitions
                .iter()
                .map(|(k, (w, _))| (k.clone(), *w))
                .collect(),
        })
    }

    /// After the fetch: `answers[i]` is `(told, news)` for `begun.partitions[i]`, where
    /// `news` says the answer carries records or an error. Returns which answers the
    /// response includes: all of a full fetch; of an incremental one, those with news
    /// or whose offsets changed since the client last heard of them.
    pub fn finish(&mut self, begun: &Begun, answers: &[(Told, bool)]) -> Vec<bool> {
        let Some(session) = self.sessions.get_mut(&begun.session_id) else {
            return vec![true; answers.len()];
        };
        let include = begun
            .partitions
            .iter()
            .zip(answers)
            .map(|((key, _), &(told, news))| {
                let Some(entry) = session.partitions.get_mut(key) else {
                    return !begun.incremental;
                };
                let changed = entry.1 != Some(told);
                entry.1 = Some(told);
                !begun.incremental || news || changed
            })
            .collect();
        // Partitions that returned data go to the back of the session's order, as
        // Kafka rotates them: under `fetch.max.bytes` the first partitions of a fetch are
        // served first, and without rotation the last ones could starve.
        for ((key, _), _) in begun
            .partitions
            .iter()
            .zip(answers)
            .filter(|(_, (_, news))| *news)
        {
            if let Some(i) = session.partitions.get_index_of(key) {
                let last = session.partitions.len() - 1;
                session.partitions.move_index(i, last);
            }
        }
        include
    }

    fn open(&mut self, listed: Vec<(Key, Wanted)>, now_ms: i64) -> Begun {
        if !self.make_room(now_ms) {
            return sessionless(listed);
        }
        let id = self.take_id();
        let partitions = listed
            .iter()
            .map(|(k, w)| (k.clone(), (*w, None)))
            .collect();
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used_ms: now_ms,
            },
        );
        Begun {
            session_id: id,
            incremental: false,
            partitions: listed,
        }
    }

    /// Whether a new session fits, evicting the least recently used idle one if needed.
    fn make_room(&mut self, now_ms: i64) -> bool {
        if self.max_slots == 0 {
            return false;
        }
        if self.sessions.len() < self.max_slots {
            return true;
        }
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_used_ms)
            .map(|(id, s)| (*id, s.last_used_ms));
        match oldest {
            Some((id, used)) if now_ms.saturating_sub(used) >= EVICTION_MS => {
                self.sessions.remove(&id);
                true
            }
            _ => false,
        }
    }

    fn take_id(&mut self) -> i32 {
        loop {
            let id = self.next_id;
            self.next_id = if id == i32::MAX { 1 } else { id + 1 };
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

fn sessionless(partitions: Vec<(Key, Wanted)>) -> Begun {
    Begun {
        session_id: 0,
        incremental: false,
        partitions,
    }
}

/// Epochs run 1..=i32::MAX and wrap to 1 (0 and -1 have their own meanings).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
