//! `strata group list|describe`. Groups are detected through ApiVersions: a broker
//! that does not serve ListGroups/DescribeGroups gets "not supported by this broker".

use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, CliError, Client, Connection, GroupCommand};

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
    require(c, ApiKey::ListGroups, "listing consumer groups")?;
    let resp = c.send(ListGroupsRequest::default()).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka("listing groups", resp.error_code, None));
    }
    let mut groups: Vec<_> = resp.groups.iter().collect();
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    println!("GROUP\tSTATE\tPROTOCOL-TYPE");
    for g in groups {
        println!("{}\t{}\t{}", g.group_id.0, g.group_state, g.protocol_type);
    }
    Ok(())
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

async fn describe(mut c: Client, conn: &Connection, group: &str) -> Result<(), CliError> {
    require(&c, ApiKey::DescribeGroups, "describing consumer groups")?;
    if let Some(addr) = coordinator(&mut c, group).await? {
        if addr != c.addr() {
            c = Client::connect(&addr, conn.timeout()).await?;
        }
    }
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
    println!(
        "Group: {}\tState: {}\tProtocolType: {}\tProtocol: {}\tMembers: {}",
        g.group_id.0,
        g.group_state,
        g.protocol_type,
        g.protocol_data,
        g.members.len()
    );
    for m in &g.members {
        println!(
            "\tMember: {}\tClientId: {}\tHost: {}",
            m.member_id, m.client_id, m.client_host
        );
    }
    Ok(())
}
