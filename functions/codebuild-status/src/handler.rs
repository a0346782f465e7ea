//! What a build state change means for the people watching the project.
//!
//! [`classify`] and [`fix_report`] are pure and tested on `events/codebuild-status/`; [`handle`]
//! carries the decision out through [`BuildApi`], [`TestReports`], [`Ledger`] and [`Notifier`].
//!
//! EventBridge delivers CodeBuild's events on a best-effort basis, so a schedule also invokes the
//! function: the sweep reads the projects' recent builds and hands each one that ended in its
//! window to the same path, as the event CodeBuild emits for it; the ledger, keyed by build and
//! status, tells what was already notified, whichever came first.

use std::fmt;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use shared::events::codebuild::{BUILD_STATE_CHANGE, BuildStateChange, BuildStatus, SOURCE};
use shared::events::schedule::{self, SCHEDULED_EVENT, Scheduled};
use shared::ports::{BuildApi, BuildRecord, Claim, Ledger, Notifier, TestReports};
use shared::{FunctionError, InvalidEvent};
use tracing::{info, warn};

use crate::config::{Config, NotifyOn};
use crate::message::{self, Report, SourceRef};

/// The environment variable pr-validator sets on the builds it starts.
pub const PULL_REQUEST_VARIABLE: &str = "PULL_REQUEST_ID";

/// The ports and settings a build event is handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<B, R, N, L> {
    builds: B,
    reports: R,
    notifier: N,
    ledger: L,
    config: Config,
}

impl<B: BuildApi, R: TestReports, N: Notifier, L: Ledger> Deps<B, R, N, L> {
    /// Dependencies over the given ports and settings.
    pub fn new(builds: B, reports: R, notifier: N, ledger: L, config: Config) -> Self {
        Self {
            builds,
            reports,
            notifier,
            ledger,
            config,
        }
    }
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// A message was published.
    #[serde(rename_all = "camelCase")]
    Notified {
        /// Its subject.
        subject: String,
        /// The `status` attribute it carries.
        status: String,
        /// SNS's message id.
        message_id: String,
    },
    /// Nothing to tell, and why.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
    /// A sweep looked at the builds that ended in its window.
    #[serde(rename_all = "camelCase")]
    Swept {
        /// How many it looked at.
        checked: usize,
        /// The builds (ARNs) whose news it published: their event never came.
        notified: Vec<String>,
    },
}

/// An event codebuild-status takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A build changed status (boxed: it is most of the enum's size).
    Build(Box<EventBridgeEvent<BuildStateChange>>),
    /// The sweep's schedule fired.
    Sweep(EventBridgeEvent<Scheduled>),
}

/// Why a build state change tells nobody anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IgnoreReason {
    /// The build is still running.
    NotFinished,
    /// A pull-request build: pr-validator reports it on the pull request.
    PullRequestBuild,
    /// The project's policy does not notify this status.
    NotNotified {
        /// The status.
        status: String,
    },
    /// A success that does not follow a failure.
    NotAFix,
    /// This build's status was already notified (a redelivered or repeated event).
    AlreadyNotified,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFinished => f.write_str("the build is still running"),
            Self::PullRequestBuild => f.write_str("a pull-request build, reported by pr-validator"),
            Self::NotNotified { status } => write!(f, "{status} is not notified for this project"),
            Self::NotAFix => f.write_str("the success does not follow a failure"),
            Self::AlreadyNotified => f.write_str("already notified"),
        }
    }
}

/// What a build event asks for before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Tell nobody.
    Ignore(IgnoreReason),
    /// Tell this.
    Notify(Report),
    /// A success: tell only if the previous completed build of the branch failed.
    CheckForFix,
}

/// Parses a raw EventBridge payload as a build state change or the sweep's scheduled event.
pub fn parse(payload: Value) -> Result<Incoming, InvalidEvent> {
    match payload.get("source").and_then(Value::as_str) {
        Some(schedule::SOURCE) => {
            shared::events::eventbridge(payload, schedule::SOURCE, &[SCHEDULED_EVENT])
                .map(Incoming::Sweep)
        }
        // Anything else is held to the build event, whose parser names what is wrong.
        _ => shared::events::eventbridge(payload, SOURCE, &[BUILD_STATE_CHANGE])
            .map(|event| Incoming::Build(Box::new(event))),
    }
}

/// Decides what a build event asks for.
pub fn classify(build: &BuildStateChange, config: &Config) -> Interest {
    if is_pull_request_build(build, config) {
        return Interest::Ignore(IgnoreReason::PullRequestBuild);
    }
    // The event says FAILED for a time-out or a fault: the phases tell which.
    let kind = match build.outcome() {
        BuildStatus::InProgress | BuildStatus::Other => {
            return Interest::Ignore(IgnoreReason::NotFinished);
        }
        BuildStatus::Succeeded => None,
        BuildStatus::Failed => Some(NotifyOn::Failed),
        BuildStatus::Fault => Some(NotifyOn::Fault),
        BuildStatus::Stopped => Some(NotifyOn::Stopped),
        BuildStatus::TimedOut => Some(NotifyOn::TimedOut),
    };
    let policy = config.notify.for_project(&build.project_name);
    match kind {
        Some(kind) if policy.contains(&kind) => Interest::Notify(Report {
            kind,
            previous_failure: None,
        }),
        Some(kind) => Interest::Ignore(IgnoreReason::NotNotified {
            status: kind.as_str().to_owned(),
        }),
        None if policy.contains(&NotifyOn::Succeeded) => Interest::Notify(Report {
            kind: NotifyOn::Succeeded,
            previous_failure: None,
        }),
        None if policy.contains(&NotifyOn::Fixed) => Interest::CheckForFix,
        None => Interest::Ignore(IgnoreReason::NotNotified {
            status: "SUCCEEDED".to_owned(),
        }),
    }
}

fn is_pull_request_build(build: &BuildStateChange, config: &Config) -> bool {
    config.pull_request_project.as_deref() == Some(build.project_name.as_str())
        || build.variable(PULL_REQUEST_VARIABLE).is_some()
}

/// Whether a success fixes its branch, given the project's recent builds (newest first): the
/// previous completed build of the same branch failed (FAILED, FAULT or TIMED_OUT; a build a
/// person stopped is not a failure to be fixed).
pub fn fix_report(
    build: &BuildStateChange,
    history: &[BuildRecord],
) -> Result<Report, IgnoreReason> {
    let current = build.build_short_id();
    let number = build.build_number();
    let source = SourceRef::of(build);
    let older: Box<dyn Iterator<Item = &BuildRecord>> =
        match history.iter().position(|r| r.id == current) {
            Some(index) => Box::new(history.iter().skip(index + 1)),
            // Not listed yet: every other build started before this one.
            None => Box::new(history.iter().filter(move |r| {
                r.id != current && number.zip(r.number).is_none_or(|(n, m)| m < n)
            })),
        };
    let previous = older
        .filter(|record| record.complete && record.status.is_final())
        .find(|record| same_source(&source, record));
    match previous {
        Some(previous) if previous.status.is_failure() => Ok(Report {
            kind: NotifyOn::Fixed,
            previous_failure: previous.number,
        }),
        _ => Err(IgnoreReason::NotAFix),
    }
}

fn same_source(source: &SourceRef, record: &BuildRecord) -> bool {
    let branch = record
        .variable(message::BRANCH_VARIABLE)
        .map(str::to_owned)
        .or_else(|| {
            record
                .source_version
                .as_deref()
                .and_then(|v| v.strip_prefix("refs/heads/"))
                .map(str::to_owned)
        });
    match (&source.branch, branch) {
        (Some(ours), Some(theirs)) => *ours == theirs,
        (None, None) => source.version == record.source_version,
        _ => false,
    }
}

/// Handles one build state change, or one sweep, end to end.
pub async fn handle<B: BuildApi, R: TestReports, N: Notifier, L: Ledger>(
    deps: &Deps<B, R, N, L>,
    payload: Value,
) -> Result<Outcome, FunctionError> {
    match parse(payload)? {
        Incoming::Build(event) => notify(deps, &event, None).await,
        Incoming::Sweep(event) => sweep(deps, &event).await,
    }
}

/// Tells what `event` says, once; `history` is the project's recent builds when the caller has
/// read them already (a sweep: the build's own record is among them).
async fn notify<B: BuildApi, R: TestReports, N: Notifier, L: Ledger>(
    deps: &Deps<B, R, N, L>,
    event: &EventBridgeEvent<BuildStateChange>,
    history: Option<&[BuildRecord]>,
) -> Result<Outcome, FunctionError> {
    let build = &event.detail;
    let mut read = None;
    let report = match classify(build, &deps.config) {
        Interest::Ignore(reason) => return Ok(ignored(build, reason)),
        Interest::Notify(report) => report,
        Interest::CheckForFix => {
            let history = match history {
                Some(history) => history,
                None => read
                    .insert(
                        deps.builds
                            .recent_builds(&build.project_name, deps.config.history_depth)
                            .await?,
                    )
                    .as_slice(),
            };
            match fix_report(build, history) {
                Ok(report) => report,
                Err(reason) => return Ok(ignored(build, reason)),
            }
        }
    };

    let key = message::deduplication_key(build, &report);
    match deps.ledger.claim(&key).await? {
        Claim::Granted => {}
        Claim::Done => return Ok(ignored(build, IgnoreReason::AlreadyNotified)),
        // Not "already notified": the invocation holding the claim may have failed to send it.
        Claim::Pending => return Err(Claim::pending_error("notification").into()),
    }
    // Read once the claim is ours: a repeated event costs no report reads. The build's event
    // does not name its reports; its record in the history read (a sweep's, a fix's) does.
    let known_reports = history
        .or(read.as_deref())
        .and_then(|history| {
            let id = build.build_short_id();
            history.iter().find(|record| record.id == id)
        })
        .map(|record| record.report_arns.as_slice());
    let tests = shared::ports::build_tests(
        &deps.builds,
        &deps.reports,
        build.build_short_id(),
        known_reports,
        &deps.config.report_groups,
    )
    .await;
    let notification = message::compose(event, &report, &tests);
    match deps.notifier.publish(&notification).await {
        Ok(message_id) => {
            info!(
                project = %build.project_name,
                build_id = %build.build_id,
                status = report.kind.as_str(),
                message_id = %message_id,
                "build notified"
            );
            if let Err(error) = deps.ledger.complete(&key).await {
                // The message is out; at worst a redelivery after the claim's lease sends it again.
                warn!(build_id = %build.build_id, error = %shared::error::ErrorChain(&error), "notification not recorded");
            }
            Ok(Outcome::Notified {
                subject: notification.subject,
                status: report.kind.as_str().to_owned(),
                message_id,
            })
        }
        Err(error) => {
            // Give the claim back so Lambda's retry can send the message.
            if let Err(release) = deps.ledger.release(&key).await {
                warn!(build_id = %build.build_id, error = %shared::error::ErrorChain(&release), "claim not released; the retry waits for its lease to end");
            }
            Err(error.into())
        }
    }
}

/// Looks at the builds of the sweep's projects that ended in its window, and tells what their
/// events would have told. Every project and build is attempted; a failure fails the invocation
/// afterwards (the next sweep tries again, and what was told is in the ledger).
async fn sweep<B: BuildApi, R: TestReports, N: Notifier, L: Ledger>(
    deps: &Deps<B, R, N, L>,
    event: &EventBridgeEvent<Scheduled>,
) -> Result<Outcome, FunctionError> {
    let at = schedule::scheduled_at(event)?;
    let mut checked = 0;
    let mut notified = Vec::new();
    let mut first_failure = None;
    for project in &deps.config.sweep_projects {
        let history = match deps
            .builds
            .recent_builds(project, deps.config.history_depth)
            .await
        {
            Ok(history) => history,
            Err(error) => {
                warn!(project = %project, error = %shared::error::ErrorChain(&error), "sweep: the project's builds cannot be read");
                first_failure.get_or_insert(error.into());
                continue;
            }
        };
        for record in deps.config.sweep_window.due(&history, at) {
            let Some(lost) = record.state_change() else {
                continue;
            };
            checked += 1;
            match notify(deps, &lost, Some(&history)).await {
                Ok(Outcome::Notified { .. }) => {
                    info!(project = %project, build_id = %lost.detail.build_id, "sweep: a build whose event never came is notified");
                    notified.push(lost.detail.build_id);
                }
                Ok(_) => {}
                // The event's own invocation holds the claim: it tells, or the next sweep does.
                Err(FunctionError::Upstream(error)) if Claim::is_pending_error(&error) => {
                    info!(build_id = %lost.detail.build_id, "sweep: left to the invocation holding the claim");
                }
                Err(error) => {
                    warn!(build_id = %lost.detail.build_id, error = %shared::error::ErrorChain(&error), "sweep: build not notified");
                    first_failure.get_or_insert(error);
                }
            }
        }
    }
    if let Some(error) = first_failure {
        return Err(error);
    }
    info!(checked, notified = notified.len(), "sweep done");
    Ok(Outcome::Swept { checked, notified })
}

fn ignored(build: &BuildStateChange, reason: IgnoreReason) -> Outcome {
    info!(
        project = %build.project_name,
        build_id = %build.build_id,
        status = build.outcome().as_str(),
        reason = %reason,
        "build not notified"
    );
    Outcome::Ignored { reason }
}

#[cfg(test)]
mod tests;
