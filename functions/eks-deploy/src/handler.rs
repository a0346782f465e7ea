//! One deployment, end to end: parameters → cluster → patch → rollout → report.
//!
//! Invoked by CodePipeline (a `CodePipeline.job` event: the outcome goes to
//! PutJobSuccessResult / PutJobFailureResult, with a continuation token while the rollout goes
//! on) or directly with the parameters as the payload (the outcome is the response).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::events::codepipeline::Job;
use shared::ports::{ClusterAccess, FailureKind, JobFailure, JobResults, JobSuccess, Reported};
use shared::{FunctionError, InvalidEvent};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::cluster::{ClusterError, DeploymentHandle, Followed, recorded_previous_image};
use crate::config::Config;
use crate::params::{DeployParameters, ParameterError};
pub use crate::params::{Invocation, parse};
use crate::rollout::{DeadlineVerdict, RolloutStart, RolloutStatus, deadline_verdict, image_of};

/// The ports and settings a deployment is carried out with, built once per cold start.
#[derive(Debug)]
pub struct Deps<C, J> {
    clusters: C,
    jobs: J,
    config: Config,
}

impl<C: ClusterAccess, J: JobResults> Deps<C, J> {
    /// Dependencies over the given ports and settings.
    pub fn new(clusters: C, jobs: J, config: Config) -> Self {
        Self {
            clusters,
            jobs,
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
    /// The parameters are wrong.
    #[serde(rename_all = "camelCase")]
    InvalidParameters {
        /// Which field, and what is wrong.
        message: String,
    },
    /// CodePipeline already had this job's result: a redelivered invocation changed nothing.
    AlreadyReported,
}

/// What a continued job remembers between invocations (CodePipeline allows 2048 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Continuation {
    /// The image being rolled out.
    pub image: String,
    /// The image to roll back to.
    pub previous: Option<String>,
    /// When the rollout started (seconds since the epoch).
    pub started_at: u64,
    /// The `lastUpdateTime` of the ProgressDeadlineExceeded verdict that stood when the rollout
    /// started: an earlier rollout's, which does not judge this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_verdict: Option<String>,
}

impl Continuation {
    /// The token CodePipeline carries.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a token; anything else is not one of ours.
    pub fn decode(token: &str) -> Option<Self> {
        serde_json::from_str(token).ok()
    }
}

enum Deployed {
    Succeeded(String),
    InProgress {
        summary: String,
        continuation: Continuation,
        percent: u8,
    },
    Failed(String),
}

/// Handles one invocation end to end. `deadline` is when Lambda stops the function.
pub async fn handle<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    payload: Value,
    deadline: SystemTime,
) -> Result<Outcome, FunctionError> {
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
            let cause = format!(
                "eks-deploy: set {} to {} (direct invocation)",
                params.container, params.image
            );
            let deployed = deploy(deps, &params, None, None, until, &cause).await;
            Ok(match deployed {
                Deployed::Succeeded(summary) => Outcome::Succeeded { summary },
                Deployed::InProgress {
                    summary,
                    continuation,
                    ..
                } => Outcome::InProgress {
                    summary: format!(
                        "{summary}; invoke again with the same parameters to keep following it"
                    ),
                    continuation_token: continuation.encode(),
                },
                Deployed::Failed(message) => Outcome::Failed { message },
            })
        }
        Invocation::Job(job) => handle_job(deps, &job, until).await,
    }
}

async fn handle_job<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    job: &Job,
    until: Instant,
) -> Result<Outcome, FunctionError> {
    let params = match DeployParameters::from_user_parameters(job.user_parameters()) {
        Ok(params) => params,
        Err(error) => return report_invalid(deps, job, &error).await,
    };
    let continuation = match job.data.continuation_token.as_deref() {
        None => None,
        Some(token) => match Continuation::decode(token) {
            Some(continuation) if continuation.image == params.image => Some(continuation),
            _ => {
                let message =
                    "the continuation token does not belong to this deployment".to_owned();
                return report_failure(deps, job, &params, message).await;
            }
        },
    };
    let cause = format!(
        "eks-deploy: set {} to {} (CodePipeline job {})",
        params.container, params.image, job.id
    );
    match deploy(deps, &params, Some(&job.id), continuation, until, &cause).await {
        Deployed::Succeeded(summary) => {
            let success = JobSuccess {
                summary: summary.clone(),
                continuation_token: None,
                external_execution_id: Some(external_id(&params)),
                percent_complete: None,
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
            let token = continuation.encode();
            let success = JobSuccess {
                summary: summary.clone(),
                continuation_token: Some(token.clone()),
                external_execution_id: Some(external_id(&params)),
                percent_complete: Some(percent),
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
    }
}

async fn report_invalid<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    job: &Job,
    error: &ParameterError,
) -> Result<Outcome, FunctionError> {
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

async fn report_failure<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    job: &Job,
    params: &DeployParameters,
    message: String,
) -> Result<Outcome, FunctionError> {
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

fn external_id(params: &DeployParameters) -> String {
    format!(
        "{}/{}/{}",
        params.cluster, params.namespace, params.deployment
    )
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Carries the deployment out until it settles or `until` comes.
async fn deploy<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    params: &DeployParameters,
    job: Option<&str>,
    continuation: Option<Continuation>,
    until: Instant,
    cause: &str,
) -> Deployed {
    let target = format!("{}/{}", params.namespace, params.deployment);
    let client = match deps.clusters.client(&params.cluster).await {
        Ok(client) => client,
        Err(error) => {
            return Deployed::Failed(format!("cannot reach cluster {}: {error}", params.cluster));
        }
    };
    let handle = DeploymentHandle::new(
        client,
        &params.namespace,
        &params.deployment,
        deps.config.retry,
    );
    let failed = |error: ClusterError| Deployed::Failed(format!("{target}: {error}"));

    let (deployment, previous, start, changed) = match continuation {
        Some(continuation) => {
            let deployment = match handle.read(until).await {
                Ok(deployment) => deployment,
                Err(error) => return failed(error),
            };
            if image_of(&deployment, &params.container).as_deref() != Some(params.image.as_str()) {
                return Deployed::Failed(format!(
                    "{target}: someone else changed container {} during the rollout (it now runs {})",
                    params.container,
                    image_of(&deployment, &params.container).unwrap_or_else(|| "nothing".into())
                ));
            }
            let start = RolloutStart {
                earlier_verdict: continuation
                    .earlier_verdict
                    .map(|updated| DeadlineVerdict { updated }),
                at: continuation.started_at,
            };
            (deployment, continuation.previous, start, true)
        }
        // A job sets its image once: delivered again after a later deployment, it must not
        // put its older image back.
        None => match match job {
            Some(job) => {
                handle
                    .set_image_for_job(job, &params.container, &params.image, cause, until)
                    .await
            }
            None => {
                handle
                    .set_image(&params.container, &params.image, cause, until)
                    .await
            }
        } {
            Ok(change) => {
                let changed = change.previous.is_some();
                // Already set (an earlier invocation patched it): the recorded image is the way back.
                let previous = change
                    .previous
                    .or_else(|| recorded_previous_image(&change.deployment, &params.container))
                    .filter(|previous| *previous != params.image);
                info!(
                    deployment = %target,
                    container = %params.container,
                    image = %params.image,
                    previous = previous.as_deref().unwrap_or("-"),
                    changed,
                    "image set"
                );
                // The status the patch answered with is from before the change: a deadline
                // verdict there is an earlier rollout's.
                let start = RolloutStart {
                    earlier_verdict: deadline_verdict(&change.deployment).filter(|_| changed),
                    at: now_seconds(),
                };
                (change.deployment, previous, start, changed)
            }
            Err(error) => return failed(error),
        },
    };

    let started_at = start.at;
    let rollout_ends = Instant::now()
        + deps.config.max_rollout.saturating_sub(Duration::from_secs(
            now_seconds().saturating_sub(started_at),
        ));
    let followed = match handle
        .follow(deployment, &start, until.min(rollout_ends))
        .await
    {
        Ok(followed) => followed,
        Err(error) => return failed(error),
    };
    let elapsed = now_seconds().saturating_sub(started_at);
    match followed {
        Followed::Settled(RolloutStatus::Complete { replicas }, _) => {
            let summary = if changed {
                format!(
                    "{target}: container {} runs {} on {replicas} of {replicas} replicas (rolled out in {elapsed} s)",
                    params.container, params.image
                )
            } else {
                format!(
                    "{target}: container {} already runs {} on {replicas} of {replicas} replicas; nothing to do",
                    params.container, params.image
                )
            };
            info!(deployment = %target, image = %params.image, replicas, "rollout complete");
            Deployed::Succeeded(summary)
        }
        Followed::Settled(RolloutStatus::Failed(reason), deployment) => {
            roll_back(
                deps,
                &handle,
                params,
                &target,
                previous.as_deref(),
                &deployment,
                &reason,
                until,
            )
            .await
        }
        Followed::Settled(RolloutStatus::Progressing(_), _) => {
            Deployed::Failed(format!("{target}: the rollout stopped being followed"))
        }
        Followed::OutOfTime(status, deployment) => {
            let waiting = match &status {
                RolloutStatus::Progressing(what) => what.clone(),
                other => format!("{other:?}"),
            };
            if Instant::now() >= rollout_ends {
                let reason = format!(
                    "the rollout did not complete within {} s ({waiting})",
                    deps.config.max_rollout.as_secs()
                );
                return roll_back(
                    deps,
                    &handle,
                    params,
                    &target,
                    previous.as_deref(),
                    &deployment,
                    &reason,
                    until,
                )
                .await;
            }
            let percent = progress(&deployment);
            Deployed::InProgress {
                summary: format!("{target}: rolling out {} ({waiting})", params.image),
                continuation: Continuation {
                    image: params.image.clone(),
                    previous,
                    started_at,
                    earlier_verdict: start.earlier_verdict.map(|verdict| verdict.updated),
                },
                percent,
            }
        }
    }
}

fn progress(deployment: &k8s_openapi::api::apps::v1::Deployment) -> u8 {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(1);
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| {
            s.updated_replicas
                .zip(s.available_replicas)
                .map(|(u, a)| u.min(a))
        })
        .unwrap_or_default();
    u8::try_from((available.clamp(0, desired) * 100) / desired).unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
async fn roll_back<C: ClusterAccess, J: JobResults>(
    deps: &Deps<C, J>,
    handle: &DeploymentHandle,
    params: &DeployParameters,
    target: &str,
    previous: Option<&str>,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    reason: &str,
    until: Instant,
) -> Deployed {
    let problems = handle
        .pod_problems(deployment, &params.container, &params.image, until)
        .await
        .unwrap_or_else(|error| vec![format!("(could not read the pods: {error})")]);
    let mut message = format!("{target}: the rollout of {} failed: {reason}", params.image);
    if !problems.is_empty() {
        message.push_str(". Pods: ");
        message.push_str(&problems.join("; "));
    }
    warn!(deployment = %target, image = %params.image, reason, "rollout failed");
    let rollback = params
        .rollback_on_failure
        .unwrap_or(deps.config.rollback_on_failure);
    match (rollback, previous) {
        (false, _) => message.push_str(". Not rolled back (rollback is off)."),
        (true, None) => message.push_str(". Not rolled back: no previous image is known."),
        (true, Some(previous)) => {
            let cause = format!(
                "eks-deploy: rolled {} back to {previous} after a failed rollout of {}",
                params.container, params.image
            );
            match handle
                .set_image(&params.container, previous, &cause, until)
                .await
            {
                Err(error) => {
                    message.push_str(&format!(". The rollback to {previous} failed: {error}."))
                }
                Ok(change) => {
                    let start = RolloutStart {
                        earlier_verdict: deadline_verdict(&change.deployment),
                        at: now_seconds(),
                    };
                    match handle.follow(change.deployment, &start, until).await {
                        Ok(Followed::Settled(RolloutStatus::Complete { .. }, _)) => {
                            message.push_str(&format!(
                                ". Rolled back to {previous} (rollout complete)."
                            ));
                        }
                        Ok(Followed::Settled(RolloutStatus::Failed(why), _)) => {
                            message.push_str(&format!(
                                ". Rolled back to {previous}, but that rollout failed too: {why}."
                            ));
                        }
                        Ok(_) => message.push_str(&format!(
                            ". Rolled back to {previous} (rollout still in progress)."
                        )),
                        Err(error) => message.push_str(&format!(
                            ". Rolled back to {previous}; following it failed: {error}."
                        )),
                    }
                }
            }
            info!(deployment = %target, image = previous, "rolled back");
        }
    }
    Deployed::Failed(message)
}

#[cfg(test)]
mod tests;
