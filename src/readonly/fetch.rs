//! Fetch on a read-only node: every partition is read from the remote tier, with the
//! broker's remote read path (`RemoteReader`: chunk cache, streamed sequential reads and
//! read-ahead; the `remote.log.reader.*` pool; `remote.fetch.max.wait.ms`), the broker's
//! KIP-74 cut (`replica::fetch::fit`) and, for read_committed, the aborted transactions of
//! the remote `.txnindex` objects. Fetch sessions (KIP-227) and the encoding are the
//! broker's handler's.
//!
//! Answers, per partition ([`super::catalog::Position`]): OFFSET_OUT_OF_RANGE below the
//! remote start or above the remote end; at the end, no records, and the fetch waits up to
//! its `max_wait` for a poll that finds more; otherwise whole batches. The high watermark
//! is the remote end.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::catalog::{Catalog, Missing, PartitionView, Position};
use super::Node;
use crate::replica::fetch::{fit, offset_range, remote_aborted, starting_below, AbortedTxn};
use crate::replica::{FetchedPartition, PartitionFetch, ReplicaError, TopicPartition, TopicRef};
use strata_tier::Pieces;

/// What a read task returns: the records and the aborted transactions overlapping them.
type ReadResult = Result<(Pieces, Vec<AbortedTxn>), ReplicaError>;

/// Answers a Fetch; records longer than a few KiB are held in `slices` (written from the
/// chunks they were read into) and the response must be encoded with `parts::encode`.
pub async fn handle(
    node: &Node,
    version: i16,
    req: FetchRequest,
    slices: &mut crate::server::parts::Slices,
) -> FetchResponse {
    let (listed, forgotten) = crate::server::handlers::fetch::session_lists(version, &req);
    let now = crate::now_ms();
    let begun =
        node.sessions
            .lock()
            .begin(req.session_id, req.session_epoch, listed, forgotten, now);
    let begun = match begun {
        Ok(b) => b,
        Err(code) => return FetchResponse::default().with_error_code(code.code()),
    };
    let read_committed = req.isolation_level == 1;
    let params = Params {
        max_wait: Duration::from_millis(req.max_wait_ms.max(0) as u64),
        min_bytes: req.min_bytes.max(0) as usize,
        max_bytes: if req.max_bytes <= 0 {
            i32::MAX as usize
        } else {
            req.max_bytes as usize
        },
        read_committed,
    };
    let partitions: Vec<PartitionFetch> = begun
        .partitions
        .iter()
        .map(|((topic, partition), w)| PartitionFetch {
            topic: topic.clone(),
            partition: *partition,
            fetch_offset: w.fetch_offset,
            max_bytes: w.max_bytes,
            current_leader_epoch: w.current_leader_epoch,
        })
        .collect();
    let answers: Vec<Option<FetchedPartition>> = fetch(node, &params, &partitions)
        .await
        .into_iter()
        .map(Some)
        .collect();
    let include = if begun.session_id == 0 {
        vec![true; answers.len()]
    } else {
        let told: Vec<_> = answers
            .iter()
            .map(crate::server::handlers::fetch::told)
            .collect();
        node.sessions.lock().finish(&begun, &told)
    };
    FetchResponse::default()
        .with_session_id(begun.session_id)
        .with_responses(crate::server::handlers::fetch::responses(
            &begun,
            answers,
            &include,
            read_committed,
            slices,
        ))
}

struct Params {
    max_wait: Duration,
    min_bytes: usize,
    max_bytes: usize,
    read_committed: bool,
}

/// Reads every partition from the remote tier; waits (up to `max_wait`) at the end of the
/// partitions for a poll that brings `min_bytes`.
async fn fetch(
    node: &Node,
    params: &Params,
    partitions: &[PartitionFetch],
) -> Vec<FetchedPartition> {
    let deadline = tokio::time::Instant::now() + params.max_wait;
    let mut catalogs = node.catalog.subscribe();
    loop {
        let catalog = catalogs.borrow_and_update().clone();
        let (answers, bytes, failed) = read_pass(node, params, partitions, &catalog).await;
        let done = bytes >= params.min_bytes
            || failed
            || params.max_wait.is_zero()
            || tokio::time::Instant::now() >= deadline;
        if done {
            return answers;
        }
        tokio::select! {
            changed = catalogs.changed() => {
                if changed.is_err() {
                    return answers;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return answers,
        }
    }
}

/// One pass over the partitions: reads in parallel on the remote read pool, then cuts the
/// records to the byte limits in request order. Returns the answers, their bytes and
/// whether one failed.
async fn read_pass(
    node: &Node,
    params: &Params,
    partitions: &[PartitionFetch],
    catalog: &Catalog,
) -> (Vec<FetchedPartition>, usize, bool) {
    let resolved: Vec<Result<(TopicPartition, &PartitionView), ReplicaError>> =
        partitions.iter().map(|p| resolve(catalog, p)).collect();
    let mut tasks = Vec::with_capacity(partitions.len());
    for (p, r) in partitions.iter().zip(&resolved) {
        let task = match r {
            Ok((tp, view)) => start_read(node, params, p, tp, view),
            Err(_) => None,
        };
        tasks.push(task);
    }
    let until = tokio::time::Instant::now() + node.remote.fetch_max_wait;
    let mut out = Vec::with_capacity(partitions.len());
    let (mut total, mut failed) = (0usize, false);
    for ((p, r), task) in partitions.iter().zip(resolved).zip(tasks) {
        let (tp, view) = match r {
            Ok(found) => found,
            Err(e) => {
                failed = true;
                out.push(unresolved(e));
                continue;
            }
        };
        let mut records: Result<Pieces, ReplicaError> = Ok(Pieces::new());
        let mut aborted = params.read_committed.then(Vec::new);
        match view.locate(p.fetch_offset, params.read_committed) {
            Position::OutOfRange => {
                records = Err(out_of_range(&tp, view, p.fetch_offset));
            }
            Position::AtEnd | Position::Readable { .. } => {}
        }
        if let Some(task) = task {
            // A read not done within remote.fetch.max.wait.ms answers with no records (the
            // client fetches again; the read goes on warming the chunk cache).
            match tokio::time::timeout_at(until, task).await {
                Ok(Ok(Ok((read, list)))) => {
                    let room = params.max_bytes.saturating_sub(total);
                    let cut = fit(&read, p.max_bytes.min(room), total == 0);
                    if let Some(a) = aborted.as_mut() {
                        *a = overlapping(list, &cut);
                    }
                    records = Ok(cut);
                }
                Ok(Ok(Err(e))) => records = Err(e),
                Ok(Err(join)) => {
                    records = Err(ReplicaError::remote(
                        &tp,
                        p.fetch_offset,
                        strata_tier::TierError::Cache {
                            reason: format!("remote read task failed: {join}"),
                        },
                    ))
                }
                Err(_) => {}
            }
        }
        match &records {
            Ok(r) => {
                total += r.len();
                crate::metrics::fetch_bytes(&tp.topic, r.len());
            }
            Err(e) => {
                tracing::debug!(error = %e, "read-only fetch failed");
                failed = true;
            }
        }
        out.push(FetchedPartition {
            high_watermark: view.end,
            last_stable_offset: view.last_stable,
            log_start_offset: view.start,
            records: records.map(crate::replica::FetchRecords::Memory),
            aborted,
            preferred_read_replica: -1,
        });
    }
    (out, total, failed)
}

fn resolve<'a>(
    catalog: &'a Catalog,
    p: &PartitionFetch,
) -> Result<(TopicPartition, &'a PartitionView), ReplicaError> {
    let name = match &p.topic {
        TopicRef::Name(n) => n.to_string(),
        TopicRef::Id(id) => catalog
            .name_of(*id)
            .ok_or(ReplicaError::UnknownTopicId { id: *id })?
            .to_string(),
    };
    match catalog.partition(&name, p.partition) {
        Ok(view) => Ok((
            TopicPartition {
                topic: Arc::from(name.as_str()),
                partition: p.partition,
            },
            view,
        )),
        Err(Missing::Partition { count }) => Err(ReplicaError::UnknownPartition {
            topic: name,
            partition: p.partition,
            count,
        }),
        Err(Missing::Topic | Missing::TopicId) => Err(ReplicaError::UnknownTopic { topic: name }),
    }
}

/// Starts the remote read of a readable partition on the read pool; `None` when there is
/// nothing to read or the pool is full (then the partition answers no records, as on a
/// broker).
fn start_read(
    node: &Node,
    params: &Params,
    p: &PartitionFetch,
    tp: &TopicPartition,
    view: &PartitionView,
) -> Option<tokio::task::JoinHandle<ReadResult>> {
    let Position::Readable { upper } = view.locate(p.fetch_offset, params.read_committed) else {
        return None;
    };
    let m = view.manifest.clone()?;
    let reader = node.remote.reader.clone();
    let (offset, limit) = (p.fetch_offset, p.max_bytes.min(params.max_bytes));
    let (tp, read_committed) = (tp.clone(), params.read_committed);
    let task = node.remote.pool.spawn(async move {
        let started = std::time::Instant::now();
        let result = reader.read(&m, offset, limit, true).await;
        crate::metrics::tier::remote_fetch(&tp.topic, started.elapsed());
        let fail = |e| {
            tracing::warn!(%tp, offset, error = %e, "remote read failed");
            ReplicaError::remote(&tp, offset, e)
        };
        let records = starting_below(&result.map_err(fail)?, upper);
        let aborted = match offset_range(&records) {
            Some((from, end)) if read_committed => remote_aborted(&reader, &m, from, end)
                .await
                .map_err(fail)?
                .into_iter()
                .map(|e| AbortedTxn {
                    producer_id: e.producer_id,
                    first_offset: e.first_offset,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((records, aborted))
    });
    if task.is_none() {
        crate::metrics::tier::remote_read_rejected(&p_topic(p));
    }
    task
}

fn p_topic(p: &PartitionFetch) -> String {
    match &p.topic {
        TopicRef::Name(n) => n.to_string(),
        TopicRef::Id(id) => id.to_string(),
    }
}

/// The aborted transactions of `list` overlapping the batches of `records`.
fn overlapping(list: Vec<AbortedTxn>, records: &Pieces) -> Vec<AbortedTxn> {
    // `remote_aborted` gave every transaction overlapping the read before the cut; those
    // starting at or past the cut's end are dropped, as Kafka lists only overlapping ones.
    let Some((_, upper)) = offset_range(records) else {
        return Vec::new();
    };
    let mut out: Vec<AbortedTxn> = list
        .into_iter()
        .filter(|t| t.first_offset < upper)
        .collect();
    out.sort_by_key(|t| (t.first_offset, t.producer_id));
    out.dedup();
    out
}

fn out_of_range(tp: &TopicPartition, view: &PartitionView, offset: i64) -> ReplicaError {
    let partition = strata_tier::PartitionKey {
        topic: tp.topic.to_string(),
        topic_id: view
            .manifest
            .as_ref()
            .map_or(uuid::Uuid::nil(), |m| m.partition.topic_id),
        partition: tp.partition,
    };
    ReplicaError::remote(
        tp,
        offset,
        strata_tier::TierError::OffsetNotTiered {
            partition,
            offset,
            start: view.start,
            end: view.end,
        },
    )
}

fn unresolved(e: ReplicaError) -> FetchedPartition {
    FetchedPartition {
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: Err(e),
        aborted: None,
        preferred_read_replica: -1,
    }
}
