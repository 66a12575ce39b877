//! Retrying one object-store call: transient errors (anything but NotFound,
//! AlreadyExists, Precondition, NotModified) are retried a few times with a short
//! exponential backoff before the whole operation (an upload, a read) is failed
//! back to its caller, which has its own, longer backoff. Every call retried here is
//! idempotent: a PUT of the same bytes to a fresh key, a GET, a LIST, or a
//! create-if-absent whose lost first success shows up as `AlreadyExists`.

use std::future::Future;
use std::time::Duration;

pub const ATTEMPTS: u32 = 4;
const FIRST_DELAY: Duration = Duration::from_millis(25);

fn permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotImplemented { .. }
    )
}

/// Runs `call` until it succeeds, fails permanently, or [`ATTEMPTS`] are used.
pub async fn retry<T, F, Fut>(what: &str, mut call: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut delay = FIRST_DELAY;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if permanent(&e) || attempt >= ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::info!(what, attempt, error = %e, "object store call failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
        }
    }
}
