//! The last hour of a few of this broker's own series, in memory, for the web console's
//! charts: no Prometheus needed (and none disturbed: this reads the same registry that
//! `GET /metrics` encodes).
//!
//! [`spawn_sampler`] reads the registry every `console.metrics.sample.interval.ms` and
//! [`History::record`]s the series named in [`SAMPLED`], summed over the labels it does not
//! keep (partitions), so a series is one of (name, topic, request, group). Each series is
//! a ring of at most `3600 s / interval` points; a series that stopped (a deleted topic)
//! is dropped once its last point is an hour old, and at most [`MAX_SERIES`] are kept, so
//! memory is bounded whatever the label count. Counters are kept as sampled (cumulative);
//! [`History::rate`] turns them into per-second rates when a page asks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The series the console charts (Prometheus names).
pub const SAMPLED: &[&str] = &[
    "strata_produce_bytes_total",
    "strata_fetch_bytes_total",
    "strata_tier_upload_bytes_total",
    "strata_tier_store_bytes_total",
    "strata_tier_store_requests_total",
    "strata_tier_cache_hits_total",
    "strata_tier_cache_misses_total",
    "strata_consumer_group_lag",
];
/// The labels a series keeps; the others (partition) are summed over.
const KEPT_LABELS: &[&str] = &["topic", "request", "group"];
/// At most this many series (the rest are not sampled until some are dropped).
pub const MAX_SERIES: usize = 2000;
/// How far back the history goes.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// One sample: milliseconds since the epoch and the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t_ms: i64,
    pub v: f64,
}

/// A bounded ring of points, oldest first.
#[derive(Debug, Clone)]
pub struct Ring {
    cap: usize,
    points: VecDeque<Point>,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            cap: cap.max(2),
            points: VecDeque::new(),
        }
    }

    /// Appends `p`, dropping the oldest point when full.
    pub fn push(&mut self, p: Point) {
        if self.points.len() == self.cap {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }

    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn last(&self) -> Option<&Point> {
        self.points.back()
    }
}

/// One series' identity: its name and the kept labels, sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

impl Key {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sampled series.
#[derive(Debug)]
pub struct History {
    cap: usize,
    series: BTreeMap<Key, Ring>,
    last_t_ms: Option<i64>,
}

impl History {
    /// A history of `cap` points per series.
    pub fn new(cap: usize) -> History {
        History {
            cap,
            series: BTreeMap::new(),
            last_t_ms: None,
        }
    }

    /// The capacity for one hour at `interval`.
    pub fn cap_for(interval: Duration) -> usize {
        (WINDOW.as_millis() / interval.as_millis().max(1)) as usize + 1
    }

    /// Records one sampling at `t_ms` (samples with the same key are summed). A series
    /// seen for the first time after the first sampling starts from 0 at the previous
    /// sampling, so that a counter created between two samplings counts from zero.
    pub fn record(&mut self, t_ms: i64, samples: impl IntoIterator<Item = (Key, f64)>) {
        let mut now: BTreeMap<Key, f64> = BTreeMap::new();
        for (k, v) in samples {
            *now.entry(k).or_default() += v;
        }
        for (k, v) in now {
            if !self.series.contains_key(&k) {
                if self.series.len() >= MAX_SERIES {
                    continue;
                }
                let mut ring = Ring::new(self.cap);
                if let Some(prev) = self.last_t_ms {
                    ring.push(Point { t_ms: prev, v: 0.0 });
                }
                self.series.insert(k.clone(), ring);
            }
            if let Some(ring) = self.series.get_mut(&k) {
                ring.push(Point { t_ms, v });
            }
        }
        let oldest = t_ms - WINDOW.as_millis() as i64;
        self.series
            .retain(|_, r| r.last().is_some_and(|p| p.t_ms >= oldest));
        self.last_t_ms = Some(t_ms);
    }

    /// The series matching `select`.
    pub fn select<'a>(
        &'a self,
        select: impl Fn(&Key) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a Key, &'a Ring)> + 'a {
        self.series.iter().filter(move |(k, _)| select(k))
    }

    /// The per-second rate of the counters matching `select`, summed at each sampling
    /// time: (v1 - v0) / (t1 - t0) at t1; a counter that went down (a restart of its
    /// source) counts from 0.
    pub fn rate(&self, select: impl Fn(&Key) -> bool) -> Vec<Point> {
        let mut at: BTreeMap<i64, f64> = BTreeMap::new();
        for (_, ring) in self.select(select) {
            let pts: Vec<&Point> = ring.points().collect();
            for w in pts.windows(2) {
                let (a, b) = (w[0], w[1]);
                let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
                if dt <= 0.0 {
                    continue;
                }
                let delta = if b.v >= a.v { b.v - a.v } else { b.v };
                *at.entry(b.t_ms).or_default() += delta / dt;
            }
        }
        at.into_iter().map(|(t_ms, v)| Point { t_ms, v }).collect()
    }

    /// The gauges matching `select`, summed at each sampling time.
    pub fn sum(&self, select: impl Fn(&Key) -> bool) -> Vec<Point> {
        let mut at: BTreeMap<i64, f64> = BTreeMap::new();
        for (_, ring) in self.select(select) {
            for p in ring.points() {
                *at.entry(p.t_ms).or_default() += p.v;
            }
        }
        at.into_iter().map(|(t_ms, v)| Point { t_ms, v }).collect()
    }
}

/// The samples of [`SAMPLED`] in a Prometheus text exposition, keyed by their kept labels.
pub fn samples(text: &str) -> Vec<(Key, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        if !SAMPLED.contains(&name) {
            continue;
        }
        let labels = KEPT_LABELS
            .iter()
            .filter_map(|l| super::label(labels, l).map(|v| (l.to_string(), v.to_string())))
            .collect();
        out.push((
            Key {
                name: name.to_string(),
                labels,
            },
            v,
        ));
    }
    out
}

/// The shared history the console reads.
pub type Shared = Arc<Mutex<History>>;

/// Samples this broker's registry every `interval` into a new history until `shutdown`.
pub fn spawn_sampler(interval: Duration, mut shutdown: watch::Receiver<bool>) -> Shared {
    let history = Arc::new(Mutex::new(History::new(History::cap_for(interval))));
    let h = history.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let text = super::text(SAMPLED);
                    let s = samples(&text);
                    h.lock().record(crate::now_ms(), s);
                }
                _ = shutdown.changed() => return,
            }
        }
    });
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, topic: &str) -> Key {
        Key {
            name: name.into(),
            labels: vec![("topic".into(), topic.into())],
        }
    }

    #[test]
    fn a_ring_keeps_the_newest_points() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(Point {
                t_ms: i,
                v: i as f64,
            });
        }
        let ts: Vec<i64> = r.points().map(|p| p.t_ms).collect();
        assert_eq!(ts, vec![2, 3, 4]);
        assert_eq!(History::cap_for(Duration::from_secs(10)), 361);
    }

    #[test]
    fn rates_sum_series_and_survive_new_series_and_resets() {
        let mut h = History::new(10);
        let p = "strata_produce_bytes_total";
        h.record(0, [(key(p, "a"), 100.0)]);
        // b appears: it counts from 0 at the previous sampling.
        h.record(10_000, [(key(p, "a"), 200.0), (key(p, "b"), 50.0)]);
        // a restarts from 0 (its source restarted): 30 counted, not -170.
        h.record(20_000, [(key(p, "a"), 30.0), (key(p, "b"), 50.0)]);
        let all = h.rate(|k| k.name == p);
        assert_eq!(
            all,
            vec![
                Point {
                    t_ms: 10_000,
                    v: 15.0
                },
                Point {
                    t_ms: 20_000,
                    v: 3.0
                }
            ]
        );
        let b = h.rate(|k| k.label("topic") == Some("b"));
        assert_eq!(
            b[0],
            Point {
                t_ms: 10_000,
                v: 5.0
            }
        );
    }

    #[test]
    fn samples_keep_topic_request_and_group_and_sum_partitions() {
        let text = "# TYPE x counter\n\
            strata_tier_upload_bytes_total{partition=\"0\",topic=\"t\"} 5\n\
            strata_tier_upload_bytes_total{partition=\"1\",topic=\"t\"} 7\n\
            strata_tier_store_requests_total{request=\"put\",topic=\"t\"} 3\n\
            strata_requests_total{api=\"Produce\"} 9\n";
        let mut h = History::new(4);
        h.record(1000, samples(text));
        let up = h.sum(|k| k.name == "strata_tier_upload_bytes_total");
        assert_eq!(
            up,
            vec![Point {
                t_ms: 1000,
                v: 12.0
            }]
        );
        let keys: Vec<&Key> = h.select(|_| true).map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0].label("request"), Some("put"));
    }

    #[test]
    fn stopped_series_are_dropped_after_the_window_and_series_are_bounded() {
        let mut h = History::new(4);
        h.record(0, [(key("strata_fetch_bytes_total", "gone"), 1.0)]);
        let later = WINDOW.as_millis() as i64 + 1;
        h.record(later, [(key("strata_fetch_bytes_total", "live"), 1.0)]);
        let names: Vec<_> = h
            .select(|_| true)
            .map(|(k, _)| k.labels[0].1.clone())
            .collect();
        assert_eq!(names, vec!["live"]);
        let many =
            (0..MAX_SERIES + 10).map(|i| (key("strata_fetch_bytes_total", &i.to_string()), 1.0));
        h.record(later + 1, many);
        assert_eq!(h.select(|_| true).count(), MAX_SERIES);
    }
}
