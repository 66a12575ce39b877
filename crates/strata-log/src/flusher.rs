//! Background fsync of rolled segments.
//!
//! Kafka flushes a segment asynchronously when it rolls; doing it under the writer
//! lock stalled every produce for the length of the fsync (up to hundreds of ms for
//! a 1 GiB segment, measured in docs/benchmarks.md). Here the roll hands the sealed
//! segment to one process-wide flusher thread and returns at once. When the fsync
//! completes the thread raises the log's `synced_up_to`; the writer persists that as
//! the recovery point at its next flush check (`Log::flush_if_due`, or any flush),
//! so the recovery point never claims data that is not yet on disk.
//!
//! A crash before the background fsync loses nothing a process crash could lose: the
//! bytes are in the page cache, and recovery re-validates from the older recovery
//! point. `Log::flush` and `Log::close` still fsync everything synchronously.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use crate::segment::Segment;

struct Job {
    segment: Arc<Segment>,
    dir: PathBuf,
    /// The base offset of the segment that follows: everything below it is durable
    /// once this job's fsync returns.
    durable_below: i64,
    synced_up_to: Arc<AtomicI64>,
}

fn queue() -> &'static Mutex<Sender<Job>> {
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("strata-log-flusher".into())
            .spawn(move || {
                for job in rx {
                    run(job);
                }
            })
            .expect("spawning the log flusher thread");
        Mutex::new(tx)
    })
}

fn run(job: Job) {
    let synced = job
        .segment
        .sync()
        .and_then(|()| crate::checkpoint::sync_dir(&job.dir));
    match synced {
        Ok(()) => {
            job.synced_up_to
                .fetch_max(job.durable_below, Ordering::AcqRel);
        }
        // The next `Log::flush` (or close) fsyncs it again and reports any error.
        Err(e) => {
            tracing::warn!(dir = %job.dir.display(), error = %e, "background fsync of a rolled segment failed")
        }
    }
}

/// Queues an fsync of `segment` (and of `dir`, for the new segment's entry); on
/// success `synced_up_to` rises to at least `durable_below`.
pub(crate) fn sync_later(
    segment: Arc<Segment>,
    dir: PathBuf,
    durable_below: i64,
    synced_up_to: Arc<AtomicI64>,
) {
    let job = Job {
        segment,
        dir,
        durable_below,
        synced_up_to,
    };
    let sent = match queue().lock() {
        Ok(tx) => tx.send(job).map_err(|e| e.0),
        Err(_) => Err(job),
    };
    // The flusher thread never exits while the process lives; if it somehow did,
    // flush inline rather than lose durability.
    if let Err(job) = sent {
        run(job);
    }
}
