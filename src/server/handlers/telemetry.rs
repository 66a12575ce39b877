//! GetTelemetrySubscriptions and PushTelemetry (KIP-714): who the client is, then the
//! `telemetry` service decides. Any principal may use them, as in Kafka.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};

use super::{str_bytes, Ctx};
use crate::server::telemetry_code;
use crate::telemetry::state::{Push, ACCEPTED_COMPRESSION};
use crate::telemetry::subscription::ClientMeta;

/// What subscriptions are matched on: the request's client id, the software the
/// connection named in ApiVersions, and the connection's address.
fn client_meta(ctx: &Ctx<'_>) -> ClientMeta {
    ClientMeta {
        client_instance_id: String::new(),
        client_id: ctx.client_id.clone(),
        client_software_name: ctx.client_software.0.clone(),
        client_software_version: ctx.client_software.1.clone(),
        client_source_address: ctx.client_host.trim_start_matches('/').to_string(),
        client_source_port: ctx.client_port.to_string(),
    }
}

pub fn get_subscriptions(
    ctx: &Ctx<'_>,
    req: GetTelemetrySubscriptionsRequest,
) -> GetTelemetrySubscriptionsResponse {
    let image = ctx.broker.image();
    let answer = ctx.telemetry.get(
        &image.client_metrics,
        req.client_instance_id,
        &client_meta(ctx),
        crate::now_ms(),
    );
    match answer {
        Ok(a) => GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(a.client_instance_id)
            .with_subscription_id(a.subscription_id)
            .with_accepted_compression_types(ACCEPTED_COMPRESSION.to_vec())
            .with_push_interval_ms(a.push_interval_ms)
            .with_telemetry_max_bytes(ctx.telemetry.max_bytes().min(i32::MAX as usize) as i32)
            .with_delta_temporality(true)
            .with_requested_metrics(a.metrics.into_iter().map(str_bytes).collect()),
        Err(e) => {
            tracing::debug!(error = %e, "GetTelemetrySubscriptions refused");
            GetTelemetrySubscriptionsResponse::default().with_error_code(telemetry_code(&e).code())
        }
    }
}

pub fn push(ctx: &Ctx<'_>, req: PushTelemetryRequest) -> PushTelemetryResponse {
    let image = ctx.broker.image();
    let push = Push {
        client_instance_id: req.client_instance_id,
        subscription_id: req.subscription_id,
        terminating: req.terminating,
        compression_type: req.compression_type,
        payload_len: req.metrics.len(),
    };
    let outcome = ctx.telemetry.push(
        &image.client_metrics,
        push,
        &req.metrics,
        &client_meta(ctx),
        &ctx.principal.to_string(),
        crate::now_ms(),
    );
    match outcome {
        Ok(()) => PushTelemetryResponse::default(),
        Err(e) => {
            tracing::debug!(error = %e, "PushTelemetry refused");
            PushTelemetryResponse::default().with_error_code(telemetry_code(&e).code())
        }
    }
}
