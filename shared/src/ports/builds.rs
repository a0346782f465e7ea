use std::future::Future;

use crate::error::UpstreamError;
use crate::events::codebuild::BuildStatus;

/// Reading CodeBuild builds.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait BuildApi: Send + Sync {
    /// The most recent builds of `project`, newest first, at most `limit` of them.
    fn recent_builds(
        &self,
        project: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<BuildRecord>, UpstreamError>> + Send;
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
