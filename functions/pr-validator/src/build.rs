//! What a validation build's state change means for its pull request. Pure, tested on
//! `events/pr-validator/`.

use shared::InvalidEvent;
use shared::events::codebuild::{BuildStateChange, BuildStatus};
use shared::ports::{PullRequest, PullRequestApproval};

use crate::config::Config;
use crate::handler::IgnoreReason;
use crate::pull_request::{PULL_REQUEST_VARIABLE, SOURCE_COMMIT_VARIABLE, is_pull_request_id};
use shared::text::is_commit_id;

/// What a build event asks for before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Nothing to report.
    Ignore(IgnoreReason),
    /// A finished validation build: report it on its pull request.
    Report(Finished),
}

/// A finished validation build, and what it validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The pull request it validated.
    pub pull_request_id: String,
    /// The commit it built.
    pub source_commit: String,
    /// How it ended, as BatchGetBuilds words it ([`BuildStateChange::outcome`]).
    pub status: BuildStatus,
}

/// Decides what a build event asks for.
pub fn classify(build: &BuildStateChange, config: &Config) -> Result<Interest, InvalidEvent> {
    if build.project_name != config.project {
        return Ok(Interest::Ignore(IgnoreReason::OtherProject {
            project: build.project_name.clone(),
        }));
    }
    if !build.build_status.is_final() {
        return Ok(Interest::Ignore(IgnoreReason::NotFinished));
    }
    // A build someone started by hand in the validation project validates no pull request.
    let Some(pull_request_id) = build.variable(PULL_REQUEST_VARIABLE) else {
        return Ok(Interest::Ignore(IgnoreReason::NotAPullRequestBuild));
    };
    if !is_pull_request_id(pull_request_id) {
        return Err(InvalidEvent::new(format!(
            "detail.additional-information.environment: {PULL_REQUEST_VARIABLE} is not a pull request id (digits)"
        )));
    }
    let source_commit = build
        .variable(SOURCE_COMMIT_VARIABLE)
        .or(build.additional_information.source_version.as_deref())
        .filter(|commit| is_commit_id(commit))
        .ok_or_else(|| {
            InvalidEvent::new(format!(
                "detail.additional-information: neither {SOURCE_COMMIT_VARIABLE} nor source-version names the commit built"
            ))
        })?;
    Ok(Interest::Report(Finished {
        pull_request_id: pull_request_id.to_owned(),
        source_commit: source_commit.to_ascii_lowercase(),
        // A time-out or a fault arrives as FAILED: the phases tell which.
        status: build.outcome(),
    }))
}

/// What a finished build does to its pull request, as the pull request is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The pull request is closed: no comment, no approval.
    Ignore(IgnoreReason),
    /// The build is of the head commit: comment the result and set this approval on the
    /// current revision.
    Result(PullRequestApproval),
    /// The pull request has moved on to `head`: say the result is superseded, approve nothing.
    Superseded {
        /// The pull request's head now.
        head: String,
    },
}

/// Judges a finished build against its pull request as it is now.
pub fn judge(finished: &Finished, current: &PullRequest) -> Verdict {
    if current.merged {
        return Verdict::Ignore(IgnoreReason::Merged);
    }
    if !current.open {
        return Verdict::Ignore(IgnoreReason::Closed);
    }
    if !current
        .source_commit
        .eq_ignore_ascii_case(&finished.source_commit)
    {
        return Verdict::Superseded {
            head: current.source_commit.clone(),
        };
    }
    Verdict::Result(match finished.status {
        BuildStatus::Succeeded => PullRequestApproval::Approve,
        // A failure, a time-out, a fault or a stop: nothing vouches for this revision.
        _ => PullRequestApproval::Revoke,
    })
}
