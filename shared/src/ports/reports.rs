use std::future::Future;

use crate::error::UpstreamError;
use crate::reports::TestReport;

/// Reading the test reports CodeBuild made of a build's JUnit files.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TestReports: Send + Sync {
    /// The reports `report_arns` (a build's `reportArns`), in that order, each with its first
    /// failing cases (at most [`crate::reports::MAX_FAILURES_SHOWN`]). A report that no longer
    /// exists is left out. Bounded: whatever a report holds, it costs a fixed number of calls.
    fn reports(
        &self,
        report_arns: &[String],
    ) -> impl Future<Output = Result<Vec<TestReport>, UpstreamError>> + Send;
}
