//! `strata export`: a topic, or an offset or time range of it, to local Parquet files, one
//! per partition, for a quick look with DuckDB, pandas or pyarrow. No table, no catalog,
//! no access to the bucket: the records are read over the Kafka protocol with Fetch
//! (read_committed) from each partition's leader, which serves offsets from whichever tier
//! holds them, so an export covers remote-only history and the local tail alike.
//!
//! The files have the Iceberg table's schema and are built by the same code
//! (`strata_iceberg::records` decodes the batches, `strata_iceberg::export` writes the
//! rows), so a file of `strata export` and a data file of the table read the same.
//! A time range is turned into offsets with ListOffsets (the first offset at or after each
//! time), as a consumer's seek to a time is.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use strata_iceberg::{AbortedTxn, ExportFile};

use super::log_dirs::leader_client;
use super::tier::{list_offsets_isolated, EARLIEST, LATEST};
use super::topic::{known, metadata};
use super::{str_bytes, CliError, Client, Connection};

/// Fetch v12 is the last that names topics (v13 uses topic ids).
const FETCH_VERSION: i16 = 12;
const FETCH_BYTES: i32 = 4 << 20;
/// Fetches in a row that return nothing before the export gives up on a partition.
const EMPTY_FETCHES: u32 = 50;
const READ_COMMITTED: i8 = 1;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The topic to export.
    pub topic: String,
    /// Directory for the files (created if missing): `<topic>-<partition>.parquet`.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Only these partitions (repeatable; default: all).
    #[arg(long, short = 'p')]
    pub partition: Vec<i32>,
    /// First offset to export (per partition; default: the log start).
    #[arg(long, conflicts_with = "from_time")]
    pub from_offset: Option<i64>,
    /// Offset to stop before (per partition; default: the last stable offset).
    #[arg(long, conflicts_with = "to_time")]
    pub to_offset: Option<i64>,
    /// Start at the first record at or after this time (milliseconds since 1970).
    #[arg(long)]
    pub from_time: Option<i64>,
    /// Stop before the first record at or after this time (milliseconds since 1970).
    #[arg(long)]
    pub to_time: Option<i64>,
}

/// One partition to read: `[from, to)`.
struct Range {
    partition: i32,
    leader: i32,
    from: i64,
    to: i64,
}

pub async fn run(mut c: Client, conn: Connection, args: ExportArgs) -> Result<(), CliError> {
    let md = metadata(&mut c, Some(std::slice::from_ref(&args.topic))).await?;
    let t = known(&md, &args.topic)?;
    let mut parts: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .filter(|(p, _)| args.partition.is_empty() || args.partition.contains(p))
        .collect();
    parts.sort_unstable();
    for p in &args.partition {
        if !parts.iter().any(|(q, _)| q == p) {
            return Err(CliError::Usage(format!(
                "topic '{}' has no partition {p}",
                args.topic
            )));
        }
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", args.out.display())))?;

    let mut ranges = Vec::new();
    for (partition, leader) in parts {
        let mut lc = leader_client(&c, &conn, &md, leader).await?;
        let client = lc.as_mut().unwrap_or(&mut c);
        let tp = [(args.topic.clone(), partition)];
        let first =
            |v: Vec<(super::log_dirs::Tp, Option<i64>)>| v.into_iter().next().and_then(|x| x.1);
        let start =
            first(list_offsets_isolated(client, &tp, EARLIEST, READ_COMMITTED).await?).unwrap_or(0);
        let stable = first(list_offsets_isolated(client, &tp, LATEST, READ_COMMITTED).await?)
            .unwrap_or(start);
        let from = match (args.from_offset, args.from_time) {
            (Some(o), _) => o.max(start),
            // No record at or after the time: nothing to export.
            (None, Some(ts)) => {
                first(list_offsets_isolated(client, &tp, ts, READ_COMMITTED).await?)
                    .unwrap_or(stable)
            }
            (None, None) => start,
        };
        let to = match (args.to_offset, args.to_time) {
            (Some(o), _) => o.min(stable),
            (None, Some(ts)) => {
                first(list_offsets_isolated(client, &tp, ts, READ_COMMITTED).await?)
                    .unwrap_or(stable)
                    .min(stable)
            }
            (None, None) => stable,
        };
        ranges.push(Range {
            partition,
            leader,
            from,
            to,
        });
    }

    let total: i64 = ranges.iter().map(|r| (r.to - r.from).max(0)).sum();
    let mut bar = Bar::new(total);
    for r in &ranges {
        if r.to <= r.from {
            continue;
        }
        let mut lc = leader_client(&c, &conn, &md, r.leader).await?;
        let client = lc.as_mut().unwrap_or(&mut c);
        let path = args
            .out
            .join(format!("{}-{}.parquet", args.topic, r.partition));
        let rows = export_partition(client, &args.topic, r, &path, &mut bar).await?;
        bar.clear();
        println!("{}\t{rows}", path.display());
    }
    bar.finish();
    Ok(())
}

/// Reads `[r.from, r.to)` of the partition into `path`; returns the rows written.
async fn export_partition(
    c: &mut Client,
    topic: &str,
    r: &Range,
    path: &Path,
    bar: &mut Bar,
) -> Result<u64, CliError> {
    let file_err = |e: strata_iceberg::ExportError| CliError::Usage(e.to_string());
    let mut file = ExportFile::create(path, r.partition).map_err(file_err)?;
    let mut next = r.from;
    let mut empty = 0;
    while next < r.to {
        let (records, aborted) = fetch(c, topic, r.partition, next).await?;
        let mut last = None;
        for (_, h, _) in strata_log::record::whole_batches(&records) {
            last = Some(h.last_offset());
        }
        let Some(last) = last.filter(|l| *l >= next) else {
            empty += 1;
            if empty >= EMPTY_FETCHES {
                return Err(CliError::Usage(format!(
                    "{topic}-{}: no records at offset {next} after {EMPTY_FETCHES} fetches (expected up to {})",
                    r.partition, r.to
                )));
            }
            continue;
        };
        empty = 0;
        let mut rows = strata_iceberg::records::decode_committed(&records, next, &aborted)
            .map_err(|e| CliError::Protocol {
                addr: c.addr().to_string(),
                reason: format!("{topic}-{}: {e}", r.partition),
            })?;
        rows.retain(|row| row.offset < r.to);
        file.write(&rows).map_err(file_err)?;
        let reached = (last + 1).min(r.to);
        bar.advance(reached - next);
        next = last + 1;
    }
    file.close().map_err(file_err)
}

/// One Fetch of the partition from `offset` (read_committed): the record bytes and the
/// aborted transactions among them.
async fn fetch(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(bytes::Bytes, Vec<AbortedTxn>), CliError> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_isolation_level(READ_COMMITTED)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(str_bytes(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(FETCH_BYTES)])]);
    let resp = c.send_capped(req, FETCH_VERSION).await?;
    let Some(pd) = resp.responses.iter().flat_map(|t| &t.partitions).next() else {
        return Err(CliError::Protocol {
            addr: c.addr().to_string(),
            reason: format!("the leader of {topic}-{partition} answered no partition"),
        });
    };
    if pd.error_code != 0 {
        return Err(CliError::kafka(
            format!("reading {topic}-{partition} from offset {offset}"),
            pd.error_code,
            None,
        ));
    }
    let aborted = pd
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| AbortedTxn {
            first_offset: a.first_offset,
            producer_id: a.producer_id.0,
        })
        .collect();
    Ok((pd.records.clone().unwrap_or_default(), aborted))
}

/// A plain progress bar on stderr: redrawn in place on a terminal, a line per tenth
/// otherwise (so a log of the run shows it advancing).
struct Bar {
    total: i64,
    done: i64,
    start: Instant,
    tty: bool,
    last_draw: Option<Instant>,
    last_tenth: i64,
}

impl Bar {
    fn new(total: i64) -> Bar {
        Bar {
            total: total.max(0),
            done: 0,
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            last_tenth: -1,
        }
    }

    fn advance(&mut self, n: i64) {
        self.done = (self.done + n.max(0)).min(self.total);
        if self.tty {
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
            if due || self.done == self.total {
                eprint!("\r{}", render(self.done, self.total, self.start.elapsed()));
                self.last_draw = Some(Instant::now());
            }
        } else {
            let tenth = if self.total == 0 {
                10
            } else {
                self.done * 10 / self.total
            };
            if tenth > self.last_tenth {
                eprintln!("{}", render(self.done, self.total, self.start.elapsed()));
                self.last_tenth = tenth;
            }
        }
    }

    /// Clears the bar's line before something else is printed.
    fn clear(&self) {
        if self.tty && self.last_draw.is_some() {
            eprint!("\r\x1b[2K");
        }
    }

    fn finish(&self) {
        self.clear();
        eprintln!(
            "exported {} offsets in {:.1} s",
            self.done,
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// `[#####-----]  50%  500/1000 offsets  2.0 s`
fn render(done: i64, total: i64, elapsed: Duration) -> String {
    const WIDTH: i64 = 30;
    let filled = if total == 0 {
        WIDTH
    } else {
        done * WIDTH / total
    };
    let pct = if total == 0 { 100 } else { done * 100 / total };
    format!(
        "[{}{}] {pct:>3}%  {done}/{total} offsets  {:.1} s",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion() {
        let s = render(50, 100, Duration::from_secs(2));
        assert!(
            s.starts_with(&format!("[{}{}]  50%", "#".repeat(15), "-".repeat(15))),
            "{s}"
        );
        assert!(s.contains("50/100 offsets"));
        assert!(render(0, 0, Duration::ZERO).contains("100%"));
    }
}
