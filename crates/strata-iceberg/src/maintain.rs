//! Table maintenance: retention and the orphan sweeper.
//!
//! - **Retention** (`iceberg.retention.ms`, by default the topic's `retention.ms`): the
//!   data files of days wholly older than the retention are removed from the table in one
//!   `delete` snapshot (the table is partitioned by day, so a file is removed with its
//!   day), the snapshots before it are expired (history that still names expired data
//!   would keep it readable), and the removed files are deleted from the bucket. Without
//!   anything to remove, snapshots older than the retention are expired (the current one
//!   stays). The delete snapshot carries the committed offsets forward, so the planner
//!   never writes removed segments again.
//! - **After `iceberg.enable=false`** the table stays readable and both of the above go
//!   on (`src/rlm/table_maintain.rs`); deleting the topic deletes the table
//!   ([`TableWriter::delete_table`]) unless `iceberg.delete=false`.
//! - **Orphans**: a writer that crashed (or lost a commit race) between putting its Parquet
//!   files and committing leaves files no snapshot names, and expired snapshots leave their
//!   manifests. Every `.parquet` under `data/` and `.avro` under `metadata/` older than a
//!   grace period and named by no snapshot of the table is deleted. The listing comes
//!   before the table is loaded, so a file committed meanwhile is seen as named; the grace
//!   period covers a writer still between its puts and its commit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use iceberg::spec::{
    DataFile, Literal, ManifestFile, ManifestList, ManifestListWriter, ManifestWriterBuilder,
    Operation, PrimitiveLiteral, Snapshot, SnapshotReference, SnapshotRetention, Summary,
    MAIN_BRANCH,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{ErrorKind, TableRequirement, TableUpdate};
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::catalog::BucketCatalog;
use crate::plan::COMMITTED_OFFSETS;
use crate::table::day_of;
use crate::writer::{TableWriter, WriteError};

/// What a retention run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub data_files: usize,
    pub rows: u64,
    pub snapshots: usize,
}

/// The files the snapshots of a table name: data files (alive in some snapshot) and
/// metadata files (manifest lists and manifests), as locations.
#[derive(Debug, Default)]
pub struct Named {
    pub data: HashSet<String>,
    pub metadata: HashSet<String>,
}

async fn manifest_list(table: &Table, snap: &Snapshot) -> Result<ManifestList, iceberg::Error> {
    let bytes = table
        .file_io()
        .new_input(snap.manifest_list())?
        .read()
        .await?;
    ManifestList::parse_with_version(&bytes, table.metadata().format_version())
}

/// What the sweeper read of manifest lists and manifests, by location. Both are immutable
/// once written, so a run reads only those committed since the last one instead of every
/// snapshot's (one GET per snapshot and per append otherwise). Entries no snapshot names
/// any more are dropped after each walk.
#[derive(Debug, Default)]
pub struct ManifestCache {
    lists: HashMap<String, Arc<Vec<ManifestFile>>>,
    /// Manifest -> the data files alive in it.
    manifests: HashMap<String, Arc<Vec<String>>>,
}

/// Every file a snapshot of `table` names, reading through `cache`.
pub async fn named(table: &Table, cache: &Mutex<ManifestCache>) -> Result<Named, iceberg::Error> {
    let mut out = Named::default();
    let mut lists_seen = HashSet::new();
    for snap in table.metadata().snapshots() {
        let list_path = snap.manifest_list().to_string();
        out.metadata.insert(list_path.clone());
        lists_seen.insert(list_path.clone());
        let cached = lock(cache).lists.get(&list_path).cloned();
        let files = match cached {
            Some(f) => f,
            None => {
                let f = Arc::new(manifest_list(table, snap).await?.entries().to_vec());
                lock(cache).lists.insert(list_path, f.clone());
                f
            }
        };
        for mf in files.iter() {
            if !out.metadata.insert(mf.manifest_path.clone()) {
                continue; // shared with a snapshot already walked
            }
            let cached = lock(cache).manifests.get(&mf.manifest_path).cloned();
            let data = match cached {
                Some(d) => d,
                None => {
                    let manifest = mf.load_manifest(table.file_io()).await?;
                    let d: Arc<Vec<String>> = Arc::new(
                        manifest
                            .entries()
                            .iter()
                            .filter(|e| e.is_alive())
                            .map(|e| e.data_file().file_path().to_string())
                            .collect(),
                    );
                    lock(cache)
                        .manifests
                        .insert(mf.manifest_path.clone(), d.clone());
                    d
                }
            };
            out.data.extend(data.iter().cloned());
        }
    }
    let mut c = lock(cache);
    c.lists.retain(|k, _| lists_seen.contains(k));
    c.manifests.retain(|k, _| out.metadata.contains(k));
    Ok(out)
}

fn lock(cache: &Mutex<ManifestCache>) -> std::sync::MutexGuard<'_, ManifestCache> {
    // A panic while holding it cannot leave a half-written entry: recover the map.
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `timestamp_day` of a data file (days since 1970).
fn day(file: &DataFile) -> Option<i32> {
    match file.partition().fields().first()? {
        Some(Literal::Primitive(PrimitiveLiteral::Int(d))) => Some(*d),
        _ => None,
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn new_snapshot_id() -> i64 {
    (uuid::Uuid::new_v4().as_u64_pair().0 & i64::MAX as u64) as i64
}

impl TableWriter {
    fn err(topic: &str) -> impl Fn(iceberg::Error) -> WriteError + '_ {
        move |source| WriteError::Iceberg {
            topic: topic.to_string(),
            source,
        }
    }

    /// Applies retention `retention_ms` (see the module docs) to `topic`'s table at
    /// `now_ms`. Nothing when the table does not exist. A lost commit race is not an
    /// error: the next run applies it.
    pub async fn expire(
        &self,
        topic: &str,
        retention_ms: i64,
        now_ms: i64,
    ) -> Result<Expired, WriteError> {
        let err = Self::err(topic);
        let ident = Self::ident(topic);
        let table = match self.catalog().load_table_opt(&ident).await.map_err(&err)? {
            Some(t) => t,
            None => return Ok(Expired::default()),
        };
        let Some(current) = table.metadata().current_snapshot().cloned() else {
            return Ok(Expired::default());
        };
        let cutoff = now_ms.saturating_sub(retention_ms.max(0));
        let cutoff_day = day_of(cutoff);
        // The alive entries of the current snapshot, split into kept and removed.
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for mf in manifest_list(&table, &current)
            .await
            .map_err(&err)?
            .entries()
        {
            let manifest = mf.load_manifest(table.file_io()).await.map_err(&err)?;
            for e in manifest.entries().iter().filter(|e| e.is_alive()) {
                let e = e.as_ref().clone();
                if day(&e.data_file).is_some_and(|d| d < cutoff_day) {
                    removed.push(e);
                } else {
                    kept.push(e);
                }
            }
        }
        let mut expired = Expired::default();
        let table = if removed.is_empty() {
            table
        } else {
            expired.data_files = removed.len();
            expired.rows = removed.iter().map(|e| e.data_file.record_count()).sum();
            match self
                .delete_snapshot(topic, &table, &current, kept, &removed, now_ms)
                .await?
            {
                Some(t) => t,
                None => return Ok(Expired::default()), // lost a race: next run
            }
        };
        // Expire history: every snapshot before a delete (it names removed data), else
        // those older than the cutoff; the current snapshot always stays.
        let current_id = table.metadata().current_snapshot_id();
        let old: Vec<i64> = table
            .metadata()
            .snapshots()
            .filter(|s| Some(s.snapshot_id()) != current_id)
            .filter(|s| !removed.is_empty() || s.timestamp_ms() < cutoff)
            .map(|s| s.snapshot_id())
            .collect();
        if !old.is_empty() {
            let tx = Transaction::new(&table);
            let tx = tx
                .expire_snapshots()
                .expire_snapshot_ids(old.iter().copied())
                .expire_older_than_ms(i64::MIN)
                .retain_last(1)
                .apply(tx)
                .map_err(&err)?;
            match tx.commit(&self.pinned(table.clone())).await {
                Ok(_) => expired.snapshots = old.len(),
                Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => {}
                Err(e) => return Err(err(e)),
            }
        }
        // The removed files are named by no snapshot left (or, after a lost expiry race,
        // only by history the next run expires): delete them. A failure leaves orphans
        // for the sweeper.
        if expired.snapshots > 0 {
            if let Some(store) = self.storage().store_handle() {
                for e in &removed {
                    let Ok(key) = self.storage().key(e.data_file.file_path()) else {
                        continue;
                    };
                    if let Err(e) = store.delete(&key).await {
                        tracing::warn!(%topic, %key, error = %e, "cannot delete an expired data file; the orphan sweeper will");
                    }
                }
            }
        }
        Ok(expired)
    }

    /// Commits a `delete` snapshot on top of `current` holding only `kept`; `None` when
    /// another writer committed first.
    async fn delete_snapshot(
        &self,
        topic: &str,
        table: &Table,
        current: &Snapshot,
        kept: Vec<iceberg::spec::ManifestEntry>,
        removed: &[iceberg::spec::ManifestEntry],
        now_ms: i64,
    ) -> Result<Option<Table>, WriteError> {
        let err = Self::err(topic);
        let meta = table.metadata();
        let id = new_snapshot_id();
        let seq = meta.next_sequence_number();
        let dir = self.table_location(topic);
        let uuid = uuid::Uuid::new_v4();
        let manifest_path = format!("{dir}/metadata/{uuid}-m0.avro");
        let list_path = format!("{dir}/metadata/snap-{id}-1-{uuid}.avro");
        let io = table.file_io();
        let mut w = ManifestWriterBuilder::new(
            io.new_output(&manifest_path).map_err(&err)?,
            Some(id),
            meta.current_schema().clone(),
            meta.default_partition_spec().as_ref().clone(),
        )
        .build_v2_data();
        for e in kept {
            let (snap, data_seq) = (e.snapshot_id.unwrap_or(id), e.sequence_number.unwrap_or(0));
            w.add_existing_file(e.data_file, snap, data_seq, e.file_sequence_number)
                .map_err(&err)?;
        }
        for e in removed {
            w.add_delete_file(
                e.data_file.clone(),
                e.sequence_number.unwrap_or(0),
                e.file_sequence_number,
            )
            .map_err(&err)?;
        }
        let manifest = w.write_manifest_file().await.map_err(&err)?;
        let writer = io
            .new_output(&list_path)
            .map_err(&err)?
            .writer()
            .await
            .map_err(&err)?;
        let mut list = ManifestListWriter::v2(writer, id, Some(current.snapshot_id()), seq);
        list.add_manifests(std::iter::once(manifest))
            .map_err(&err)?;
        list.close().await.map_err(&err)?;

        let mut props = HashMap::new();
        if let Some(c) = current
            .summary()
            .additional_properties
            .get(COMMITTED_OFFSETS)
        {
            props.insert(COMMITTED_OFFSETS.to_string(), c.clone());
        }
        props.insert("deleted-data-files".into(), removed.len().to_string());
        props.insert(
            "deleted-records".into(),
            removed
                .iter()
                .map(|e| e.data_file.record_count())
                .sum::<u64>()
                .to_string(),
        );
        props.insert("strata.expired-before-ms".into(), now_ms.to_string());
        let snapshot = Snapshot::builder()
            .with_snapshot_id(id)
            .with_parent_snapshot_id(Some(current.snapshot_id()))
            .with_sequence_number(seq)
            // The clock of the commit (Iceberg wants snapshot times in commit order), not
            // the `now_ms` retention was computed at.
            .with_timestamp_ms(wall_clock_ms().max(meta.last_updated_ms() + 1))
            .with_manifest_list(list_path)
            .with_summary(Summary {
                operation: Operation::Delete,
                additional_properties: props,
            })
            .with_schema_id(meta.current_schema_id())
            .build();
        let requirements = vec![TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: Some(current.snapshot_id()),
        }];
        let updates = vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: MAIN_BRANCH.to_string(),
                reference: SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
            },
        ];
        match self
            .catalog()
            .commit_updates(&Self::ident(topic), requirements, updates)
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::CatalogCommitConflicts => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Deletes the orphans of `topic`'s table older than `grace_ms` at `now_ms` (see the
    /// module docs); returns how many were deleted.
    pub async fn sweep_orphans(
        &self,
        topic: &str,
        grace_ms: i64,
        now_ms: i64,
    ) -> Result<u64, WriteError> {
        let err = Self::err(topic);
        let Some(store) = self.storage().store_handle() else {
            return Ok(0);
        };
        let dir = BucketCatalog::table_dir(&Self::ident(topic));
        let obj_err = |key: &str, source| WriteError::Object {
            topic: topic.to_string(),
            key: key.to_string(),
            source,
        };
        let mut old = Vec::new();
        for (sub, ext) in [("data", ".parquet"), ("metadata", ".avro")] {
            let prefix = format!("{dir}/{sub}");
            let listed: Vec<_> = store
                .list(Some(&Path::from(prefix.as_str())))
                .try_collect()
                .await
                .map_err(|e| obj_err(&prefix, e))?;
            old.extend(
                listed
                    .into_iter()
                    .filter(|m| m.location.as_ref().ends_with(ext))
                    .filter(|m| m.last_modified.timestamp_millis() < now_ms - grace_ms)
                    .map(|m| m.location),
            );
        }
        if old.is_empty() {
            return Ok(0);
        }
        let Some(table) = self
            .catalog()
            .load_table_opt(&Self::ident(topic))
            .await
            .map_err(&err)?
        else {
            return Ok(0);
        };
        let named = named(&table, self.manifest_cache()).await.map_err(&err)?;
        let mut deleted = 0;
        for key in old {
            let location = self.storage().location(key.as_ref());
            if named.data.contains(&location) || named.metadata.contains(&location) {
                continue;
            }
            store
                .delete(&key)
                .await
                .map_err(|e| obj_err(key.as_ref(), e))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes `topic`'s table (the topic was deleted with `iceberg.delete=true`): the
    /// catalog forgets it first, so no reader finds a table whose files are going; then the
    /// metadata JSON files (the bucket catalog's pointer), then every other object under
    /// the table's prefix. Idempotent: every replica of partition 0 may run it, and a run
    /// that failed halfway is finished by the next. Returns the objects deleted.
    pub async fn delete_table(&self, topic: &str) -> Result<u64, WriteError> {
        let err = Self::err(topic);
        self.catalog()
            .forget(&Self::ident(topic))
            .await
            .map_err(&err)?;
        let Some(store) = self.storage().store_handle() else {
            return Ok(0);
        };
        let dir = format!("{}/", BucketCatalog::table_dir(&Self::ident(topic)));
        let listed: Vec<_> = store
            .list(Some(&Path::from(dir.as_str())))
            .try_collect()
            .await
            .map_err(|source| WriteError::Object {
                topic: topic.to_string(),
                key: dir.clone(),
                source,
            })?;
        let (pointers, rest): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .map(|m| m.location)
            .partition(|k| k.as_ref().ends_with(".metadata.json"));
        let mut deleted = 0;
        for key in pointers.into_iter().chain(rest) {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(source) => {
                    return Err(WriteError::Object {
                        topic: topic.to_string(),
                        key: key.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
#[path = "maintain_tests.rs"]
mod maintain_tests;
