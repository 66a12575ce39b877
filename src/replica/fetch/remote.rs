//! Remote reads of a fetch: offsets below the local log start of a tiered partition.
//!
//! Each partition is read on its own task of the remote read pool (`replica::reader_pool`,
//! `remote.log.reader.*`), so many remote partitions are read in parallel and a slow store
//! never blocks the connection's local work; when the pool is full the partition answers with
//! no records at once. The fetch waits up to
//! `remote.fetch.max.wait.ms` and answers once `min_bytes` of remote records are in: a read
//! not done by then answers with no records for that partition (the client simply fetches
//! again, and the read goes on warming the chunk cache), and a failed one with an error for
//! that partition only. A read that finds no remote batch at or after its offset (a compacted
//! remote tier whose last records were removed) is `Ok(None)`: the read pass goes on in the
//! local log from the remote end.

use std::collections::HashMap;

use strata_log::TxnIndexEntry;
use strata_tier::Pieces;

use super::{ReplicaError, ReplicaManager, Target};

/// Remote read results by the partition's index in the fetch: records (empty when the read
/// did not finish in time), or `None` when the remote tier holds nothing at or after the
/// offset.
type Reads = HashMap<usize, Result<Option<Pieces>, ReplicaError>>;

/// The remote reads of a fetch, and for read_committed the aborted transactions of the
/// remote segments read (their `.txnindex`).
#[derive(Default)]
pub(super) struct RemoteReads {
    reads: Reads,
    aborted: HashMap<usize, Vec<TxnIndexEntry>>,
}

impl RemoteReads {
    pub(super) fn new() -> RemoteReads {
        RemoteReads::default()
    }

    pub(super) fn get(&self, i: &usize) -> Option<&Result<Option<Pieces>, ReplicaError>> {
        self.reads.get(i)
    }

    pub(super) fn remove(&mut self, i: &usize) -> Option<Result<Option<Pieces>, ReplicaError>> {
        self.reads.remove(i)
    }

    /// The aborted transactions of the remote segments read for partition `i`.
    pub(super) fn aborted(&self, i: usize) -> Option<&[TxnIndexEntry]> {
        self.aborted.get(&i).map(Vec::as_slice)
    }
}

impl ReplicaManager {
    /// Starts a remote read for every partition whose fetch offset is below its local log
    /// and in the remote tier, and waits for them as the module docs say.
    pub(super) async fn read_remote(
        &self,
        targets: &[Target],
        max_bytes: usize,
        min_bytes: usize,
        read_committed: bool,
    ) -> RemoteReads {
        let mut out = Reads::new();
        let Some(tier) = self.remote.as_ref() else {
            return RemoteReads::new();
        };
        let mut tasks = Vec::new();
        let mut rejected = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let Ok(part) = &target.partition else {
                continue;
            };
            if target.redirect.is_some() {
                continue;
            }
            let Some(m) = part.remote_for(target.fetch_offset) else {
                continue;
            };
            let (reader, offset) = (tier.reader.clone(), target.fetch_offset);
            let limit = target.max_bytes.min(max_bytes);
            let tp = part.tp.clone();
            // On the remote read pool; when it is full this partition answers with no
            // records at once (see `reader_pool`): the fetch never waits for a place.
            let Some(task) = tier.pool.spawn(async move {
                let started = std::time::Instant::now();
                let result = reader.read(&m, offset, limit, true).await;
                crate::metrics::tier::remote_fetch(&tp.topic, started.elapsed());
                let fail = |e| {
                    tracing::warn!(%tp, offset, error = %e, "remote read failed");
                    ReplicaError::remote(&tp, offset, e)
                };
                let records = result.map_err(fail)?;
                let aborted = match super::offset_range(&records) {
                    Some((from, upper)) if read_committed => {
                        remote_aborted(&reader, &m, from, upper)
                            .await
                            .map_err(fail)?
                    }
                    _ => Vec::new(),
                };
                Ok(((!records.is_empty()).then_some(records), aborted))
            }) else {
                tracing::debug!(tp = %part.tp, offset = target.fetch_offset, "remote read pool full; no records for this partition");
                crate::metrics::tier::remote_read_rejected(&part.tp.topic);
                rejected.push(i);
                continue;
            };
            tasks.push((i, task, part.tp.clone(), target.fetch_offset));
        }
        // Answer as soon as `min_bytes` of remote records are in (or at the deadline), as a
        // Fetch does for local data: the reads still running go on and warm the chunk cache,
        // so the next Fetch finds them. Waiting for the slowest of many partitions instead
        // would serialize a consumer behind its slowest read.
        let deadline = tokio::time::Instant::now() + tier.fetch_max_wait;
        let keys: Vec<usize> = tasks.iter().map(|t| t.0).collect();
        let mut pending: futures::stream::FuturesUnordered<_> = tasks
            .into_iter()
            .map(|(i, task, tp, offset)| async move {
                let joined = task.await.unwrap_or_else(|e| {
                    Err(ReplicaError::remote(
                        &tp,
                        offset,
                        strata_tier::TierError::Cache {
                            reason: format!("remote read task failed: {e}"),
                        },
                    ))
                });
                (i, joined)
            })
            .collect();
        let mut got = 0usize;
        let mut aborted = HashMap::new();
        while got < min_bytes {
            let next =
                match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut pending))
                    .await
                {
                    Ok(Some(next)) => next,
                    // All done, or out of time: partial answer, no records for the rest.
                    Ok(None) | Err(_) => break,
                };
            let (i, result) = next;
            if let Ok((Some(b), _)) = &result {
                got += b.len();
            }
            out.insert(i, split(i, result, &mut aborted));
        }
        // Take along the reads that have finished meanwhile, without waiting.
        while let Some(Some((i, result))) =
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut pending))
        {
            out.insert(i, split(i, result, &mut aborted));
        }
        for i in keys.into_iter().chain(rejected) {
            out.entry(i).or_insert_with(|| Ok(Some(Pieces::new())));
        }
        RemoteReads {
            reads: out,
            aborted,
        }
    }
}

type TaskResult = Result<(Option<Pieces>, Vec<TxnIndexEntry>), ReplicaError>;

/// A finished read: its records, and its aborted transactions put aside.
fn split(
    i: usize,
    result: TaskResult,
    aborted: &mut HashMap<usize, Vec<TxnIndexEntry>>,
) -> Result<Option<Pieces>, ReplicaError> {
    result.map(|(records, list)| {
        aborted.insert(i, list);
        records
    })
}

/// The aborted transactions overlapping `[from, upper)` in the remote segments' `.txnindex`
/// objects (Kafka's `collectAbortedTransactions` over remote segments): from the segment
/// holding `from` on, stopping where an entry's LSO reaches `upper` (no later transaction
/// can overlap). Segments without an aborted transaction cost nothing.
pub(crate) async fn remote_aborted(
    reader: &strata_tier::RemoteReader,
    m: &strata_tier::PartitionManifest,
    from: i64,
    upper: i64,
) -> Result<Vec<TxnIndexEntry>, strata_tier::TierError> {
    let mut out = Vec::new();
    for seg in m
        .segments
        .iter()
        .filter(|s| s.next_offset > from && s.txnindex_bytes > 0)
    {
        let bytes = reader.txn_index(m, seg).await?;
        let entries = strata_log::txn_index::decode_all(&bytes).map_err(|reason| {
            strata_tier::TierError::CorruptSegment {
                partition: m.partition.clone(),
                key: m
                    .partition
                    .segment(
                        seg.base_offset,
                        seg.id,
                        strata_tier::layout::SegmentFile::TxnIndex,
                    )
                    .to_string(),
                position: 0,
                reason,
            }
        })?;
        if strata_log::txn_index::collect(&entries, from, upper, &mut out) {
            break;
        }
    }
    Ok(out)
}
