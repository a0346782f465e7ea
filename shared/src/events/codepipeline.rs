//! The event CodePipeline sends a Lambda invoke action.
//!
//! Only the job id, the action's configuration and the continuation token are read. The event
//! also carries temporary artifact-bucket credentials; they are deliberately not deserialized, so
//! they can never reach a log line or an error message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The key of the job in the event.
pub const JOB_KEY: &str = "CodePipeline.job";

/// `{"CodePipeline.job": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The job.
    #[serde(rename = "CodePipeline.job")]
    pub job: Job,
}

/// A CodePipeline job for a Lambda invoke action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job id, which PutJobSuccessResult / PutJobFailureResult take.
    pub id: String,
    /// The account running the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// What the action was configured with.
    pub data: JobData,
}

/// The job's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobData {
    /// The action's configuration.
    pub action_configuration: ActionConfiguration,
    /// Set when the job was continued by a previous invocation's PutJobSuccessResult.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
}

/// The action's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionConfiguration {
    /// `FunctionName`, `UserParameters`.
    pub configuration: BTreeMap<String, String>,
}

impl Job {
    /// The action's `UserParameters`, when set.
    pub fn user_parameters(&self) -> Option<&str> {
        self.data
            .action_configuration
            .configuration
            .get("UserParameters")
            .map(String::as_str)
    }
}

/// The `source` of CodePipeline's EventBridge events.
pub const SOURCE: &str = "aws.codepipeline";
/// A pipeline execution started, succeeded, failed, was stopped or superseded.
pub const PIPELINE_EXECUTION_STATE_CHANGE: &str = "CodePipeline Pipeline Execution State Change";
/// A stage of an execution changed state.
pub const STAGE_EXECUTION_STATE_CHANGE: &str = "CodePipeline Stage Execution State Change";
/// An action of an execution changed state.
pub const ACTION_EXECUTION_STATE_CHANGE: &str = "CodePipeline Action Execution State Change";

/// The `detail` of the three CodePipeline execution state change events ("Monitoring
/// CodePipeline events" in the user guide; aws-lambda-rust-runtime's
/// `example-codepipeline-*.json` fixtures). `stage` is set on stage and action events (though
/// the public stage fixture lacks it), `action`, `type` and `execution-result` on action events
/// only. `version` (the pipeline's, a number in some examples and a string in others) and the
/// other members (`execution-trigger`, `input-artifacts`, `region`…) are not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecutionStateChange {
    /// The pipeline's name.
    pub pipeline: String,
    /// The execution's id.
    pub execution_id: String,
    /// `STARTED`, `SUCCEEDED`, `FAILED`, `STOPPING`, `STOPPED`, `SUPERSEDED`, `RESUMED`,
    /// `CANCELED`, `ABANDONED`.
    pub state: String,
    /// The stage (stage and action events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The action (action events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The action's type (action events).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub action_type: Option<ActionType>,
    /// What the action reported when it finished (action events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_result: Option<ExecutionResult>,
    /// Which attempt of the execution this is: 1 at first, one more after each retry of a failed
    /// stage (`1.0` in the emitted events, `1` in processed ones; absent in older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_execution_attempt: Option<serde_json::Number>,
    /// What started the execution (execution events): `StartPipelineExecution`, a webhook, or
    /// a rollback to an earlier execution's revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_trigger: Option<ExecutionTrigger>,
}

/// What started an execution: `{"trigger-type": "StartPipelineExecution", "trigger-detail":
/// "arn:aws:sts::…"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecutionTrigger {
    /// `StartPipelineExecution`, `Webhook`, `CloudWatchEvent`, `AutomatedRollback`,
    /// `ManualRollback`… (the API's `TriggerType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<String>,
    /// Who or what: a caller's ARN, a webhook's…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_detail: Option<String>,
}

/// An action's type: `{"owner": "AWS", "category": "Approval", "provider": "Manual", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionType {
    /// `Source`, `Build`, `Test`, `Deploy`, `Approval`, `Invoke`.
    pub category: String,
    /// `Manual`, `CodeBuild`, `Lambda`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// An action's result, as the event carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecutionResult {
    /// The link to the action's run (its build's logs, the approval's review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_execution_url: Option<String>,
    /// What the action said (a failure's message, an approver's comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_execution_summary: Option<String>,
    /// `JobFailed`, `ConfigurationError`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

impl ExecutionStateChange {
    /// The execution's attempt: 1 unless the event says a later one.
    pub fn attempt(&self) -> u32 {
        // A whole number (`2` or `2.0`) within u32: anything else is not an attempt count.
        let whole = self.pipeline_execution_attempt.as_ref().and_then(|n| {
            n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= f64::from(u32::MAX))
                    .map(|f| f as u64)
            })
        });
        whole
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1)
    }

    /// Whether the execution is CodePipeline's rollback to an earlier execution's revisions
    /// (a stage's automatic rollback on failure, or one asked for by hand).
    pub fn is_rollback(&self) -> bool {
        self.execution_trigger
            .as_ref()
            .and_then(|t| t.trigger_type.as_deref())
            .is_some_and(|t| t == "AutomatedRollback" || t == "ManualRollback")
    }

    /// Whether this is an action event of a manual approval.
    pub fn is_approval(&self) -> bool {
        self.action_type
            .as_ref()
            .is_some_and(|t| t.category == "Approval")
    }
}
