//! The consumer groups page: every group (ListGroups) and, per group, its members with their
//! assignments (ConsumerGroupDescribe or DescribeGroups at its coordinator) and its committed
//! offsets and lag per partition (OffsetFetch there, ListOffsets at the leaders), as
//! `strata group describe` gathers them. Each group has a chart of its lag per topic over
//! the last hour, from the `strata_consumer_group_lag` gauge this broker reports for the
//! groups it coordinates (empty for a group coordinated elsewhere in a cluster).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::chart::{self, Line, Unit};
use super::{failed, page, urlencoding, Console};
use crate::cli::{group, CliError};

pub async fn groups_page(State(c): State<Arc<Console>>) -> Response {
    let gathered = async {
        let mut client = c.client().await?;
        let listed = group::groups(&mut client).await?;
        let mut out = Vec::new();
        for g in listed {
            let mut coord =
                group::to_coordinator(c.client().await?, &c.connection(), &g.id).await?;
            // A group that emptied out since ListGroups has no members to show.
            let members = match group::describe_group(&mut coord, &g.id).await {
                Ok(d) => d.members,
                Err(CliError::UnknownGroup { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let lags = group::lags(&mut coord, &c.connection(), &g.id)
                .await?
                .unwrap_or_default();
            out.push((g, members, lags));
        }
        Ok::<_, CliError>(out)
    };
    let groups = match gathered.await {
        Ok(v) => v,
        Err(e) => return failed("Consumer groups", e),
    };
    let dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let body = html! {
        @if groups.is_empty() { p.note { "No consumer groups." } }
        @for (g, members, lags) in &groups {
            h2 { (g.id) }
            p { "State " (g.state) @if !g.protocol_type.is_empty() { ", protocol type " (g.protocol_type) } }
            @if !members.is_empty() {
                table.members data-members=(g.id) {
                    thead { tr { th { "Member" } th { "Client id" } th { "Host" } th { "Epoch" } th { "Assigned" } } }
                    tbody {
                        @for m in members {
                            tr {
                                td.member { (m.id) } td.client-id { (m.client_id) } td.host { (m.host) }
                                td.epoch { (m.epoch.map_or_else(|| "-".to_string(), |e| e.to_string())) }
                                td.assigned { (m.assigned.join(", ")) }
                            }
                        }
                    }
                }
            }
            table.lag data-group=(g.id) {
                thead { tr { th { "Topic" } th { "Partition" } th { "Committed" } th { "End" } th { "Lag" } } }
                tbody {
                    @for l in lags {
                        tr data-tp={ (l.topic) "-" (l.partition) } {
                            td { (l.topic) } td { (l.partition) }
                            td.committed { (l.committed) } td.end { (dash(l.end)) } td.lag { (dash(l.lag())) }
                        }
                    }
                }
            }
            (lag_chart(&c, &g.id))
        }
    };
    Html(page("Consumer groups", body).into_string()).into_response()
}

/// The lag of `group` per topic over the last hour.
fn lag_chart(c: &Console, group: &str) -> Markup {
    let h = c.history.lock();
    let mut topics: Vec<String> = h
        .select(|k| k.name == "strata_consumer_group_lag" && k.label("group") == Some(group))
        .filter_map(|(k, _)| k.label("topic").map(str::to_string))
        .collect();
    topics.dedup();
    let lines: Vec<Line> = topics
        .into_iter()
        .map(|t| Line {
            points: h.sum(|k| {
                k.name == "strata_consumer_group_lag"
                    && k.label("group") == Some(group)
                    && k.label("topic") == Some(t.as_str())
            }),
            name: t,
        })
        .collect();
    chart::render(
        &format!("lag-{}", urlencoding(group)),
        "Lag over time (records)",
        Unit::Count,
        &lines,
        crate::now_ms(),
    )
}
