use std::future::Future;

use chrono::{DateTime, Utc};

use crate::error::UpstreamError;

/// When a service (a pipeline's environment) went down and came back: DORA's time to restore.
///
/// A failed deploy opens an outage unless one is open; the next successful deploy closes it and
/// learns how long it lasted. Events arrive late and out of order, so a failure older than the
/// last success opens nothing, and closing is idempotent per deploy: the same deploy told twice
/// learns the same duration.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RestoreClock: Send + Sync {
    /// A deploy of `service` failed at `at`.
    fn deploy_failed(
        &self,
        service: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// Deploy `deploy` (an execution id) of `service` succeeded at `at`: how long the service had
    /// been failed, if it had.
    fn deployed(
        &self,
        service: &str,
        deploy: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<std::time::Duration>, UpstreamError>> + Send;
}
