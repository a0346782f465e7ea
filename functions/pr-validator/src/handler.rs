//! The two events pr-validator takes, carried out through [`PullRequestApi`], [`BuildApi`] and
//! [`TestReports`].
//!
//! Each event kind has its own pure decision ([`crate::pull_request`], [`crate::build`]); this
//! module dispatches on `source` / `detail-type`, reads what the decision needs, and produces the
//! effects in an order that never loses one: every effect is idempotent (StartBuild's token,
//! PostCommentForPullRequest's token, approval states), so a failure returns an `Upstream` error,
//! Lambda retries the whole event, and what was done already is not done twice.
//!
//! A schedule also invokes it: EventBridge delivers build events on a best-effort basis, so the
//! sweep reads the validation project's recent builds and reports each one that ended in its
//! window and has no report comment yet, through the same path, as the event CodeBuild emits
//! for it. A late event after the sweep finds the report's token taken: nothing more.

use std::collections::HashMap;
use std::fmt;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use shared::events::codebuild::{self, BUILD_STATE_CHANGE, BuildStateChange};
use shared::events::codecommit::{self, PULL_REQUEST_STATE_CHANGE, PullRequestStateChange};
use shared::events::schedule::{self, SCHEDULED_EVENT, Scheduled};
use shared::ports::{
    BuildApi, BuildRecord, MergedPullRequests, PostedComment, PullRequest, PullRequestApi,
    PullRequestComment, TestReports,
};
use shared::{FunctionError, InvalidEvent};
use tracing::{info, warn};

use crate::build::{self, Finished, Interest, Verdict};
use crate::config::Config;
use crate::merge::{self, NotRecorded};
use crate::message::{self, CommentKind};
use crate::pull_request::{self, BuildChoice, Decision};

/// The ports and settings events are handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<P, B, R, G = NotRecorded> {
    pull_requests: P,
    builds: B,
    reports: R,
    merges: Option<G>,
    config: Config,
}

impl<P: PullRequestApi, B: BuildApi, R: TestReports> Deps<P, B, R> {
    /// Dependencies over the given ports and settings; merges are not recorded.
    pub fn new(pull_requests: P, builds: B, reports: R, config: Config) -> Self {
        Self {
            pull_requests,
            builds,
            reports,
            merges: None,
            config,
        }
    }
}

impl<P: PullRequestApi, B: BuildApi, R: TestReports, G: MergedPullRequests> Deps<P, B, R, G> {
    /// The same dependencies, recording merges in `merges` (none: not recorded).
    pub fn recording_merges<M: MergedPullRequests>(self, merges: Option<M>) -> Deps<P, B, R, M> {
        Deps {
            pull_requests: self.pull_requests,
            builds: self.builds,
            reports: self.reports,
            merges,
            config: self.config,
        }
    }
}

/// An event pr-validator takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A pull request changed.
    PullRequest(EventBridgeEvent<PullRequestStateChange>),
    /// A build changed status.
    Build(EventBridgeEvent<BuildStateChange>),
    /// The sweep's schedule fired.
    Sweep(EventBridgeEvent<Scheduled>),
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The head commit's build was started (or was already running), and said so.
    #[serde(rename_all = "camelCase")]
    BuildStarted {
        /// The pull request.
        pull_request_id: String,
        /// The commit built.
        commit_id: String,
        /// The build (`project:uuid`).
        build_id: String,
        /// Whether the build was already running (a redelivery or a retry).
        already_running: bool,
        /// The pull request's builds of older commits that were stopped.
        stopped: Vec<String>,
        /// The comment's id; absent when a comment with other content was already posted for
        /// this build (CodeCommit answers a repeat of the same comment with the first one).
        #[serde(skip_serializing_if = "Option::is_none")]
        comment_id: Option<String>,
    },
    /// A build of the head finished: its result is on the pull request.
    #[serde(rename_all = "camelCase")]
    Reported {
        /// The pull request.
        pull_request_id: String,
        /// The build (its ARN).
        build_id: String,
        /// How it ended.
        status: String,
        /// The approval state given to the current revision.
        approval: String,
        /// The comment's id; absent when a comment with other content was already posted for
        /// this build (CodeCommit answers a repeat of the same comment with the first one).
        #[serde(skip_serializing_if = "Option::is_none")]
        comment_id: Option<String>,
    },
    /// A build of an older commit finished: marked superseded, no approval changed.
    #[serde(rename_all = "camelCase")]
    Superseded {
        /// The pull request.
        pull_request_id: String,
        /// The build (its ARN).
        build_id: String,
        /// The commit it built.
        commit_id: String,
        /// The pull request's head now.
        head_commit: String,
        /// The comment's id; absent when a comment with other content was already posted for
        /// this build (CodeCommit answers a repeat of the same comment with the first one).
        #[serde(skip_serializing_if = "Option::is_none")]
        comment_id: Option<String>,
    },
    /// Nothing to do, and why.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
    /// A merged pull request was recorded under the commit its merge made.
    #[serde(rename_all = "camelCase")]
    MergeRecorded {
        /// The pull request.
        pull_request_id: String,
        /// The commit its merge made.
        merge_commit: String,
    },
    /// A sweep looked at the validation builds that ended in its window.
    #[serde(rename_all = "camelCase")]
    Swept {
        /// How many it looked at.
        checked: usize,
        /// The builds (ARNs) it reported: their event never came.
        reported: Vec<String>,
    },
}

/// Why an event leads to nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IgnoreReason {
    /// The pull request is closed.
    Closed,
    /// The pull request is merged.
    Merged,
    /// A pull-request event that asks for no build (approvals, approval rules…).
    NotABuildTrigger,
    /// A repository whose pull requests are not validated.
    OtherRepository {
        /// The repository.
        repository: String,
    },
    /// A destination branch whose pull requests are not validated.
    OtherDestination {
        /// The branch.
        destination: String,
    },
    /// The event names a commit the pull request has moved on from (a late or redelivered
    /// event); the event for the newer commit builds that one.
    #[serde(rename_all = "camelCase")]
    Stale {
        /// The commit the event names.
        event_commit: String,
        /// The pull request's head now.
        head_commit: String,
    },
    /// A build of another project.
    OtherProject {
        /// The project.
        project: String,
    },
    /// The build is still running.
    NotFinished,
    /// A build of the validation project that no pull request asked for.
    NotAPullRequestBuild,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the pull request is closed"),
            Self::Merged => f.write_str("the pull request is merged"),
            Self::NotABuildTrigger => f.write_str("the change asks for no build"),
            Self::OtherRepository { repository } => {
                write!(f, "pull requests of {repository} are not validated")
            }
            Self::OtherDestination { destination } => {
                write!(f, "pull requests into {destination} are not validated")
            }
            Self::Stale {
                event_commit,
                head_commit,
            } => write!(
                f,
                "the event names {} but the pull request's head is {}",
                shared::text::short_commit(event_commit),
                shared::text::short_commit(head_commit)
            ),
            Self::OtherProject { project } => {
                write!(f, "{project} is not the validation project")
            }
            Self::NotFinished => f.write_str("the build is still running"),
            Self::NotAPullRequestBuild => f.write_str("the build validates no pull request"),
        }
    }
}

/// Parses a raw EventBridge payload as one of the two events pr-validator takes.
pub fn parse(payload: Value) -> Result<Incoming, InvalidEvent> {
    match payload.get("source").and_then(Value::as_str) {
        Some(codecommit::SOURCE) => {
            shared::events::eventbridge(payload, codecommit::SOURCE, &[PULL_REQUEST_STATE_CHANGE])
                .map(Incoming::PullRequest)
        }
        Some(codebuild::SOURCE) => {
            shared::events::eventbridge(payload, codebuild::SOURCE, &[BUILD_STATE_CHANGE])
                .map(Incoming::Build)
        }
        Some(schedule::SOURCE) => {
            shared::events::eventbridge(payload, schedule::SOURCE, &[SCHEDULED_EVENT])
                .map(Incoming::Sweep)
        }
        Some(other) => Err(InvalidEvent::new(format!(
            "event source {} is not handled here (expected {:?}, {:?} or {:?})",
            shared::events::quoted(other),
            codecommit::SOURCE,
            codebuild::SOURCE,
            schedule::SOURCE
        ))),
        // Let the shared parser name what is missing or malformed.
        None => {
            shared::events::eventbridge(payload, codecommit::SOURCE, &[PULL_REQUEST_STATE_CHANGE])
                .map(Incoming::PullRequest)
        }
    }
}

/// Handles one event end to end.
pub async fn handle<P: PullRequestApi, B: BuildApi, R: TestReports, G: MergedPullRequests>(
    deps: &Deps<P, B, R, G>,
    payload: Value,
) -> Result<Outcome, FunctionError> {
    match parse(payload)? {
        Incoming::PullRequest(event) if merge::is_merge(&event) => match &deps.merges {
            Some(merges) => merge::record(&deps.pull_requests, merges, &deps.config, &event).await,
            None => Ok(ignored_pull_request(
                &event.detail.pull_request_id,
                IgnoreReason::Merged,
            )),
        },
        Incoming::PullRequest(event) => handle_pull_request(deps, &event).await,
        Incoming::Build(event) => handle_build(deps, &event, None).await,
        Incoming::Sweep(event) => sweep(deps, &event).await,
    }
}

/// Reports the validation builds that ended in the sweep's window and have no report comment
/// on their pull request yet. Every build is attempted; a failure fails the invocation
/// afterwards (the next sweep tries again).
async fn sweep<P: PullRequestApi, B: BuildApi, R: TestReports, G>(
    deps: &Deps<P, B, R, G>,
    event: &EventBridgeEvent<Scheduled>,
) -> Result<Outcome, FunctionError> {
    let at = schedule::scheduled_at(event)?;
    let history = deps
        .builds
        .recent_builds(&deps.config.project, deps.config.history_depth)
        .await?;
    let mut tokens: HashMap<String, Vec<String>> = HashMap::new();
    let mut checked = 0;
    let mut reported = Vec::new();
    let mut first_failure = None;
    for record in deps.config.sweep_window.due(&history, at) {
        let Some(lost) = record.state_change() else {
            continue;
        };
        let finished = match build::classify(&lost.detail, &deps.config) {
            Ok(Interest::Report(finished)) => finished,
            // Not a pull request's build: nothing to report.
            Ok(Interest::Ignore(_)) => continue,
            Err(invalid) => {
                warn!(build_id = %lost.detail.build_id, error = %invalid, "sweep: a validation build that tells no pull request or commit");
                continue;
            }
        };
        checked += 1;
        let pull_request = finished.pull_request_id.as_str();
        if !tokens.contains_key(pull_request) {
            match deps.pull_requests.comment_tokens(pull_request).await {
                Ok(found) => {
                    tokens.insert(pull_request.to_owned(), found);
                }
                Err(error) => {
                    warn!(pull_request_id = %pull_request, error = %shared::error::ErrorChain(&error), "sweep: the pull request's comments cannot be read");
                    first_failure.get_or_insert(error.into());
                    continue;
                }
            }
        }
        let report_token =
            message::comment_token(CommentKind::Result, pull_request, record.id.as_str());
        if tokens
            .get(pull_request)
            .is_some_and(|found| found.contains(&report_token))
        {
            continue;
        }
        match handle_build(deps, &lost, Some(record)).await {
            Ok(Outcome::Reported { .. } | Outcome::Superseded { .. }) => {
                info!(pull_request_id = %pull_request, build_id = %lost.detail.build_id, "sweep: a build whose event never came is reported");
                reported.push(lost.detail.build_id);
            }
            Ok(_) => {}
            Err(error) => {
                warn!(pull_request_id = %pull_request, build_id = %lost.detail.build_id, error = %shared::error::ErrorChain(&error), "sweep: build not reported");
                first_failure.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_failure {
        return Err(error);
    }
    info!(checked, reported = reported.len(), "sweep done");
    Ok(Outcome::Swept { checked, reported })
}

async fn handle_pull_request<P: PullRequestApi, B: BuildApi, R: TestReports, G>(
    deps: &Deps<P, B, R, G>,
    event: &EventBridgeEvent<PullRequestStateChange>,
) -> Result<Outcome, FunctionError> {
    let candidate = match pull_request::decide(event, &deps.config)? {
        Decision::Ignore(reason) => {
            return Ok(ignored_pull_request(&event.detail.pull_request_id, reason));
        }
        Decision::Validate(candidate) => candidate,
    };
    let current = deps
        .pull_requests
        .pull_request(&candidate.pull_request_id)
        .await?;
    if let Err(reason) = pull_request::check_current(&candidate, &current) {
        return Ok(ignored_pull_request(&candidate.pull_request_id, reason));
    }
    let recent = deps
        .builds
        .recent_builds(&deps.config.project, deps.config.history_depth)
        .await?;
    let plan = pull_request::plan(&candidate, &current, &recent, &deps.config);

    // The build first: the comment links to it. A retry finds it running (or CodeBuild answers
    // it again for the same token) and comments under the same token.
    let (build_id, build_arn, number, already_running) = match plan.build {
        BuildChoice::Start(request) => {
            let started = deps.builds.start_build(&request).await?;
            (started.id, started.arn, started.number, false)
        }
        BuildChoice::Running { id, number } => {
            let arn = build_arn(event, &id);
            (id, arn, number, true)
        }
    };
    info!(
        pull_request_id = %current.id,
        commit = %current.source_commit,
        build_id = %build_id,
        already_running,
        event = candidate.event.as_str(),
        "pull request build started"
    );
    let link = message::build_link(&deps.config.project, number, &build_arn);
    let comment_id = comment(
        deps,
        &current,
        CommentKind::Started,
        &build_id,
        message::started(&current.source_commit, &link),
    )
    .await?;

    // A newer commit supersedes the older ones' builds. Every one is attempted; a failure
    // fails the invocation so the retry stops what is left (stopping twice changes nothing).
    let mut stopped = Vec::with_capacity(plan.stop.len());
    let mut first_failure = None;
    for old in plan.stop {
        match deps.builds.stop_build(&old).await {
            Ok(()) => {
                info!(pull_request_id = %current.id, build_id = %old, "superseded build stopped");
                stopped.push(old);
            }
            Err(error) => {
                warn!(
                    pull_request_id = %current.id,
                    build_id = %old,
                    error = %shared::error::ErrorChain(&error),
                    "superseded build not stopped"
                );
                first_failure.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_failure {
        return Err(error.into());
    }
    Ok(Outcome::BuildStarted {
        pull_request_id: current.id,
        commit_id: candidate.source_commit,
        build_id,
        already_running,
        stopped,
        comment_id,
    })
}

async fn handle_build<P: PullRequestApi, B: BuildApi, R: TestReports, G>(
    deps: &Deps<P, B, R, G>,
    event: &EventBridgeEvent<BuildStateChange>,
    known: Option<&BuildRecord>,
) -> Result<Outcome, FunctionError> {
    let build_event = &event.detail;
    let finished: Finished = match build::classify(build_event, &deps.config)? {
        Interest::Ignore(reason) => return Ok(ignored_build(build_event, reason)),
        Interest::Report(finished) => finished,
    };
    let current = deps
        .pull_requests
        .pull_request(&finished.pull_request_id)
        .await?;
    match build::judge(&finished, &current) {
        Verdict::Ignore(reason) => Ok(ignored_build(build_event, reason)),
        Verdict::Result(approval) => {
            // The approval first: if the pull request moves on between the read and the
            // update, CodeCommit refuses the stale revision, the retry sees the newer head and
            // comments "superseded" instead of a result that no longer applies.
            deps.pull_requests
                .update_approval(&current.id, &current.revision_id, approval)
                .await?;
            // The sweep has read the build already; an event does not carry its reports.
            let tests = shared::ports::build_tests(
                &deps.builds,
                &deps.reports,
                build_event.build_short_id(),
                known.map(|record| record.report_arns.as_slice()),
                &deps.config.report_groups,
            )
            .await;
            let text = message::result(
                event,
                &finished.source_commit,
                approval,
                &deps.config.badge_base_url,
                &tests,
            );
            let comment_id = comment(
                deps,
                &current,
                CommentKind::Result,
                build_event.build_short_id(),
                text,
            )
            .await?;
            info!(
                pull_request_id = %current.id,
                build_id = %build_event.build_id,
                status = finished.status.as_str(),
                approval = approval.as_str(),
                revision_id = %current.revision_id,
                "pull request build reported"
            );
            Ok(Outcome::Reported {
                pull_request_id: current.id,
                build_id: build_event.build_id.clone(),
                status: finished.status.as_str().to_owned(),
                approval: approval.as_str().to_owned(),
                comment_id,
            })
        }
        Verdict::Superseded { head } => {
            let text = message::superseded(event, &finished.source_commit, &head);
            let comment_id = comment(
                deps,
                &current,
                CommentKind::Superseded,
                build_event.build_short_id(),
                text,
            )
            .await?;
            info!(
                pull_request_id = %current.id,
                build_id = %build_event.build_id,
                commit = %finished.source_commit,
                head = %head,
                "superseded build reported; no approval changed"
            );
            Ok(Outcome::Superseded {
                pull_request_id: current.id,
                build_id: build_event.build_id.clone(),
                commit_id: finished.source_commit,
                head_commit: head,
                comment_id,
            })
        }
    }
}

/// Posts a general comment on the pull request's current comparison, once per build and kind.
async fn comment<P: PullRequestApi, B: BuildApi, R: TestReports, G>(
    deps: &Deps<P, B, R, G>,
    current: &PullRequest,
    kind: CommentKind,
    build_id: &str,
    content: String,
) -> Result<Option<String>, FunctionError> {
    let comment = PullRequestComment {
        pull_request_id: current.id.clone(),
        repository: current.repository.clone(),
        before_commit_id: current.destination_commit.clone(),
        after_commit_id: current.source_commit.clone(),
        content,
        client_request_token: message::comment_token(kind, &current.id, build_id),
    };
    match deps.pull_requests.post_comment(&comment).await? {
        PostedComment::Posted { comment_id } => Ok(Some(comment_id)),
        PostedComment::AlreadyPosted => {
            info!(pull_request_id = %current.id, build_id, "comment already posted");
            Ok(None)
        }
    }
}

/// The ARN of build `id` of this account and region, for a build known only by its id.
fn build_arn(event: &EventBridgeEvent<PullRequestStateChange>, id: &str) -> String {
    // The partition is the repository ARN's; the region and account are the event's.
    let partition = event
        .resources
        .as_ref()
        .and_then(|resources| resources.first())
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| !p.is_empty())
        .unwrap_or("aws");
    format!(
        "arn:{partition}:codebuild:{}:{}:build/{id}",
        event.region.as_deref().unwrap_or_default(),
        event.account.as_deref().unwrap_or_default()
    )
}

fn ignored_pull_request(pull_request_id: &str, reason: IgnoreReason) -> Outcome {
    info!(pull_request_id, reason = %reason, "pull request event ignored");
    Outcome::Ignored { reason }
}

fn ignored_build(build: &BuildStateChange, reason: IgnoreReason) -> Outcome {
    info!(
        project = %build.project_name,
        build_id = %build.build_id,
        status = build.outcome().as_str(),
        reason = %reason,
        "build event ignored"
    );
    Outcome::Ignored { reason }
}

#[cfg(test)]
mod tests;
