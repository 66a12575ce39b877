//! The admin CLI (`strata topic|group|tier`) of the real binary against a real broker:
//! the full topic lifecycle, errors that name what is wrong, features the broker does
//! not serve reported as such, and the cleaner state `topic describe` shows for
//! compacted topics.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;

use crate::harness::Broker;
use crate::kafka::{create_topic, producer};

fn strata(addr: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(addr)
        .arg("--timeout-ms")
        .arg("20000")
        .output()
        .expect("run strata")
}

fn ok(addr: &str, args: &[&str]) -> String {
    let out = strata(addr, args);
    assert!(
        out.status.success(),
        "strata {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(addr: &str, args: &[&str]) -> String {
    let out = strata(addr, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "strata {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn topic_lifecycle_through_the_cli() {
    let b = Broker::start(&[]);
    let a = b.addr.as_str();

    let out = ok(
        a,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=600000",
        ],
    );
    assert!(
        out.contains("created topic 'orders' with 3 partition(s)"),
        "{out}"
    );
    ok(a, &["topic", "create", "audit", "-p", "1"]);

    let list = ok(a, &["topic", "list"]);
    // Like kafka-topics.sh --list, internal topics (__consumer_offsets) are listed too.
    let user: Vec<_> = list.lines().filter(|t| !t.starts_with("__")).collect();
    assert_eq!(user, ["audit", "orders"]);
    assert!(list.lines().any(|t| t == "__consumer_offsets"), "{list}");

    let d = ok(a, &["topic", "describe", "orders"]);
    assert!(
        d.contains("Topic: orders") && d.contains("PartitionCount: 3"),
        "{d}"
    );
    assert!(d.contains("Configs: retention.ms=600000"), "{d}");
    assert_eq!(d.matches("\tPartition: ").count(), 3, "{d}");
    assert!(d.contains("Leader: 1"), "{d}");

    let out = ok(
        a,
        &[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "5",
            "--config",
            "segment.bytes=1048576",
            "--delete-config",
            "retention.ms",
        ],
    );
    assert!(out.contains("3 -> 5 partitions"), "{out}");
    let d = ok(a, &["topic", "describe", "orders"]);
    assert!(d.contains("PartitionCount: 5"), "{d}");
    assert!(
        d.contains("segment.bytes=1048576") && !d.contains("retention.ms"),
        "{d}"
    );

    // The change is what a Kafka client sees too: describe all lists both topics.
    let all = ok(a, &["topic", "describe"]);
    assert!(
        all.contains("Topic: audit") && all.contains("Topic: orders"),
        "{all}"
    );

    let out = ok(a, &["topic", "delete", "orders"]);
    assert!(out.contains("deleted topic 'orders'"), "{out}");
    let left = ok(a, &["topic", "list"]);
    let user: Vec<_> = left.lines().filter(|t| !t.starts_with("__")).collect();
    assert_eq!(user, ["audit"]);
}

#[test]
fn errors_name_the_topic_the_setting_and_the_broker() {
    let b = Broker::start(&[]);
    let a = b.addr.as_str();
    ok(a, &["topic", "create", "t", "-p", "1"]);

    let err = fails(a, &["topic", "create", "t"]);
    assert!(
        err.contains("'t'") && err.contains("TopicAlreadyExists"),
        "{err}"
    );
    for args in [
        &["topic", "describe", "missing"][..],
        &["topic", "alter", "missing", "-p", "4"],
        &["topic", "delete", "missing"],
    ] {
        let err = fails(a, args);
        assert!(err.contains("unknown topic 'missing'"), "{args:?}: {err}");
    }
    let err = fails(a, &["topic", "alter", "t", "-c", "no.such.setting=1"]);
    assert!(
        err.contains("no.such.setting") || err.contains("'t'"),
        "{err}"
    );
    let err = fails(
        a,
        &["topic", "alter", "t", "-p", "1", "-c", "retention.ms=oops"],
    );
    assert!(err.contains("'t'"), "{err}");

    let out = strata(a, &["topic", "alter", "t"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing to alter is a usage error"
    );

    // A port nobody listens on: the error names the address and what to check.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let err = fails(&dead, &["topic", "list"]);
    assert!(
        err.contains("cannot reach a broker at") && err.contains(&dead),
        "{err}"
    );
    assert!(err.contains("--bootstrap-server"), "{err}");
}

#[test]
fn groups_and_tier_report_what_the_broker_does_not_serve() {
    let b = Broker::start(&[]);
    let a = b.addr.as_str();
    ok(a, &["topic", "create", "t", "-p", "2"]);
    // Until consumer groups land, ListGroups is not in ApiVersions: say so plainly.
    // Once they land, listing works and an unknown group is named.
    let out = strata(a, &["group", "list"]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not supported by this broker"), "{err}");
    }
    let err = fails(a, &["group", "describe", "nobody"]);
    assert!(
        err.contains("not supported by this broker") || err.contains("unknown group 'nobody'"),
        "{err}"
    );
    // Without a remote tier configured, tier status says so; with one, it shows the
    // partitions.
    let out = strata(a, &["tier", "status"]);
    if out.status.success() {
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("t\t0\t") && table.contains("t\t1\t"),
            "{table}"
        );
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tiered storage is not supported by this broker"),
            "{err}"
        );
    }
    let err = fails(a, &["tier", "status", "missing"]);
    assert!(
        err.contains("unknown topic 'missing'") || err.contains("not supported by this broker"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_shows_the_cleanup_policy_and_the_cleaner_state() {
    let b = Broker::start(&[("log.cleaner.backoff.ms", "100")]);
    let a = b.addr.clone();
    create_topic(
        &a,
        "latest",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1024"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("segment.ms", "300"),
        ],
    )
    .await;
    create_topic(&a, "events", 1, &[]).await;

    // Several versions of the same keys, in rounds longer than segment.ms apart, so each
    // round rolls a segment and the older ones become cleanable.
    let p = producer(&a, &[]);
    for round in 0..6 {
        for k in 0..10 {
            let key = format!("key-{k}");
            let value = format!("value-{k}-v{round}");
            let rec = FutureRecord::to("latest")
                .partition(0)
                .key(&key)
                .payload(&value);
            p.send(rec, Duration::from_secs(30))
                .await
                .expect("delivered");
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    // __consumer_offsets is compacted too: wait for a pass over this topic's log.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b
        .log()
        .lines()
        .any(|l| l.contains("cleaned log") && l.contains("latest-0"))
    {
        assert!(
            Instant::now() < deadline,
            "no cleaning pass of latest-0 within 60 s; broker log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let d = ok(&a, &["topic", "describe", "latest"]);
    println!("{d}");
    let topic_line = d.lines().next().unwrap_or_default();
    assert!(
        topic_line.starts_with("Topic: latest") && topic_line.ends_with("CleanupPolicy: compact"),
        "{d}"
    );
    let cleaner: Vec<&str> = d
        .lines()
        .filter_map(|l| l.strip_prefix("\t\tCleaner: "))
        .collect();
    assert_eq!(cleaner.len(), 1, "one cleaner line per partition: {d}");
    let line = cleaner[0];
    assert!(
        line.starts_with("dirty ") && line.contains("first dirty offset"),
        "{d}"
    );
    assert!(
        line.contains("last pass ") && line.contains("records removed"),
        "{d}"
    );
    assert!(!line.contains("UNCLEANABLE"), "{d}");

    let d = ok(&a, &["topic", "describe", "events"]);
    println!("{d}");
    assert!(d.contains("CleanupPolicy: delete"), "{d}");
    assert!(!d.contains("Cleaner:"), "{d}");
}
