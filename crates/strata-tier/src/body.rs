//! A `GetResult` taken apart for a wrapper store that changes its body (counting its bytes,
//! truncating it for fault injection) and keeps the rest: its metadata, range, attributes
//! and extensions go back around the new body unchanged. A local file's body is read as a
//! stream like any other, so wrappers see one kind of body.

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::{Attributes, GetResult, GetResultPayload, ObjectMeta, Result};

/// What a `GetResult` keeps besides its body.
pub(crate) struct GetFrame {
    meta: ObjectMeta,
    range: std::ops::Range<u64>,
    attributes: Attributes,
    extensions: http::Extensions,
}

/// Splits `r` into its body as a stream and the frame to put a new body in.
pub(crate) fn take_body(r: GetResult) -> (BoxStream<'static, Result<Bytes>>, GetFrame) {
    let GetResult {
        meta,
        range,
        attributes,
        extensions,
        payload,
    } = r;
    let frame = GetFrame {
        meta,
        range,
        attributes,
        extensions,
    };
    let body = match payload {
        GetResultPayload::Stream(s) => s,
        file @ GetResultPayload::File(..) => GetResult {
            payload: file,
            meta: frame.meta.clone(),
            range: frame.range.clone(),
            attributes: frame.attributes.clone(),
            extensions: frame.extensions.clone(),
        }
        .into_stream(),
    };
    (body, frame)
}

impl GetFrame {
    /// The `GetResult` with `body` in place of the original one.
    pub(crate) fn with_body(self, body: BoxStream<'static, Result<Bytes>>) -> GetResult {
        GetResult {
            payload: GetResultPayload::Stream(body),
            meta: self.meta,
            range: self.range,
            attributes: self.attributes,
            extensions: self.extensions,
        }
    }
}
