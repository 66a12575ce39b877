//! DescribeClientQuotas and AlterClientQuotas (KIP-546): the quotas of users and client
//! ids, kept in the metadata image (`strata_controller::quota`) and enforced by
//! `crate::quota`. Describe needs DESCRIBE_CONFIGS on the cluster, alter ALTER_CONFIGS, as
//! in Kafka. The `ip` entity type (KIP-612) carries `connection_creation_rate` only and
//! never combines with the others (`strata_controller::quota::validate`); it is enforced
//! when connections are accepted (`crate::quota::connections`).

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntity, EntryData as AlterResult,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, EntityName, MetadataCommand, QuotaChange, QuotaEntity};

use super::str_bytes;
use crate::server::{controller_code, Ctx};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Kafka's `ClientQuotaFilterComponent` match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub fn describe(ctx: &Ctx<'_>, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !ctx.cluster_allowed(AclOperation::DescribeConfigs) {
        let message = format!("{} may not DESCRIBE_CONFIGS the cluster", ctx.principal);
        return refuse(ResponseError::ClusterAuthorizationFailed, message);
    }
    let filter = match Filter::new(&req.components, req.strict) {
        Ok(f) => f,
        Err(message) => return refuse(ResponseError::InvalidRequest, message),
    };
    let image = ctx.broker.image();
    let entries = image
        .quotas
        .iter()
        .filter(|q| filter.matches(&q.entity))
        .map(|q| {
            EntryData::default()
                .with_entity(entity_data(&q.entity))
                .with_values(
                    q.values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// One component per entity type, checked.
struct Filter {
    components: Vec<(String, i8, Option<String>)>,
    strict: bool,
}

impl Filter {
    fn new(components: &[ComponentData], strict: bool) -> Result<Filter, String> {
        let mut out: Vec<(String, i8, Option<String>)> = Vec::new();
        for c in components {
            let ty = c.entity_type.to_string();
            entity_type(&ty)?;
            if out.iter().any(|(t, ..)| *t == ty) {
                return Err(format!("entity type {ty} appears twice in the filter"));
            }
            if !(MATCH_EXACT..=MATCH_SPECIFIED).contains(&c.match_type) {
                return Err(format!("unknown match type {} for {ty}", c.match_type));
            }
            out.push((ty, c.match_type, c._match.as_ref().map(|m| m.to_string())));
        }
        Ok(Filter {
            components: out,
            strict,
        })
    }

    fn matches(&self, entity: &QuotaEntity) -> bool {
        let part = |ty: &str| match ty {
            USER => entity.user.as_ref(),
            IP => entity.ip.as_ref(),
            _ => entity.client_id.as_ref(),
        };
        let each = self
            .components
            .iter()
            .all(|(ty, kind, name)| match (part(ty), *kind) {
                (None, _) => false,
                (Some(p), MATCH_EXACT) => match (p, name) {
                    (EntityName::Named(n), Some(want)) => n == want,
                    (EntityName::Default, None) => true,
                    _ => false,
                },
                (Some(p), MATCH_DEFAULT) => *p == EntityName::Default,
                (Some(_), _) => true,
            });
        let types = entity.user.is_some() as usize
            + entity.client_id.is_some() as usize
            + entity.ip.is_some() as usize;
        each && (!self.strict || types == self.components.len())
    }
}

fn entity_type(ty: &str) -> Result<(), String> {
    match ty {
        USER | CLIENT_ID | IP => Ok(()),
        other => Err(format!(
            "unknown quota entity type {other}; the types are user, client-id and ip"
        )),
    }
}

fn entity_data(e: &QuotaEntity) -> Vec<EntityData> {
    let name = |n: &EntityName| match n {
        EntityName::Default => None,
        EntityName::Named(s) => Some(str_bytes(s)),
    };
    let mut out = Vec::new();
    if let Some(u) = &e.user {
        out.push(
            EntityData::default()
                .with_entity_type(str_bytes(USER))
                .with_entity_name(name(u)),
        );
    }
    if let Some(c) = &e.client_id {
        out.push(
            EntityData::default()
                .with_entity_type(str_bytes(CLIENT_ID))
                .with_entity_name(name(c)),
        );
    }
    if let Some(ip) = &e.ip {
        out.push(
            EntityData::default()
                .with_entity_type(str_bytes(IP))
                .with_entity_name(name(ip)),
        );
    }
    out
}

pub async fn alter(ctx: &Ctx<'_>, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let allowed = ctx.cluster_allowed(AclOperation::AlterConfigs);
    let mut results = Vec::new();
    for entry in req.entries {
        let echo = entry
            .entity
            .iter()
            .map(|e| {
                AlterEntity::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let outcome = if allowed {
            changes(&entry).map_err(|m| (ResponseError::InvalidRequest, m))
        } else {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                format!("{} may not ALTER_CONFIGS the cluster", ctx.principal),
            ))
        };
        let outcome = match outcome {
            Ok(changes) if !req.validate_only && !changes.is_empty() => {
                let cmd = MetadataCommand::AlterClientQuotas { changes };
                match ctx.broker.controller.propose(cmd).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err((controller_code(&e), e.to_string())),
                }
            }
            other => other.map(|_| ()),
        };
        let r = AlterResult::default().with_entity(echo);
        results.push(match outcome {
            Ok(()) => r,
            Err((code, message)) => r
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    AlterClientQuotasResponse::default().with_entries(results)
}

/// One entry of the request as controller changes, checked as Kafka checks them.
fn changes(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Vec<QuotaChange>, String> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
        ip: None,
    };
    for e in &entry.entity {
        let ty = e.entity_type.to_string();
        entity_type(&ty)?;
        let name = e.entity_name.as_ref().map(StrBytes::to_string);
        let name = match name {
            None => EntityName::Default,
            Some(n) if n.is_empty() => return Err(format!("an empty {ty} name")),
            Some(n) => EntityName::Named(n),
        };
        let slot = match ty.as_str() {
            USER => &mut entity.user,
            IP => &mut entity.ip,
            _ => &mut entity.client_id,
        };
        if slot.replace(name).is_some() {
            return Err(format!("entity type {ty} appears twice"));
        }
    }
    let changes: Vec<QuotaChange> = entry
        .ops
        .iter()
        .map(|op| QuotaChange {
            entity: entity.clone(),
            key: op.key.to_string(),
            value: (!op.remove).then_some(op.value),
        })
        .collect();
    for c in &changes {
        strata_controller::quota::validate(c)?;
    }
    Ok(changes)
}
