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
