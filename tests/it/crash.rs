//! Crash safety: kill -9 under a produce load, and torn or corrupt segment tails.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

use crate::harness::Broker;
use crate::kafka::{consume, create_topic, produce_n, producer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_keeps_every_acknowledged_record() {
    let mut broker = Broker::start(&[("log.segment.bytes", "262144")]);
    create_topic(&broker.addr, "load", 1, &[]).await;
    // No retries: a record is written at most once, so duplicates would be our bug.
    let p = producer(
        &broker.addr,
        &[
            ("acks", "1"),
            ("retries", "0"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "5000"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<parking_lot::Mutex<Vec<(usize, i64)>>> = Default::default();
    let producing = {
        let (stop, acked) = (stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut inflight = Vec::new();
            let mut i = 0usize;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && i < 2_000_000 {
                let v = format!("rec-{i:09}-{}", "x".repeat(100));
                match p.send_result(FutureRecord::<(), _>::to("load").partition(0).payload(&v)) {
                    Ok(f) => inflight.push((i, f)),
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
                i += 1;
                if inflight.len() >= 1000 {
                    for (i, f) in inflight.drain(..) {
                        if let Ok(Ok(d)) = f.await {
                            acked.lock().push((i, d.offset));
                        }
                    }
                }
            }
            for (i, f) in inflight {
                if let Ok(Ok(d)) = f.await {
                    acked.lock().push((i, d.offset));
                }
            }
        })
    };
    // Let the load run until plenty is acknowledged, then crash the broker.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().len() < 30_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    producing.await.unwrap();
    let acked = acked.lock().clone();
    assert!(
        acked.len() >= 10_000,
        "only {} records acknowledged before the kill",
        acked.len()
    );

    broker.start_again();
    let expect_at_least = acked.iter().map(|(_, o)| *o).max().unwrap() + 1;
    let got = consume(
        &broker.addr,
        "load",
        0,
        Offset::Beginning,
        expect_at_least as usize,
        Duration::from_secs(120),
    );
    assert!(
        got.len() as i64 >= expect_at_least,
        "read {} records, {} acknowledged up to offset {}",
        got.len(),
        acked.len(),
        expect_at_least - 1
    );
    // No gap: offsets are 0..n in order.
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.offset, i as i64, "gap or reordering at {i}");
    }
    // Every acknowledged record is at its acknowledged offset; none appears twice.
    let by_offset: HashMap<i64, &[u8]> = got
        .iter()
        .map(|g| (g.offset, g.value.as_deref().unwrap()))
        .collect();
    for (i, offset) in &acked {
        let v = by_offset
            .get(offset)
            .unwrap_or_else(|| panic!("acknowledged offset {offset} lost"));
        assert!(
            v.starts_with(format!("rec-{i:09}-").as_bytes()),
            "offset {offset} holds the wrong record"
        );
    }
    let mut seen = std::collections::HashSet::new();
    for g in &got {
        assert!(
            seen.insert(g.value.clone()),
            "duplicate record at offset {}",
            g.offset
        );
    }
}

/// Produces `n` single-record batches, kills the broker, and returns the active segment.
async fn crashed_log(n: usize) -> (Broker, PathBuf) {
    let mut broker = Broker::start(&[]);
    create_topic(&broker.addr, "tail", 1, &[]).await;
    let p = producer(
        &broker.addr,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    for i in 0..n {
        let v = format!("tail-{i}");
        p.send(
            FutureRecord::<(), _>::to("tail").partition(0).payload(&v),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    broker.kill9();
    let seg = broker.data.join("tail-0").join(format!("{:020}.log", 0));
    assert!(seg.exists(), "segment file {}", seg.display());
    (broker, seg)
}

/// Restarts and checks: `kept` records survive, new appends continue at `kept`.
async fn check_recovered(broker: &mut Broker, kept: usize) {
    broker.start_again();
    let log = broker.log();
    assert!(
        log.contains("00000000000000000000.log"),
        "recovery warning should name the file; log:\n{log}"
    );
    let got = consume(
        &broker.addr,
        "tail",
        0,
        Offset::Beginning,
        kept,
        Duration::from_secs(20),
    );
    assert_eq!(got.len(), kept);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.value.as_deref(), Some(format!("tail-{i}").as_bytes()));
    }
    let p = producer(&broker.addr, &[]);
    assert_eq!(
        produce_n(&p, "tail", 0, 1).await,
        vec![kept as i64],
        "appends continue without a gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_truncated_at_last_whole_batch() {
    let (mut broker, seg) = crashed_log(50).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    check_recovered(&mut broker, 49).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_tail_is_truncated() {
    let (mut broker, seg) = crashed_log(50).await;
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xAB; 333]).unwrap();
    check_recovered(&mut broker, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_last_batch_is_truncated() {
    let (mut broker, seg) = crashed_log(50).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    f.seek(SeekFrom::Start(len - 3)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(len - 3)).unwrap();
    f.write_all(&[b[0] ^ 0xFF]).unwrap();
    drop(f);
    check_recovered(&mut broker, 49).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_indexes_are_rebuilt() {
    let (mut broker, seg) = crashed_log(30).await;
    std::fs::remove_file(seg.with_extension("index")).unwrap();
    std::fs::remove_file(seg.with_extension("timeindex")).unwrap();
    broker.start_again();
    let got = consume(
        &broker.addr,
        "tail",
        0,
        Offset::Offset(17),
        13,
        Duration::from_secs(20),
    );
    assert_eq!(got.first().map(|g| g.offset), Some(17));
    assert_eq!(got.len(), 13);
}
