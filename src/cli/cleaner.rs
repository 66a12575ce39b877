//! The `Cleaner:` lines of `strata topic describe`: the log cleaner's state of each
//! partition of a compacted topic, asked from the partition's leader (DescribeLogDirs
//! with Strata's tagged field, see `protocol::cleaner_state`), and its one-line text.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;

use crate::protocol::cleaner_state::PartitionCleanerState;

use super::log_dirs::{by_leader, describe_log_dirs, leader_client, one_line, Tp};
use super::{Client, Connection};

/// The cleaner state of every partition of the compacted topics among `md`'s, from each
/// partition's leader. Best effort: a leader that cannot be asked is reported on stderr
/// and its partitions get no cleaner line, as the rest of `describe` stands without it.
pub(super) async fn cleaner_states(
    c: &mut Client,
    conn: &Connection,
    md: &MetadataResponse,
    compacted: &[&str],
) -> BTreeMap<Tp, PartitionCleanerState> {
    let mut out = BTreeMap::new();
    if compacted.is_empty() {
        return out;
    }
    for (leader, tps) in by_leader(md) {
        let tps: Vec<Tp> = tps
            .into_iter()
            .filter(|(t, _)| compacted.contains(&t.as_str()))
            .collect();
        // Only the leader's state is wanted: with no leader, or one missing from the
        // broker list (not live), the bootstrap node would answer for its own replica.
        let listed = md.brokers.iter().any(|b| b.node_id.0 == leader);
        if !listed || tps.is_empty() {
            continue;
        }
        let dirs = match leader_client(c, conn, md, leader).await {
            Ok(mut lc) => describe_log_dirs(lc.as_mut().unwrap_or(c), &tps).await,
            Err(e) => Err(e),
        };
        match dirs {
            Ok(dirs) => out.extend(
                dirs.into_iter()
                    .filter_map(|(tp, d)| Some((tp, d.cleaner?))),
            ),
            Err(e) => eprintln!("note: no cleaner state from broker {leader}: {e}"),
        }
    }
    out
}

/// One `Cleaner:` line: the dirty section, the last pass and, when a pass failed, why.
pub(super) fn cleaner_line(s: &PartitionCleanerState, now_ms: i64) -> String {
    let pct = s.dirty_ratio * 100.0;
    let dirty = if pct > 0.0 && pct < 1.0 {
        "<1%".to_string()
    } else {
        format!("{pct:.0}%")
    };
    let mut line = format!(
        "dirty {dirty} ({} dirty, {} clean, {} uncleanable), first dirty offset {}",
        bytes(s.dirty_bytes),
        bytes(s.clean_bytes),
        bytes(s.uncleanable_bytes),
        s.first_dirty_offset
    );
    match &s.last_pass {
        Some(p) => line.push_str(&format!(
            ", last pass {} ({} ms): offsets {}-{}, {} -> {}, {} records removed ({} tombstones)",
            ago(now_ms - p.ended_ms),
            p.duration_ms,
            p.start_offset,
            // `end_offset` is exclusive: the pass covered up to the one before it.
            (p.end_offset - 1).max(p.start_offset),
            bytes(p.bytes_before),
            bytes(p.bytes_after),
            p.records_removed,
            p.tombstones_removed
        )),
        None => line.push_str(", no pass since the broker started"),
    }
    if let Some(u) = &s.uncleanable {
        let retry = if u.retry_at_ms > now_ms {
            format!("next attempt in {}s", (u.retry_at_ms - now_ms + 999) / 1000)
        } else {
            "next attempt due".to_string()
        };
        line.push_str(&format!(
            "; UNCLEANABLE since {}, {retry}: {}",
            ago(now_ms - u.since_ms),
            one_line(&u.reason)
        ));
    }
    line
}

/// `bytes` in binary units with one decimal, as `du -h` would round them.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A past instant `ms` milliseconds ago, in its largest sensible unit. A negative
/// distance (the broker's clock ahead of this host's) reads as now.
pub(super) fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..120 => format!("{s}s ago"),
        120..7200 => format!("{}m ago", s / 60),
        7200..172_800 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::cleaner_state::{CleanerFailure, CleanerPass};

    #[test]
    fn bytes_and_ages_read_like_du_and_uptime() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(64 << 10), "64.0 KiB");
        assert_eq!(bytes((1 << 20) + (1 << 20) / 5), "1.2 MiB");
        assert_eq!(bytes(3 << 40), "3.0 TiB");
        assert_eq!(ago(-5_000), "0s ago");
        assert_eq!(ago(12_400), "12s ago");
        assert_eq!(ago(5 * 60_000), "5m ago");
        assert_eq!(ago(3 * 3_600_000), "3h ago");
        assert_eq!(ago(4 * 86_400_000), "4d ago");
    }

    #[test]
    fn the_line_shows_the_dirty_section_the_last_pass_and_a_failure() {
        let now = 1_700_000_100_000;
        let mut s = PartitionCleanerState {
            first_dirty_offset: 1234,
            clean_bytes: 3 << 20,
            dirty_bytes: 1 << 20,
            uncleanable_bytes: 64 << 10,
            dirty_ratio: 0.25,
            ..Default::default()
        };
        assert_eq!(
            cleaner_line(&s, now),
            "dirty 25% (1.0 MiB dirty, 3.0 MiB clean, 64.0 KiB uncleanable), first dirty \
             offset 1234, no pass since the broker started"
        );
        s.last_pass = Some(CleanerPass {
            ended_ms: now - 12_000,
            duration_ms: 35,
            start_offset: 0,
            end_offset: 1234,
            bytes_before: 5 << 20,
            bytes_after: 1 << 20,
            records_removed: 9000,
            tombstones_removed: 3,
        });
        s.uncleanable = Some(CleanerFailure {
            reason: "corrupt batch\n  at offset 77".into(),
            since_ms: now - 2_000,
            retry_at_ms: now + 2_500,
        });
        let line = cleaner_line(&s, now);
        assert!(
            line.contains(
                ", last pass 12s ago (35 ms): offsets 0-1233, 5.0 MiB -> 1.0 MiB, 9000 \
                 records removed (3 tombstones)"
            ),
            "{line}"
        );
        assert!(
            line.ends_with(
                "; UNCLEANABLE since 2s ago, next attempt in 3s: corrupt batch at offset 77"
            ),
            "{line}"
        );
        s.dirty_ratio = 0.001;
        assert!(cleaner_line(&s, now).starts_with("dirty <1% "));
    }
}
