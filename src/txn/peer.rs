//! A connection from this node to another node's broker listener, for the coordinator's
//! WriteTxnMarkers and the leaders' KIP-890 checks: the address the node registered, with
//! the inter-broker listener's security (TLS, SASL), as the replica fetcher connects.
//! Without it a coordinator could not reach leaders behind a secured inter-broker listener.

use std::time::Duration;

use crate::metadata::MetadataCache;
use crate::protocol::client::Client;
use crate::protocol::client_security::inter_broker;

/// Connects to `node`; the error is a sentence for the caller's per-partition answer.
pub async fn connect(
    metadata: &MetadataCache,
    node: i32,
    timeout: Duration,
    client_id: &'static str,
) -> Result<Client, String> {
    let addr = metadata
        .image()
        .brokers
        .get(&node)
        .map(|b| format!("{}:{}", b.host, b.port))
        .ok_or_else(|| format!("no address for node {node}"))?;
    let config = metadata.config();
    let security = match config
        .security
        .listener(&config.security.inter_broker_listener)
    {
        Some(l) => inter_broker(l)?,
        None => Default::default(),
    };
    Client::connect_secure(&addr, timeout, client_id, &security)
        .await
        .map_err(|e| format!("node {node} at {addr}: {e}"))
}
