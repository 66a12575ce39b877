//! End-to-end tests of [`Controller`]: proposals, restart, torn log tail, snapshot and purge.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use strata_controller::log_store::LOG_FILE;
use strata_controller::state_machine::SNAPSHOT_FILE;
use strata_controller::ApplyError;
use strata_controller::BrokerMeta;
use strata_controller::Controller;
use strata_controller::ControllerConfig;
use strata_controller::ControllerError;
use strata_controller::MetadataCommand;
use strata_controller::MetadataImage;
use strata_controller::StoreError;
use uuid::Uuid;

fn create(name: &str, partitions: i32) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::from([("cleanup.policy".to_string(), "delete".to_string())]),
        internal: name.starts_with("__"),
        assignment: vec![],
        placement_start: 0,
    }
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn populate(c: &Controller) -> MetadataImage {
    let broker = BrokerMeta {
        node_id: 1,
        host: "localhost".into(),
        port: 9092,
        endpoints: Vec::new(),
        rack: Some("r1".into()),
        fenced: false,
        shutting_down: false,
    };
    c.propose(MetadataCommand::RegisterBroker(broker))
        .await
        .unwrap();
    c.propose(create("orders", 3)).await.unwrap();
    c.propose(create("__consumer_offsets", 50)).await.unwrap();
    c.propose(MetadataCommand::CreatePartitions {
        name: "orders".into(),
        total: 6,
        assignment: vec![],
    })
    .await
    .unwrap();
    let topic_configs = configs(&[("retention.ms", "60000")]);
    c.propose(MetadataCommand::SetTopicConfigs {
        name: "orders".into(),
        configs: topic_configs,
    })
    .await
    .unwrap();
    let broker_configs = configs(&[("log.retention.hours", "1")]);
    c.propose(MetadataCommand::SetBrokerConfigs {
        configs: broker_configs,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_propose_restart_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(dir.path(), 1).await.unwrap();
    let first = c.image();
    assert_eq!(
        first.cluster_id.len(),
        22,
        "a fresh directory gets a cluster id"
    );
    let mut changes = c.subscribe();
    changes.borrow_and_update();

    let image = populate(&c).await;
    assert!(changes.has_changed().unwrap());
    assert_eq!(*c.image(), image);
    assert_eq!(image.cluster_id, first.cluster_id);
    assert_eq!(image.topics["orders"].partitions, 6);
    assert_eq!(
        image.topics["orders"].configs,
        configs(&[("retention.ms", "60000")])
    );
    assert!(image.topics["__consumer_offsets"].internal);
    assert_eq!(
        image.broker_configs,
        configs(&[("log.retention.hours", "1")])
    );
    c.shutdown().await.unwrap();

    let c = Controller::open(dir.path(), 1).await.unwrap();
    assert_eq!(
        *c.image(),
        image,
        "restart restores the image, cluster id included"
    );
    c.propose(MetadataCommand::DeleteTopic {
        name: "orders".into(),
    })
    .await
    .unwrap();
    c.shutdown().await.unwrap();

    let c = Controller::open(dir.path(), 1).await.unwrap();
    assert!(!c.image().topics.contains_key("orders"));
    assert_eq!(c.image().cluster_id, first.cluster_id);
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_commands_return_errors_and_leave_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(dir.path(), 1).await.unwrap();
    c.propose(create("a", 2)).await.unwrap();
    let before = c.image();

    let err = c.propose(create("a", 9)).await.unwrap_err();
    assert!(
        matches!(&err, ControllerError::Rejected(ApplyError::TopicAlreadyExists { name }) if name == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("topic a already exists"));
    let err = c
        .propose(MetadataCommand::DeleteTopic {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControllerError::Rejected(ApplyError::UnknownTopic { name }) if name == "nope"),
        "{err}"
    );
    let err = c
        .propose(MetadataCommand::CreatePartitions {
            name: "a".into(),
            total: 1,
            assignment: vec![],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Rejected(ApplyError::InvalidPartitions {
                current: 2,
                requested: 1,
                ..
            })
        ),
        "{err}"
    );
    let err = c.propose(create("b", 0)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ControllerError::Rejected(ApplyError::InvalidPartitions { requested: 0, .. })
        ),
        "{err}"
    );
    assert_eq!(*c.image(), *before);
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_log_tail_reopens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(dir.path(), 1).await.unwrap();
    for name in ["t1", "t2", "t3"] {
        c.propose(create(name, 1)).await.unwrap();
    }
    let cluster_id = c.image().cluster_id.clone();
    c.shutdown().await.unwrap();

    // A crash in the middle of the last append: its record is cut short.
    cut_log(dir.path(), 5);
    let c = Controller::open(dir.path(), 1).await.unwrap();
    let image = c.image();
    assert_eq!(image.cluster_id, cluster_id);
    assert!(image.topics.contains_key("t1") && image.topics.contains_key("t2"));
    assert!(!image.topics.contains_key("t3"), "the torn entry is gone");
    c.propose(create("t4", 1)).await.unwrap();
    c.shutdown().await.unwrap();

    // Garbage after the last record (a torn header) is cut too.
    append_to_log(dir.path(), &[0xff, 0x00, 0x13]);
    let c = Controller::open(dir.path(), 1).await.unwrap();
    assert!(c.image().topics.contains_key("t4"));
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_purge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = ControllerConfig {
        snapshot_every: 5,
        ..Default::default()
    };
    let c = Controller::open_with(dir.path(), 1, config.clone())
        .await
        .unwrap();
    for i in 0..23 {
        c.propose(create(&format!("topic-{i}"), 1)).await.unwrap();
    }
    let last = c.raft().metrics().borrow().last_log_index;
    c.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.map(|s| s.index + 5) > last && m.purged.is_some(),
            "snapshot near the end of the log, log purged",
        )
        .await
        .unwrap();
    let image = c.image();
    c.shutdown().await.unwrap();
    assert!(dir.path().join(SNAPSHOT_FILE).exists());
    let log_len = std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
    assert!(
        log_len < 5 * 400,
        "the log was purged behind the snapshot ({log_len} bytes)"
    );

    let c = Controller::open_with(dir.path(), 1, config).await.unwrap();
    assert_eq!(c.image(), image);
    assert_eq!(c.image().topics.len(), 23);
    c.propose(create("after-restart", 1)).await.unwrap();
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_is_exclusive_and_bound_to_its_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(dir.path(), 1).await.unwrap();
    let err = Controller::open(dir.path(), 1)
        .await
        .err()
        .expect("second open must fail");
    assert!(
        matches!(
            err,
            ControllerError::Storage {
                source: StoreError::Locked { .. }
            }
        ),
        "{err}"
    );
    c.shutdown().await.unwrap();

    let err = Controller::open(dir.path(), 2)
        .await
        .err()
        .expect("wrong node id must fail");
    assert!(
        matches!(err, ControllerError::NotAVoter { node_id: 2, .. }),
        "{err}"
    );
}

fn cut_log(dir: &Path, bytes: u64) {
    let path = dir.join(LOG_FILE);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - bytes).unwrap();
}

fn append_to_log(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let path = dir.join(LOG_FILE);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

#[tokio::test]
async fn producer_id_blocks_are_never_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let c = Controller::open(dir.path(), 1).await.unwrap();
    let a = c.allocate_producer_ids(1000).await.unwrap();
    let b = c.allocate_producer_ids(10).await.unwrap();
    assert_eq!((a.clone(), b.clone()), (0..1000, 1000..1010));
    assert!(matches!(
        c.allocate_producer_ids(0).await,
        Err(ControllerError::Rejected(
            ApplyError::InvalidProducerIdBlock { .. }
        ))
    ));
    c.shutdown().await.unwrap();

    let c = Controller::open(dir.path(), 1).await.unwrap();
    assert_eq!(c.allocate_producer_ids(5).await.unwrap(), 1010..1015);
    c.shutdown().await.unwrap();
}
