//! `strata cluster add-voter` / `remove-voter`: the metadata quorum's voters at runtime, sent as
//! Kafka's AddRaftVoter / RemoveRaftVoter (KIP-853) to any node, which forwards the change to
//! the Raft leader. The leader refuses a change that would leave no reachable quorum or that
//! would make a lagging learner a voter; the CLI prints why.

use bytes::Bytes;
use kafka_protocol::messages::{AddRaftVoterRequest, RemoveRaftVoterRequest};

use super::{str_bytes, CliError, Client, Connection, NOT_IN_API_VERSIONS};
use crate::protocol::tagged::FORGET_VOTER_TAG as FORGET_TAG;

/// Promotes `node` (a broker-only node that joined as a learner) to voter.
pub async fn add(mut c: Client, conn: &Connection, node: i32) -> Result<(), CliError> {
    supported::<AddRaftVoterRequest>(&c, "AddRaftVoter")?;
    let cluster_id = cluster_id(&mut c).await?;
    let timeout_ms =
        i32::try_from(conn.timeout_ms.saturating_sub(1_000).max(1_000)).unwrap_or(i32::MAX);
    let resp = c
        .send(
            AddRaftVoterRequest::default()
                .with_cluster_id(Some(str_bytes(cluster_id)))
                .with_timeout_ms(timeout_ms)
                .with_voter_id(node),
        )
        .await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            format!("adding node {node} as a voter"),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    println!("Node {node} is now a voter of the metadata quorum.");
    Ok(())
}

/// Demotes voter `node` to learner, or with `forget` drops it from the quorum entirely.
pub async fn remove(mut c: Client, node: i32, forget: bool) -> Result<(), CliError> {
    supported::<RemoveRaftVoterRequest>(&c, "RemoveRaftVoter")?;
    let cluster_id = cluster_id(&mut c).await?;
    let mut req = RemoveRaftVoterRequest::default()
        .with_cluster_id(Some(str_bytes(cluster_id)))
        .with_voter_id(node);
    if forget {
        req.unknown_tagged_fields
            .insert(FORGET_TAG, Bytes::from_static(&[1]));
    }
    let resp = c.send(req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            format!("removing voter {node}"),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    if forget {
        println!("Node {node} is no longer a member of the metadata quorum.");
    } else {
        println!("Node {node} is no longer a voter; it stays a learner (observer) while it runs.");
    }
    Ok(())
}

fn supported<R: kafka_protocol::protocol::Request>(c: &Client, what: &str) -> Result<(), CliError> {
    if c.version_of::<R>().is_none() {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: what.into(),
            why: NOT_IN_API_VERSIONS.into(),
        });
    }
    Ok(())
}

async fn cluster_id(c: &mut Client) -> Result<String, CliError> {
    let cluster = c
        .send(kafka_protocol::messages::DescribeClusterRequest::default())
        .await?;
    Ok(cluster.cluster_id.to_string())
}
