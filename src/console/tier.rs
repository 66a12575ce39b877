//! The Tier page: what the remote tier did on this broker since it started, from its own
//! metrics (`metrics::text`, the series `GET /metrics` shows): object store requests by
//! kind and the bytes they carried, per topic, with their cost at the
//! `console.tier.price.*` prices (`cli::tier_costs`, as `strata tier status --costs`
//! counts), chunk cache hits and misses, and charts of upload and remote-read throughput
//! and of requests over the last hour (the sampler's history).
//!
//! Topics are shown only when Metadata with the page's credentials lists them, so a user
//! sees the object store traffic of the topics its ACLs let it describe (the bucket-wide
//! row, requests with no topic such as listings, is shown to all).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::chart::{self, Line, Unit};
use super::{failed, page, Console};
use crate::cli::tier_costs::{self, TopicCosts, Totals};
use crate::cli::{topic, CliError};

/// Request kinds, in the order of the table's columns.
const KINDS: &[&str] = &[
    "put",
    "get",
    "head",
    "list",
    "delete",
    "copy",
    "multipart_create",
    "multipart_part",
    "multipart_complete",
    "multipart_abort",
];

/// Cache hits and misses per topic, summed over partitions.
fn cache(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let topic = crate::metrics::label(labels, "topic").unwrap_or_default();
        match name {
            "strata_tier_cache_hits_total" => out.entry(topic.to_string()).or_default().0 += v,
            "strata_tier_cache_misses_total" => out.entry(topic.to_string()).or_default().1 += v,
            _ => {}
        }
    }
    out
}

fn rate(hits: f64, misses: f64) -> String {
    if hits + misses > 0.0 {
        format!("{:.1}%", 100.0 * hits / (hits + misses))
    } else {
        "-".into()
    }
}

pub async fn tier_page(State(c): State<Arc<Console>>) -> Response {
    // The topics this user may describe.
    let visible = async {
        let mut client = c.client().await?;
        let md = topic::metadata(&mut client, None).await?;
        Ok::<_, CliError>(
            md.topics
                .iter()
                .filter(|t| t.error_code == 0)
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect::<BTreeSet<String>>(),
        )
    };
    let visible = match visible.await {
        Ok(v) => v,
        Err(e) => return failed("Tier", e),
    };
    let shown = |t: &str| t.is_empty() || visible.contains(t);
    let text = crate::metrics::text(&[
        "strata_tier_store_requests_total",
        "strata_tier_store_bytes_total",
        "strata_tier_upload_segments_total",
        "strata_tier_cache_hits_total",
        "strata_tier_cache_misses_total",
    ]);
    let costs: BTreeMap<String, TopicCosts> = tier_costs::parse(&text)
        .into_iter()
        .filter(|(t, _)| shown(t))
        .collect();
    let cache: BTreeMap<String, (f64, f64)> =
        cache(&text).into_iter().filter(|(t, _)| shown(t)).collect();
    let prices = c.prices;
    let mut total = Totals::default();
    for t in costs.values() {
        total.add(&t.totals());
    }
    let (hits, misses) = cache
        .values()
        .fold((0.0, 0.0), |(h, m), (a, b)| (h + a, m + b));
    let charts = charts(&c, &|t: &str| shown(t));
    let body = html! {
        p { "Object store traffic of this broker since it started, and what it costs at "
            (prices.write_requests_per_1000) " per 1000 writes, " (prices.read_requests_per_1000)
            " per 1000 reads, " (prices.per_gb_sent) " per GB sent and " (prices.per_gb_received)
            " per GB received (console.tier.price.*)." }
        table #tier-summary {
            tr { th { "Cost" } td #cost { (format!("{:.4}", total.cost(&prices))) } }
            tr { th { "GB sent" } td #gb-sent { (format!("{:.6}", total.gb_sent)) } }
            tr { th { "GB received" } td #gb-received { (format!("{:.6}", total.gb_received)) } }
            tr { th { "Segments uploaded" } td #segments { (costs.values().map(|t| t.segments).sum::<f64>()) } }
            tr { th { "Cache hit rate" } td #hit-rate { (rate(hits, misses)) } }
        }
        (charts)
        h2 { "Requests by topic" }
        table #requests {
            thead { tr {
                th { "Topic" }
                @for k in KINDS { th { (k) } }
                th { "GB sent" } th { "GB received" } th { "Cost" }
            } }
            tbody {
                @for (t, tc) in &costs {
                    @let tot = tc.totals();
                    tr data-topic=(t) {
                        td { @if t.is_empty() { "(bucket)" } @else { (t) } }
                        @for k in KINDS {
                            td data-request=(k) { (tc.requests.get(*k).copied().unwrap_or(0.0)) }
                        }
                        td.gb-sent { (format!("{:.6}", tot.gb_sent)) }
                        td.gb-received { (format!("{:.6}", tot.gb_received)) }
                        td.cost { (format!("{:.4}", tot.cost(&prices))) }
                    }
                }
            }
        }
        h2 { "Chunk cache" }
        table #cache {
            thead { tr { th { "Topic" } th { "Hits" } th { "Misses" } th { "Hit rate" } } }
            tbody {
                @for (t, (h, m)) in &cache {
                    tr data-topic=(t) {
                        td { (t) } td.hits { (h) } td.misses { (m) } td.hit-rate { (rate(*h, *m)) }
                    }
                }
            }
        }
        p.note { "A remote read is a hit when every chunk it needed was cached. In a cluster, each broker counts its own uploads and reads: this page shows this broker's." }
    };
    Html(page("Tier", body).into_string()).into_response()
}

/// Upload and remote-read throughput, requests per second and cache hits over the last
/// hour, summed over the visible topics.
fn charts(c: &Console, shown: &dyn Fn(&str) -> bool) -> Markup {
    let h = c.history.lock();
    let topic_ok = |k: &crate::metrics::history::Key| shown(k.label("topic").unwrap_or(""));
    let throughput = [
        Line {
            name: "upload".into(),
            points: h.rate(|k| k.name == "strata_tier_upload_bytes_total" && topic_ok(k)),
        },
        Line {
            name: "remote read (GET)".into(),
            points: h.rate(|k| {
                k.name == "strata_tier_store_bytes_total"
                    && k.label("request") == Some("get")
                    && topic_ok(k)
            }),
        },
    ];
    let requests = [
        Line {
            name: "requests".into(),
            points: h.rate(|k| k.name == "strata_tier_store_requests_total" && topic_ok(k)),
        },
        Line {
            name: "cache hits".into(),
            points: h.rate(|k| k.name == "strata_tier_cache_hits_total" && topic_ok(k)),
        },
        Line {
            name: "cache misses".into(),
            points: h.rate(|k| k.name == "strata_tier_cache_misses_total" && topic_ok(k)),
        },
    ];
    let now = crate::now_ms();
    html! {
        (chart::render("tier-throughput", "Tier throughput", Unit::BytesPerSecond, &throughput, now))
        (chart::render("tier-requests", "Object store requests and cache lookups", Unit::PerSecond, &requests, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lookups_are_summed_by_topic() {
        let text = "strata_tier_cache_hits_total{partition=\"0\",topic=\"t\"} 3\n\
            strata_tier_cache_hits_total{partition=\"1\",topic=\"t\"} 1\n\
            strata_tier_cache_misses_total{partition=\"0\",topic=\"t\"} 4\n";
        let c = cache(text);
        assert_eq!(c["t"], (4.0, 4.0));
        assert_eq!(rate(4.0, 4.0), "50.0%");
        assert_eq!(rate(0.0, 0.0), "-");
    }
}
