//! Unit tests of the metadata state machine's `apply`.

use super::*;

#[test]
fn producer_id_blocks_never_overlap() {
    let mut image = MetadataImage::default();
    let alloc = |count| MetadataCommand::AllocateProducerIds { count };
    apply(&mut image, &alloc(1000)).unwrap();
    assert_eq!(image.next_producer_id, 1000);
    apply(&mut image, &alloc(5)).unwrap();
    assert_eq!(image.next_producer_id, 1005);
    for bad in [0, -1, MAX_PRODUCER_ID_BLOCK + 1] {
        assert!(apply(&mut image, &alloc(bad)).is_err());
    }
    image.next_producer_id = i64::MAX - 1;
    assert!(apply(&mut image, &alloc(5)).is_err());
    assert_eq!(image.next_producer_id, i64::MAX - 1);
    // Images persisted before producer ids existed load with the counter at 0.
    let old: MetadataImage =
        serde_json::from_str(r#"{"cluster_id":"c","topics":{},"broker_configs":{},"brokers":{}}"#)
            .unwrap();
    assert_eq!(old.next_producer_id, 0);
}

fn create(name: &str, partitions: i32) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.to_string(),
        id: Uuid::new_v4(),
        partitions,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        internal: false,
        assignment: vec![],
        placement_start: 0,
    }
}

fn image_with(name: &str, partitions: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    apply(&mut image, &create(name, partitions)).unwrap();
    image
}

#[test]
fn create_topic_then_duplicate_is_rejected_without_change() {
    let mut image = image_with("orders", 3);
    let before = image.clone();
    let err = apply(&mut image, &create("orders", 5)).unwrap_err();
    assert_eq!(
        err,
        ApplyError::TopicAlreadyExists {
            name: "orders".into()
        }
    );
    assert_eq!(image, before);
    assert_eq!(image.topics["orders"].partitions, 3);
    assert_eq!(image.topics["orders"].configs["retention.ms"], "1000");
}

#[test]
fn create_topic_validates_partitions_and_replication_factor() {
    let mut image = MetadataImage::default();
    for bad in [0, -1] {
        let err = apply(&mut image, &create("t", bad)).unwrap_err();
        assert!(matches!(err, ApplyError::InvalidPartitions { requested, .. } if requested == bad));
    }
    let cmd = MetadataCommand::CreateTopic {
        name: "t".into(),
        id: Uuid::new_v4(),
        partitions: 1,
        replication_factor: 0,
        configs: BTreeMap::new(),
        internal: false,
        assignment: vec![],
        placement_start: 0,
    };
    assert!(matches!(
        apply(&mut image, &cmd),
        Err(ApplyError::InvalidReplicationFactor { requested: 0, .. })
    ));
    assert!(image.topics.is_empty());
}

#[test]
fn delete_topic_and_unknown_topic() {
    let mut image = image_with("a", 1);
    apply(
        &mut image,
        &MetadataCommand::DeleteTopic { name: "a".into() },
    )
    .unwrap();
    assert!(image.topics.is_empty());
    let unknown = ApplyError::UnknownTopic { name: "a".into() };
    let cmds = [
        MetadataCommand::DeleteTopic { name: "a".into() },
        MetadataCommand::CreatePartitions {
            name: "a".into(),
            total: 2,
            assignment: vec![],
        },
        MetadataCommand::SetTopicConfigs {
            name: "a".into(),
            configs: BTreeMap::new(),
        },
    ];
    for cmd in &cmds {
        assert_eq!(apply(&mut image, cmd).unwrap_err(), unknown);
    }
}

#[test]
fn create_partitions_only_grows() {
    let mut image = image_with("a", 3);
    for total in [3, 2, 0] {
        let err = apply(
            &mut image,
            &MetadataCommand::CreatePartitions {
                name: "a".into(),
                total,
                assignment: vec![],
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            ApplyError::InvalidPartitions {
                name: "a".into(),
                current: 3,
                requested: total
            }
        );
    }
    apply(
        &mut image,
        &MetadataCommand::CreatePartitions {
            name: "a".into(),
            total: 7,
            assignment: vec![],
        },
    )
    .unwrap();
    assert_eq!(image.topics["a"].partitions, 7);
}

#[test]
fn configs_are_replaced_not_merged() {
    let mut image = image_with("a", 1);
    let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    let cmd = MetadataCommand::SetTopicConfigs {
        name: "a".into(),
        configs: configs.clone(),
    };
    apply(&mut image, &cmd).unwrap();
    assert_eq!(image.topics["a"].configs, configs);

    let broker = BTreeMap::from([("log.retention.ms".to_string(), "5".to_string())]);
    apply(
        &mut image,
        &MetadataCommand::SetBrokerConfigs {
            configs: broker.clone(),
        },
    )
    .unwrap();
    assert_eq!(image.broker_configs, broker);
    apply(
        &mut image,
        &MetadataCommand::SetBrokerConfigs {
            configs: BTreeMap::new(),
        },
    )
    .unwrap();
    assert!(image.broker_configs.is_empty());
}

#[test]
fn register_broker_replaces_registration() {
    let mut image = MetadataImage::default();
    let mut broker = BrokerMeta {
        node_id: 1,
        host: "a".into(),
        port: 9092,
        endpoints: Vec::new(),
        rack: None,
        fenced: false,
        shutting_down: false,
    };
    apply(&mut image, &MetadataCommand::RegisterBroker(broker.clone())).unwrap();
    broker.host = "b".into();
    apply(&mut image, &MetadataCommand::RegisterBroker(broker.clone())).unwrap();
    assert_eq!(image.brokers.len(), 1);
    assert_eq!(image.brokers[&1], broker);
}

#[test]
fn cluster_id_is_set_once() {
    let mut image = MetadataImage::default();
    let id = new_cluster_id();
    assert_eq!(id.len(), 22);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    apply(
        &mut image,
        &MetadataCommand::InitializeCluster {
            cluster_id: id.clone(),
        },
    )
    .unwrap();
    // Re-applying the same id is harmless; a different one is refused.
    apply(
        &mut image,
        &MetadataCommand::InitializeCluster {
            cluster_id: id.clone(),
        },
    )
    .unwrap();
    let other = MetadataCommand::InitializeCluster {
        cluster_id: new_cluster_id(),
    };
    assert!(matches!(
        apply(&mut image, &other),
        Err(ApplyError::ClusterIdAlreadySet { .. })
    ));
    assert_eq!(image.cluster_id, id);
}

#[test]
fn a_broker_that_registers_again_leaves_the_isrs_and_leaderships_until_it_catches_up() {
    let mut image = MetadataImage::default();
    let broker = |id: i32| BrokerMeta {
        node_id: id,
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        endpoints: Vec::new(),
        rack: None,
        fenced: false,
        shutting_down: false,
    };
    for id in 1..=3 {
        apply(&mut image, &MetadataCommand::RegisterBroker(broker(id))).unwrap();
    }
    let create = MetadataCommand::CreateTopic {
        name: "t".into(),
        id: Uuid::new_v4(),
        partitions: 2,
        replication_factor: 3,
        configs: BTreeMap::new(),
        internal: false,
        assignment: vec![vec![1, 2, 3], vec![2, 3, 1]],
        placement_start: 0,
    };
    apply(&mut image, &create).unwrap();
    let single = MetadataCommand::CreateTopic {
        name: "single".into(),
        id: Uuid::new_v4(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::new(),
        internal: false,
        assignment: vec![vec![1]],
        placement_start: 0,
    };
    apply(&mut image, &single).unwrap();
    let before = image.topics["t"].assignment.clone();

    // Node 1 restarts (perhaps with a wiped disk) before anyone fenced it.
    apply(&mut image, &MetadataCommand::RegisterBroker(broker(1))).unwrap();
    let t = &image.topics["t"];
    assert_eq!(t.assignment[0].isr, vec![2, 3]);
    assert_eq!(
        t.assignment[0].leader, 2,
        "leadership moves to an in-sync replica"
    );
    assert_eq!(t.assignment[0].leader_epoch, before[0].leader_epoch + 1);
    assert_eq!(t.assignment[1].isr, vec![2, 3]);
    assert_eq!(t.assignment[1].leader, 2);
    assert_eq!(t.assignment[1].leader_epoch, before[1].leader_epoch);
    assert!(t.assignment[1].partition_epoch > before[1].partition_epoch);
    // The only replica keeps its partition: nobody else has the data.
    let s = &image.topics["single"].assignment[0];
    assert_eq!((s.leader, s.isr.clone()), (1, vec![1]));
}
