//! The built-in web console (issue 20): HTML pages served by the broker over HTTP on
//! `console.listener`.
//!
//! The console reads the cluster the way a Kafka client does: each page connects to this
//! broker's own PLAINTEXT or SASL_PLAINTEXT listener with [`Client`] and asks Metadata,
//! DescribeCluster, DescribeQuorum and DescribeConfigs, through the same gathering functions
//! the CLI prints (`cli::cluster::describe`, `cli::topic::metadata`). So the numbers on a
//! page are the Kafka API's answers, not the broker's internals. With SASL it logs in as the
//! browser's user (`auth.rs`), so that user's ACLs apply. The only hosts it ever connects to
//! are that listener's address, fixed at startup, and the leaders the cluster's metadata
//! names: no page takes a host to reach.
//!
//! The charts and the Tier page read this broker's own metrics in process: the sampler's
//! last hour (`metrics::history`, drawn as SVG by `chart.rs`) and the current counters.
//!
//! Pages are rendered server-side with `maud` (HTML escaped at compile time) and need no
//! JavaScript; a meta refresh reloads them. Nothing is fetched from outside the binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{CliError, Client, Connection};

mod auth;
mod chart;
mod groups;
mod records;
mod tier;
mod topic;

pub use auth::{Login, Target};

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot bind console.listener {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "console.listener is set but no listener is PLAINTEXT or SASL_PLAINTEXT with PLAIN or \
         SCRAM: the console reads the cluster over Kafka and does not speak TLS; add such a \
         listener on 127.0.0.1 or set console.listener=none"
    )]
    NoListener,
}

/// What every page handler shares.
pub(crate) struct Console {
    /// The broker's own listener: the one host the console asks first.
    target: Target,
    read_only: bool,
    /// `console.tier.price.*`.
    prices: strata_config::TierPrices,
    /// The sampler's last hour of this broker's metrics.
    history: crate::metrics::history::Shared,
}

/// What the console is started with.
pub struct Settings {
    /// `console.listener`.
    pub addr: String,
    /// The listener to read the cluster through (`Target::choose`); `None` refuses.
    pub target: Option<Target>,
    pub read_only: bool,
    pub prices: strata_config::TierPrices,
    /// `console.metrics.sample.interval.ms`.
    pub sample_interval: Duration,
}

/// How long the console waits on the broker for one request.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);
/// How often pages reload themselves.
const REFRESH_SECONDS: u32 = 10;

/// Binds `settings.addr`, starts the metrics sampler and serves the console until
/// `shutdown` turns true.
pub async fn spawn_server(
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, ConsoleError> {
    let target = settings.target.ok_or(ConsoleError::NoListener)?;
    let addr = settings.addr.as_str();
    let bind_error = |source| ConsoleError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let history =
        crate::metrics::history::spawn_sampler(settings.sample_interval, shutdown.clone());
    let state = Arc::new(Console {
        target,
        read_only: settings.read_only,
        prices: settings.prices,
        history,
    });
    let app = router(state);
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "console server stopped");
        }
    });
    Ok(bound)
}

fn router(state: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(cluster_page))
        .route("/topics", get(topics_page))
        .route("/topics/{name}", get(topic::topic_page))
        .route("/topics/{name}/config", axum::routing::post(topic::edit))
        .route("/topics/{name}/records", get(topic::records_page))
        .route("/groups", get(groups::groups_page))
        .route("/tier", get(tier::tier_page))
        .route("/style.css", get(style))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        .with_state(state)
}

async fn style() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css")],
        include_str!("style.css"),
    )
}

impl Console {
    async fn client(&self) -> Result<Client, CliError> {
        let c = self.connection();
        c.connect(&c.bootstrap_server).await
    }

    /// How the CLI's gathering functions reach this cluster's other brokers (leaders), as
    /// the page's user when there is one.
    fn connection(&self) -> Connection {
        Connection {
            bootstrap_server: self.target.addr.to_string(),
            timeout_ms: KAFKA_TIMEOUT.as_millis() as u64,
            command_config: None,
            preset: auth::current(),
        }
    }
}

/// A page with the navigation bar around `body`.
pub(crate) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                link rel="icon" href="data:,";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                title { "Strata · " (title) }
                link rel="stylesheet" href="/style.css";
            }
            body {
                nav {
                    strong { "Strata" }
                    a href="/" { "Cluster" }
                    a href="/topics" { "Topics" }
                    a href="/groups" { "Groups" }
                    a href="/tier" { "Tier" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page saying what went wrong asking the cluster; 401 (ask again) when the broker
/// refused the user's credentials.
pub(crate) fn failed(title: &str, e: CliError) -> Response {
    if let CliError::Client {
        source: crate::cli::ClientError::Authentication { reason, .. },
    } = &e
    {
        return auth::unauthorized(&format!("The broker refused these credentials: {reason}"));
    }
    let body = html! { p.error { "The cluster did not answer: " (e.to_string()) } };
    (
        StatusCode::BAD_GATEWAY,
        Html(page(title, body).into_string()),
    )
        .into_response()
}

async fn cluster_page(State(c): State<Arc<Console>>) -> Response {
    let gathered = async {
        let mut client = c.client().await?;
        let view = crate::cli::cluster::describe(&mut client).await?;
        let md = crate::cli::topic::metadata(&mut client, None).await?;
        Ok::<_, CliError>((view, md))
    };
    let (view, md) = match gathered.await {
        Ok(v) => v,
        Err(e) => return failed("Cluster", e),
    };
    let health = Health::of(&md);
    let body = html! {
        p { "Cluster id " code { (view.cluster_id) } ", metadata leader " span #controller { (view.leader) }
            ", term " (view.term) ", metadata high watermark " (view.high_watermark) "." }
        table #health {
            tr { th { "Partitions" } td #partitions { (health.partitions) } }
            tr { th { "Under-replicated" } td #under-replicated { (health.under_replicated) } }
            tr { th { "Offline" } td #offline { (health.offline) } }
        }
        h2 { "Nodes" }
        table #nodes {
            thead { tr { th { "Node" } th { "Role" } th { "Rack" } th { "Address" } th { "State" } th { "Metadata log end" } } }
            tbody {
                @for (id, n) in &view.nodes {
                    tr {
                        td { (id) }
                        td { (n.role) @if *id == view.leader { " (leader)" } }
                        td { (n.rack.as_deref().unwrap_or("-")) }
                        td { (n.addr.as_deref().unwrap_or("-")) }
                        td { @if n.addr.is_some() { "serving" } @else { "not serving" } }
                        td { @match n.log_end { Some(e) => (e), None => "-" } }
                    }
                }
            }
        }
        p.note { "Read-only: " (c.read_only) }
    };
    Html(page("Cluster", body).into_string()).into_response()
}

/// Partition health counted from Metadata: under-replicated when the ISR is smaller than
/// the replica set, offline when there is no leader.
#[derive(Debug, Default, PartialEq, Eq)]
struct Health {
    partitions: usize,
    under_replicated: usize,
    offline: usize,
}

impl Health {
    fn of(md: &kafka_protocol::messages::MetadataResponse) -> Health {
        let mut h = Health::default();
        for p in md
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .flat_map(|t| &t.partitions)
        {
            h.partitions += 1;
            if p.isr_nodes.len() < p.replica_nodes.len() {
                h.under_replicated += 1;
            }
            if p.leader_id.0 < 0 {
                h.offline += 1;
            }
        }
        h
    }
}

fn topic_name(t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic) -> &str {
    t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?")
}

pub(crate) fn ids(v: &[kafka_protocol::messages::BrokerId]) -> String {
    v.iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn topics_page(State(c): State<Arc<Console>>) -> Response {
    let gathered = async {
        let mut client = c.client().await?;
        crate::cli::topic::metadata(&mut client, None).await
    };
    let md = match gathered.await {
        Ok(v) => v,
        Err(e) => return failed("Topics", e),
    };
    let mut topics: Vec<_> = md.topics.iter().filter(|t| t.error_code == 0).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let body = html! {
        table #topics {
            thead { tr { th { "Topic" } th { "Partitions" } th { "Replication factor" } th { "Internal" } } }
            tbody {
                @for t in &topics {
                    tr data-topic=(topic_name(t)) {
                        td { a href={ "/topics/" (urlencoding(topic_name(t))) } { (topic_name(t)) } }
                        td.partitions { (t.partitions.len()) }
                        td { (t.partitions.first().map_or(0, |p| p.replica_nodes.len())) }
                        td { (t.is_internal) }
                    }
                }
            }
        }
    };
    Html(page("Topics", body).into_string()).into_response()
}

/// Percent-encodes a path segment (topic names are `[a-zA-Z0-9._-]`, so this is a guard).
pub(crate) fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, MetadataResponse};

    fn part(leader: i32, replicas: &[i32], isr: &[i32]) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_leader_id(BrokerId(leader))
            .with_replica_nodes(replicas.iter().map(|r| BrokerId(*r)).collect())
            .with_isr_nodes(isr.iter().map(|r| BrokerId(*r)).collect())
    }

    #[test]
    fn health_counts_under_replicated_and_offline_partitions() {
        let md = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default().with_partitions(vec![
                part(1, &[1, 2], &[1, 2]),
                part(1, &[1, 2], &[1]),
                part(-1, &[1, 2], &[]),
            ]),
            // A topic with an error is not counted.
            MetadataResponseTopic::default()
                .with_error_code(3)
                .with_partitions(vec![part(-1, &[1], &[])]),
        ]);
        assert_eq!(
            Health::of(&md),
            Health {
                partitions: 3,
                under_replicated: 2,
                offline: 1
            }
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(urlencoding("a.b_c-1"), "a.b_c-1");
        assert_eq!(urlencoding("a/../b"), "a%2F..%2Fb");
    }
}
