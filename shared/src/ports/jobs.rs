use std::future::Future;

use crate::error::UpstreamError;

/// Reporting the outcome of a CodePipeline job (a Lambda invoke action) back to the pipeline.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait JobResults: Send + Sync {
    /// The job succeeded, or, with a continuation token, is still working: CodePipeline invokes
    /// the function again with the token.
    fn succeed(
        &self,
        job_id: &str,
        result: &JobSuccess,
    ) -> impl Future<Output = Result<Reported, UpstreamError>> + Send;

    /// The job failed.
    fn fail(
        &self,
        job_id: &str,
        failure: &JobFailure,
    ) -> impl Future<Output = Result<Reported, UpstreamError>> + Send;
}

/// What a successful (or continuing) job reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSuccess {
    /// Shown in the console (at most 2048 characters).
    pub summary: String,
    /// Set while the work goes on: CodePipeline invokes again with this token.
    pub continuation_token: Option<String>,
    /// An id of the work in the outside system.
    pub external_execution_id: Option<String>,
    /// Progress, 0 to 100, when continuing.
    pub percent_complete: Option<u8>,
    /// Output variables of the action (only on the final result: CodePipeline takes them with
    /// no continuation token).
    pub output_variables: std::collections::BTreeMap<String, String>,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// What a person needs to know (at most 5000 characters).
    pub message: String,
    /// An id of the work in the outside system.
    pub external_execution_id: Option<String>,
}

/// CodePipeline's failure types that apply here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The action is configured wrongly (its parameters).
    ConfigurationError,
    /// The work itself failed.
    JobFailed,
}

/// Whether the report was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Recorded.
    Recorded,
    /// The job had already been reported (a redelivered invocation): nothing changed.
    AlreadyReported,
}
