//! `strata quota set|remove|describe`: client quotas through AlterClientQuotas and
//! DescribeClientQuotas (Kafka's `kafka-configs.sh --entity-type users|clients --alter
//! --add-config producer_byte_rate=...`). An entity is `--user NAME`, `--client-id NAME`
//! or both; `--default-user` / `--default-client-id` name Kafka's `<default>` entities.
//! `--ip ADDRESS` / `--default-ip` name KIP-612's `ip` entity, whose only key is
//! `connection_creation_rate` (Kafka's `--entity-type ips`).

use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use super::{str_bytes, CliError, Client, Connection};

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set quotas of one entity: `strata quota set --client-id app producer_byte_rate=1048576`.
    Set {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE pairs: producer_byte_rate, consumer_byte_rate (bytes/s),
        /// request_percentage (100 = one thread), controller_mutation_rate (partitions/s);
        /// connection_creation_rate (connections/s) for --ip / --default-ip.
        #[arg(required = true)]
        values: Vec<String>,
    },
    /// Remove quotas of one entity: `strata quota remove --user alice producer_byte_rate`.
    Remove {
        #[command(flatten)]
        entity: Entity,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Show quotas: every entity, or those matching the given parts.
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
}

#[derive(Args, Debug)]
pub struct Entity {
    #[arg(long, conflicts_with = "default_user")]
    user: Option<String>,
    /// Kafka's `<default>` user entity.
    #[arg(long)]
    default_user: bool,
    #[arg(long, conflicts_with = "default_client_id")]
    client_id: Option<String>,
    /// Kafka's `<default>` client-id entity.
    #[arg(long)]
    default_client_id: bool,
    /// An IP address (KIP-612: connection_creation_rate only).
    #[arg(long, conflicts_with = "default_ip")]
    ip: Option<String>,
    /// Kafka's `<default>` ip entity: every address without a quota of its own.
    #[arg(long)]
    default_ip: bool,
}

impl Entity {
    /// `(type, name)` pairs; a `None` name is the default entity.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out = Vec::new();
        if self.user.is_some() || self.default_user {
            out.push(("user", self.user.clone()));
        }
        if self.client_id.is_some() || self.default_client_id {
            out.push(("client-id", self.client_id.clone()));
        }
        if self.ip.is_some() || self.default_ip {
            out.push(("ip", self.ip.clone()));
        }
        out
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .parts()
            .into_iter()
            .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
            .collect();
        parts.join(", ")
    }
}

pub async fn run(mut client: Client, _conn: Connection, cmd: QuotaCommand) -> Result<(), CliError> {
    match cmd {
        QuotaCommand::Set { entity, values } => {
            let ops = values
                .iter()
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| CliError::Usage(format!("expected KEY=VALUE, got {kv}")))?;
                    let v: f64 = v
                        .parse()
                        .map_err(|_| CliError::Usage(format!("{k}: {v} is not a number")))?;
                    Ok(OpData::default()
                        .with_key(str_bytes(k.to_string()))
                        .with_value(v))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            alter(&mut client, &entity, ops).await?;
            println!("set quotas of {}: {}", entity.describe(), values.join(" "));
        }
        QuotaCommand::Remove { entity, keys } => {
            let ops = keys
                .iter()
                .map(|k| {
                    OpData::default()
                        .with_key(str_bytes(k.clone()))
                        .with_remove(true)
                })
                .collect();
            alter(&mut client, &entity, ops).await?;
            println!("removed {} of {}", keys.join(" "), entity.describe());
        }
        QuotaCommand::Describe { entity } => {
            let components = entity
                .parts()
                .into_iter()
                .map(|(t, n)| {
                    let kind = if n.is_some() { 0 } else { 1 };
                    ComponentData::default()
                        .with_entity_type(str_bytes(t))
                        .with_match_type(kind)
                        .with_match(n.map(str_bytes))
                })
                .collect();
            let resp = client
                .send(DescribeClientQuotasRequest::default().with_components(components))
                .await?;
            if resp.error_code != 0 {
                return Err(CliError::kafka(
                    "describing quotas",
                    resp.error_code,
                    resp.error_message.as_ref(),
                ));
            }
            for e in resp.entries.unwrap_or_default() {
                let who: Vec<String> = e
                    .entity
                    .iter()
                    .map(|p| {
                        let name = p.entity_name.as_ref().map_or("<default>", |n| n.as_str());
                        format!("{}={name}", p.entity_type)
                    })
                    .collect();
                let values: Vec<String> = e
                    .values
                    .iter()
                    .map(|v| format!("{}={}", v.key, v.value))
                    .collect();
                println!("{}\t{}", who.join(","), values.join(" "));
            }
        }
    }
    Ok(())
}

async fn alter(client: &mut Client, entity: &Entity, ops: Vec<OpData>) -> Result<(), CliError> {
    let parts = entity.parts();
    if parts.is_empty() {
        return Err(CliError::Usage(
            "name an entity: --user, --client-id, --default-user, --default-client-id, --ip or --default-ip".into(),
        ));
    }
    let entry = EntryData::default()
        .with_entity(
            parts
                .into_iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(str_bytes(t))
                        .with_entity_name(n.map(str_bytes))
                })
                .collect(),
        )
        .with_ops(ops);
    let resp = client
        .send(AlterClientQuotasRequest::default().with_entries(vec![entry]))
        .await?;
    for r in resp.entries {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("altering quotas of {}", entity.describe()),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}
