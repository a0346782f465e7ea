//! Talking to the Deployment: read it, change one container's image, follow the rollout with a
//! watch, and read the pods' reasons when it fails. Every call is retried the same way:
//! conflicts re-read and re-apply, transient failures back off, permanent ones stop at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::rollout::{
    RolloutStart, RolloutStatus, deadline_verdict, image_of, pod_problems, progress_deadline,
    status_since,
};

/// The annotation recording the image a container ran before eks-deploy changed it:
/// `<container>=<image>`.
pub const PREVIOUS_IMAGE_ANNOTATION: &str = "eks-deploy.cicd/previous-image";
/// The annotation recording the CodePipeline jobs that set an image here, oldest first,
/// separated by spaces: a job delivered again after a later deployment must not set its image
/// again.
pub const JOBS_ANNOTATION: &str = "eks-deploy.cicd/jobs";
/// How many job ids [`JOBS_ANNOTATION`] keeps: far more than can be redelivered late.
pub const JOBS_KEPT: usize = 20;
/// The annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// A watch asks the API server for at most this long per request (it must stay under the
/// server's own cap of about five minutes).
const WATCH_SECONDS: u32 = 240;
/// How long one call (a read, a patch, the opening of a watch) may wait for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A watch the server has not ended this long after its own timeout is a dead connection.
const WATCH_GRACE: Duration = Duration::from_secs(15);
/// A watch that ends within this, having delivered nothing, was cut rather than timed out.
const WATCH_CUT_WITHIN: Duration = Duration::from_secs(1);
/// The pause before watching again after such a cut, doubling with each one in a row.
const WATCH_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first back-off; each next one doubles, capped at 8 times this.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Why talking to the Deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server refused the request for good (403, 404, 422…).
    #[error("{operation} was refused ({code} {reason}): {message}")]
    Refused {
        /// What was attempted.
        operation: &'static str,
        /// The HTTP status.
        code: u16,
        /// Kubernetes' reason (`Forbidden`, `NotFound`…).
        reason: String,
        /// Kubernetes' message.
        message: String,
    },
    /// RBAC refused the request: eks-deploy's Role lacks a verb it uses.
    #[error(
        "{operation} was forbidden by the cluster's RBAC: {message}. Grant it in eks-deploy's Role in the namespace (infra/k8s/rbac.yaml)"
    )]
    Forbidden {
        /// What was attempted.
        operation: &'static str,
        /// The API server's message: who, which verb, which resource.
        message: String,
    },
    /// The API server kept failing or could not be reached.
    #[error("{operation} failed after {attempts} attempts: {last}")]
    Unavailable {
        /// What was attempted.
        operation: &'static str,
        /// How many times.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The Deployment has no container of that name.
    #[error("deployment {deployment} has no container named {container} (it has: {known})")]
    NoSuchContainer {
        /// The Deployment.
        deployment: String,
        /// The container asked for.
        container: String,
        /// The containers it has.
        known: String,
    },
    /// The Deployment was deleted while its rollout was followed.
    #[error("deployment {0} was deleted during the rollout")]
    Deleted(String),
    /// This job already set its image, and a later deployment has changed it since.
    #[error(
        "CodePipeline job {job} already set container {container} to {image}, and it now runs {now}: not set again"
    )]
    AlreadyApplied {
        /// The job.
        job: String,
        /// The container.
        container: String,
        /// The image the job set.
        image: String,
        /// The image the container runs now.
        now: String,
    },
}

enum Failure {
    Conflict,
    Transient(String),
    Permanent {
        code: u16,
        reason: String,
        message: String,
    },
}

fn classify(error: &kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) => match status.code {
            409 => Failure::Conflict,
            429 | 500 | 502 | 503 | 504 => {
                Failure::Transient(format!("{} {}", status.code, status.message))
            }
            code => Failure::Permanent {
                code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
        },
        // Connection resets, timeouts, TLS hiccups: the request may not have arrived.
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            Failure::Transient(error.to_string())
        }
        other => Failure::Permanent {
            code: 0,
            reason: "ClientError".into(),
            message: other.to_string(),
        },
    }
}

/// The outcome of setting a container's image.
#[derive(Debug, Clone)]
pub struct ImageChange {
    /// The image the container ran before; `None` when it already ran the requested one.
    pub previous: Option<String>,
    /// The Deployment as the API server answered.
    pub deployment: Deployment,
}

/// How following a rollout ended.
#[derive(Debug, Clone)]
pub enum Followed {
    /// The rollout completed or failed.
    Settled(RolloutStatus, Deployment),
    /// The time ran out first; the rollout goes on.
    OutOfTime(RolloutStatus, Deployment),
}

/// One Deployment of one cluster.
#[derive(Clone)]
pub struct DeploymentHandle {
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    name: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for DeploymentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DeploymentHandle {
    /// The Deployment `name` in `namespace`, reached through `client`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, retry: RetryPolicy) -> Self {
        Self {
            deployments: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            name: name.to_owned(),
            retry,
        }
    }

    /// Runs `call`, retrying transient failures with exponential back-off, never past `deadline`.
    async fn with_retry<T, F, Fut>(
        &self,
        operation: &'static str,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, Attempt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut backoff = self.retry.backoff;
        let mut attempt = 1;
        loop {
            let bound = (Instant::now() + CALL_TIMEOUT).min(deadline);
            let allowed = bound.saturating_duration_since(Instant::now());
            let failure = match tokio::time::timeout_at(bound, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => classify(&error),
                // The request may have arrived: retried like a dropped connection.
                Err(_) => {
                    Failure::Transient(format!("no answer within {} ms", allowed.as_millis()))
                }
            };
            match failure {
                Failure::Conflict => return Err(Attempt::Conflict),
                Failure::Permanent {
                    code: 403, message, ..
                } => {
                    return Err(Attempt::Failed(ClusterError::Forbidden {
                        operation,
                        message,
                    }));
                }
                Failure::Permanent {
                    code,
                    reason,
                    message,
                } => {
                    return Err(Attempt::Failed(ClusterError::Refused {
                        operation,
                        code,
                        reason,
                        message,
                    }));
                }
                Failure::Transient(last) => {
                    if attempt >= self.retry.attempts || Instant::now() + backoff >= deadline {
                        return Err(Attempt::Failed(ClusterError::Unavailable {
                            operation,
                            attempts: attempt,
                            last,
                        }));
                    }
                    warn!(operation, attempt, error = %last, "transient Kubernetes API failure, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.backoff * 8);
                    attempt += 1;
                }
            }
        }
    }

    /// Reads the Deployment.
    pub async fn read(&self, deadline: Instant) -> Result<Deployment, ClusterError> {
        self.with_retry("GET deployment", deadline, || {
            self.deployments.get(&self.name)
        })
        .await
        .map_err(Attempt::into_error)
    }

    /// Reads the Deployment, or `None` when there is none of that name.
    pub async fn read_if_exists(
        &self,
        deadline: Instant,
    ) -> Result<Option<Deployment>, ClusterError> {
        match self.read(deadline).await {
            Ok(deployment) => Ok(Some(deployment)),
            Err(ClusterError::Refused { code: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Creates `deployment` (named as this handle); `None` when one of that name appeared
    /// meanwhile (a concurrent or earlier create whose answer was lost).
    pub async fn create(
        &self,
        deployment: &Deployment,
        deadline: Instant,
    ) -> Result<Option<Deployment>, ClusterError> {
        let params = PostParams::default();
        match self
            .with_retry("CREATE deployment", deadline, || {
                self.deployments.create(&params, deployment)
            })
            .await
        {
            Ok(created) => Ok(Some(created)),
            Err(Attempt::Conflict) => Ok(None),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    /// Applies a JSON merge patch (carrying the resourceVersion it was computed from, when it
    /// has one: a conflict is then the caller's to resolve by reading again).
    pub async fn merge_patch(
        &self,
        patch: &serde_json::Value,
        deadline: Instant,
    ) -> Result<Option<Deployment>, ClusterError> {
        let patch = Patch::Merge(patch);
        let params = PatchParams::default();
        match self
            .with_retry("PATCH deployment", deadline, || {
                self.deployments.patch(&self.name, &params, &patch)
            })
            .await
        {
            Ok(deployment) => Ok(Some(deployment)),
            Err(Attempt::Conflict) => Ok(None),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    /// Deletes the Deployment and, in the background, its pods; `false` when there was none.
    pub async fn delete(&self, deadline: Instant) -> Result<bool, ClusterError> {
        let params = DeleteParams::background();
        match self
            .with_retry("DELETE deployment", deadline, || {
                self.deployments.delete(&self.name, &params)
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(Attempt::Failed(ClusterError::Refused { code: 404, .. })) => Ok(false),
            Err(Attempt::Conflict) => Ok(true),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    /// The Deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets `container`'s image to `image` with a strategic merge patch, recording the previous
    /// image and `cause`. A no-op when it already runs `image`. The patch carries the
    /// resourceVersion it was computed from, so a concurrent change is a conflict: re-read,
    /// recompute, retry.
    pub async fn set_image(
        &self,
        container: &str,
        image: &str,
        cause: &str,
        deadline: Instant,
    ) -> Result<ImageChange, ClusterError> {
        self.set_image_once(None, container, image, cause, deadline)
            .await
    }

    /// As [`DeploymentHandle::set_image`], for CodePipeline job `job`, at most once: the job is
    /// recorded in [`JOBS_ANNOTATION`] with the patch, and a job found there whose image was
    /// changed since (a redelivery after a later deployment) is [`ClusterError::AlreadyApplied`]
    /// rather than a patch back to its older image.
    pub async fn set_image_for_job(
        &self,
        job: &str,
        container: &str,
        image: &str,
        cause: &str,
        deadline: Instant,
    ) -> Result<ImageChange, ClusterError> {
        self.set_image_once(Some(job), container, image, cause, deadline)
            .await
    }

    async fn set_image_once(
        &self,
        job: Option<&str>,
        container: &str,
        image: &str,
        cause: &str,
        deadline: Instant,
    ) -> Result<ImageChange, ClusterError> {
        for _ in 0..self.retry.attempts {
            let current = self.read(deadline).await?;
            let Some(previous) = image_of(&current, container) else {
                return Err(self.no_such_container(&current, container));
            };
            if previous == image {
                return Ok(ImageChange {
                    previous: None,
                    deployment: current,
                });
            }
            let applied = applied_jobs(&current);
            if let Some(job) = job
                && applied.contains(&job)
            {
                return Err(ClusterError::AlreadyApplied {
                    job: job.to_owned(),
                    container: container.to_owned(),
                    image: image.to_owned(),
                    now: previous,
                });
            }
            let mut patch = image_patch(&current, container, image, Some(&previous), cause);
            if let Some(job) = job {
                let skip = (applied.len() + 1).saturating_sub(JOBS_KEPT);
                let jobs: Vec<&str> = applied.into_iter().chain([job]).skip(skip).collect();
                patch["metadata"]["annotations"][JOBS_ANNOTATION] = json!(jobs.join(" "));
            }
            let patch = Patch::Strategic(patch);
            let params = PatchParams::default();
            match self
                .with_retry("PATCH deployment", deadline, || {
                    self.deployments.patch(&self.name, &params, &patch)
                })
                .await
            {
                Ok(deployment) => {
                    return Ok(ImageChange {
                        previous: Some(previous),
                        deployment,
                    });
                }
                Err(Attempt::Conflict) => {
                    debug!(deployment = %self.name, "the deployment changed under the patch; reading it again");
                }
                Err(Attempt::Failed(error)) => return Err(error),
            }
        }
        Err(ClusterError::Unavailable {
            operation: "PATCH deployment",
            attempts: self.retry.attempts,
            last: "409 Conflict every time: the deployment keeps changing".into(),
        })
    }

    fn no_such_container(&self, deployment: &Deployment, container: &str) -> ClusterError {
        let known = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .map(|pod| {
                pod.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        ClusterError::NoSuchContainer {
            deployment: self.name.clone(),
            container: container.to_owned(),
            known,
        }
    }

    /// Follows the rollout of `from` with a watch until it settles or `deadline` comes. A watch
    /// that ends (the server's timeout, a dropped connection) resumes from the last
    /// resourceVersion seen; one that expired (410) starts again from a fresh read. `start` says
    /// which deadline verdict was there before the rollout began (see
    /// [`crate::rollout::status_since`]); if that verdict still stands when the progress deadline
    /// has passed since the start, the controller will not say it again: the rollout failed.
    pub async fn follow(
        &self,
        from: Deployment,
        start: &RolloutStart,
        deadline: Instant,
    ) -> Result<Followed, ClusterError> {
        let mut current = from;
        let mut resource_version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let mut cuts_in_a_row: u32 = 0;
        let earlier = start.earlier_verdict.as_ref();
        let no_progress_by = earlier.map(|_| no_progress_by(start, &current));
        loop {
            let status = status_since(&current, earlier);
            if !matches!(status, RolloutStatus::Progressing(_)) {
                return Ok(Followed::Settled(status, current));
            }
            if let Some(by) = no_progress_by
                && Instant::now() >= by
                && deadline_verdict(&current).as_ref() == earlier
            {
                let seconds = progress_deadline(&current).as_secs();
                let failed = RolloutStatus::Failed(format!(
                    "the rollout made no progress within its progress deadline ({seconds} s); \
                     the deployment controller still shows the earlier rollout's ProgressDeadlineExceeded"
                ));
                return Ok(Followed::Settled(failed, current));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_secs(1) {
                return Ok(Followed::OutOfTime(status, current));
            }
            let seconds = u32::try_from(remaining.as_secs())
                .unwrap_or(WATCH_SECONDS)
                .clamp(1, WATCH_SECONDS);
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", self.name))
                .timeout(seconds);
            let stream = match self
                .with_retry("WATCH deployment", deadline, || {
                    self.deployments.watch(&params, &resource_version)
                })
                .await
            {
                Ok(stream) => stream,
                Err(Attempt::Conflict) => continue,
                Err(Attempt::Failed(error)) => return Err(error),
            };
            let mut stream = stream.boxed();
            let opened = Instant::now();
            // Past the server's own end of the watch it is a dead connection; and the moment
            // the rollout counts as stuck must not wait for an event.
            let mut until =
                deadline.min(opened + Duration::from_secs(seconds.into()) + WATCH_GRACE);
            if let Some(by) = no_progress_by {
                until = until.min(by.max(opened));
            }
            let mut events = 0_usize;
            loop {
                let next = match tokio::time::timeout_at(until, stream.try_next()).await {
                    Err(_) => break,
                    Ok(Err(error)) => {
                        // The stream broke mid-way: resume from what was seen.
                        warn!(deployment = %self.name, error = %error, "watch interrupted, resuming");
                        break;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(event))) => event,
                };
                events += 1;
                match next {
                    WatchEvent::Added(deployment) | WatchEvent::Modified(deployment) => {
                        resource_version = deployment
                            .metadata
                            .resource_version
                            .clone()
                            .unwrap_or(resource_version);
                        current = deployment;
                        if !matches!(
                            status_since(&current, earlier),
                            RolloutStatus::Progressing(_)
                        ) {
                            break;
                        }
                    }
                    WatchEvent::Deleted(_) => return Err(ClusterError::Deleted(self.name.clone())),
                    WatchEvent::Bookmark(bookmark) => {
                        resource_version = bookmark.metadata.resource_version
                    }
                    WatchEvent::Error(status) if status.code == 410 => {
                        // Too old to resume: read afresh and watch from there.
                        current = self.read(deadline).await?;
                        resource_version = current
                            .metadata
                            .resource_version
                            .clone()
                            .unwrap_or_default();
                        break;
                    }
                    WatchEvent::Error(status) => {
                        warn!(deployment = %self.name, code = status.code, message = %status.message, "watch error, resuming");
                        break;
                    }
                }
            }
            // A server or proxy that cuts every watch at once must not be asked again in a
            // tight loop until the deadline.
            if events == 0 && opened.elapsed() < WATCH_CUT_WITHIN {
                let pause = WATCH_BACKOFF_FIRST
                    .saturating_mul(2_u32.saturating_pow(cuts_in_a_row))
                    .min(WATCH_BACKOFF_MAX);
                cuts_in_a_row = cuts_in_a_row.saturating_add(1);
                debug!(deployment = %self.name, pause_ms = pause.as_millis(), "watch cut at once, pausing");
                tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            } else {
                cuts_in_a_row = 0;
            }
        }
    }

    /// Why the pods made from the new template are not ready.
    pub async fn pod_problems(
        &self,
        deployment: &Deployment,
        container: &str,
        image: &str,
        deadline: Instant,
    ) -> Result<Vec<String>, ClusterError> {
        let selector = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.match_labels.as_ref())
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let params = ListParams::default().labels(&selector);
        let pods = self
            .with_retry("LIST pods", deadline, || self.pods.list(&params))
            .await
            .map_err(Attempt::into_error)?;
        Ok(pod_problems(&pods.items, container, image))
    }
}

/// When a rollout that began at `start` has had its whole progress deadline: the moment a
/// verdict the controller will not repeat (see [`DeploymentHandle::follow`]) means failure.
fn no_progress_by(start: &RolloutStart, deployment: &Deployment) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let elapsed = Duration::from_secs(now.saturating_sub(start.at));
    Instant::now() + progress_deadline(deployment).saturating_sub(elapsed)
}

/// A failed attempt: a conflict is for the caller to resolve.
enum Attempt {
    Conflict,
    Failed(ClusterError),
}

impl Attempt {
    fn into_error(self) -> ClusterError {
        match self {
            Self::Conflict => ClusterError::Refused {
                operation: "read",
                code: 409,
                reason: "Conflict".into(),
                message: "conflict on a read".into(),
            },
            Self::Failed(error) => error,
        }
    }
}

/// The strategic merge patch that changes only `container`'s image: containers merge by name,
/// so the Deployment's other containers stay as they are.
pub fn image_patch(
    current: &Deployment,
    container: &str,
    image: &str,
    previous: Option<&str>,
    cause: &str,
) -> serde_json::Value {
    let mut annotations = BTreeMap::new();
    annotations.insert(CHANGE_CAUSE_ANNOTATION, cause.to_owned());
    if let Some(previous) = previous {
        annotations.insert(PREVIOUS_IMAGE_ANNOTATION, format!("{container}={previous}"));
    }
    json!({
        "metadata": {
            "resourceVersion": current.metadata.resource_version,
            "annotations": annotations,
        },
        "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}
    })
}

/// The CodePipeline jobs recorded in [`JOBS_ANNOTATION`], oldest first.
pub fn applied_jobs(deployment: &Deployment) -> Vec<&str> {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(JOBS_ANNOTATION))
        .map(|jobs| jobs.split_whitespace().collect())
        .unwrap_or_default()
}

/// The previous image eks-deploy recorded for `container` on `deployment`.
pub fn recorded_previous_image(deployment: &Deployment, container: &str) -> Option<String> {
    deployment
        .metadata
        .annotations
        .as_ref()?
        .get(PREVIOUS_IMAGE_ANNOTATION)?
        .strip_prefix(container)?
        .strip_prefix('=')
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::testing::*;

    fn handle(client: kube::Client) -> DeploymentHandle {
        DeploymentHandle::new(
            client,
            "shop",
            "web",
            RetryPolicy {
                attempts: 3,
                backoff: Duration::from_millis(1),
            },
        )
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    const CAUSE: &str = "eks-deploy: set web to shop:v2 (test)";

    #[tokio::test]
    async fn setting_an_image_patches_only_that_container_with_the_read_resource_version() {
        let (client, server) = scripted(vec![
            Exchange::get(DEPLOYMENT, deployment("41", 3, "shop:v1", rolled_out(3))),
            Exchange::patch(
                DEPLOYMENT_PATCH,
                expected_patch("41", "shop:v2", "shop:v1", CAUSE),
                deployment("42", 4, "shop:v2", rolled_out(3)),
            ),
        ]);
        let change = handle(client)
            .set_image("web", "shop:v2", CAUSE, soon())
            .await
            .unwrap();
        assert_eq!(change.previous.as_deref(), Some("shop:v1"));
        assert_eq!(
            change.deployment.metadata.resource_version.as_deref(),
            Some("42")
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_image_already_running_is_not_patched() {
        let (client, server) = scripted(vec![Exchange::get(
            DEPLOYMENT,
            deployment("41", 3, "shop:v2", rolled_out(3)),
        )]);
        let change = handle(client)
            .set_image("web", "shop:v2", CAUSE, soon())
            .await
            .unwrap();
        assert_eq!(change.previous, None);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_conflict_rereads_and_patches_again() {
        let (client, server) = scripted(vec![
            Exchange::get(DEPLOYMENT, deployment("41", 3, "shop:v1", rolled_out(3))),
            Exchange::patch(
                DEPLOYMENT_PATCH,
                expected_patch("41", "shop:v2", "shop:v1", CAUSE),
                json!({}),
            )
            .failing(409, "Conflict"),
            Exchange::get(DEPLOYMENT, deployment("45", 3, "shop:v1.1", rolled_out(3))),
            Exchange::patch(
                DEPLOYMENT_PATCH,
                expected_patch("45", "shop:v2", "shop:v1.1", CAUSE),
                deployment("46", 4, "shop:v2", rolled_out(3)),
            ),
        ]);
        let change = handle(client)
            .set_image("web", "shop:v2", CAUSE, soon())
            .await
            .unwrap();
        assert_eq!(
            change.previous.as_deref(),
            Some("shop:v1.1"),
            "the image seen at the patch is the previous one"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let (client, server) = scripted(vec![
            Exchange::get(DEPLOYMENT, json!({})).failing(500, "InternalError"),
            Exchange::get(DEPLOYMENT, json!({})).failing(503, "ServiceUnavailable"),
            Exchange::get(DEPLOYMENT, deployment("41", 3, "shop:v1", rolled_out(3))),
        ]);
        handle(client).read(soon()).await.unwrap();
        server.await.unwrap();

        let (client, server) = scripted(vec![
            Exchange::get(DEPLOYMENT, json!({})).failing(403, "Forbidden"),
        ]);
        let error = handle(client).read(soon()).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClusterError::Forbidden {
                    operation: "GET deployment",
                    ..
                }
            ),
            "{error}"
        );
        server.await.unwrap();

        let (client, server) = scripted(vec![
            Exchange::get(DEPLOYMENT, json!({})).failing(500, "InternalError"),
            Exchange::get(DEPLOYMENT, json!({})).failing(500, "InternalError"),
            Exchange::get(DEPLOYMENT, json!({})).failing(500, "InternalError"),
        ]);
        let error = handle(client).read(soon()).await.unwrap_err();
        assert!(
            matches!(error, ClusterError::Unavailable { attempts: 3, .. }),
            "{error}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_missing_container_is_named_with_the_ones_there_are() {
        let (client, server) = scripted(vec![Exchange::get(
            DEPLOYMENT,
            deployment("41", 3, "shop:v1", rolled_out(3)),
        )]);
        let error = handle(client)
            .set_image("api", "shop:v2", CAUSE, soon())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "deployment web has no container named api (it has: web, proxy)"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn the_rollout_is_followed_with_a_watch_until_complete() {
        let (client, server) = scripted(vec![Exchange::watch(
            &watch_uri("42", 4),
            vec![
                modified(deployment("43", 4, "shop:v2", rolling(4, 1))),
                modified(deployment("44", 4, "shop:v2", rolling(4, 2))),
                modified(deployment("45", 4, "shop:v2", rolled_out(4))),
            ],
        )]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolled_out(3))).unwrap();
        let followed = handle(client)
            .follow(from, &RolloutStart::default(), soon())
            .await
            .unwrap();
        assert!(
            matches!(
                followed,
                Followed::Settled(RolloutStatus::Complete { replicas: 3 }, _)
            ),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_watch_that_ends_resumes_from_the_last_resource_version() {
        let (client, server) = scripted(vec![
            Exchange::watch(
                &watch_uri("42", 4),
                vec![modified(deployment("43", 4, "shop:v2", rolling(4, 1)))],
            ),
            Exchange::watch(
                &watch_uri("43", 4),
                vec![
                    json!({"type": "BOOKMARK", "object": {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "50"}}}),
                ],
            ),
            Exchange::watch(
                &watch_uri("50", 4),
                vec![modified(deployment("51", 4, "shop:v2", rolled_out(4)))],
            ),
        ]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolled_out(3))).unwrap();
        let followed = handle(client)
            .follow(from, &RolloutStart::default(), soon())
            .await
            .unwrap();
        assert!(
            matches!(
                followed,
                Followed::Settled(RolloutStatus::Complete { .. }, _)
            ),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn watches_cut_at_once_are_resumed_after_growing_pauses_not_in_a_tight_loop() {
        let (client, server) = scripted(vec![
            Exchange::watch(&watch_uri("42", 4), vec![]),
            Exchange::watch(&watch_uri("42", 4), vec![]),
            Exchange::watch(&watch_uri("42", 4), vec![]),
            Exchange::watch(
                &watch_uri("42", 4),
                vec![modified(deployment("43", 4, "shop:v2", rolled_out(4)))],
            ),
        ]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolled_out(3))).unwrap();
        let started = Instant::now();
        let followed = handle(client)
            .follow(from, &RolloutStart::default(), soon())
            .await
            .unwrap();
        let waited = started.elapsed();
        assert!(
            matches!(
                followed,
                Followed::Settled(RolloutStatus::Complete { .. }, _)
            ),
            "{followed:?}"
        );
        // 100 + 200 + 400 ms between the four watches.
        assert!(
            waited >= Duration::from_millis(700) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_expired_resource_version_starts_again_from_a_fresh_read() {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                                       "message": "too old resource version: 42 (60)", "reason": "Expired", "code": 410}});
        let (client, server) = scripted(vec![
            Exchange::watch(&watch_uri("42", 4), vec![gone]),
            Exchange::get(DEPLOYMENT, deployment("60", 4, "shop:v2", rolling(4, 2))),
            Exchange::watch(
                &watch_uri("60", 4),
                vec![modified(deployment("61", 4, "shop:v2", stuck(4)))],
            ),
        ]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolled_out(3))).unwrap();
        let followed = handle(client)
            .follow(from, &RolloutStart::default(), soon())
            .await
            .unwrap();
        assert!(
            matches!(followed, Followed::Settled(RolloutStatus::Failed(_), _)),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn following_stops_at_the_deadline_without_a_result() {
        let (client, server) = scripted(vec![Exchange {
            answer: Answer::Silence,
            ..Exchange::watch(&watch_uri("42", 1), vec![])
        }]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolling(4, 1))).unwrap();
        let followed = handle(client)
            .follow(
                from,
                &RolloutStart::default(),
                Instant::now() + Duration::from_millis(1500),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                followed,
                Followed::OutOfTime(RolloutStatus::Progressing(_), _)
            ),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    const EARLIER: &str = "2026-12-02T10:00:00Z";

    fn after_a_failed_rollout() -> RolloutStart {
        RolloutStart {
            earlier_verdict: Some(crate::rollout::DeadlineVerdict {
                updated: EARLIER.into(),
            }),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        }
    }

    #[tokio::test]
    async fn a_rollback_is_judged_by_its_counts_not_by_the_verdict_the_controller_kept() {
        let (client, server) = scripted(vec![Exchange::watch(
            &watch_uri("42", 4),
            vec![
                // The controller observed the rollback; its earlier verdict still stands.
                modified(deployment(
                    "43",
                    5,
                    "shop:v1",
                    rolling_back(5, EARLIER, 4, 3),
                )),
                modified(deployment("44", 5, "shop:v1", rolled_out(5))),
            ],
        )]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 5, "shop:v1", stuck_since(4, EARLIER)))
                .unwrap();
        let followed = handle(client)
            .follow(from, &after_a_failed_rollout(), soon())
            .await
            .unwrap();
        assert!(
            matches!(
                followed,
                Followed::Settled(RolloutStatus::Complete { replicas: 3 }, _)
            ),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_new_verdict_after_the_start_is_the_rollouts_own_failure() {
        let (client, server) = scripted(vec![Exchange::watch(
            &watch_uri("42", 4),
            vec![modified(deployment(
                "43",
                5,
                "shop:v1",
                stuck_since(5, "2026-12-02T10:05:00Z"),
            ))],
        )]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 5, "shop:v1", stuck_since(4, EARLIER)))
                .unwrap();
        let followed = handle(client)
            .follow(from, &after_a_failed_rollout(), soon())
            .await
            .unwrap();
        assert!(
            matches!(followed, Followed::Settled(RolloutStatus::Failed(_), _)),
            "{followed:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_kept_verdict_and_no_progress_for_the_whole_deadline_is_a_failure() {
        // The controller never says it again: the rollout fails when its deadline has passed.
        let (client, server) = scripted(vec![Exchange {
            answer: Answer::Silence,
            ..Exchange::watch(&watch_uri("43", 4), vec![])
        }]);
        let mut stale = deployment("43", 5, "shop:v1", rolling_back(5, EARLIER, 4, 3));
        stale["spec"]["progressDeadlineSeconds"] = json!(1);
        let from: Deployment = serde_json::from_value(stale).unwrap();
        let started = Instant::now();
        let followed = handle(client)
            .follow(from, &after_a_failed_rollout(), soon())
            .await
            .unwrap();
        let Followed::Settled(RolloutStatus::Failed(reason), _) = &followed else {
            panic!("{followed:?}");
        };
        assert_eq!(
            reason,
            "the rollout made no progress within its progress deadline (1 s); the deployment \
             controller still shows the earlier rollout's ProgressDeadlineExceeded"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_call_without_an_answer_is_given_up_at_the_deadline_not_held_forever() {
        let (client, server) = scripted(vec![Exchange {
            answer: Answer::Silence,
            ..Exchange::watch(&watch_uri("42", 1), vec![])
        }]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolling(4, 1))).unwrap();
        let followed = handle(client)
            .follow(
                from,
                &RolloutStart::default(),
                Instant::now() + Duration::from_millis(1200),
            )
            .await
            .unwrap();
        assert!(matches!(followed, Followed::OutOfTime(..)), "{followed:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_deleted_deployment_ends_the_rollout_with_an_error() {
        let (client, server) = scripted(vec![Exchange::watch(
            &watch_uri("42", 4),
            vec![
                json!({"type": "DELETED", "object": deployment("43", 4, "shop:v2", rolling(4, 1))}),
            ],
        )]);
        let from: Deployment =
            serde_json::from_value(deployment("42", 4, "shop:v2", rolling(4, 0))).unwrap();
        let error = handle(client)
            .follow(from, &RolloutStart::default(), soon())
            .await
            .unwrap_err();
        assert!(matches!(error, ClusterError::Deleted(_)));
        server.await.unwrap();
    }

    #[test]
    fn the_recorded_previous_image_belongs_to_its_container() {
        let d: Deployment =
            serde_json::from_value(deployment("1", 1, "shop:v2", json!({}))).unwrap();
        assert_eq!(
            recorded_previous_image(&d, "web").as_deref(),
            Some("shop:v0")
        );
        assert_eq!(recorded_previous_image(&d, "we"), None);
        assert_eq!(recorded_previous_image(&d, "proxy"), None);
    }
}
