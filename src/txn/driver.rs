//! [`TxnCoordinator`]: the async layer over the transaction state machine.
//!
//! A request is decided under one mutex (`state::decide`), its new metadata appended
//! to `__transaction_state` under the same mutex (so the log's order is the order of
//! decisions, which replay relies on), applied, and answered once the ISR has the
//! record. A Prepare state starts a marker task, which writes COMMIT/ABORT markers to
//! every partition's leader, retrying what fails, and then records the Complete state.
//! Timers abort transactions open past their timeout and forget idle ids past
//! `transactional.id.expiration.ms`; ownership follows the leadership of
//! `__transaction_state` partitions (`ownership.rs` in `group/` is the model).
//!
//! Dependencies: `state.rs` (decisions), `store.rs` (the topic), `markers.rs`,
//! `crate::broker` for producer ids.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::markers::{MarkerError, MarkerWriter, TxnMarker};
use super::state::{self, Decision, Reply, Request, TxnLimits, TxnMeta, TxnPartition, TxnState};
use super::store::TxnTopic;
use super::TxnError;
use crate::broker::{Broker, BrokerError};
use crate::now_ms;
use crate::replica::Partition;

/// How long a decision waits for the ISR (Kafka's `transaction.state.log` write timeout
/// is `request.timeout.ms`-bound; 5 s as the group coordinator's commits).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A ListTransactions entry.
#[derive(Debug, Clone)]
pub struct TxnListing {
    pub id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// A periodic task of the coordinator.
type Tick = fn(&Arc<TxnCoordinator>);

struct Inner {
    txns: HashMap<String, TxnMeta>,
    /// `__transaction_state` partitions this node leads and has replayed, with the
    /// coordinator epoch (the partition's leader epoch when it was loaded).
    loaded: BTreeMap<i32, i32>,
    /// Ids with a marker task running.
    sending: BTreeSet<String>,
}

pub struct TxnCoordinator {
    store: TxnTopic,
    broker: Arc<Broker>,
    markers: Arc<dyn MarkerWriter>,
    limits: TxnLimits,
    inner: Mutex<Inner>,
}

impl TxnCoordinator {
    /// Creates `__transaction_state` if missing, loads the partitions this node leads
    /// and starts the timers.
    pub async fn start(
        broker: Arc<Broker>,
        markers: Arc<dyn MarkerWriter>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<TxnCoordinator>, BrokerError> {
        let store = TxnTopic::open(&broker).await?;
        let c = &broker.config().txn;
        let limits = TxnLimits {
            max_timeout_ms: c.max_timeout_ms,
            id_expiration_ms: c.id_expiration_ms as i64,
        };
        let coordinator = Arc::new(TxnCoordinator {
            store,
            markers,
            limits,
            inner: Mutex::new(Inner {
                txns: HashMap::new(),
                loaded: BTreeMap::new(),
                sending: BTreeSet::new(),
            }),
            broker,
        });
        coordinator.clone().sync_ownership();
        coordinator.clone().spawn_timers(shutdown);
        Ok(coordinator)
    }

    fn spawn_timers(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let c = &self.broker.config().txn;
        let abort_every = Duration::from_millis(c.abort_timed_out_interval_ms.max(10) as u64);
        let expire_every = Duration::from_millis(c.remove_expired_interval_ms.max(10) as u64);
        let timers: [(Duration, Tick); 3] = [
            (Duration::from_millis(100), |c| c.clone().sync_ownership()),
            (abort_every, |c| c.abort_timed_out()),
            (expire_every, |c| c.expire_ids()),
        ];
        for (every, tick) in timers {
            let c = self.clone();
            let mut s = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => tick(&c),
                        _ = s.changed() => return,
                    }
                }
            });
        }
    }

    /// The coordinator epoch when this node coordinates `id` and has loaded it.
    fn owns(&self, id: &str) -> Result<i32, TxnError> {
        let p = self
            .store
            .partition_of(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let leads = self.store.partition(p).is_ok_and(|part| part.is_leader());
        if !leads {
            return Err(TxnError::NotCoordinator { id: id.to_string() });
        }
        self.inner
            .lock()
            .loaded
            .get(&p)
            .copied()
            .ok_or(TxnError::LoadInProgress { id: id.to_string() })
    }

    /// The node that coordinates `id` (the leader of its partition), for FindCoordinator.
    pub fn coordinator_of(&self, id: &str) -> Option<i32> {
        let p = self.store.partition_of(id)?;
        self.store.leader_of(p).filter(|leader| *leader >= 0)
    }

    /// Decides `req` for `id`, writes and applies the decision, starts markers for a
    /// Prepare state, and answers once the record is replicated.
    async fn handle(self: &Arc<Self>, id: &str, mut req: Request) -> Reply {
        self.owns(id)?;
        let needs_pid = state::needs_fresh_pid(self.inner.lock().txns.get(id), &req);
        if needs_pid {
            let pid = match self.broker.init_producer_id((-1, -1)).await {
                Ok((pid, _)) => pid,
                Err(e) => {
                    tracing::warn!(error = %e, "could not allocate a producer id");
                    return Err(TxnError::CoordinatorNotAvailable);
                }
            };
            match &mut req {
                Request::InitPid { fresh_pid, .. } | Request::EndTxn { fresh_pid, .. } => {
                    *fresh_pid = Some(pid)
                }
                _ => {}
            }
        }
        let (reply, appended, start_markers) = {
            let mut inner = self.inner.lock();
            let Decision { next, reply } =
                state::decide(id, inner.txns.get(id), req, now_ms(), &self.limits);
            let Some(next) = next else {
                return reply;
            };
            let appended = self.store.append(id, Some(&next))?;
            let start =
                state::pending_markers(&next).is_some() && inner.sending.insert(id.to_string());
            inner.txns.insert(id.to_string(), next);
            (reply, appended, start)
        };
        if start_markers {
            self.clone().spawn_markers(id.to_string());
        }
        if let Err(e) = self.store.wait_replicated(&appended, WRITE_TIMEOUT).await {
            tracing::warn!(id, error = %e, "transaction state not replicated; the client retries");
            return Err(TxnError::CoordinatorNotAvailable);
        }
        reply
    }

    pub async fn init_producer_id(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Reply {
        let req = Request::InitPid {
            timeout_ms,
            expected,
            fresh_pid: None,
        };
        self.handle(id, req).await
    }

    /// AddPartitionsToTxn v4+ `verify_only` (KIP-890 part 1): each partition on its own,
    /// Ok when it is in the ongoing transaction of `producer`, as Kafka answers per
    /// partition; nothing is written.
    pub async fn verify_partitions(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        partitions: Vec<TxnPartition>,
    ) -> Vec<(TxnPartition, Result<(), TxnError>)> {
        let mut out = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let req = Request::AddPartitions {
                producer_id: producer.0,
                epoch: producer.1,
                partitions: vec![tp.clone()],
                verify_only: true,
            };
            let r = self.handle(id, req).await.map(|_| ());
            out.push((tp, r));
        }
        out
    }

    /// AddPartitionsToTxn: partitions that do not exist get
    /// UNKNOWN_TOPIC_OR_PARTITION (as `Err(None)`), the others the decision's answer.
    pub async fn add_partitions(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        partitions: Vec<TxnPartition>,
        verify_only: bool,
    ) -> Result<Vec<(TxnPartition, bool)>, TxnError> {
        let known: Vec<(TxnPartition, bool)> = partitions
            .into_iter()
            .map(|tp| {
                let ok = self.store.has_partition(&tp.0, tp.1);
                (tp, ok)
            })
            .collect();
        if known.iter().any(|(_, ok)| !ok) {
            // Kafka adds none of them when one is unknown (the rest get
            // OPERATION_NOT_ATTEMPTED).
            return Ok(known);
        }
        let req = Request::AddPartitions {
            producer_id: producer.0,
            epoch: producer.1,
            partitions: known.iter().map(|(tp, _)| tp.clone()).collect(),
            verify_only,
        };
        self.handle(id, req).await?;
        Ok(known)
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
    /// transaction, so the commit marker reaches the group coordinator.
    pub async fn add_offsets(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        group: &str,
    ) -> Reply {
        let partitions = self
            .broker
            .metadata
            .topic(crate::group::OFFSETS_TOPIC)
            .map(|t| t.meta.partitions)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let p = crate::internal_topic::partition_for(group, partitions);
        let req = Request::AddPartitions {
            producer_id: producer.0,
            epoch: producer.1,
            partitions: vec![(crate::group::OFFSETS_TOPIC.to_string(), p)],
            verify_only: false,
        };
        self.handle(id, req).await
    }

    /// EndTxn; `bump` for transaction version 2 clients (KIP-890 part 2).
    pub async fn end_txn(
        self: &Arc<Self>,
        id: &str,
        producer: (i64, i16),
        commit: bool,
        bump: bool,
    ) -> Reply {
        let req = Request::EndTxn {
            producer_id: producer.0,
            epoch: producer.1,
            commit,
            bump,
            fresh_pid: None,
        };
        self.handle(id, req).await
    }

    /// The metadata of `id`, for DescribeTransactions.
    pub fn describe(&self, id: &str) -> Result<Option<TxnMeta>, TxnError> {
        self.owns(id)?;
        Ok(self.inner.lock().txns.get(id).cloned())
    }

    /// Every id this node coordinates, for ListTransactions.
    pub fn list(&self) -> Vec<TxnListing> {
        let mut out: Vec<TxnListing> = self
            .inner
            .lock()
            .txns
            .values()
            .map(|m| TxnListing {
                id: m.id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The metadata of `id`'s current transaction start, for ListTransactions'
    /// duration filter.
    pub fn start_ms(&self, id: &str) -> Option<i64> {
        self.inner.lock().txns.get(id).map(|m| m.start_ms)
    }

    /// Writes the markers of `id`'s Prepare state until every partition has one, then
    /// records the Complete state. Stops when the id moves on or this node stops
    /// coordinating it (the new coordinator resumes from the loaded Prepare state).
    fn spawn_markers(self: Arc<Self>, id: String) {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            let mut done: BTreeSet<TxnPartition> = BTreeSet::new();
            while let Ok(coordinator_epoch) = self.owns(&id) {
                let Some(m) = self.inner.lock().txns.get(&id).cloned() else {
                    break;
                };
                let Some(commit) = state::pending_markers(&m) else {
                    break;
                };
                let remaining: Vec<TxnPartition> = m
                    .partitions
                    .iter()
                    .filter(|tp| !done.contains(*tp))
                    .cloned()
                    .collect();
                if remaining.is_empty() {
                    let req = Request::MarkersWritten {
                        producer_id: m.producer_id,
                        epoch: m.producer_epoch,
                    };
                    self.inner.lock().sending.remove(&id);
                    if let Err(e) = self.handle(&id, req).await {
                        tracing::warn!(id, error = %e, "could not record the end of a transaction; retrying");
                        self.inner.lock().sending.insert(id.clone());
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    return;
                }
                let (marker_pid, marker_epoch) = state::marker_producer(&m);
                let marker = |partitions| TxnMarker {
                    producer_id: marker_pid,
                    producer_epoch: marker_epoch,
                    coordinator_epoch,
                    commit,
                    partitions,
                };
                let mut failed = false;
                for (leader, partitions) in self.by_leader(remaining, &mut done) {
                    let Some(leader) = leader else {
                        failed = true;
                        continue;
                    };
                    for (tp, r) in self.markers.write(leader, marker(partitions)).await {
                        match r {
                            Ok(()) | Err(MarkerError::UnknownPartition { .. }) => {
                                done.insert(tp);
                            }
                            Err(e @ MarkerError::Rejected { .. }) => {
                                tracing::warn!(id, error = %e, "marker refused; not retried");
                                done.insert(tp);
                            }
                            Err(e) => {
                                tracing::debug!(id, error = %e, "marker not written");
                                failed = true;
                            }
                        }
                    }
                }
                if failed {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            self.inner.lock().sending.remove(&id);
        });
    }

    /// Partitions grouped by their leader (None: no leader now); deleted partitions are
    /// marked done.
    fn by_leader(
        &self,
        partitions: Vec<TxnPartition>,
        done: &mut BTreeSet<TxnPartition>,
    ) -> BTreeMap<Option<i32>, Vec<TxnPartition>> {
        let mut out: BTreeMap<Option<i32>, Vec<TxnPartition>> = BTreeMap::new();
        for tp in partitions {
            match self.store.leader_of_partition(&tp.0, tp.1) {
                None => {
                    done.insert(tp);
                }
                Some(l) => out.entry((l >= 0).then_some(l)).or_default().push(tp),
            }
        }
        out
    }

    /// Aborts transactions open past their timeout.
    fn abort_timed_out(self: &Arc<Self>) {
        let now = now_ms();
        let mut inner = self.inner.lock();
        let expired: Vec<TxnMeta> = inner
            .txns
            .values()
            .filter_map(|m| state::abort_if_timed_out(m, now))
            .collect();
        for next in expired {
            if self.owns_locked(&inner, &next.id).is_err() {
                continue;
            }
            if let Err(e) = self.store.append(&next.id, Some(&next)) {
                tracing::warn!(id = next.id, error = %e, "could not abort a timed-out transaction; will retry");
                continue;
            }
            tracing::info!(
                id = next.id,
                producer_id = next.producer_id,
                "aborting a transaction past its transaction.timeout.ms"
            );
            let id = next.id.clone();
            inner.txns.insert(id.clone(), next);
            if inner.sending.insert(id.clone()) {
                self.clone().spawn_markers(id);
            }
        }
    }

    /// Forgets idle ids past `transactional.id.expiration.ms` (a tombstone each).
    fn expire_ids(self: &Arc<Self>) {
        let now = now_ms();
        let mut inner = self.inner.lock();
        let gone: Vec<String> = inner
            .txns
            .values()
            .filter(|m| state::expired(m, now, &self.limits))
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            if self.owns_locked(&inner, &id).is_err() {
                continue;
            }
            match self.store.append(&id, None) {
                Ok(_) => {
                    inner.txns.remove(&id);
                    tracing::info!(id, "transactional id expired");
                }
                Err(e) => tracing::warn!(id, error = %e, "could not expire a transactional id"),
            }
        }
    }

    fn owns_locked(&self, inner: &Inner, id: &str) -> Result<(), TxnError> {
        let p = self
            .store
            .partition_of(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        if inner.loaded.contains_key(&p) {
            Ok(())
        } else {
            Err(TxnError::NotCoordinator { id: id.to_string() })
        }
    }

    /// Loads partitions this node newly leads (resuming their markers) and forgets
    /// those it no longer leads.
    fn sync_ownership(self: Arc<Self>) {
        let Some(partitions) = self.store.partitions() else {
            return;
        };
        let hosted = self.store.hosted();
        let loaded = self.inner.lock().loaded.clone();
        for part in &hosted {
            let p = part.tp.partition;
            let epoch = part.meta().leader_epoch;
            match (part.is_leader(), loaded.get(&p)) {
                (true, None) => self.load_partition(part, epoch),
                // A new leader epoch (lost and regained): reload.
                (true, Some(e)) if *e != epoch => {
                    self.unload(p, partitions);
                    self.load_partition(part, epoch);
                }
                (false, Some(_)) => self.unload(p, partitions),
                _ => {}
            }
        }
        let hosted: Vec<i32> = hosted.iter().map(|p| p.tp.partition).collect();
        for p in loaded.keys().filter(|p| !hosted.contains(p)) {
            self.unload(*p, partitions);
        }
    }

    fn load_partition(self: &Arc<Self>, part: &Partition, epoch: i32) {
        let replay = match self.store.replay(part) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(tp = %part.tp, error = %e, "could not load transactions; will retry");
                return;
            }
        };
        let mut resume = Vec::new();
        let ids = replay.len();
        {
            let mut inner = self.inner.lock();
            for (id, meta) in replay {
                match meta {
                    Some(m) if m.state != TxnState::Dead => {
                        if state::pending_markers(&m).is_some() && inner.sending.insert(id.clone())
                        {
                            resume.push(id.clone());
                        }
                        inner.txns.insert(id, m);
                    }
                    _ => {
                        inner.txns.remove(&id);
                    }
                }
            }
            inner.loaded.insert(part.tp.partition, epoch);
        }
        // One line per partition with something in it; the empty ones (most, at start) at
        // debug level.
        if ids > 0 {
            tracing::info!(tp = %part.tp, coordinator_epoch = epoch, ids, resumed = resume.len(), "loaded __transaction_state partition");
        } else {
            tracing::debug!(tp = %part.tp, coordinator_epoch = epoch, "loaded an empty __transaction_state partition");
        }
        for id in resume {
            self.clone().spawn_markers(id);
        }
    }

    fn unload(&self, partition: i32, partitions: i32) {
        let mut inner = self.inner.lock();
        inner.loaded.remove(&partition);
        inner
            .txns
            .retain(|id, _| super::codec::partition_for(id, partitions) != partition);
        tracing::info!(
            partition,
            "no longer coordinating this __transaction_state partition"
        );
    }
}
