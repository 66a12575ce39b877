//! DescribeTopicPartitions (KIP-966) over raw frames: topics in name order, partitions
//! paged by `response_partition_limit` with a cursor that resumes exactly after the last
//! partition answered, unknown topics named as such.

use std::io::Write;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::bad_input::{connect, frame, read_frame};
use crate::harness::Broker;
use crate::kafka::create_topic;

fn describe(b: &Broker, req: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let api = ApiKey::DescribeTopicPartitions;
    let mut s = connect(b);
    s.write_all(&frame(api, 0, req)).unwrap();
    let mut body = read_frame(&mut s).expect("a response");
    ResponseHeader::decode(&mut body, api.response_header_version(0)).unwrap();
    DescribeTopicPartitionsResponse::decode(&mut body, 0).unwrap()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_partitions_follow_the_cursor() {
    let b = Broker::start(&[]);
    create_topic(&b.addr, "dtp-b", 3, &[]).await;
    create_topic(&b.addr, "dtp-a", 4, &[]).await;
    let topics = vec![
        TopicRequest::default().with_name(name("dtp-b")),
        TopicRequest::default().with_name(name("dtp-a")),
        TopicRequest::default().with_name(name("dtp-missing")),
    ];
    // Walk all pages of 3 partitions and collect (topic, partition) in order.
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(topics.clone())
            .with_response_partition_limit(3)
            .with_cursor(cursor.take());
        let resp = describe(&b, &req);
        let page: usize = resp.topics.iter().map(|t| t.partitions.len()).sum();
        assert!(page <= 3, "{resp:?}");
        for t in &resp.topics {
            let n = t.name.as_ref().unwrap().0.to_string();
            if t.error_code != 0 {
                errors.push((n.clone(), t.error_code));
            }
            for p in &t.partitions {
                assert_eq!(p.replica_nodes.len(), 1);
                assert!(p.leader_id.0 >= 0);
                seen.push((n.clone(), p.partition_index));
            }
        }
        match resp.next_cursor {
            Some(c) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(c.topic_name)
                        .with_partition_index(c.partition_index),
                )
            }
            None => break,
        }
    }
    let want: Vec<(String, i32)> = (0..4)
        .map(|p| ("dtp-a".to_string(), p))
        .chain((0..3).map(|p| ("dtp-b".to_string(), p)))
        .collect();
    assert_eq!(seen, want);
    assert_eq!(
        errors,
        vec![(
            "dtp-missing".to_string(),
            ResponseError::UnknownTopicOrPartition.code()
        )]
    );
    // No topics named: every topic, internal ones included.
    let all = describe(
        &b,
        &DescribeTopicPartitionsRequest::default().with_response_partition_limit(2000),
    );
    let names: Vec<String> = all
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert!(
        names.contains(&"dtp-a".to_string()) && names.contains(&"dtp-b".to_string()),
        "{names:?}"
    );
}
