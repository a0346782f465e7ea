//! What a pull-request event asks for: which commit to build, which older builds to stop, or
//! why nothing happens. Pure, tested on `events/pr-validator/`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::InvalidEvent;
use shared::events::codecommit::{PullRequestEventKind, PullRequestStateChange, PullRequestStatus};
use shared::ports::{BuildRecord, PullRequest, StartBuild};
use shared::text::is_commit_id;

use crate::config::Config;
use crate::handler::IgnoreReason;
use crate::message;

/// The build variable naming the pull request a build validates (codebuild-status leaves builds
/// carrying it alone).
pub const PULL_REQUEST_VARIABLE: &str = "PULL_REQUEST_ID";
/// The build variable naming the pull request's repository.
pub const REPOSITORY_VARIABLE: &str = "PULL_REQUEST_REPOSITORY";
/// The build variable holding the commit built: the pull request's head.
pub const SOURCE_COMMIT_VARIABLE: &str = "PULL_REQUEST_SOURCE_COMMIT";
/// The build variable holding the destination's tip when the build started.
pub const DESTINATION_COMMIT_VARIABLE: &str = "PULL_REQUEST_DESTINATION_COMMIT";
/// The build variable holding the pull request's revision when the build started.
pub const REVISION_VARIABLE: &str = "PULL_REQUEST_REVISION_ID";

/// What a pull-request event asks for before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to build.
    Ignore(IgnoreReason),
    /// Build the head of this pull request, if it still is its head.
    Validate(Candidate),
}

/// A pull request the event says needs a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The pull request.
    pub pull_request_id: String,
    /// Its repository.
    pub repository: String,
    /// The head commit the event names.
    pub source_commit: String,
    /// What happened.
    pub event: PullRequestEventKind,
    /// EventBridge's id of the event: a redelivery carries the same one.
    pub event_id: String,
}

/// Decides what a pull-request event asks for.
pub fn decide(
    event: &EventBridgeEvent<PullRequestStateChange>,
    config: &Config,
) -> Result<Decision, InvalidEvent> {
    let detail = &event.detail;
    if !is_pull_request_id(&detail.pull_request_id) {
        return Err(InvalidEvent::new(
            "detail.pullRequestId: not a pull request id (digits)",
        ));
    }
    match detail.event {
        PullRequestEventKind::PullRequestCreated
        | PullRequestEventKind::PullRequestSourceBranchUpdated
        | PullRequestEventKind::PullRequestStatusChanged => {}
        PullRequestEventKind::PullRequestMergeStatusUpdated => {
            return Ok(Decision::Ignore(IgnoreReason::Merged));
        }
        PullRequestEventKind::Other => {
            return Ok(Decision::Ignore(IgnoreReason::NotABuildTrigger));
        }
    }
    if detail.is_merged {
        return Ok(Decision::Ignore(IgnoreReason::Merged));
    }
    if detail.pull_request_status == PullRequestStatus::Closed {
        return Ok(Decision::Ignore(IgnoreReason::Closed));
    }
    let source_commit = detail
        .source_commit
        .clone()
        .ok_or_else(|| InvalidEvent::missing("detail.sourceCommit"))?;
    if !is_commit_id(&source_commit) {
        return Err(InvalidEvent::new(
            "detail.sourceCommit: not a commit id (40 hexadecimal characters)",
        ));
    }
    let event_id = shared::events::event_id(event)?.to_owned();
    let repository = detail
        .repository()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| InvalidEvent::missing("detail.repositoryNames"))?;
    if !config.validates_repository(repository) {
        return Ok(Decision::Ignore(IgnoreReason::OtherRepository {
            repository: repository.to_owned(),
        }));
    }
    let destination = detail
        .destination_branch()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| InvalidEvent::missing("detail.destinationReference"))?;
    if !config.validates_destination(destination) {
        return Ok(Decision::Ignore(IgnoreReason::OtherDestination {
            destination: destination.to_owned(),
        }));
    }
    Ok(Decision::Validate(Candidate {
        pull_request_id: detail.pull_request_id.clone(),
        repository: repository.to_owned(),
        source_commit,
        event: detail.event,
        event_id,
    }))
}

/// How the head commit gets its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildChoice {
    /// Start this build.
    Start(StartBuild),
    /// A build of the same commit for this pull request is already running: report that one.
    Running {
        /// `project:uuid`.
        id: String,
        /// Its number.
        number: Option<u64>,
    },
}

/// What validating a pull request's head takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The build of the head.
    pub build: BuildChoice,
    /// The pull request's running builds of older commits, to stop (`project:uuid`).
    pub stop: Vec<String>,
}

/// Checks the event against the pull request as it is now.
///
/// Acting on the pull request as it is now, not as the event says, keeps a late or redelivered
/// event from building (and stopping builds for) a commit the pull request has moved on from.
pub fn check_current(candidate: &Candidate, current: &PullRequest) -> Result<(), IgnoreReason> {
    if current.merged {
        return Err(IgnoreReason::Merged);
    }
    if !current.open {
        return Err(IgnoreReason::Closed);
    }
    if !current
        .source_commit
        .eq_ignore_ascii_case(&candidate.source_commit)
    {
        return Err(IgnoreReason::Stale {
            event_commit: candidate.source_commit.clone(),
            head_commit: current.source_commit.clone(),
        });
    }
    Ok(())
}

/// Plans the validation of the pull request's head, given the validation project's latest
/// builds (newest first): the pull request's running build of the head is reused, its running
/// builds of other commits are stopped.
pub fn plan(
    candidate: &Candidate,
    current: &PullRequest,
    recent: &[BuildRecord],
    config: &Config,
) -> Plan {
    let running = recent.iter().filter(|build| {
        !build.complete
            && !build.status.is_final()
            && build.variable(PULL_REQUEST_VARIABLE) == Some(current.id.as_str())
    });
    let mut same = None;
    let mut stop = Vec::new();
    for build in running {
        if built_commit(build).is_some_and(|c| c.eq_ignore_ascii_case(&current.source_commit)) {
            same.get_or_insert(build);
        } else {
            stop.push(build.id.clone());
        }
    }
    let build = match same {
        Some(build) => BuildChoice::Running {
            id: build.id.clone(),
            number: build.number,
        },
        None => BuildChoice::Start(start_request(current, &candidate.event_id, config)),
    };
    Plan { build, stop }
}

/// The StartBuild request that validates the pull request's head, for the event `event_id`.
pub fn start_request(current: &PullRequest, event_id: &str, config: &Config) -> StartBuild {
    StartBuild {
        project: config.project.clone(),
        source_version: current.source_commit.clone(),
        variables: vec![
            (PULL_REQUEST_VARIABLE.to_owned(), current.id.clone()),
            (REPOSITORY_VARIABLE.to_owned(), current.repository.clone()),
            (
                SOURCE_COMMIT_VARIABLE.to_owned(),
                current.source_commit.clone(),
            ),
            (
                DESTINATION_COMMIT_VARIABLE.to_owned(),
                current.destination_commit.clone(),
            ),
            (REVISION_VARIABLE.to_owned(), current.revision_id.clone()),
        ],
        idempotency_token: message::build_token(
            event_id,
            &current.id,
            &current.repository,
            &current.source_commit,
            &current.destination_commit,
            &current.revision_id,
        ),
    }
}

/// The commit a validation build builds: its variable, else its source version.
fn built_commit(build: &BuildRecord) -> Option<&str> {
    build
        .variable(SOURCE_COMMIT_VARIABLE)
        .or(build.source_version.as_deref())
        .filter(|c| is_commit_id(c))
}

/// Whether `id` looks like a CodeCommit pull request id.
pub fn is_pull_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}
