//! `strata group list|describe`. Groups are detected through ApiVersions: a broker
//! that does not serve ListGroups/DescribeGroups gets "not supported by this broker".
//! `describe` adds committed offsets (OffsetFetch) and lag against the leaders' log end
//! offsets when the broker serves OffsetFetch.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetFetchRequest,
};
use kafka_protocol::ResponseError;

use super::log_dirs::{leader_client, Tp};
use super::tier::{list_offsets, LATEST};
use super::topic::metadata;
use super::{str_bytes, CliError, Client, Connection, GroupCommand};

/// OffsetFetch v10 names topics by id only; v8-9 carry names and several groups.
const OFFSET_FETCH_MAX: i16 = 9;

pub async fn run(mut c: Client, conn: Connection, cmd: GroupCommand) -> Result<(), CliError> {
    match cmd {
        GroupCommand::List => list(&mut c).await,
        GroupCommand::Describe { group } => describe(c, &conn, &group).await,
    }
}

fn require(c: &Client, key: ApiKey, what: &str) -> Result<(), CliError> {
    if c.serves(key) {
        Ok(())
    } else {
        Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: format!("{what} ({key:?})"),
            why: super::NOT_IN_API_VERSIONS.into(),
        })
    }
}

async fn list(c: &mut Client) -> Result<(), CliError> {
    println!("GROUP\tSTATE\tPROTOCOL-TYPE");
    for g in groups(c).await? {
        println!("{}\t{}\t{}", g.id, g.state, g.protocol_type);
    }
    Ok(())
}

/// One group as ListGroups names it.
pub struct GroupListing {
    pub id: String,
    pub state: String,
    pub protocol_type: String,
}

/// Every group (ListGroups), sorted by id.
pub async fn groups(c: &mut Client) -> Result<Vec<GroupListing>, CliError> {
    require(c, ApiKey::ListGroups, "listing consumer groups")?;
    let resp = c.send(ListGroupsRequest::default()).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka("listing groups", resp.error_code, None));
    }
    let mut groups: Vec<GroupListing> = resp
        .groups
        .iter()
        .map(|g| GroupListing {
            id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
        })
        .collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(groups)
}

/// A committed offset of a group and how far the partition's end is past it.
pub struct Lag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: Option<i64>,
}

impl Lag {
    pub fn lag(&self) -> Option<i64> {
        self.end.map(|e| (e - self.committed).max(0))
    }
}

/// The group's committed offsets (OffsetFetch to `c`, which should be its coordinator)
/// and each partition's end (ListOffsets -1 to the leaders); `None` when the broker does
/// not serve OffsetFetch.
pub async fn lags(
    c: &mut Client,
    conn: &Connection,
    group: &str,
) -> Result<Option<Vec<Lag>>, CliError> {
    let Some(committed) = committed(c, group).await? else {
        return Ok(None);
    };
    let ends = end_offsets(c, conn, &committed).await?;
    Ok(Some(
        committed
            .into_iter()
            .map(|((topic, partition), offset)| Lag {
                end: ends.get(&(topic.clone(), partition)).copied().flatten(),
                topic,
                partition,
                committed: offset,
            })
            .collect(),
    ))
}

/// A connection to `group`'s coordinator (`c` itself when it is the one).
pub async fn to_coordinator(
    mut c: Client,
    conn: &Connection,
    group: &str,
) -> Result<Client, CliError> {
    if let Some(addr) = coordinator(&mut c, group).await? {
        if addr != c.addr() {
            c = conn.connect(&addr).await?;
        }
    }
    Ok(c)
}

/// The group's coordinator, when the broker serves FindCoordinator; otherwise the node
/// we are connected to.
async fn coordinator(c: &mut Client, group: &str) -> Result<Option<String>, CliError> {
    let Some(version) = c.version_of::<FindCoordinatorRequest>() else {
        return Ok(None);
    };
    let req = FindCoordinatorRequest::default().with_key_type(0);
    let req = if version >= 4 {
        req.with_coordinator_keys(vec![str_bytes(group)])
    } else {
        req.with_key(str_bytes(group))
    };
    let resp = c.send(req).await?;
    let (code, msg, host, port) = match resp.coordinators.first() {
        Some(k) => (
            k.error_code,
            k.error_message.clone(),
            k.host.clone(),
            k.port,
        ),
        None => (resp.error_code, resp.error_message, resp.host, resp.port),
    };
    if code != 0 {
        return Err(CliError::kafka(
            format!("finding the coordinator of group '{group}'"),
            code,
            msg.as_ref(),
        ));
    }
    Ok(Some(format!("{host}:{port}")))
}

async fn describe(c: Client, conn: &Connection, group: &str) -> Result<(), CliError> {
    require(&c, ApiKey::DescribeGroups, "describing consumer groups")?;
    let mut c = to_coordinator(c, conn, group).await?;
    print_description(&describe_group(&mut c, group).await?);
    let Some(lags) = lags(&mut c, conn, group).await? else {
        return Ok(());
    };
    println!("TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG");
    for l in &lags {
        let dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        println!(
            "{}\t{}\t{}\t{}\t{}",
            l.topic,
            l.partition,
            l.committed,
            dash(l.end),
            dash(l.lag())
        );
    }
    Ok(())
}

/// A group's members as its coordinator describes them.
pub struct GroupDescription {
    pub id: String,
    pub state: String,
    pub kind: GroupKind,
    pub members: Vec<Member>,
}

pub enum GroupKind {
    /// A KIP-848 consumer group (ConsumerGroupDescribe).
    Consumer {
        group_epoch: i32,
        assignment_epoch: i32,
        assignor: String,
    },
    /// A classic group (DescribeGroups).
    Classic {
        protocol_type: String,
        protocol: String,
    },
}

pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    /// The member epoch of a consumer-group member.
    pub epoch: Option<i32>,
    /// The protocol a consumer-group member uses (`classic` members sit in a consumer
    /// group during an online migration, KIP-848); `None` in a classic group.
    pub protocol: Option<&'static str>,
    /// Assigned partitions as `topic-partition`; for a classic group decoded from the
    /// consumer protocol's assignment (empty for other protocol types).
    pub assigned: Vec<String>,
}

/// Describes `group` at `c` (its coordinator): ConsumerGroupDescribe when the broker serves
/// it and the group is a consumer group, else DescribeGroups.
pub async fn describe_group(c: &mut Client, group: &str) -> Result<GroupDescription, CliError> {
    match describe_consumer_group(c, group).await? {
        Some(d) => Ok(d),
        None => describe_classic_group(c, group).await,
    }
}

fn print_description(g: &GroupDescription) {
    match &g.kind {
        GroupKind::Consumer {
            group_epoch,
            assignment_epoch,
            assignor,
        } => println!(
            "Group: {}\tState: {}\tType: consumer\tGroupEpoch: {}\tAssignmentEpoch: {}\tAssignor: {}\tMembers: {}",
            g.id, g.state, group_epoch, assignment_epoch, assignor, g.members.len()
        ),
        GroupKind::Classic {
            protocol_type,
            protocol,
        } => println!(
            "Group: {}\tState: {}\tProtocolType: {}\tProtocol: {}\tMembers: {}",
            g.id,
            g.state,
            protocol_type,
            protocol,
            g.members.len()
        ),
    }
    for m in &g.members {
        let epoch = m.epoch.map(|e| format!("\tEpoch: {e}")).unwrap_or_default();
        let protocol = m
            .protocol
            .map(|p| format!("\tProtocol: {p}"))
            .unwrap_or_default();
        println!(
            "\tMember: {}{epoch}{protocol}\tClientId: {}\tHost: {}\tAssigned: {}",
            m.id,
            m.client_id,
            m.host,
            m.assigned.join(",")
        );
    }
}

/// A KIP-848 consumer group, via ConsumerGroupDescribe when the broker serves it; `None`
/// when the group is not one (GROUP_ID_NOT_FOUND), so the classic API is asked.
async fn describe_consumer_group(
    c: &mut Client,
    group: &str,
) -> Result<Option<GroupDescription>, CliError> {
    if !c.serves(ApiKey::ConsumerGroupDescribe) {
        return Ok(None);
    }
    let req =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))]);
    let resp = c.send(req).await?;
    let Some(g) = resp.groups.first() else {
        return Ok(None);
    };
    if g.error_code == ResponseError::GroupIdNotFound.code() {
        return Ok(None);
    }
    if g.error_code != 0 {
        return Err(CliError::kafka(
            format!("describing group '{group}'"),
            g.error_code,
            g.error_message.as_ref(),
        ));
    }
    let members = g
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            epoch: Some(m.member_epoch),
            // ConsumerGroupDescribe v1's MemberType: 0 classic, 1 consumer.
            protocol: Some(if m.member_type == 0 {
                "classic"
            } else {
                "consumer"
            }),
            assigned: m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| format!("{}-{p}", t.topic_name.0))
                })
                .collect(),
        })
        .collect();
    Ok(Some(GroupDescription {
        id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        kind: GroupKind::Consumer {
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor_name.to_string(),
        },
        members,
    }))
}

async fn describe_classic_group(c: &mut Client, group: &str) -> Result<GroupDescription, CliError> {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    let resp = c.send(req).await?;
    let Some(g) = resp.groups.first() else {
        return Err(CliError::UnknownGroup {
            name: group.to_string(),
        });
    };
    if g.error_code == ResponseError::GroupIdNotFound.code()
        || (g.error_code == 0 && g.group_state.as_str() == "Dead")
    {
        return Err(CliError::UnknownGroup {
            name: group.to_string(),
        });
    }
    if g.error_code != 0 {
        return Err(CliError::kafka(
            format!("describing group '{group}'"),
            g.error_code,
            g.error_message.as_ref(),
        ));
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            epoch: None,
            protocol: None,
            assigned: if consumer {
                classic_assignment(&m.member_assignment)
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(GroupDescription {
        id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        kind: GroupKind::Classic {
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
        },
        members,
    })
}

/// The partitions of a classic consumer's assignment (Kafka's ConsumerProtocolAssignment:
/// a version, then the versioned message); empty when it does not decode.
fn classic_assignment(bytes: &bytes::Bytes) -> Vec<String> {
    use kafka_protocol::protocol::Decodable;
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    let Ok(a) =
        kafka_protocol::messages::ConsumerProtocolAssignment::decode(&mut buf, version.min(3))
    else {
        return Vec::new();
    };
    a.assigned_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.0))
        })
        .collect()
}

/// The group's committed offsets, when the broker serves OffsetFetch v2+ (all topics).
async fn committed(c: &mut Client, group: &str) -> Result<Option<BTreeMap<Tp, i64>>, CliError> {
    let version = match c.version_of::<OffsetFetchRequest>() {
        Some(v) if v >= 2 => v.min(OFFSET_FETCH_MAX),
        _ => return Ok(None),
    };
    let id = GroupId(str_bytes(group));
    let req = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(id)
            .with_topics(None)])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(id)
            .with_topics(None)
    };
    let resp = c.send_capped(req, OFFSET_FETCH_MAX).await?;
    let mut out = BTreeMap::new();
    let mut keep = |topic: &str, partition: i32, offset: i64| {
        if offset >= 0 {
            out.insert((topic.to_string(), partition), offset);
        }
    };
    let code = if version >= 8 {
        let g = resp.groups.first();
        for t in g.map(|g| g.topics.as_slice()).unwrap_or_default() {
            for p in &t.partitions {
                keep(&t.name.0, p.partition_index, p.committed_offset);
            }
        }
        g.map_or(0, |g| g.error_code)
    } else {
        for t in &resp.topics {
            for p in &t.partitions {
                keep(&t.name.0, p.partition_index, p.committed_offset);
            }
        }
        resp.error_code
    };
    if code != 0 {
        return Err(CliError::kafka(
            format!("reading committed offsets of group '{group}'"),
            code,
            None,
        ));
    }
    Ok(Some(out))
}

/// Log end offsets of the partitions in `committed`, asked of each partition's leader.
async fn end_offsets(
    c: &mut Client,
    conn: &Connection,
    committed: &BTreeMap<Tp, i64>,
) -> Result<BTreeMap<Tp, Option<i64>>, CliError> {
    let mut topics: Vec<String> = committed.keys().map(|(t, _)| t.clone()).collect();
    topics.dedup();
    if topics.is_empty() {
        return Ok(BTreeMap::new());
    }
    let md = metadata(c, Some(&topics)).await?;
    let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
    for t in md.topics.iter().filter(|t| t.error_code == 0) {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            let tp = (name.clone(), p.partition_index);
            if committed.contains_key(&tp) {
                by_leader.entry(p.leader_id.0).or_default().push(tp);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (leader, tps) in &by_leader {
        let mut lc = leader_client(c, conn, &md, *leader).await?;
        let client = lc.as_mut().unwrap_or(c);
        out.extend(list_offsets(client, tps, LATEST).await?);
    }
    Ok(out)
}
