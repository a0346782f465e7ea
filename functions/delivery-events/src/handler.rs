//! How a pipeline execution ended, told once: to people (SNS), to the merged pull request the
//! deployed commit came from (a comment), and to CloudWatch (DORA metrics as EMF lines).
//!
//! [`parse`] and [`classify`] are pure and tested on `events/delivery-events/`;
//! [`crate::report::Report::build`] turns the end and the execution's action runs into what is
//! told; [`handle`] carries it out through the ports.
//!
//! Only the pipeline execution's own end event tells (stage and action events are taken and
//! ignored): it reads the execution's action runs, so its message is as rich whichever event
//! came first, and an action's failure that a stage retry repairs tells nothing. Each effect
//! has its own ledger key per execution, attempt and end ([`ExecutionEnd::key`]): a redelivered
//! or repeated event finds its effects done, and a retry after a partial failure produces only
//! what is missing. The pull-request comment is also idempotent under its `clientRequestToken`.

use std::fmt;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use shared::events::codepipeline::{
    ACTION_EXECUTION_STATE_CHANGE, ExecutionStateChange, PIPELINE_EXECUTION_STATE_CHANGE, SOURCE,
    STAGE_EXECUTION_STATE_CHANGE,
};
use shared::ports::{
    Claim, Ledger, MergedPullRequests, Metrics, Notifier, PipelineApi, PostedComment,
    PullRequestApi, PullRequestComment, RestoreClock,
};
use shared::{FunctionError, InvalidEvent, UpstreamError};
use tracing::{info, warn};

use crate::config::Config;
use crate::dora;
use crate::report::{EndState, ExecutionEnd, Report, console_domain};

/// The ports and settings an event is handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<N, L, P, C, G, R, M> {
    /// Where messages go.
    pub notifier: N,
    /// What was told already.
    pub ledger: L,
    /// The executions' action runs.
    pub pipelines: P,
    /// Comments on pull requests.
    pub pull_requests: C,
    /// Which pull request a commit came from.
    pub merges: G,
    /// When each environment went down and came back.
    pub restores: R,
    /// Where metrics go.
    pub metrics: M,
    /// The settings.
    pub config: Config,
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// An execution's end, and what of it was told by this invocation.
    #[serde(rename_all = "camelCase")]
    Told {
        /// How it ended (the `status` attribute).
        status: String,
        /// The message's subject.
        subject: String,
        /// SNS's message id; absent when an earlier delivery sent it.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// The pull request the deployed commit came from, when one did and the end concerns it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pull_request_id: Option<String>,
        /// The comment posted on it; absent when an earlier delivery posted it.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment_id: Option<String>,
        /// The metrics written (names); empty when none apply or an earlier delivery wrote them.
        metrics: Vec<String>,
        /// The effects an earlier delivery had produced already.
        already_done: Vec<&'static str>,
    },
    /// Nothing to tell, and why.
    Ignored {
        /// Why.
        reason: IgnoreReason,
    },
}

/// Why an event tells nobody anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IgnoreReason {
    /// The execution has not ended (STARTED, STOPPING, RESUMED…).
    NotEnded {
        /// Its state.
        state: String,
    },
    /// A stage or action event: the pipeline execution's own event tells the end.
    NotTheEnd,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnded { state } => write!(f, "{state} is not an end"),
            Self::NotTheEnd => f.write_str("the pipeline execution's event tells the end"),
        }
    }
}

/// The ledger key suffixes of the three effects.
const NOTIFICATION: &str = "notification";
const COMMENT: &str = "comment";
const METRICS: &str = "metrics";

/// Parses a raw EventBridge payload as one of CodePipeline's execution state changes.
pub fn parse(payload: Value) -> Result<EventBridgeEvent<ExecutionStateChange>, InvalidEvent> {
    let event: EventBridgeEvent<ExecutionStateChange> = shared::events::eventbridge(
        payload,
        SOURCE,
        &[
            PIPELINE_EXECUTION_STATE_CHANGE,
            STAGE_EXECUTION_STATE_CHANGE,
            ACTION_EXECUTION_STATE_CHANGE,
        ],
    )?;
    let detail = &event.detail;
    for (path, value) in [
        ("detail.pipeline", &detail.pipeline),
        ("detail.execution-id", &detail.execution_id),
        ("detail.state", &detail.state),
    ] {
        if value.trim().is_empty() {
            return Err(InvalidEvent::new(format!("`{path}` is empty")));
        }
    }
    // Action events name their stage and action; the public stage-event fixture names no stage,
    // and stage events are only acknowledged, so they are not held to it.
    if event.detail_type == ACTION_EXECUTION_STATE_CHANGE {
        if detail.stage.is_none() {
            return Err(InvalidEvent::missing("detail.stage"));
        }
        if detail.action.is_none() {
            return Err(InvalidEvent::missing("detail.action"));
        }
    }
    if event.detail_type == PIPELINE_EXECUTION_STATE_CHANGE && event.time.is_none() {
        return Err(InvalidEvent::missing("time"));
    }
    Ok(event)
}

/// Decides whether an event tells an execution's end, before any I/O.
pub fn classify(
    event: &EventBridgeEvent<ExecutionStateChange>,
    config: &Config,
) -> Result<ExecutionEnd, IgnoreReason> {
    let detail = &event.detail;
    if event.detail_type != PIPELINE_EXECUTION_STATE_CHANGE {
        return Err(IgnoreReason::NotTheEnd);
    }
    let state = EndState::of(&detail.state).ok_or_else(|| IgnoreReason::NotEnded {
        state: detail.state.clone(),
    })?;
    let partition = event
        .resources
        .as_ref()
        .and_then(|r| r.first())
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws");
    let console_link = event
        .region
        .as_deref()
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(|region| {
            format!(
                "https://{region}.{}/codesuite/codepipeline/pipelines/{}/executions/{}/timeline?region={region}",
                console_domain(partition),
                url_path(&detail.pipeline),
                url_path(&detail.execution_id)
            )
        });
    Ok(ExecutionEnd {
        pipeline: detail.pipeline.clone(),
        execution_id: detail.execution_id.clone(),
        attempt: detail.attempt(),
        state,
        // parse() made sure pipeline events have a time.
        at: event.time.unwrap_or_default(),
        environment: config.environment_of(&detail.pipeline).to_owned(),
        console_link,
        rollback: detail.is_rollback(),
    })
}

fn url_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'@' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Handles one CodePipeline event end to end.
pub async fn handle<N, L, P, C, G, R, M>(
    deps: &Deps<N, L, P, C, G, R, M>,
    payload: Value,
) -> Result<Outcome, FunctionError>
where
    N: Notifier,
    L: Ledger,
    P: PipelineApi,
    C: PullRequestApi,
    G: MergedPullRequests,
    R: RestoreClock,
    M: Metrics,
{
    let event = parse(payload)?;
    let end = match classify(&event, &deps.config) {
        Ok(end) => end,
        Err(reason) => return Ok(ignored(&event.detail, reason)),
    };
    let runs = deps
        .pipelines
        .action_runs(&end.pipeline, &end.execution_id)
        .await?;
    let report = Report::build(end, &runs);
    let notification = report.notification();
    let mut already_done = Vec::new();
    // Every effect is attempted; the first failure fails the invocation afterwards, so Lambda's
    // retry produces what is missing and nothing twice.
    let mut first_failure: Option<FunctionError> = None;

    let message_id = match once(
        deps,
        &report.end.key(NOTIFICATION),
        &mut already_done,
        NOTIFICATION,
        || deps.notifier.publish(&notification),
    )
    .await
    {
        Ok(id) => id,
        Err(error) => {
            first_failure.get_or_insert(error);
            None
        }
    };

    let mut pull_request_id = None;
    let mut comment_id = None;
    if let Some(content) = report.pull_request_comment() {
        match merged_pull_request(deps, &report).await {
            Ok(Some(merge)) => {
                pull_request_id = Some(merge.pull_request_id.clone());
                let comment = PullRequestComment {
                    pull_request_id: merge.pull_request_id.clone(),
                    repository: merge.repository.clone(),
                    before_commit_id: merge.destination_commit.clone(),
                    after_commit_id: merge.source_commit.clone(),
                    content,
                    client_request_token: comment_token(&report),
                };
                let post = || async {
                    deps.pull_requests
                        .post_comment(&comment)
                        .await
                        .map(|posted| match posted {
                            PostedComment::Posted { comment_id } => comment_id,
                            // A comment is already there under this token: this one.
                            PostedComment::AlreadyPosted => String::new(),
                        })
                };
                match once(
                    deps,
                    &report.end.key(COMMENT),
                    &mut already_done,
                    COMMENT,
                    post,
                )
                .await
                {
                    Ok(id) => comment_id = id.filter(|id| !id.is_empty()),
                    Err(error) => {
                        first_failure.get_or_insert(error);
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                warn!(execution_id = %report.end.execution_id, error = %shared::error::ErrorChain(&error), "the deployed commit's pull request cannot be looked up");
                first_failure.get_or_insert(error.into());
            }
        }
    }

    let mut metrics = Vec::new();
    if dora::counts(&report) {
        match once(
            deps,
            &report.end.key(METRICS),
            &mut already_done,
            METRICS,
            || measure(deps, &report),
        )
        .await
        {
            Ok(Some(names)) => metrics = names,
            Ok(None) => {}
            Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
    }

    if let Some(error) = first_failure {
        return Err(error);
    }
    info!(
        pipeline = %report.end.pipeline,
        execution_id = %report.end.execution_id,
        status = report.ending.as_str(),
        message_id = message_id.as_deref().unwrap_or("-"),
        pull_request_id = pull_request_id.as_deref().unwrap_or("-"),
        metrics = metrics.len(),
        already_done = ?already_done,
        "execution end told"
    );
    Ok(Outcome::Told {
        status: report.ending.as_str().to_owned(),
        subject: notification.subject,
        message_id,
        pull_request_id,
        comment_id,
        metrics,
        already_done,
    })
}

/// Produces one effect under its ledger key: `Ok(Some(_))` when produced now, `Ok(None)` when an
/// earlier delivery produced it.
async fn once<N, L, P, C, G, R, M, T, F, Fut>(
    deps: &Deps<N, L, P, C, G, R, M>,
    key: &str,
    already_done: &mut Vec<&'static str>,
    effect: &'static str,
    produce: F,
) -> Result<Option<T>, FunctionError>
where
    L: Ledger,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T, UpstreamError>>,
{
    match deps.ledger.claim(key).await? {
        Claim::Granted => {}
        Claim::Done => {
            already_done.push(effect);
            return Ok(None);
        }
        // Not "done": the invocation holding the claim may have failed to produce it.
        Claim::Pending => return Err(Claim::pending_error(effect).into()),
    }
    match produce().await {
        Ok(value) => {
            if let Err(error) = deps.ledger.complete(key).await {
                // It is produced; at worst a redelivery after the lease produces it again.
                warn!(key, error = %shared::error::ErrorChain(&error), "effect not recorded");
            }
            Ok(Some(value))
        }
        Err(error) => {
            // Give the claim back so Lambda's retry can produce it.
            if let Err(release) = deps.ledger.release(key).await {
                warn!(key, error = %shared::error::ErrorChain(&release), "claim not released; the retry waits for its lease to end");
            }
            Err(error.into())
        }
    }
}

/// The merged pull request the deployed commit came from, if any.
async fn merged_pull_request<N, L, P, C, G, R, M>(
    deps: &Deps<N, L, P, C, G, R, M>,
    report: &Report,
) -> Result<Option<shared::ports::MergedPullRequest>, UpstreamError>
where
    G: MergedPullRequests,
{
    let Some(source) = &report.source else {
        return Ok(None);
    };
    let Some(repository) = &source.repository else {
        return Ok(None);
    };
    deps.merges.merged_as(repository, &source.commit_id).await
}

/// The comment's token: one comment per pull request, execution, attempt and end.
fn comment_token(report: &Report) -> String {
    format!(
        "delivery-{}-{}-{}",
        report.end.execution_id,
        report.end.attempt,
        report.ending.as_str().to_ascii_lowercase()
    )
}

/// Moves the environment's restore clock and writes the deploy's metric line; returns the
/// metrics' names.
async fn measure<N, L, P, C, G, R, M>(
    deps: &Deps<N, L, P, C, G, R, M>,
    report: &Report,
) -> Result<Vec<String>, UpstreamError>
where
    R: RestoreClock,
    M: Metrics,
{
    let service = dora::service(report);
    let restored = if report.is_failed_deploy() {
        deps.restores.deploy_failed(&service, report.end.at).await?;
        None
    } else {
        deps.restores
            .deployed(&service, &report.end.execution_id, report.end.at)
            .await?
    };
    let Some(document) = dora::document(report, restored) else {
        return Ok(Vec::new());
    };
    deps.metrics.emit(&document);
    Ok(document.metrics.iter().map(|m| m.name.clone()).collect())
}

fn ignored(detail: &ExecutionStateChange, reason: IgnoreReason) -> Outcome {
    info!(
        pipeline = %detail.pipeline,
        execution_id = %detail.execution_id,
        state = %detail.state,
        reason = %reason,
        "nothing to tell"
    );
    Outcome::Ignored { reason }
}

#[cfg(test)]
mod tests;
