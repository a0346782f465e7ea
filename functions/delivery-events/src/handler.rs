//! How a pipeline execution ended, told once.
//!
//! [`parse`] and [`classify`] are pure and tested on `events/delivery-events/`; [`handle`]
//! carries the decision out through [`Ledger`] and [`Notifier`].
//!
//! An execution's end arrives more than once: the failed action's event and the pipeline's
//! FAILED, in either order, and EventBridge may redeliver either. The ledger key is the execution
//! and its outcome ([`Report::deduplication_key`]), not the event, so whichever comes first tells
//! and the others find the claim done.

use std::fmt;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use shared::events::codepipeline::{
    ACTION_EXECUTION_STATE_CHANGE, ExecutionStateChange, PIPELINE_EXECUTION_STATE_CHANGE, SOURCE,
    STAGE_EXECUTION_STATE_CHANGE,
};
use shared::ports::{Claim, Ledger, Notification, Notifier};
use shared::{FunctionError, InvalidEvent};
use tracing::{info, warn};

use crate::config::Config;

/// The ports and settings an event is handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<N, L> {
    notifier: N,
    ledger: L,
    config: Config,
}

impl<N: Notifier, L: Ledger> Deps<N, L> {
    /// Dependencies over the given ports and settings.
    pub fn new(notifier: N, ledger: L, config: Config) -> Self {
        Self {
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
}

/// Why an event tells nobody anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IgnoreReason {
    /// The execution, stage or action has not ended (STARTED, RESUMED, STOPPING...).
    NotEnded {
        /// Its state.
        state: String,
    },
    /// A stage event, or an action that did not fail: the pipeline's own event tells the end.
    NotTheEnd,
    /// This execution's outcome was already notified (a redelivered or repeated event).
    AlreadyNotified,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnded { state } => write!(f, "{state} is not an end"),
            Self::NotTheEnd => f.write_str("the pipeline execution's event tells the end"),
            Self::AlreadyNotified => f.write_str("already notified"),
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An action failed, or the execution did.
    Failed,
    /// A manual approval was rejected, or expired unanswered.
    ApprovalRejected,
    /// Someone stopped the execution.
    Stopped,
    /// A newer execution overtook it.
    Superseded,
    /// Every stage succeeded: the release is deployed.
    Deployed,
}

impl Ending {
    /// The `status` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::ApprovalRejected => "REJECTED",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Deployed => "DEPLOYED",
        }
    }

    /// The outcome an ending counts as, once per execution: a rejected approval fails the
    /// execution, so its message and the execution's FAILED are one.
    fn outcome(self) -> &'static str {
        match self {
            Self::Failed | Self::ApprovalRejected => "FAILED",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Deployed => "SUCCEEDED",
        }
    }
}

/// What to tell about an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How it ended.
    pub ending: Ending,
    /// The pipeline.
    pub pipeline: String,
    /// The execution.
    pub execution_id: String,
    /// The environment the pipeline deploys to.
    pub environment: String,
    /// When (the event's time), UTC.
    pub at: String,
    /// The stage and action at fault, when the event names them.
    pub stage: Option<String>,
    /// The action at fault.
    pub action: Option<String>,
    /// The error code the action reported.
    pub error_code: Option<String>,
    /// What the action said (a failure's message, an approver's comment).
    pub summary: Option<String>,
    /// Its link (the build's logs, the approval's review).
    pub link: Option<String>,
}

impl Report {
    /// The ledger key: one message per execution and outcome.
    pub fn deduplication_key(&self) -> String {
        format!(
            "delivery#{}#{}#{}",
            self.pipeline,
            self.execution_id,
            self.ending.outcome()
        )
    }

    /// The message people read.
    pub fn notification(&self) -> Notification {
        let env = &self.environment;
        let pipeline = &self.pipeline;
        let at_action = match (&self.stage, &self.action) {
            (Some(stage), Some(action)) => format!(" at {stage} / {action}"),
            (Some(stage), None) => format!(" at {stage}"),
            _ => String::new(),
        };
        let subject = match self.ending {
            Ending::Failed => format!("FAILED: {pipeline} to {env}{at_action}"),
            Ending::ApprovalRejected => {
                format!("REJECTED: {pipeline} to {env}: approval{at_action} rejected or expired")
            }
            Ending::Stopped => format!("STOPPED: {pipeline} to {env} was stopped"),
            Ending::Superseded => {
                format!("SUPERSEDED: {pipeline} to {env}, a newer execution took over")
            }
            Ending::Deployed => format!("DEPLOYED: {pipeline} to {env}"),
        };
        let mut body = match self.ending {
            Ending::Failed => format!(
                "The release through {pipeline} to {env} failed{at_action} at {}.\n",
                self.at
            ),
            Ending::ApprovalRejected => format!(
                "The approval{at_action} of {pipeline} to {env} was rejected or expired at {}: the release does not go out.\n",
                self.at
            ),
            Ending::Stopped => format!(
                "The release through {pipeline} to {env} was stopped at {}.\n",
                self.at
            ),
            Ending::Superseded => format!(
                "The release through {pipeline} to {env} was superseded by a newer execution at {}: the newer one goes out instead.\n",
                self.at
            ),
            Ending::Deployed => format!(
                "The release through {pipeline} is deployed to {env} at {}.\n",
                self.at
            ),
        };
        body.push('\n');
        body.push_str(&format!("Execution: {}\n", self.execution_id));
        if let Some(code) = &self.error_code {
            body.push_str(&format!("Error: {code}\n"));
        }
        if let Some(summary) = &self.summary {
            let label = match self.ending {
                Ending::ApprovalRejected => "Comment",
                _ => "Reported",
            };
            body.push_str(&format!("{label}: {summary}\n"));
        }
        if let Some(link) = &self.link {
            body.push_str(&format!("Details: {link}\n"));
        }
        Notification::new(
            &subject,
            body,
            vec![
                ("pipeline".into(), self.pipeline.clone()),
                ("environment".into(), self.environment.clone()),
                ("status".into(), self.ending.as_str().into()),
            ],
        )
    }
}

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
    let kind = event.detail_type.as_str();
    if kind != PIPELINE_EXECUTION_STATE_CHANGE && detail.stage.is_none() {
        return Err(InvalidEvent::missing("detail.stage"));
    }
    if kind == ACTION_EXECUTION_STATE_CHANGE && detail.action.is_none() {
        return Err(InvalidEvent::missing("detail.action"));
    }
    Ok(event)
}

/// Decides what an event tells, before any I/O.
pub fn classify(
    event: &EventBridgeEvent<ExecutionStateChange>,
    config: &Config,
) -> Result<Report, IgnoreReason> {
    let detail = &event.detail;
    let kind = event.detail_type.as_str();
    let ending = if kind == PIPELINE_EXECUTION_STATE_CHANGE {
        match detail.state.as_str() {
            "FAILED" => Ending::Failed,
            "STOPPED" => Ending::Stopped,
            "SUPERSEDED" => Ending::Superseded,
            "SUCCEEDED" => Ending::Deployed,
            other => {
                return Err(IgnoreReason::NotEnded {
                    state: other.to_owned(),
                });
            }
        }
    } else if kind == ACTION_EXECUTION_STATE_CHANGE && detail.state == "FAILED" {
        if detail.is_approval() {
            Ending::ApprovalRejected
        } else {
            Ending::Failed
        }
    } else {
        return Err(IgnoreReason::NotTheEnd);
    };
    let result = detail.execution_result.clone().unwrap_or_default();
    Ok(Report {
        ending,
        pipeline: detail.pipeline.clone(),
        execution_id: detail.execution_id.clone(),
        environment: config.environment_of(&detail.pipeline).to_owned(),
        at: event
            .time
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "an unknown time".into()),
        stage: detail.stage.clone(),
        action: detail.action.clone(),
        error_code: result.error_code,
        summary: result.external_execution_summary,
        link: result.external_execution_url,
    })
}

/// Handles one CodePipeline event end to end.
pub async fn handle<N: Notifier, L: Ledger>(
    deps: &Deps<N, L>,
    payload: Value,
) -> Result<Outcome, FunctionError> {
    let event = parse(payload)?;
    let detail = &event.detail;
    let report = match classify(&event, &deps.config) {
        Ok(report) => report,
        Err(reason) => return Ok(ignored(detail, reason)),
    };
    let key = report.deduplication_key();
    match deps.ledger.claim(&key).await? {
        Claim::Granted => {}
        Claim::Done => return Ok(ignored(detail, IgnoreReason::AlreadyNotified)),
        // Not "already notified": the invocation holding the claim may have failed to send it.
        Claim::Pending => return Err(Claim::pending_error("notification").into()),
    }
    let notification = report.notification();
    match deps.notifier.publish(&notification).await {
        Ok(message_id) => {
            info!(
                pipeline = %detail.pipeline,
                execution_id = %detail.execution_id,
                status = report.ending.as_str(),
                message_id = %message_id,
                "delivery notified"
            );
            if let Err(error) = deps.ledger.complete(&key).await {
                // The message is out; at worst a redelivery after the claim's lease sends it again.
                warn!(execution_id = %detail.execution_id, error = %shared::error::ErrorChain(&error), "notification not recorded");
            }
            Ok(Outcome::Notified {
                subject: notification.subject,
                status: report.ending.as_str().to_owned(),
                message_id,
            })
        }
        Err(error) => {
            // Give the claim back so Lambda's retry can send the message.
            if let Err(release) = deps.ledger.release(&key).await {
                warn!(execution_id = %detail.execution_id, error = %shared::error::ErrorChain(&release), "claim not released; the retry waits for its lease to end");
            }
            Err(error.into())
        }
    }
}

fn ignored(detail: &ExecutionStateChange, reason: IgnoreReason) -> Outcome {
    info!(
        pipeline = %detail.pipeline,
        execution_id = %detail.execution_id,
        state = %detail.state,
        reason = %reason,
        "delivery not notified"
    );
    Outcome::Ignored { reason }
}

#[cfg(test)]
mod tests;
