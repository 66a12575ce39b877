//! moto (an S3 server in one Python process) and a broker whose remote tier is on it, for the
//! remote-tier load examples (each includes this file with `#[path]`; it is not an example of
//! its own). Everything binds 127.0.0.1 on ephemeral ports; processes are killed on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::broker::{self, http, Broker, Proc, Res};

pub const BUCKET: &str = "strata-bench";

pub fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The `remote.storage.*` settings of the bucket at `endpoint` under `url`.
pub fn remote_settings<'a>(url: &'a str, endpoint: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("remote.storage.url", url),
        ("remote.storage.s3.endpoint", endpoint),
        ("remote.storage.s3.region", "us-east-1"),
        ("remote.storage.s3.path.style", "true"),
        ("remote.storage.s3.access.key.id", "test"),
        ("remote.storage.s3.secret.access.key", "test"),
    ]
}

/// The broker with its remote tier on moto at `endpoint` (disk chunk cache off).
pub fn start_broker(data: &std::path::Path, endpoint: &str, extra: &[(&str, &str)]) -> Res<Broker> {
    let url = format!("s3://{BUCKET}/bench");
    let mut settings = remote_settings(&url, endpoint);
    settings.extend_from_slice(&[
        ("remote.log.manager.task.interval.ms", "200"),
        ("remote.cache.disk.size.bytes", "0"),
    ]);
    settings.extend_from_slice(extra);
    broker::start_broker(data, &settings)
}

/// moto on an ephemeral port with the bucket created; `TIER_BENCH_MOTO_CPUS` pins it
/// (`taskset -c`) and puts its temporary files in `/dev/shm`.
pub fn start_moto() -> Res<(Proc, String)> {
    let port = free_port()?;
    let mut cmd = match std::env::var("TIER_BENCH_MOTO_CPUS") {
        Ok(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpus, "moto_server"])
                .env("TMPDIR", "/dev/shm");
            c
        }
        Err(_) => Command::new("moto_server"),
    };
    let child = cmd
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("moto_server (pip install 'moto[server]'): {e}"))?;
    let moto = Proc(child);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if let Ok((200, _)) = http(&addr, "PUT", &format!("/{BUCKET}")) {
            return Ok((moto, format!("http://{addr}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("moto did not start within 10 s".into())
}

/// The S3 server's own ceiling in the same run: GETs of every tiered `.log` object under
/// `bench/`, `conc` at a time for each of `concurrency`, with `object_store`. Returns the
/// MB/s of each.
#[allow(dead_code)] // not every example that includes this file times raw GETs
pub fn raw_gets(endpoint: &str, concurrency: &[usize]) -> Res<Vec<f64>> {
    use futures::{StreamExt, TryStreamExt};
    use strata_tier::object_store::ObjectStoreExt;
    let opts = strata_tier::S3Options {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    let store = strata_tier::open_store(&format!("s3://{BUCKET}/bench"), &opts)
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let keys: Vec<_> = store
            .list(None)
            .try_filter(|o| futures::future::ready(o.location.as_ref().ends_with(".log")))
            .map_ok(|o| o.location)
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        let mut rates = Vec::new();
        for &conc in concurrency {
            let t = Instant::now();
            let bytes: Vec<usize> = futures::stream::iter(keys.iter())
                .map(|k| {
                    let store = store.clone();
                    async move { store.get(k).await?.bytes().await.map(|b| b.len()) }
                })
                .buffer_unordered(conc)
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            let total: usize = bytes.iter().sum();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "raw object_store GETs of the {} .log objects, {conc} at a time: {:.1} MB in {secs:.2} s = {:.1} MB/s",
                keys.len(),
                total as f64 / 1e6,
                total as f64 / 1e6 / secs
            );
            rates.push(total as f64 / 1e6 / secs);
        }
        Ok(rates)
    })
}

/// The `.log` files of `topic`'s partitions left in the data dir `data`.
#[allow(dead_code)]
pub fn local_log_files(data: &std::path::Path, topic: &str) -> usize {
    let Ok(dirs) = std::fs::read_dir(data) else {
        return 0;
    };
    dirs.filter_map(Result::ok)
        .filter(|d| {
            d.file_name()
                .to_string_lossy()
                .starts_with(&format!("{topic}-"))
        })
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|files| files.filter_map(Result::ok))
        .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
        .count()
}
