//! `strata cluster decommission <node>`: drains a broker before it is removed. Sent as
//! UnregisterBroker (Strata's meaning: mark the broker so nothing new is placed on it, and move
//! each of its replicas to another broker); then, unless `--no-wait`, the CLI polls Metadata
//! until no partition lists the node among its replicas, printing how many are left.
//! `--cancel` sends the same request with Strata's tagged field `CANCEL_DECOMMISSION_TAG`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};

use super::{CliError, Client, Connection, NOT_IN_API_VERSIONS};
use crate::protocol::tagged::CANCEL_DECOMMISSION_TAG;

/// `strata cluster decommission --cancel <node>`.
pub async fn cancel(mut c: Client, node: i32) -> Result<(), CliError> {
    if c.version_of::<UnregisterBrokerRequest>().is_none() {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: "UnregisterBroker (decommission)".into(),
            why: NOT_IN_API_VERSIONS.into(),
        });
    }
    let mut req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(node));
    req.unknown_tagged_fields
        .insert(CANCEL_DECOMMISSION_TAG, Bytes::from_static(&[1]));
    let resp = c.send(req).await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            format!("cancelling the decommission of broker {node}"),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    println!(
        "Broker {node} is no longer decommissioned: it takes replicas again, and the moves off it \
         still copying were cancelled."
    );
    Ok(())
}

/// How often the drain's progress is polled.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(mut c: Client, conn: &Connection, node: i32, wait: bool) -> Result<(), CliError> {
    if c.version_of::<UnregisterBrokerRequest>().is_none() {
        return Err(CliError::Unsupported {
            addr: c.addr().to_string(),
            what: "UnregisterBroker (decommission)".into(),
            why: NOT_IN_API_VERSIONS.into(),
        });
    }
    let resp = c
        .send(UnregisterBrokerRequest::default().with_broker_id(BrokerId(node)))
        .await?;
    if resp.error_code != 0 {
        return Err(CliError::kafka(
            format!("decommissioning broker {node}"),
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    println!("Broker {node} is decommissioned: no new replicas go to it, and its replicas move.");
    if !wait {
        return Ok(());
    }
    let deadline = Instant::now() + conn.timeout();
    let mut last = usize::MAX;
    loop {
        let md = super::topic::metadata(&mut c, None).await?;
        let left = md
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replica_nodes.iter().any(|r| r.0 == node))
            .count();
        if left != last {
            println!("{left} partition replicas left on broker {node}");
            last = left;
        }
        if left == 0 {
            println!("Broker {node} holds no replicas; it can be stopped (remove it as a voter first if it is one).");
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout {
                what: format!("the drain of broker {node}"),
                seconds: conn.timeout().as_secs(),
                state: format!(
                    "{left} replicas left; the drain goes on in the background: run this command \
                     again (or raise --timeout-ms) to keep watching"
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
