//! Capability traits the handlers are written against: one per capability, not one per SDK call.
//!
//! Each has an AWS adapter in [`crate::aws`] and, with the `mocks` feature, a `mockall` mock whose
//! expectations fail a test on any missing or unexpected call.

mod approval;
mod builds;
#[cfg(feature = "kubernetes")]
mod cluster;
mod history;
mod images;
mod jobs;
mod ledger;
mod merges;
mod metrics;
mod notifier;
mod pipeline;
mod pull_requests;
mod reports;
mod repository;
mod restores;
#[cfg(feature = "kubernetes")]
mod role_sessions;

#[cfg(any(test, feature = "mocks"))]
pub use approval::MockApprovalApi;
pub use approval::{ApprovalApi, ApprovalState, Revision};
#[cfg(any(test, feature = "mocks"))]
pub use builds::MockBuildApi;
pub use builds::{BuildApi, BuildRecord};
#[cfg(all(feature = "kubernetes", any(test, feature = "mocks")))]
pub use cluster::MockClusterAccess;
#[cfg(feature = "kubernetes")]
pub use cluster::{ClusterAccess, ClusterTarget};
pub use history::ActionHistory;
#[cfg(any(test, feature = "mocks"))]
pub use history::MockActionHistory;
pub use images::{
    AlarmReader, AlarmState, AlarmStates, AlarmValue, Finding, ImageRegistry, MAX_TOP_FINDINGS,
    RegistryImage, SEVERITY_ORDER, ScanFindings, ScanState, severity_rank,
};
#[cfg(any(test, feature = "mocks"))]
pub use images::{MockAlarmReader, MockImageRegistry};
#[cfg(any(test, feature = "mocks"))]
pub use jobs::MockJobResults;
pub use jobs::{FailureKind, JobFailure, JobResults, JobSuccess, Reported};
#[cfg(any(test, feature = "mocks"))]
pub use ledger::MockLedger;
pub use ledger::{Claim, Ledger};
#[cfg(any(test, feature = "mocks"))]
pub use merges::MockMergedPullRequests;
pub use merges::{MergedPullRequest, MergedPullRequests};
pub use metrics::Metrics;
#[cfg(any(test, feature = "mocks"))]
pub use metrics::MockMetrics;
#[cfg(any(test, feature = "mocks"))]
pub use notifier::MockNotifier;
pub use notifier::{MAX_SUBJECT_CHARS, Notification, Notifier};

pub use builds::{StartBuild, StartedBuild};
#[cfg(any(test, feature = "mocks"))]
pub use pipeline::MockPipelineApi;
pub use pipeline::{ActionRun, PipelineApi, SourceAction, StartExecution, StartedExecution};
#[cfg(any(test, feature = "mocks"))]
pub use pull_requests::MockPullRequestApi;
pub use pull_requests::{
    MAX_COMMENT_CHARS, PostedComment, PullRequest, PullRequestApi, PullRequestApproval,
    PullRequestComment,
};
#[cfg(any(test, feature = "mocks"))]
pub use reports::MockTestReports;
pub use reports::{TestReports, build_tests};
#[cfg(any(test, feature = "mocks"))]
pub use repository::MockRepositoryApi;
pub use repository::{Commit, RepositoryApi};
#[cfg(any(test, feature = "mocks"))]
pub use restores::MockRestoreClock;
pub use restores::RestoreClock;
#[cfg(all(feature = "kubernetes", any(test, feature = "mocks")))]
pub use role_sessions::MockRoleSessions;
#[cfg(feature = "kubernetes")]
pub use role_sessions::{
    AssumeRoleError, MAX_SESSION_NAME, RoleSession, RoleSessions, SessionName,
};

/// A mock's answer as the boxed future its method returns:
/// `mock.expect_commit().returning(|_, _| reply(Ok(commit)))`.
#[cfg(any(test, feature = "mocks"))]
pub fn reply<T: Send + 'static>(
    value: T,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> {
    Box::pin(std::future::ready(value))
}
