//! Connections from this node to other nodes' broker listeners, for the coordinator's
//! WriteTxnMarkers and the leaders' KIP-890 checks: the address each node registered, with
//! the inter-broker listener's security (TLS, SASL), as the replica fetcher connects.
//! Without it a coordinator could not reach leaders behind a secured inter-broker listener.
//! One connection per node, opened on first use and dropped after a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::protocol::Request;
use tokio::sync::Mutex;

use crate::metadata::MetadataCache;
use crate::protocol::client::Client;
use crate::protocol::client_security::inter_broker;

pub struct Peers {
    metadata: Arc<MetadataCache>,
    client_id: &'static str,
    timeout: Duration,
    clients: Mutex<HashMap<i32, Client>>,
}

impl Peers {
    pub fn new(metadata: Arc<MetadataCache>, client_id: &'static str, timeout: Duration) -> Peers {
        Peers {
            metadata,
            client_id,
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `req` to `node` at version `min_version` or above; the error is a sentence for
    /// the caller's per-partition answer.
    pub async fn send<R: Request>(
        &self,
        node: i32,
        req: R,
        min_version: i16,
    ) -> Result<R::Response, String> {
        let mut clients = self.clients.lock().await;
        let client = match clients.entry(node) {
            std::collections::hash_map::Entry::Occupied(c) => c.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(self.connect(node).await?)
            }
        };
        if client.version_of::<R>().unwrap_or(-1) < min_version {
            return Err(format!(
                "node {node} does not serve API key {} at v{min_version}",
                R::KEY
            ));
        }
        client.send(req).await.map_err(|e| {
            clients.remove(&node);
            e.to_string()
        })
    }

    async fn connect(&self, node: i32) -> Result<Client, String> {
        let addr = self
            .metadata
            .image()
            .brokers
            .get(&node)
            .map(|b| format!("{}:{}", b.host, b.port))
            .ok_or_else(|| format!("no address for node {node}"))?;
        let config = self.metadata.config();
        let security = match config
            .security
            .listener(&config.security.inter_broker_listener)
        {
            Some(l) => inter_broker(l)?,
            None => Default::default(),
        };
        Client::connect_secure(&addr, self.timeout, self.client_id, &security)
            .await
            .map_err(|e| format!("node {node} at {addr}: {e}"))
    }
}
