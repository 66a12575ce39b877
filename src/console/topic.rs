//! The topic detail page: partitions with leaders, ISR and both tiers (what `strata tier
//! status` gathers), the topic's settings with an edit form for the settings the console
//! allows, and the record browser.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::chart::{self, Line, Unit};
use super::records::{self, Browse};
use super::{failed, ids, page, urlencoding, Console};
use crate::cli::{tier, topic, CliError};

/// The settings the console lets a user change (when `console.read.only=false`): retention
/// and tiering knobs, not placement, format or compaction policy.
pub const EDITABLE: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "local.retention.ms",
    "local.retention.bytes",
    "segment.ms",
    "segment.bytes",
];

/// Renders the topic page, with `notice` above the settings (the outcome of an edit).
pub async fn page_of(c: &Console, name: String, notice: Option<Notice>) -> Response {
    let title = format!("Topic {name}");
    let gathered = async {
        let mut client = c.client().await?;
        let names = std::slice::from_ref(&name);
        let md = topic::metadata(&mut client, Some(names)).await?;
        topic::known(&md, &name)?;
        let settings = topic::topic_settings(&mut client, names).await?;
        // A broker without a remote tier answers "not supported": shown, not fatal.
        let tiers = tier::gather(&mut client, &c.connection(), names).await;
        Ok::<_, CliError>((md, settings, tiers))
    };
    let (md, mut settings, tiers) = match gathered.await {
        Ok(v) => v,
        Err(e) => return failed(&title, e),
    };
    let Ok(t) = topic::known(&md, &name) else {
        return failed(&title, CliError::UnknownTopic { name });
    };
    let mut parts: Vec<_> = t.partitions.iter().collect();
    parts.sort_by_key(|p| p.partition_index);
    let settings = settings.remove(&name).unwrap_or_default();
    let (tiers, tier_error) = match tiers {
        Ok(t) => (t, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let show = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |v| v.to_string());
    let body = html! {
        p { "Cleanup policy " strong #policy { (settings.cleanup_policy.as_deref().unwrap_or("-")) }
            ", remote storage " strong #remote { (if tiers.enabled.get(&name).copied().unwrap_or(false) { "on" } else { "off" }) }
            ". " a href={ "/topics/" (urlencoding(&name)) "/records" } { "Browse records" } }
        @if let Some(e) = &tier_error { p.note #tier-error { "Tier state: " (e) } }
        table #partitions {
            thead { tr {
                th { "Partition" } th { "Leader" } th { "Replicas" } th { "ISR" }
                th { "Log start" } th { "Local start" } th { "Tiered end" } th { "End" }
                th { "Local bytes" } th { "Remote bytes" } th { "Pending uploads" } th { "Last upload error" }
            } }
            tbody {
                @for p in parts {
                    @let tp = (name.clone(), p.partition_index);
                    @let [start, local, tiered, end] = tiers.offsets.get(&tp).copied().unwrap_or_default();
                    @let dir = tiers.dirs.get(&tp);
                    @let ts = dir.and_then(|d| d.tier.as_ref());
                    tr data-partition=(p.partition_index) {
                        td { (p.partition_index) }
                        td.leader { (p.leader_id.0) }
                        td { (ids(&p.replica_nodes)) }
                        td.isr { (ids(&p.isr_nodes)) }
                        td.log-start { (show(start)) }
                        td.local-start { (show(local)) }
                        td.tiered-end { (show(tiered)) }
                        td.end { (show(end)) }
                        td.local-bytes { (show(dir.and_then(|d| d.local_bytes))) }
                        td.remote-bytes { (ts.map_or_else(|| "-".to_string(), |t| t.remote_bytes.to_string())) }
                        td.pending { (ts.map_or_else(|| "-".to_string(), |t| t.pending_uploads.to_string())) }
                        td.last-error { (ts.and_then(|t| t.last_error.as_deref()).map_or_else(|| "-".to_string(), crate::cli::log_dirs::one_line)) }
                    }
                }
            }
        }
        (throughput(c, &name))
        h2 { "Settings" }
        @if let Some(n) = &notice { (n.render()) }
        (settings_table(&name, &settings.all, c.read_only))
    };
    Html(page(&title, body).into_string()).into_response()
}

/// Bytes in (Produce) and out (Fetch) of the topic on this broker over the last hour.
fn throughput(c: &Console, name: &str) -> Markup {
    let h = c.history.lock();
    let of = |series: &str| h.rate(|k| k.name == series && k.label("topic") == Some(name));
    let lines = [
        Line {
            name: "in (produce)".into(),
            points: of("strata_produce_bytes_total"),
        },
        Line {
            name: "out (fetch)".into(),
            points: of("strata_fetch_bytes_total"),
        },
    ];
    chart::render(
        "topic-throughput",
        "Throughput on this broker",
        Unit::BytesPerSecond,
        &lines,
        crate::now_ms(),
    )
}

fn settings_table(name: &str, all: &[(String, String, bool)], read_only: bool) -> Markup {
    html! {
        @if read_only {
            p.note { "The console is read-only (console.read.only=true): settings cannot be changed here." }
        }
        form method="post" action={ "/topics/" (urlencoding(name)) "/config" } {
            table #settings {
                thead { tr { th { "Setting" } th { "Value" } th { "Source" } } }
                tbody {
                    @for (k, v, own) in all {
                        tr data-setting=(k) {
                            td { (k) }
                            td.value {
                                @if EDITABLE.contains(&k.as_str()) {
                                    input type="text" name=(k) value=(v) disabled[read_only];
                                } @else { (v) }
                            }
                            td { @if *own { "topic" } @else { "default" } }
                        }
                    }
                }
            }
            button #save type="submit" { "Save" }
        }
    }
}

/// The outcome of an edit, shown on the page.
pub struct Notice {
    ok: bool,
    text: String,
}

impl Notice {
    fn render(&self) -> Markup {
        html! { p #notice class=(if self.ok { "ok" } else { "error" }) { (self.text) } }
    }
}

pub async fn topic_page(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    page_of(&c, name, None).await
}

/// POST of the settings form: refused when read-only; otherwise the changed editable
/// settings are sent with IncrementalAlterConfigs, and anything else is refused.
pub async fn edit(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (status, notice) = if c.read_only {
        (
            StatusCode::FORBIDDEN,
            Notice {
                ok: false,
                text: "Refused: the console is read-only (console.read.only=true).".into(),
            },
        )
    } else {
        match apply(&c, &name, form).await {
            Ok(text) => (StatusCode::OK, Notice { ok: true, text }),
            Err(text) => (StatusCode::BAD_REQUEST, Notice { ok: false, text }),
        }
    };
    let mut r = page_of(&c, name, Some(notice)).await;
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

async fn apply(c: &Console, name: &str, form: Vec<(String, String)>) -> Result<String, String> {
    if let Some((k, _)) = form.iter().find(|(k, _)| !EDITABLE.contains(&k.as_str())) {
        return Err(format!("Refused: {k} cannot be changed from the console."));
    }
    let mut client = c.client().await.map_err(|e| e.to_string())?;
    let names = [name.to_string()];
    let current = topic::topic_settings(&mut client, &names)
        .await
        .map_err(|e| e.to_string())?
        .remove(name)
        .unwrap_or_default();
    let changed: Vec<(String, String)> = form
        .into_iter()
        .filter(|(k, v)| {
            !current
                .all
                .iter()
                .any(|(ck, cv, _)| ck == k && cv == v.trim())
        })
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
    if changed.is_empty() {
        return Ok("Nothing changed.".into());
    }
    topic::set_configs(&mut client, name, &changed, &[])
        .await
        .map_err(|e| e.to_string())?;
    let list: Vec<String> = changed.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("Saved: {}", list.join(", ")))
}

/// Query of the record browser.
#[derive(Deserialize, Default)]
pub struct BrowseQuery {
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

pub async fn records_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> Response {
    let title = format!("Records of {name}");
    let browse = match Browse::parse(
        q.partition.unwrap_or(0),
        q.offset.as_deref(),
        q.timestamp.as_deref(),
        q.format.as_deref(),
    ) {
        Ok(b) => b,
        Err(e) => {
            let body = html! { p.error { (e) } };
            return (
                StatusCode::BAD_REQUEST,
                Html(page(&title, body).into_string()),
            )
                .into_response();
        }
    };
    match records::read(&c, &name, &browse).await {
        Ok(view) => {
            Html(page(&title, records::render(&name, &browse, &view)).into_string()).into_response()
        }
        Err(e) => failed(&title, e),
    }
}
