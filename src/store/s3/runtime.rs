//! The async side of the S3 store: the one runtime every client shares, cancellation of any
//! operation by SIGINT or SIGTERM, and the store's clock as its answers tell it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// How far this host's clock is ahead of the store's, read from the `Date` header of every
/// answer (an interceptor on both clients).
#[derive(Debug, Clone, Default)]
pub(super) struct StoreClock(pub(super) Arc<std::sync::Mutex<Option<chrono::Duration>>>);

impl aws_sdk_s3::config::Intercept for StoreClock {
    fn name(&self) -> &'static str {
        "pgtier-store-clock"
    }

    fn read_before_deserialization(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let store = ctx.response().headers().get("date").and_then(|d| DateTime::parse_from_rfc2822(d).ok());
        if let (Some(store), Ok(mut skew)) = (store, self.0.lock()) {
            *skew = Some(Utc::now() - store.with_timezone(&Utc));
        }
        Ok(())
    }
}

/// `op`, or `Cancelled` as soon as a signal arrives.
pub(super) async fn until_signal<T>(op: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::select! {
        r = op => r,
        _ = signalled() => Err(StoreError::Cancelled),
    }
}

/// Ends when SIGINT or SIGTERM has arrived (the handler only sets a flag: it is polled).
pub(super) async fn signalled() {
    while !crate::signals::interrupted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one async runtime of the process, shared by every S3 client.
pub(super) fn runtime() -> crate::error::Result<Arc<tokio::runtime::Runtime>> {
    crate::runtime::shared().map_err(|e| crate::failed!("cannot start the S3 client runtime: {e}"))
}
