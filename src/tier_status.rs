//! `strata tier status`: the tier state of every tiered partition, read from the
//! bucket (partition manifests) and the local log dirs, without a running broker.
//!
//! Per partition: local log start and bytes, remote start and end offsets, remote
//! bytes and segments, manifest version, and closed local segments not yet tiered
//! ("pending"). Upload errors of a running broker are in its log ("segment upload
//! failed"); they are not visible from the bucket.

use std::fmt::Write as _;
use std::path::Path;

use strata_config::Configs;
use strata_tier::{manifest, topics, TierError};

/// One local `.log` file: (base offset, bytes).
fn local_segments(dir: &Path) -> Vec<(i64, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, e.metadata().ok()?.len()))
        })
        .collect();
    out.sort();
    out
}

/// Renders the status table.
pub async fn status(configs: &Configs) -> Result<String, TierError> {
    let broker = configs
        .broker(&Default::default())
        .map_err(|e| TierError::InvalidUrl {
            url: String::new(),
            reason: e.to_string(),
        })?;
    let r = &broker.remote;
    let raw = strata_tier::open_store(&r.url, &crate::rlm::s3_options(r))?;
    let store = crate::rlm::with_encryption(r, raw)?;
    let mut out = format!("remote tier: {}\n", r.url);
    let _ = writeln!(
        out,
        "{:<32} {:>8} {:>12} {:>12} {:>12} {:>14} {:>9} {:>8} {:>8}",
        "PARTITION",
        "VERSION",
        "LOCAL_START",
        "REMOTE_START",
        "REMOTE_END",
        "REMOTE_BYTES",
        "SEGMENTS",
        "LOCAL_MB",
        "PENDING"
    );
    for pk in topics::list_partitions(&store).await? {
        let Some(m) = manifest::load(&*store, &pk).await? else {
            continue;
        };
        let name = strata_log::partition_dir_name(&pk.topic, pk.partition);
        let local = broker
            .log_dirs
            .iter()
            .map(|d| local_segments(&d.join(&name)))
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        let remote_end = m.end_offset().unwrap_or(-1);
        // Closed local segments (all but the last) starting at or after the remote end.
        let pending = local
            .iter()
            .take(local.len().saturating_sub(1))
            .filter(|(base, _)| *base >= remote_end)
            .count();
        let local_bytes: u64 = local.iter().map(|(_, n)| n).sum();
        let _ = writeln!(
            out,
            "{:<32} {:>8} {:>12} {:>12} {:>12} {:>14} {:>9} {:>8.1} {:>8}",
            format!("{pk}"),
            m.version,
            local.first().map_or(-1, |(b, _)| *b),
            m.start_offset().unwrap_or(-1),
            remote_end,
            m.size_bytes(),
            m.segments.len(),
            local_bytes as f64 / 1e6,
            pending
        );
    }
    Ok(out)
}
