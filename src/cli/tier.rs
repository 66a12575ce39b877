//! `strata tier status`: per partition, whether the topic is tiered and which offsets
//! live only in the remote tier. It asks the partition leaders with ListOffsets
//! (-2 earliest, -4 earliest local, -5 latest tiered, -1 latest; KIP-405/KIP-1005)
//! and DescribeLogDirs: Kafka's `partition_size` is the local bytes, and Strata's
//! tagged field (see `protocol::tier_state`) adds the remote start/end offsets and
//! bytes, pending uploads and the last upload error, and for a compacted topic its remote
//! compaction (the remote first dirty offset, dirty bytes, passes, the last pass's time,
//! offsets and bytes before/after, the last error). A broker without that field
//! (another Kafka implementation) gets "-" in those columns. A broker without
//! ListOffsets v8 or without remote storage configured gets "not supported by this
//! broker".

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeConfigsRequest, ListOffsetsRequest, MetadataResponse, TopicName,
};

use super::log_dirs::{by_leader, describe_log_dirs, leader_client, one_line, DirInfo, Tp};
use super::topic::{known, metadata, RESOURCE_TOPIC};
use super::{str_bytes, CliError, Client, Connection, TierCommand};

const RESOURCE_BROKER: i8 = 4;
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Broker settings that tell whether a remote tier is configured: Strata's own name,
/// then Kafka's.
const TIER_SETTINGS: &[&str] = &["remote.storage.url", "remote.log.storage.system.enable"];

pub async fn run(mut c: Client, conn: Connection, cmd: TierCommand) -> Result<(), CliError> {
    match cmd {
        TierCommand::Status { topics, costs } => {
            status(&mut c, &conn, &topics).await?;
            match costs {
                Some(addr) => {
                    println!();
                    super::tier_costs::print(&addr, conn.timeout()).await
                }
                None => Ok(()),
            }
        }
    }
}

/// What `strata tier status` shows, per partition of the topics asked about.
#[derive(Default)]
pub struct TierStatus {
    /// `[earliest, earliest local, latest tiered, latest]` from ListOffsets (-2, -4, -5, -1).
    pub offsets: BTreeMap<Tp, [Option<i64>; 4]>,
    /// DescribeLogDirs: local bytes and Strata's tier state.
    pub dirs: BTreeMap<Tp, DirInfo>,
    /// Each topic's `remote.storage.enable`.
    pub enabled: BTreeMap<String, bool>,
}

async fn status(c: &mut Client, conn: &Connection, topics: &[String]) -> Result<(), CliError> {
    let s = gather(c, conn, topics).await?;
    print_table(&s.offsets, &s.dirs, &s.enabled);
    Ok(())
}

/// Asks the partition leaders of `topics` (every topic when empty) for their tier state:
/// ListOffsets -2/-4/-5/-1 and DescribeLogDirs. Fails as "not supported" when the broker
/// lacks ListOffsets v8 or has no remote tier configured.
pub async fn gather(
    c: &mut Client,
    conn: &Connection,
    topics: &[String],
) -> Result<TierStatus, CliError> {
    if c.max_version(ApiKey::ListOffsets).unwrap_or(-1) < 8 {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: "tier status".into(),
            why: "it does not serve ListOffsets v8 (earliest-local offsets, KIP-405)".into(),
        });
    }
    let md = metadata(c, (!topics.is_empty()).then_some(topics)).await?;
    for t in topics {
        known(&md, t)?;
    }
    remote_tier_configured(c, &md).await?;

    let names: Vec<String> = md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    let enabled = remote_enabled(c, &names).await?;

    // offsets[tp] = [earliest, earliest local, latest tiered, latest]
    let mut offsets: BTreeMap<Tp, [Option<i64>; 4]> = BTreeMap::new();
    let mut dirs: BTreeMap<Tp, DirInfo> = BTreeMap::new();
    for (leader, tps) in &by_leader(&md) {
        let mut lc = leader_client(c, conn, &md, *leader).await?;
        let client = lc.as_mut().unwrap_or(c);
        let tiered_known = client.max_version(ApiKey::ListOffsets).unwrap_or(0) >= 9;
        for (i, ts) in [EARLIEST, EARLIEST_LOCAL, LATEST_TIERED, LATEST]
            .into_iter()
            .enumerate()
        {
            if ts == LATEST_TIERED && !tiered_known {
                continue;
            }
            for (tp, off) in list_offsets(client, tps, ts).await? {
                offsets.entry(tp).or_default()[i] = off;
            }
        }
        dirs.extend(describe_log_dirs(client, tps).await?);
    }
    Ok(TierStatus {
        offsets,
        dirs,
        enabled,
    })
}

fn print_table(
    offsets: &BTreeMap<Tp, [Option<i64>; 4]>,
    dirs: &BTreeMap<Tp, DirInfo>,
    enabled: &BTreeMap<String, bool>,
) {
    let show = |o: Option<i64>| o.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let show_u = |o: Option<u64>| o.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    // The first eight columns are stable (scripts read them by position).
    println!(
        "TOPIC\tPARTITION\tREMOTE\tLOG-START\tLOCAL-START\tTIERED-END\tEND\tREMOTE-ONLY\t\
         REMOTE-START\tREMOTE-END\tLOCAL-BYTES\tREMOTE-BYTES\tPENDING\tPENDING-BYTES\tFAILED\tLAST-ERROR\t\
         COMPACTED-BELOW\tDIRTY-BYTES\tCOMPACTIONS\tLAST-COMPACTION\tCOMPACTED-RANGE\tCOMPACT-BYTES\tCOMPACT-ERROR\t\
         TABLE-END\tTABLE-PENDING\tTABLE-PENDING-BYTES\tTABLE-DONE"
    );
    let now = super::cleaner::now_ms();
    for (tp, [start, local, tiered, end]) in offsets {
        let (topic, partition) = tp;
        let remote_only = match (start, local) {
            (Some(s), Some(l)) if l >= s => (l - s).to_string(),
            _ => "-".into(),
        };
        let dir = dirs.get(tp);
        let t = dir.and_then(|d| d.tier.as_ref());
        let last_error = t
            .and_then(|t| t.last_error.as_deref())
            .map(one_line)
            .unwrap_or_else(|| "-".into());
        print!(
            "{topic}\t{partition}\t{}\t{}\t{}\t{}\t{}\t{remote_only}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{last_error}",
            if enabled.get(topic).copied().unwrap_or(false) {
                "on"
            } else {
                "off"
            },
            show(*start),
            show(*local),
            show(*tiered),
            show(*end),
            show(t.and_then(|t| t.remote_start)),
            show(t.and_then(|t| t.remote_end)),
            show(dir.and_then(|d| d.local_bytes)),
            show_u(t.map(|t| t.remote_bytes)),
            show_u(t.map(|t| t.pending_uploads as u64)),
            show_u(t.map(|t| t.pending_bytes)),
            show_u(t.map(|t| u64::from(t.failed_attempts))),
        );
        let c = t.and_then(|t| t.remote_compaction.as_ref());
        println!(
            "\t{}\t{}",
            compaction_columns(c, now).join("\t"),
            table_columns(t).join("\t")
        );
    }
}

/// The remote compaction columns of one partition ("-" where there is nothing to say).
fn compaction_columns(
    c: Option<&crate::protocol::tier_state::RemoteCompactionState>,
    now_ms: i64,
) -> [String; 7] {
    let dash = || "-".to_string();
    let Some(c) = c else {
        return std::array::from_fn(|_| dash());
    };
    let passes = if c.in_flight {
        format!("{} (running)", c.passes)
    } else {
        c.passes.to_string()
    };
    let range = match (c.last_start_offset, c.last_end_offset) {
        (Some(s), Some(e)) => format!("{s}-{e}"),
        _ => dash(),
    };
    let bytes = match (c.last_bytes_before, c.last_bytes_after) {
        (Some(b), Some(a)) => format!("{b}->{a}"),
        _ => dash(),
    };
    [
        c.first_dirty_offset.map_or_else(dash, |o| o.to_string()),
        c.dirty_bytes.to_string(),
        passes,
        c.last_pass_ms
            .map_or_else(dash, |t| super::cleaner::ago(now_ms - t)),
        range,
        bytes,
        c.last_error.as_deref().map_or_else(dash, one_line),
    ]
}

/// The Iceberg table columns of one partition: the table's end offset, the remote
/// segments and bytes not in it yet, and how much of the remote offsets it holds (a
/// backfill's progress). "-" for a topic without a table.
fn table_columns(t: Option<&crate::protocol::tier_state::PartitionTierState>) -> [String; 4] {
    let dash = || "-".to_string();
    let Some(table) = t.and_then(|t| t.table.as_ref().map(|x| (t, x))) else {
        return std::array::from_fn(|_| dash());
    };
    let (t, table) = table;
    let done = match (t.remote_start, t.remote_end) {
        (Some(s), Some(e)) if e > s => {
            let c = table.committed.unwrap_or(s).clamp(s, e);
            format!("{}%", (c - s) * 100 / (e - s))
        }
        _ => dash(),
    };
    [
        table.committed.map_or_else(dash, |c| c.to_string()),
        table.pending_segments.to_string(),
        table.pending_bytes.to_string(),
        done,
    ]
}

/// Fails with "not supported" unless the broker describes a remote-tier setting.
async fn remote_tier_configured(c: &mut Client, md: &MetadataResponse) -> Result<(), CliError> {
    let node = md
        .brokers
        .iter()
        .find(|b| format!("{}:{}", b.host, b.port) == c.addr())
        .map(|b| b.node_id.0.to_string())
        .unwrap_or_default();
    let unsupported = |c: &Client| CliError::Unsupported {
        addr: c.addr().to_string(),
        what: "tiered storage".into(),
        why: "it describes no remote.storage.url (or remote.log.storage.system.enable) setting"
            .into(),
    };
    if c.version_of::<DescribeConfigsRequest>().is_none() {
        return Err(unsupported(c));
    }
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(str_bytes(node))
            .with_configuration_keys(None)]);
    let resp = c.send(req).await?;
    let found = resp.results.iter().filter(|r| r.error_code == 0).any(|r| {
        r.configs.iter().any(|e| {
            TIER_SETTINGS.contains(&e.name.as_str())
                && e.value
                    .as_ref()
                    .is_some_and(|v| !v.is_empty() && v.as_str() != "false")
        })
    });
    if found {
        Ok(())
    } else {
        Err(unsupported(c))
    }
}

/// remote.storage.enable of each topic.
async fn remote_enabled(
    c: &mut Client,
    names: &[String],
) -> Result<BTreeMap<String, bool>, CliError> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let resources = names
        .iter()
        .map(|n| {
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(n.clone()))
                .with_configuration_keys(Some(vec![str_bytes("remote.storage.enable")]))
        })
        .collect();
    let resp = c
        .send(DescribeConfigsRequest::default().with_resources(resources))
        .await?;
    Ok(resp
        .results
        .iter()
        .map(|r| {
            let on = r.configs.iter().any(|e| {
                e.name.as_str() == "remote.storage.enable"
                    && e.value
                        .as_ref()
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            });
            (r.resource_name.to_string(), on)
        })
        .collect())
}

pub async fn list_offsets(
    c: &mut Client,
    tps: &[Tp],
    timestamp: i64,
) -> Result<Vec<(Tp, Option<i64>)>, CliError> {
    list_offsets_isolated(c, tps, timestamp, 0).await
}

/// ListOffsets at `isolation_level` (1, read_committed: LATEST is the last stable offset).
pub async fn list_offsets_isolated(
    c: &mut Client,
    tps: &[Tp],
    timestamp: i64,
    isolation_level: i8,
) -> Result<Vec<(Tp, Option<i64>)>, CliError> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*p)
                .with_current_leader_epoch(-1)
                .with_timestamp(timestamp),
        );
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = c.send(req).await?;
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let off = (p.error_code == 0 && p.offset >= 0).then_some(p.offset);
                ((t.name.0.to_string(), p.partition_index), off)
            })
        })
        .collect())
}
