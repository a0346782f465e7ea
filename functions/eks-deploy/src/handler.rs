//! One deployment, end to end: parameters → cluster → patch → rollout → report.
//!
//! Invoked by CodePipeline (a `CodePipeline.job` event: the outcome goes to
//! PutJobSuccessResult / PutJobFailureResult, with a continuation token while the rollout goes
//! on) or directly with the parameters as the payload (the outcome is the response).

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use shared::events::codepipeline::Job;
use shared::ports::{
    AlarmReader, ClusterAccess, FailureKind, ImageRegistry, JobFailure, JobResults, JobSuccess,
    Reported,
};
use shared::{FunctionError, InvalidEvent};
use tokio::time::Instant;
use tracing::warn;

use crate::config::Config;
pub use crate::continuation::Continuation;
use crate::params::{DeployParameters, ParameterError};
pub use crate::params::{Invocation, parse};
use crate::release::{Deployed, Release};

/// The ports and settings a deployment is carried out with, built once per cold start.
#[derive(Debug)]
pub struct Deps<C, J, R, A> {
    pub(crate) clusters: C,
    pub(crate) jobs: J,
    pub(crate) registry: R,
    pub(crate) alarms: A,
    pub(crate) config: Config,
}

impl<C, J, R, A> Deps<C, J, R, A>
where
    C: ClusterAccess,
    J: JobResults,
    R: ImageRegistry,
    A: AlarmReader,
{
    /// Dependencies over the given ports and settings.
    pub fn new(clusters: C, jobs: J, registry: R, alarms: A, config: Config) -> Self {
        Self {
            clusters,
            jobs,
            registry,
            alarms,
            config,
        }
    }
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// The new image runs on every replica.
    #[serde(rename_all = "camelCase")]
    Succeeded {
        /// What a person reads.
        summary: String,
    },
    /// The rollout goes on past this invocation.
    #[serde(rename_all = "camelCase")]
    InProgress {
        /// What a person reads.
        summary: String,
        /// For CodePipeline: the token it re-invokes with.
        continuation_token: String,
    },
    /// The deployment failed (and was rolled back when possible).
    #[serde(rename_all = "camelCase")]
    Failed {
        /// Why, in a person's terms.
        message: String,
    },
    /// The parameters are wrong, or the release cannot start as configured.
    #[serde(rename_all = "camelCase")]
    InvalidParameters {
        /// Which field, and what is wrong.
        message: String,
    },
    /// CodePipeline already had this job's result: a redelivered invocation changed nothing.
    AlreadyReported,
}

/// Handles one invocation end to end. `deadline` is when Lambda stops the function.
pub async fn handle<C, J, R, A>(
    deps: &Deps<C, J, R, A>,
    payload: Value,
    deadline: SystemTime,
) -> Result<Outcome, FunctionError>
where
    C: ClusterAccess,
    J: JobResults,
    R: ImageRegistry,
    A: AlarmReader,
{
    let started = Instant::now();
    let budget = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(deps.config.deadline_margin);
    let until = started + budget;
    match parse(payload)? {
        Invocation::Direct(payload) => {
            let params = DeployParameters::from_value(payload)
                .map_err(|error| InvalidEvent::new(error.to_string()))?;
            let deployed = Release::new(deps, &params, None, until).run(None).await;
            Ok(match deployed {
                Deployed::Succeeded { summary, .. } => Outcome::Succeeded { summary },
                Deployed::InProgress {
                    summary,
                    continuation,
                    ..
                } => match continuation.encode() {
                    Ok(token) => Outcome::InProgress {
                        summary: format!(
                            "{summary}; invoke again with the same parameters to keep following it"
                        ),
                        continuation_token: token,
                    },
                    Err(error) => Outcome::Failed {
                        message: unfollowable(&summary, &error),
                    },
                },
                Deployed::Failed(message) => Outcome::Failed { message },
                Deployed::Refused(message) => Outcome::InvalidParameters { message },
            })
        }
        Invocation::Job(job) => handle_job(deps, &job, until).await,
    }
}

async fn handle_job<C, J, R, A>(
    deps: &Deps<C, J, R, A>,
    job: &Job,
    until: Instant,
) -> Result<Outcome, FunctionError>
where
    C: ClusterAccess,
    J: JobResults,
    R: ImageRegistry,
    A: AlarmReader,
{
    let params = match DeployParameters::from_user_parameters(job.user_parameters()) {
        Ok(params) => params,
        Err(error) => return report_invalid(deps, job, &error).await,
    };
    let continuation = match job.data.continuation_token.as_deref() {
        None => None,
        Some(token) => match Continuation::decode(token) {
            Ok(continuation) if continuation.image == params.image => Some(continuation),
            Ok(_) => {
                let message =
                    "the continuation token does not belong to this deployment".to_owned();
                return report_failure(deps, job, &params, message).await;
            }
            Err(error) => {
                warn!(job_id = %job.id, error = %error, "unreadable continuation token");
                return report_failure(deps, job, &params, error.to_string()).await;
            }
        },
    };
    match Release::new(deps, &params, Some(&job.id), until)
        .run(continuation)
        .await
    {
        Deployed::Succeeded { summary, outputs } => {
            let success = JobSuccess {
                summary: summary.clone(),
                continuation_token: None,
                external_execution_id: Some(external_id(&params)),
                percent_complete: None,
                output_variables: outputs,
            };
            Ok(match deps.jobs.succeed(&job.id, &success).await? {
                Reported::Recorded => Outcome::Succeeded { summary },
                Reported::AlreadyReported => Outcome::AlreadyReported,
            })
        }
        Deployed::InProgress {
            summary,
            continuation,
            percent,
        } => {
            let token = match continuation.encode() {
                Ok(token) => token,
                Err(error) => {
                    warn!(job_id = %job.id, error = %error, "no continuation token to carry on with");
                    return report_failure(deps, job, &params, unfollowable(&summary, &error))
                        .await;
                }
            };
            let success = JobSuccess {
                summary: summary.clone(),
                continuation_token: Some(token.clone()),
                external_execution_id: Some(external_id(&params)),
                percent_complete: Some(percent),
                output_variables: Default::default(),
            };
            Ok(match deps.jobs.succeed(&job.id, &success).await? {
                Reported::Recorded => Outcome::InProgress {
                    summary,
                    continuation_token: token,
                },
                Reported::AlreadyReported => Outcome::AlreadyReported,
            })
        }
        Deployed::Failed(message) => report_failure(deps, job, &params, message).await,
        Deployed::Refused(message) => {
            warn!(job_id = %job.id, error = %message, "release refused as configured");
            let failure = JobFailure {
                kind: FailureKind::ConfigurationError,
                message: message.clone(),
                external_execution_id: Some(external_id(&params)),
            };
            Ok(match deps.jobs.fail(&job.id, &failure).await? {
                Reported::Recorded => Outcome::InvalidParameters { message },
                Reported::AlreadyReported => Outcome::AlreadyReported,
            })
        }
    }
}

async fn report_invalid<C, J, R, A>(
    deps: &Deps<C, J, R, A>,
    job: &Job,
    error: &ParameterError,
) -> Result<Outcome, FunctionError>
where
    J: JobResults,
{
    let message = format!("UserParameters.{}: {}", error.field, error.problem)
        .replace("UserParameters.UserParameters", "UserParameters");
    warn!(job_id = %job.id, error = %message, "invalid deployment parameters");
    let failure = JobFailure {
        kind: FailureKind::ConfigurationError,
        message: message.clone(),
        external_execution_id: None,
    };
    Ok(match deps.jobs.fail(&job.id, &failure).await? {
        Reported::Recorded => Outcome::InvalidParameters { message },
        Reported::AlreadyReported => Outcome::AlreadyReported,
    })
}

async fn report_failure<C, J, R, A>(
    deps: &Deps<C, J, R, A>,
    job: &Job,
    params: &DeployParameters,
    message: String,
) -> Result<Outcome, FunctionError>
where
    J: JobResults,
{
    let failure = JobFailure {
        kind: FailureKind::JobFailed,
        message: message.clone(),
        external_execution_id: Some(external_id(params)),
    };
    Ok(match deps.jobs.fail(&job.id, &failure).await? {
        Reported::Recorded => Outcome::Failed { message },
        Reported::AlreadyReported => Outcome::AlreadyReported,
    })
}

/// The failure of a release that cannot go on past this invocation: its state does not fit in
/// a continuation token. What is in the cluster stays as it is (a canary left is removed by the
/// next release, as an abandoned one).
fn unfollowable(summary: &str, error: &crate::continuation::TokenError) -> String {
    format!("{summary}; cannot go on in another invocation: {error}")
}

fn external_id(params: &DeployParameters) -> String {
    format!(
        "{}/{}/{}",
        params.cluster, params.namespace, params.deployment
    )
}

#[cfg(test)]
mod tests;
