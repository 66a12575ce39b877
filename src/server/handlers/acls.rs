//! CreateAcls, DescribeAcls and DeleteAcls. ACLs are metadata: creations and deletions are
//! proposed to the controller, so every node's authorizer enforces the same set. CreateAcls
//! and DeleteAcls need ALTER on the cluster, DescribeAcls DESCRIBE; without an authorizer
//! all three answer SECURITY_DISABLED, as Kafka does.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_controller::acl::{PatternFilter, ANY_CODE};
use strata_controller::{
    AclBinding, AclFilter, AclOperation, AclPermission, MetadataCommand, PatternType, ResourceType,
};

use super::str_bytes;
use crate::server::{controller_code, Ctx};

type Refusal = (ResponseError, String);

/// SECURITY_DISABLED or CLUSTER_AUTHORIZATION_FAILED, if the request may not go on.
fn gate(ctx: &Ctx<'_>, op: AclOperation) -> Option<Refusal> {
    if !ctx.authorizer_on() {
        return Some((
            ResponseError::SecurityDisabled,
            "no authorizer is configured; set authorizer.class.name".into(),
        ));
    }
    (!ctx.cluster_allowed(op)).then(|| {
        (
            ResponseError::ClusterAuthorizationFailed,
            format!("{} may not {} the cluster's ACLs", ctx.principal, op.name()),
        )
    })
}

pub async fn create(ctx: &Ctx<'_>, req: CreateAclsRequest) -> CreateAclsResponse {
    let refusal = gate(ctx, AclOperation::Alter);
    let mut results = Vec::with_capacity(req.creations.len());
    for c in req.creations {
        let outcome = match (&refusal, binding(&c)) {
            (Some(r), _) => Err(r.clone()),
            (None, Err(reason)) => Err((ResponseError::InvalidRequest, reason)),
            (None, Ok(acl)) => propose(ctx, MetadataCommand::CreateAcls { acls: vec![acl] }).await,
        };
        results.push(match outcome {
            Ok(()) => AclCreationResult::default(),
            Err((code, msg)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(msg))),
        });
    }
    CreateAclsResponse::default().with_results(results)
}

pub fn describe(ctx: &Ctx<'_>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    if let Some((code, msg)) = gate(ctx, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(msg)));
    }
    let filter = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(msg) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(msg)))
        }
    };
    let image = ctx.broker.image();
    // Grouped by resource pattern, as Kafka answers; the set is ordered by it already.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in image.acls.iter().filter(|a| filter.matches(a)) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type.code()
                && r.resource_name.as_str() == acl.resource_name
                && r.pattern_type == acl.pattern_type.code()
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(str_bytes(acl.resource_name.clone()))
                    .with_pattern_type(acl.pattern_type.code()),
            );
        }
        if let Some(r) = resources.last_mut() {
            r.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal.clone()))
                    .with_host(str_bytes(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(ctx: &Ctx<'_>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let refusal = gate(ctx, AclOperation::Alter);
    let mut results = Vec::with_capacity(req.filters.len());
    for f in req.filters {
        let outcome = match (&refusal, delete_filter(&f)) {
            (Some(r), _) => Err(r.clone()),
            (None, Err(msg)) => Err((ResponseError::InvalidRequest, msg)),
            (None, Ok(filter)) => delete_matching(ctx, &filter).await,
        };
        results.push(match outcome {
            Ok(matched) => DeleteAclsFilterResult::default().with_matching_acls(matched),
            Err((code, msg)) => DeleteAclsFilterResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(msg))),
        });
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

/// Deletes what `filter` selects in the current image. The exact bindings are proposed, so
/// every voter removes the same ones.
async fn delete_matching(
    ctx: &Ctx<'_>,
    filter: &AclFilter,
) -> Result<Vec<DeleteAclsMatchingAcl>, Refusal> {
    let acls: Vec<AclBinding> = ctx
        .broker
        .image()
        .acls
        .iter()
        .filter(|a| filter.matches(a))
        .cloned()
        .collect();
    if !acls.is_empty() {
        propose(ctx, MetadataCommand::DeleteAcls { acls: acls.clone() }).await?;
    }
    Ok(acls
        .into_iter()
        .map(|a| {
            DeleteAclsMatchingAcl::default()
                .with_resource_type(a.resource_type.code())
                .with_resource_name(str_bytes(a.resource_name))
                .with_pattern_type(a.pattern_type.code())
                .with_principal(str_bytes(a.principal))
                .with_host(str_bytes(a.host))
                .with_operation(a.operation.code())
                .with_permission_type(a.permission.code())
        })
        .collect())
}

async fn propose(ctx: &Ctx<'_>, cmd: MetadataCommand) -> Result<(), Refusal> {
    match ctx.broker.controller.propose(cmd).await {
        Ok(_) => Ok(()),
        Err(e) => Err((controller_code(&e), e.to_string())),
    }
}

/// A creation as a binding: every field must be concrete (no ANY, MATCH or UNKNOWN).
fn binding(c: &AclCreation) -> Result<AclBinding, String> {
    let acl = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| format!("invalid resource type {}", c.resource_type))?,
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type).ok_or_else(|| {
            format!(
                "invalid pattern type {} (LITERAL or PREFIXED)",
                c.resource_pattern_type
            )
        })?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: AclOperation::from_code(c.operation)
            .ok_or_else(|| format!("invalid operation {}", c.operation))?,
        permission: AclPermission::from_code(c.permission_type)
            .ok_or_else(|| format!("invalid permission type {}", c.permission_type))?,
    };
    match acl.invalid_reason() {
        Some(reason) => Err(format!("invalid ACL {acl}: {reason}")),
        None => Ok(acl),
    }
}

fn delete_filter(f: &DeleteAclsFilter) -> Result<AclFilter, String> {
    filter(
        f.resource_type_filter,
        f.resource_name_filter.as_ref(),
        f.pattern_type_filter,
        f.principal_filter.as_ref(),
        f.host_filter.as_ref(),
        f.operation,
        f.permission_type,
    )
}

/// A wire filter: ANY (1) or a concrete code per field, null names for any name.
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    fn any_or<T>(code: i8, what: &str, parse: fn(i8) -> Option<T>) -> Result<Option<T>, String> {
        if code == ANY_CODE {
            return Ok(None);
        }
        parse(code)
            .map(Some)
            .ok_or_else(|| format!("invalid {what} filter {code}"))
    }
    Ok(AclFilter {
        resource_type: any_or(resource_type, "resource type", ResourceType::from_code)?,
        resource_name: name.map(|n| n.to_string()),
        pattern: PatternFilter::from_code(pattern)
            .ok_or_else(|| format!("invalid pattern type filter {pattern}"))?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: any_or(operation, "operation", AclOperation::from_code)?,
        permission: any_or(permission, "permission type", AclPermission::from_code)?,
    })
}
