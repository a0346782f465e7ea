use std::future::Future;

use crate::error::UpstreamError;
use crate::events::codebuild::BuildStatus;

/// Starting, stopping and reading CodeBuild builds.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait BuildApi: Send + Sync {
    /// The most recent builds of `project`, newest first, at most `limit` of them.
    fn recent_builds(
        &self,
        project: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<BuildRecord>, UpstreamError>> + Send;

    /// Starts a build of `request.project`. Idempotent under `request.idempotency_token` for
    /// five minutes (CodeBuild's window): the same request again answers the same build.
    fn start_build(
        &self,
        request: &StartBuild,
    ) -> impl Future<Output = Result<StartedBuild, UpstreamError>> + Send;

    /// Stops the build `build_id` (`project:uuid`); a build that has already finished stays
    /// as it is.
    fn stop_build(&self, build_id: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// What the functions need to know of a past or running build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    /// `project:uuid`.
    pub id: String,
    /// The build's number within its project.
    pub number: Option<u64>,
    /// Its status.
    pub status: BuildStatus,
    /// Whether it has finished.
    pub complete: bool,
    /// The source version asked for.
    pub source_version: Option<String>,
    /// Its plain-text environment variables.
    pub variables: Vec<(String, String)>,
}

impl BuildRecord {
    /// The value of variable `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A build to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartBuild {
    /// The project's name.
    pub project: String,
    /// What to build: for a CodeCommit source, a commit id, branch or tag.
    pub source_version: String,
    /// Plain-text environment variables for this build only, added to (or replacing) the
    /// project's.
    pub variables: Vec<(String, String)>,
    /// CodeBuild's idempotency token: the same request with the same token within five
    /// minutes starts nothing new.
    pub idempotency_token: String,
}

/// A build that was started (or had already been started under the same token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBuild {
    /// `project:uuid`.
    pub id: String,
    /// The build's ARN.
    pub arn: String,
    /// Its number within its project.
    pub number: Option<u64>,
}
