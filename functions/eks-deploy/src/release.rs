//! A release as a state machine over invocations: gates (alarms, digest, scan), canary steps
//! (scale, wait for the pods, bake under the alarms), the main rollout, the bake after it.
//!
//! Every step reads the cluster before it changes it, so a redelivered invocation or one resumed
//! after a crash does each thing once: a canary of ours that exists is reused, a Deployment that
//! already runs the target is not patched again. The state between invocations is the
//! [`Continuation`]; when an invocation's time runs out, the release continues from it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::Deployment;
use shared::aws::ACCESS_DENIED;
use shared::deploy_contract::{
    CANARY_ABORTED_AT, IMAGE, IMAGE_DIGEST, IMAGE_TAG, PREVIOUS_IMAGE, ROLLED_BACK_TO, digest_of,
};
use shared::ports::{
    AlarmReader, AlarmState, ClusterAccess, ClusterTarget, ImageRegistry, JobResults,
    RegistryImage, RoleSession, ScanState, SessionName,
};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::canary::{canary_name, canary_of, canary_patch, canary_replicas, owner_of, replicas_of};
use crate::cluster::{
    ClusterError, DeploymentHandle, Followed, applied_jobs, recorded_previous_image,
};
use crate::continuation::{Continuation, Phase};
use crate::handler::Deps;
use crate::image::{ImageRef, short_digest};
use crate::params::DeployParameters;
use crate::plan::{MAX_STEPS, Severity, Step, Strategy, human};
use crate::rollout::{DeadlineVerdict, RolloutStart, RolloutStatus, deadline_verdict, image_of};

/// The cluster `params` name, and the role session it is reached through when it is in another
/// account: named `<environment>-<pipeline execution id>`, so the target account's CloudTrail and
/// the cluster's audit log name the execution. Without the execution id (a direct invocation, or
/// parameters that do not pass it) the session is named after the CodePipeline job, else
/// `<environment>-direct`.
pub fn cluster_target(params: &DeployParameters, job: Option<&str>) -> ClusterTarget {
    let role = params.cross_account.as_ref().map(|cross| {
        let environment = params.environment.as_deref().unwrap_or("eks-deploy");
        let execution = match (&params.pipeline_execution_id, job) {
            (Some(execution), _) => execution.clone(),
            (None, Some(job)) => format!("job-{job}"),
            (None, None) => "direct".to_owned(),
        };
        RoleSession {
            role_arn: cross.role_arn.clone(),
            external_id: cross.external_id.clone(),
            session_name: SessionName::for_execution(environment, &execution),
        }
    });
    ClusterTarget {
        cluster: params.cluster.clone(),
        role,
    }
}

/// How long a CodePipeline Lambda invoke action may run in all.
pub const ACTION_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// How a release (or this invocation's part of it) ended.
#[derive(Debug)]
pub enum Deployed {
    /// The new image runs on every replica (and baked, when asked).
    Succeeded {
        /// What a person reads.
        summary: String,
        /// The action's output variables (`shared::deploy_contract`).
        outputs: BTreeMap<String, String>,
    },
    /// The release goes on past this invocation.
    InProgress {
        /// What a person reads.
        summary: String,
        /// Where it picks up.
        continuation: Continuation,
        /// Progress, 0–100.
        percent: u8,
    },
    /// The release failed (and was put back when possible).
    Failed(String),
    /// The release cannot start as configured (alarms, strategy length, scan gate): nothing
    /// changed.
    Refused(String),
}

/// One release of one invocation.
pub struct Release<'a, C, J, R, A> {
    deps: &'a Deps<C, J, R, A>,
    params: &'a DeployParameters,
    /// Who owns the canary: the CodePipeline job, or `direct` for a direct invocation.
    owner: String,
    job: Option<&'a str>,
    cause: String,
    until: Instant,
    target_name: String,
}

impl<C, J, R, A> std::fmt::Debug for Release<'_, C, J, R, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("target", &self.target_name)
            .finish_non_exhaustive()
    }
}

enum Next {
    Phase(Continuation),
    Done(Deployed),
}

/// The image resolved: what the Deployment gets, its tag and digest.
#[derive(Debug, Clone)]
struct Resolved {
    /// Pinned by eks-deploy (an ECR tag resolved to its digest), not used as given.
    pinned: bool,
    target: String,
    tag: Option<String>,
    digest: Option<String>,
    ecr: Option<RegistryImage>,
}

/// What a canary step found to scale.
enum Scaled {
    /// The canary, as the step wants it (boxed: a Deployment is large beside the other arm).
    Canary(Box<Deployment>),
    /// This job already promoted the target: the steps are behind it.
    Promoted,
}

enum Baked {
    Done,
    Alarm(AlarmState),
    OutOfTime,
    Unreadable(String),
}

pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl<'a, C, J, R, A> Release<'a, C, J, R, A>
where
    C: ClusterAccess,
    J: JobResults,
    R: ImageRegistry,
    A: AlarmReader,
{
    /// A release of `params`, for CodePipeline job `job` (or a direct invocation), with time
    /// until `until`.
    pub fn new(
        deps: &'a Deps<C, J, R, A>,
        params: &'a DeployParameters,
        job: Option<&'a str>,
        until: Instant,
    ) -> Self {
        let cause_of = match job {
            Some(job) => format!("CodePipeline job {job}"),
            None => "direct invocation".to_owned(),
        };
        Self {
            deps,
            params,
            owner: job.map_or_else(|| "direct".to_owned(), str::to_owned),
            job,
            cause: cause_of,
            until,
            target_name: format!("{}/{}", params.namespace, params.deployment),
        }
    }

    /// Carries the release on from `continuation` (or from the start) until it ends or this
    /// invocation's time does.
    pub async fn run(&self, continuation: Option<Continuation>) -> Deployed {
        let target = cluster_target(self.params, self.job);
        let client = match self.deps.clusters.client(&target).await {
            Ok(client) => client,
            // The role does not trust this function, the ExternalId differs, or the role is not
            // in DeployRoleArns: nothing was tried on the cluster, and only a configuration
            // change helps.
            Err(error)
                if error.operation() == "AssumeRole" && error.code() == Some(ACCESS_DENIED) =>
            {
                return Deployed::Refused(format!(
                    "cannot reach cluster {}: {error}",
                    self.params.cluster
                ));
            }
            Err(error) => {
                return Deployed::Failed(format!(
                    "cannot reach cluster {}: {error}",
                    self.params.cluster
                ));
            }
        };
        let retry = self.deps.config.retry;
        let main = DeploymentHandle::new(
            client.clone(),
            &self.params.namespace,
            &self.params.deployment,
            retry,
        );
        let canary = DeploymentHandle::new(
            client,
            &self.params.namespace,
            &canary_name(&self.params.deployment),
            retry,
        );
        let mut state = match continuation {
            Some(continuation) => continuation,
            None => match self.start(&canary).await {
                Ok(state) => state,
                Err(done) => return done,
            },
        };
        // Each phase ends in the next one or in an outcome; at most one pass per phase and step.
        for _ in 0..64 {
            let next = match state.phase {
                Phase::Scan => self.scan_phase(state).await,
                Phase::Canary => self.canary_phase(&main, &canary, state).await,
                Phase::Rollout => self.rollout_phase(&main, &canary, state).await,
                Phase::Bake => self.bake_phase(&main, state).await,
            };
            match next {
                Next::Phase(next) => state = next,
                Next::Done(deployed) => return deployed,
            }
        }
        Deployed::Failed(format!("{}: the release did not settle", self.target_name))
    }

    fn resolved(&self, state: &Continuation) -> Resolved {
        let given = ImageRef::parse(&self.params.image);
        let target = state.target().to_owned();
        Resolved {
            pinned: state.target.is_some(),
            digest: digest_of(&target).map(str::to_owned),
            tag: given.tag.clone(),
            ecr: registry_image(&given),
            target,
        }
    }

    /// Everything before the cluster changes: the strategy's length, the alarms, the image's
    /// digest, an abandoned canary.
    async fn start(&self, canary: &DeploymentHandle) -> Result<Continuation, Deployed> {
        let plan = &self.params.plan;
        let longest = plan.total_bake() + self.deps.config.max_rollout;
        if longest > ACTION_LIMIT {
            return Err(Deployed::Refused(format!(
                "strategy: the bakes ({}) and MAX_ROLLOUT_SECONDS ({} s) add up to {}, more than the 24h a CodePipeline action may run",
                human(plan.total_bake()),
                self.deps.config.max_rollout.as_secs(),
                human(longest)
            )));
        }
        if !plan.alarms.is_empty() {
            let states = match self.deps.alarms.alarm_states(&plan.alarms).await {
                Ok(states) => states,
                Err(error) => {
                    return Err(Deployed::Failed(format!(
                        "{}: cannot read the alarms: {error}",
                        self.target_name
                    )));
                }
            };
            if !states.missing.is_empty() {
                return Err(Deployed::Refused(format!(
                    "alarms: no CloudWatch alarm is named {}",
                    states.missing.join(", ")
                )));
            }
            if let Some(firing) = states.firing() {
                return Err(Deployed::Refused(format!(
                    "alarms: alarm {} is already in ALARM ({}) before the deploy; nothing was changed",
                    firing.name,
                    one_line(&firing.reason)
                )));
            }
        }
        let resolved = self.resolve().await?;
        info!(
            deployment = %self.target_name,
            image = %self.params.image,
            target = %resolved.target,
            "image resolved"
        );
        let canary_strategy = matches!(plan.strategy, Strategy::Canary { .. });
        let gated = plan.scan_gate.is_some();
        let mut state = Continuation {
            image: self.params.image.clone(),
            target: (resolved.target != self.params.image).then(|| resolved.target.clone()),
            previous: None,
            started_at: now_seconds(),
            earlier_verdict: None,
            phase: Phase::Scan,
            step: 0,
            bake_started: None,
            owner: canary_strategy.then(|| self.owner.clone()),
        };
        // A release CodePipeline follows must be able to go on in another invocation: a state
        // that cannot be carried is refused before anything changes, not found out mid-canary.
        // The fields filled in later are counted at their widest; the previous image (not read
        // yet) as long as the target.
        if self.job.is_some() {
            let mut widest = state.clone();
            widest.previous = Some(state.target().to_owned());
            widest.earlier_verdict = Some("2026-01-01T00:00:00Z".to_owned());
            widest.bake_started = Some(u64::MAX);
            widest.step = MAX_STEPS;
            if let Err(error) = widest.encode() {
                return Err(Deployed::Refused(format!(
                    "image: a release of an image reference this long cannot be followed across invocations: {error}"
                )));
            }
        }
        if let Err(error) = self.remove_abandoned_canary(canary).await {
            return Err(Deployed::Failed(format!("{}: {error}", self.target_name)));
        }
        if !gated {
            state = self.first_phase(state);
        }
        Ok(state)
    }

    /// The phase after the gates: the first canary step, or the main rollout.
    fn first_phase(&self, state: Continuation) -> Continuation {
        let phase = match self.params.plan.strategy {
            Strategy::Canary { .. } => Phase::Canary,
            Strategy::Rolling => Phase::Rollout,
        };
        Continuation {
            phase,
            step: 0,
            started_at: now_seconds(),
            bake_started: None,
            earlier_verdict: None,
            ..state
        }
    }

    /// An ECR image by tag is pinned to the digest the tag names now; any other image is used as
    /// given.
    async fn resolve(&self) -> Result<Resolved, Deployed> {
        let given = ImageRef::parse(&self.params.image);
        let ecr = registry_image(&given);
        let given_digest = given.digest.clone();
        let (Some(image), None) = (&ecr, &given_digest) else {
            return Ok(Resolved {
                pinned: false,
                target: self.params.image.clone(),
                tag: given.tag.clone(),
                digest: given_digest,
                ecr,
            });
        };
        if image.tag.is_none() {
            return Ok(Resolved {
                pinned: false,
                target: self.params.image.clone(),
                tag: None,
                digest: None,
                ecr,
            });
        }
        match self.deps.registry.digest(image).await {
            Ok(Some(digest)) => Ok(Resolved {
                pinned: true,
                target: given.pinned(&digest),
                tag: given.tag.clone(),
                digest: Some(digest),
                ecr,
            }),
            Ok(None) => Err(Deployed::Failed(format!(
                "{}: image {} not found: repository {} has no image tagged {}",
                self.target_name,
                self.params.image,
                image.repository,
                image.tag.as_deref().unwrap_or_default()
            ))),
            Err(error) => Err(Deployed::Failed(format!(
                "{}: cannot resolve {} to a digest: {error}",
                self.target_name, self.params.image
            ))),
        }
    }

    /// A canary left by another release (a pipeline stopped mid-bake) goes before this one
    /// starts.
    async fn remove_abandoned_canary(&self, canary: &DeploymentHandle) -> Result<(), ClusterError> {
        let found = match canary.read_if_exists(self.until).await {
            Ok(found) => found,
            // A rolling release under a Role without the canary's name (an older rbac.yaml):
            // there can be no canary of ours to clean up.
            Err(ClusterError::Forbidden { .. })
                if matches!(self.params.plan.strategy, Strategy::Rolling) =>
            {
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let Some(found) = found else {
            return Ok(());
        };
        let owner = owner_of(&found).unwrap_or("(none)").to_owned();
        if owner == self.owner {
            return Ok(());
        }
        warn!(
            deployment = %self.target_name,
            canary = canary.name(),
            abandoned_by = %owner,
            "removing a canary abandoned by an earlier release"
        );
        canary.delete(self.until).await.map(|_| ())
    }

    async fn scan_phase(&self, state: Continuation) -> Next {
        let Some(gate) = self.params.plan.scan_gate else {
            return Next::Phase(self.first_phase(state));
        };
        let resolved = self.resolved(&state);
        let (Some(image), Some(digest)) = (&resolved.ecr, &resolved.digest) else {
            if gate.require_scan {
                return Next::Done(Deployed::Refused(format!(
                    "scanGate: {} is not an ECR image with a digest, so it has no scan to gate on; \
                     set scanGate.requireScan to false to deploy it unscanned",
                    self.params.image
                )));
            }
            info!(deployment = %self.target_name, image = %self.params.image, "no scan to gate on; requireScan is false");
            return Next::Phase(self.first_phase(state));
        };
        let config = &self.deps.config;
        loop {
            let findings = match self.deps.registry.scan_findings(image, digest).await {
                Ok(findings) => findings,
                Err(error) => {
                    return Next::Done(Deployed::Failed(format!(
                        "{}: cannot read the scan of {}: {error}",
                        self.target_name, resolved.target
                    )));
                }
            };
            let shown = short_digest(digest);
            match findings.state {
                ScanState::Complete => {
                    let above: Vec<(String, u32)> = findings
                        .counts
                        .iter()
                        .filter(|(severity, n)| {
                            **n > 0
                                && Severity::from_name(severity)
                                    .is_some_and(|s| s > gate.max_severity)
                        })
                        .map(|(s, n)| (s.clone(), *n))
                        .collect();
                    if above.is_empty() {
                        info!(deployment = %self.target_name, digest = %digest, "scan gate passed");
                        return Next::Phase(self.first_phase(state));
                    }
                    let mut counts: Vec<(String, u32)> = findings
                        .counts
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(s, n)| (s.clone(), *n))
                        .collect();
                    counts.sort_by_key(|(s, _)| shared::ports::severity_rank(s));
                    let counts: Vec<String> =
                        counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                    let top: Vec<String> = findings
                        .top
                        .iter()
                        .map(|f| match &f.package {
                            Some(package) => format!("{} in {package} ({})", f.id, f.severity),
                            None => format!("{} ({})", f.id, f.severity),
                        })
                        .collect();
                    return Next::Done(Deployed::Failed(format!(
                        "{}: the scan of {} ({shown}) has findings above {}: {}; top findings: {}",
                        self.target_name,
                        self.params.image,
                        gate.max_severity.as_str(),
                        counts.join(", "),
                        top.join(", ")
                    )));
                }
                ScanState::InProgress => {
                    let waited = now_seconds().saturating_sub(state.started_at);
                    if waited >= config.scan_wait.as_secs() {
                        return Next::Done(Deployed::Failed(format!(
                            "{}: the scan of {} ({shown}) was still in progress after {waited} s (SCAN_WAIT_SECONDS is {}): not deployed",
                            self.target_name,
                            self.params.image,
                            config.scan_wait.as_secs()
                        )));
                    }
                    let wake = Instant::now() + config.scan_poll;
                    if wake >= self.until {
                        return Next::Done(Deployed::InProgress {
                            summary: format!(
                                "{}: waiting for the scan of {} ({shown}), {waited} s so far",
                                self.target_name, self.params.image
                            ),
                            continuation: state,
                            percent: 0,
                        });
                    }
                    tokio::time::sleep_until(wake).await;
                }
                ScanState::NotScanned | ScanState::Unavailable(_) if !gate.require_scan => {
                    info!(deployment = %self.target_name, digest = %digest, "no scan; requireScan is false");
                    return Next::Phase(self.first_phase(state));
                }
                ScanState::NotScanned => {
                    return Next::Done(Deployed::Failed(format!(
                        "{}: {} ({shown}) has no scan: turn on scan on push for repository {} or set scanGate.requireScan to false",
                        self.target_name, self.params.image, image.repository
                    )));
                }
                ScanState::Unavailable(why) => {
                    return Next::Done(Deployed::Failed(format!(
                        "{}: the scan of {} ({shown}) gave no findings ({why})",
                        self.target_name, self.params.image
                    )));
                }
            }
        }
    }

    fn steps(&self) -> &[Step] {
        match &self.params.plan.strategy {
            Strategy::Canary { steps } => steps,
            Strategy::Rolling => &[],
        }
    }

    async fn canary_phase(
        &self,
        main: &DeploymentHandle,
        canary: &DeploymentHandle,
        state: Continuation,
    ) -> Next {
        let steps = self.steps();
        let Some(step) = steps.get(state.step).copied() else {
            return Next::Phase(Continuation {
                phase: Phase::Rollout,
                started_at: now_seconds(),
                bake_started: None,
                ..state
            });
        };
        let target = state.target().to_owned();
        let aborted = |why: String| format!("{CANARY_ABORTED_AT}{}%: {why}", step.weight);
        let mut state = state;
        if state.bake_started.is_none() {
            let owner = state.owner.clone().unwrap_or_else(|| self.owner.clone());
            let deployment = match self
                .scale_canary(main, canary, &target, step.weight, &owner)
                .await
            {
                Ok(Scaled::Canary(deployment)) => *deployment,
                Ok(Scaled::Promoted) => {
                    info!(deployment = %self.target_name, image = %target, "already promoted by this job; no canary step again");
                    return Next::Phase(Continuation {
                        phase: Phase::Rollout,
                        started_at: now_seconds(),
                        bake_started: None,
                        ..state
                    });
                }
                Err(error) => {
                    let removed = self.delete_canary(canary).await;
                    return Next::Done(Deployed::Failed(aborted(format!(
                        "the canary could not be set up: {error}{removed}"
                    ))));
                }
            };
            let start = RolloutStart {
                earlier_verdict: None,
                at: state.started_at,
            };
            let rollout_ends = self.rollout_ends(state.started_at);
            match canary
                .follow(deployment, &start, self.until.min(rollout_ends))
                .await
            {
                Ok(Followed::Settled(RolloutStatus::Complete { replicas }, _)) => {
                    info!(deployment = %self.target_name, weight = step.weight, replicas, "canary available; baking");
                    state.bake_started = Some(now_millis());
                }
                Ok(Followed::Settled(RolloutStatus::Failed(reason), _)) => {
                    let removed = self.delete_canary(canary).await;
                    return Next::Done(Deployed::Failed(aborted(format!(
                        "the canary's pods did not become available: {reason}{removed}"
                    ))));
                }
                Ok(Followed::OutOfTime(status, _)) | Ok(Followed::Settled(status, _)) => {
                    if Instant::now() >= rollout_ends {
                        let removed = self.delete_canary(canary).await;
                        return Next::Done(Deployed::Failed(aborted(format!(
                            "the canary's pods were not available within {} s ({status:?}){removed}",
                            self.deps.config.max_rollout.as_secs()
                        ))));
                    }
                    return Next::Done(Deployed::InProgress {
                        summary: format!(
                            "{}: canary at {}% starting ({})",
                            self.target_name,
                            step.weight,
                            waiting(&status)
                        ),
                        percent: self.percent(state.step, false),
                        continuation: state,
                    });
                }
                Err(error) => {
                    let removed = self.delete_canary(canary).await;
                    return Next::Done(Deployed::Failed(aborted(format!("{error}{removed}"))));
                }
            }
        }
        let started = state.bake_started.unwrap_or_else(now_millis);
        match self.bake(started, step.bake).await {
            Baked::Done => {
                info!(deployment = %self.target_name, weight = step.weight, bake = %human(step.bake), "canary step baked");
                Next::Phase(Continuation {
                    step: state.step + 1,
                    started_at: now_seconds(),
                    bake_started: None,
                    ..state
                })
            }
            Baked::Alarm(alarm) => {
                let removed = self.delete_canary(canary).await;
                warn!(deployment = %self.target_name, weight = step.weight, alarm = %alarm.name, "canary aborted by an alarm");
                Next::Done(Deployed::Failed(aborted(format!(
                    "alarm {} ALARM ({}){removed}",
                    alarm.name,
                    one_line(&alarm.reason)
                ))))
            }
            Baked::Unreadable(error) => {
                let removed = self.delete_canary(canary).await;
                Next::Done(Deployed::Failed(aborted(format!(
                    "the alarms could not be read: {error}{removed}"
                ))))
            }
            Baked::OutOfTime => Next::Done(Deployed::InProgress {
                summary: format!(
                    "{}: canary at {}% baking ({} of {})",
                    self.target_name,
                    step.weight,
                    human(Duration::from_millis(now_millis().saturating_sub(started))),
                    human(step.bake)
                ),
                percent: self.percent(state.step, true),
                continuation: Continuation {
                    bake_started: Some(started),
                    ..state
                },
            }),
        }
    }

    fn percent(&self, step: usize, baking: bool) -> u8 {
        let steps = self.steps().len().max(1);
        let done = step * 2 + usize::from(baking);
        u8::try_from(done * 90 / (steps * 2)).unwrap_or(90)
    }

    fn rollout_ends(&self, started_at: u64) -> Instant {
        Instant::now()
            + self
                .deps
                .config
                .max_rollout
                .saturating_sub(Duration::from_secs(
                    now_seconds().saturating_sub(started_at),
                ))
    }

    /// The canary at `weight`, owned by `owner`: created from the main Deployment, or ours
    /// brought to the step's replicas. A canary of ours already so is left as it is; none is
    /// made when this job has already promoted the target (a redelivered invocation whose
    /// token is older than the promotion).
    async fn scale_canary(
        &self,
        main: &DeploymentHandle,
        canary: &DeploymentHandle,
        target: &str,
        weight: u8,
        owner: &str,
    ) -> Result<Scaled, ClusterError> {
        let container = &self.params.container;
        let source = main.read(self.until).await?;
        let Some(running) = image_of(&source, container) else {
            return Err(ClusterError::NoSuchContainer {
                deployment: self.params.deployment.clone(),
                container: container.clone(),
                known: String::new(),
            });
        };
        if running == target
            && self
                .job
                .is_some_and(|job| applied_jobs(&source).contains(&job))
        {
            return Ok(Scaled::Promoted);
        }
        let replicas = canary_replicas(weight, replicas_of(&source));
        for _ in 0..self.deps.config.retry.attempts {
            match canary.read_if_exists(self.until).await? {
                None => {
                    let wanted = canary_of(&source, container, target, replicas, owner)?;
                    if let Some(created) = canary.create(&wanted, self.until).await? {
                        info!(deployment = %self.target_name, canary = canary.name(), replicas, weight, "canary created");
                        return Ok(Scaled::Canary(Box::new(created)));
                    }
                }
                Some(found) if owner_of(&found) == Some(owner) => {
                    let Some(patch) = canary_patch(&found, container, target, replicas) else {
                        return Ok(Scaled::Canary(Box::new(found)));
                    };
                    if let Some(patched) = canary.merge_patch(&patch, self.until).await? {
                        info!(deployment = %self.target_name, canary = canary.name(), replicas, weight, "canary scaled");
                        return Ok(Scaled::Canary(Box::new(patched)));
                    }
                }
                Some(found) => {
                    return Err(ClusterError::Refused {
                        operation: "CREATE canary",
                        code: 409,
                        reason: "AlreadyExists".into(),
                        message: format!(
                            "{} belongs to another release ({})",
                            canary.name(),
                            owner_of(&found).unwrap_or("no owner")
                        ),
                    });
                }
            }
        }
        Err(ClusterError::Unavailable {
            operation: "CREATE canary",
            attempts: self.deps.config.retry.attempts,
            last: "the canary kept changing".into(),
        })
    }

    /// Deletes the canary; what to add to a message when that failed.
    async fn delete_canary(&self, canary: &DeploymentHandle) -> String {
        match canary.delete(self.until).await {
            Ok(true) => {
                info!(deployment = %self.target_name, canary = canary.name(), "canary deleted");
                "; the canary was deleted".to_owned()
            }
            Ok(false) => String::new(),
            Err(error) => {
                warn!(deployment = %self.target_name, error = %error, "the canary could not be deleted");
                format!("; deleting the canary failed: {error}")
            }
        }
    }

    /// Bakes from `started` (milliseconds since the epoch) for `length`: the alarms are read at
    /// the start, every `ALARM_READ_SECONDS` after it and at the end, on that schedule across
    /// invocations (never faster).
    async fn bake(&self, started: u64, length: Duration) -> Baked {
        let alarms = &self.params.plan.alarms;
        let length = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
        let end = started.saturating_add(length);
        if alarms.is_empty() {
            let wait = Duration::from_millis(end.saturating_sub(now_millis()));
            if Instant::now() + wait >= self.until {
                return Baked::OutOfTime;
            }
            tokio::time::sleep(wait).await;
            return Baked::Done;
        }
        let interval = u64::try_from(self.deps.config.alarm_read.as_millis())
            .unwrap_or(10_000)
            .max(1);
        // The reads' slots: the start, each interval after it, the end. A resumed bake takes up
        // at the first slot not yet past, so the reads keep their pace across invocations.
        let mut slot = now_millis().saturating_sub(started).div_ceil(interval);
        loop {
            let at = started
                .saturating_add(slot.saturating_mul(interval))
                .min(end);
            let wait = Duration::from_millis(at.saturating_sub(now_millis()));
            if Instant::now() + wait >= self.until {
                return Baked::OutOfTime;
            }
            tokio::time::sleep(wait).await;
            match self.deps.alarms.alarm_states(alarms).await {
                Ok(states) => {
                    if let Some(firing) = states.firing() {
                        return Baked::Alarm(firing.clone());
                    }
                    if let Some(missing) = states.missing.first() {
                        return Baked::Unreadable(format!("alarm {missing} no longer exists"));
                    }
                }
                Err(error) => return Baked::Unreadable(error.to_string()),
            }
            if at >= end {
                return Baked::Done;
            }
            slot += 1;
        }
    }

    async fn rollout_phase(
        &self,
        main: &DeploymentHandle,
        canary: &DeploymentHandle,
        state: Continuation,
    ) -> Next {
        let params = self.params;
        let target = state.target().to_owned();
        let resolved = self.resolved(&state);
        let failed = |error: ClusterError| {
            Next::Done(Deployed::Failed(format!("{}: {error}", self.target_name)))
        };
        let cause = change_cause(params, &resolved, &self.cause);
        // Setting the image is idempotent: a Deployment already running the target is not
        // patched again (a resumed or redelivered release), and a job recorded on it is not
        // applied twice.
        let set = match self.job {
            Some(job) => {
                main.set_image_for_job(job, &params.container, &target, &cause, self.until)
                    .await
            }
            None => {
                main.set_image(&params.container, &target, &cause, self.until)
                    .await
            }
        };
        let change = match set {
            Ok(change) => change,
            Err(error) => return failed(error),
        };
        let changed = change.previous.is_some();
        let previous = change
            .previous
            .clone()
            .or_else(|| state.previous.clone())
            .or_else(|| recorded_previous_image(&change.deployment, &params.container))
            .filter(|previous| *previous != target);
        let start = if changed {
            info!(
                deployment = %self.target_name,
                container = %params.container,
                image = %target,
                previous = previous.as_deref().unwrap_or("-"),
                "image set"
            );
            // The status the patch answered with is from before the change: a deadline
            // verdict there is an earlier rollout's.
            RolloutStart {
                earlier_verdict: deadline_verdict(&change.deployment),
                at: now_seconds(),
            }
        } else {
            RolloutStart {
                earlier_verdict: state
                    .earlier_verdict
                    .clone()
                    .map(|updated| DeadlineVerdict { updated }),
                at: state.started_at,
            }
        };
        let state = Continuation {
            previous: previous.clone(),
            started_at: start.at,
            earlier_verdict: start.earlier_verdict.as_ref().map(|v| v.updated.clone()),
            ..state
        };
        let rollout_ends = self.rollout_ends(start.at);
        let followed = match main
            .follow(change.deployment, &start, self.until.min(rollout_ends))
            .await
        {
            Ok(followed) => followed,
            Err(error) => return failed(error),
        };
        let canary_strategy = matches!(params.plan.strategy, Strategy::Canary { .. });
        match followed {
            Followed::Settled(RolloutStatus::Complete { replicas }, _) => {
                if canary_strategy {
                    self.delete_canary(canary).await;
                }
                info!(deployment = %self.target_name, image = %target, replicas, "rollout complete");
                if let Some(bake) = params.plan.bake_after
                    && !bake.is_zero()
                {
                    return Next::Phase(Continuation {
                        phase: Phase::Bake,
                        bake_started: Some(now_millis()),
                        step: replicas_to_step(replicas),
                        ..state
                    });
                }
                Next::Done(self.succeeded(&state, replicas, changed))
            }
            Followed::Settled(RolloutStatus::Failed(reason), deployment) => {
                if canary_strategy {
                    self.delete_canary(canary).await;
                }
                Next::Done(
                    self.rolled_back(main, &target, previous.as_deref(), &deployment, &reason)
                        .await,
                )
            }
            Followed::Settled(RolloutStatus::Progressing(what), deployment)
            | Followed::OutOfTime(RolloutStatus::Progressing(what), deployment) => {
                if Instant::now() >= rollout_ends {
                    let reason = format!(
                        "the rollout did not complete within {} s ({what})",
                        self.deps.config.max_rollout.as_secs()
                    );
                    if canary_strategy {
                        self.delete_canary(canary).await;
                    }
                    return Next::Done(
                        self.rolled_back(main, &target, previous.as_deref(), &deployment, &reason)
                            .await,
                    );
                }
                Next::Done(Deployed::InProgress {
                    summary: format!("{}: rolling out {target} ({what})", self.target_name),
                    percent: if canary_strategy {
                        90
                    } else {
                        progress(&deployment)
                    },
                    continuation: Continuation {
                        phase: Phase::Rollout,
                        ..state
                    },
                })
            }
            Followed::OutOfTime(other, _) => Next::Done(Deployed::Failed(format!(
                "{}: the rollout stopped being followed ({other:?})",
                self.target_name
            ))),
        }
    }

    async fn bake_phase(&self, main: &DeploymentHandle, state: Continuation) -> Next {
        let Some(length) = self.params.plan.bake_after else {
            return Next::Done(self.succeeded(&state, step_to_replicas(state.step), true));
        };
        let started = state.bake_started.unwrap_or_else(now_millis);
        match self.bake(started, length).await {
            Baked::Done => Next::Done(self.succeeded(&state, step_to_replicas(state.step), true)),
            Baked::OutOfTime => Next::Done(Deployed::InProgress {
                summary: format!(
                    "{}: baking {} after the rollout ({} of {})",
                    self.target_name,
                    state.target(),
                    human(Duration::from_millis(now_millis().saturating_sub(started))),
                    human(length)
                ),
                percent: 95,
                continuation: Continuation {
                    bake_started: Some(started),
                    ..state
                },
            }),
            Baked::Alarm(alarm) => {
                let reason = format!(
                    "{CANARY_ABORTED_AT}100%: alarm {} ALARM ({}) in the bake after the rollout of {}",
                    alarm.name,
                    one_line(&alarm.reason),
                    state.target()
                );
                warn!(deployment = %self.target_name, alarm = %alarm.name, "bake after the rollout aborted by an alarm");
                let suffix = self
                    .revert(main, state.target(), state.previous.as_deref())
                    .await;
                Next::Done(Deployed::Failed(format!("{reason}{suffix}")))
            }
            Baked::Unreadable(error) => {
                let reason = format!(
                    "{CANARY_ABORTED_AT}100%: the alarms could not be read in the bake after the rollout of {}: {error}",
                    state.target()
                );
                let suffix = self
                    .revert(main, state.target(), state.previous.as_deref())
                    .await;
                Next::Done(Deployed::Failed(format!("{reason}{suffix}")))
            }
        }
    }

    fn succeeded(&self, state: &Continuation, replicas: i32, changed: bool) -> Deployed {
        let params = self.params;
        let resolved = self.resolved(state);
        let shown = describe(&resolved);
        let summary = match (&params.plan.strategy, changed) {
            (Strategy::Canary { steps }, _) => {
                let baked: Vec<String> = steps
                    .iter()
                    .map(|s| format!("{}% baked {}", s.weight, human(s.bake)))
                    .collect();
                format!(
                    "{}: canary {}, promoted {shown} on {replicas} of {replicas} replicas",
                    self.target_name,
                    baked.join(", ")
                )
            }
            (Strategy::Rolling, true) => format!(
                "{}: container {} runs {shown} on {replicas} of {replicas} replicas (rolled out in {} s)",
                self.target_name,
                params.container,
                now_seconds().saturating_sub(state.started_at)
            ),
            (Strategy::Rolling, false) => format!(
                "{}: container {} already runs {shown} on {replicas} of {replicas} replicas; nothing to do",
                self.target_name, params.container
            ),
        };
        let summary = match params.plan.bake_after {
            Some(bake) if !bake.is_zero() => format!("{summary}, baked {} after", human(bake)),
            _ => summary,
        };
        let outputs = BTreeMap::from([
            (IMAGE.to_owned(), resolved.target.clone()),
            (
                IMAGE_DIGEST.to_owned(),
                resolved.digest.clone().unwrap_or_default(),
            ),
            (
                IMAGE_TAG.to_owned(),
                resolved.tag.clone().unwrap_or_default(),
            ),
            (
                PREVIOUS_IMAGE.to_owned(),
                state.previous.clone().unwrap_or_default(),
            ),
        ]);
        Deployed::Succeeded { summary, outputs }
    }

    /// The failure of a rollout: the pods' reasons, then the way back.
    async fn rolled_back(
        &self,
        main: &DeploymentHandle,
        target: &str,
        previous: Option<&str>,
        deployment: &Deployment,
        reason: &str,
    ) -> Deployed {
        let params = self.params;
        let problems = main
            .pod_problems(deployment, &params.container, target, self.until)
            .await
            .unwrap_or_else(|error| vec![format!("(could not read the pods: {error})")]);
        let mut message = format!(
            "{}: the rollout of {target} failed: {reason}",
            self.target_name
        );
        if !problems.is_empty() {
            message.push_str(". Pods: ");
            message.push_str(&problems.join("; "));
        }
        warn!(deployment = %self.target_name, image = %target, reason, "rollout failed");
        message.push_str(&self.revert(main, target, previous).await);
        Deployed::Failed(message)
    }

    /// Puts `previous` back and follows that rollout; what to add to the failure message.
    async fn revert(
        &self,
        main: &DeploymentHandle,
        target: &str,
        previous: Option<&str>,
    ) -> String {
        let params = self.params;
        let rollback = params
            .rollback_on_failure
            .unwrap_or(self.deps.config.rollback_on_failure);
        let previous = match (rollback, previous) {
            (false, _) => return ". Not rolled back (rollback is off).".to_owned(),
            (true, None) => return ". Not rolled back: no previous image is known.".to_owned(),
            (true, Some(previous)) => previous,
        };
        let cause = format!(
            "eks-deploy: rolled {} back to {previous} after a failed rollout of {target}",
            params.container
        );
        let suffix = match main
            .set_image(&params.container, previous, &cause, self.until)
            .await
        {
            Err(error) => format!(". The rollback to {previous} failed: {error}."),
            Ok(change) => {
                let start = RolloutStart {
                    earlier_verdict: deadline_verdict(&change.deployment),
                    at: now_seconds(),
                };
                match main.follow(change.deployment, &start, self.until).await {
                    Ok(Followed::Settled(RolloutStatus::Complete { .. }, _)) => {
                        format!(". {ROLLED_BACK_TO}{previous} (rollout complete).")
                    }
                    Ok(Followed::Settled(RolloutStatus::Failed(why), _)) => {
                        format!(". {ROLLED_BACK_TO}{previous}, but that rollout failed too: {why}.")
                    }
                    Ok(_) => format!(". {ROLLED_BACK_TO}{previous} (rollout still in progress)."),
                    Err(error) => {
                        format!(". {ROLLED_BACK_TO}{previous}; following it failed: {error}.")
                    }
                }
            }
        };
        info!(deployment = %self.target_name, image = previous, "rolled back");
        suffix
    }
}

/// The replica count rides in the bake phase's `step` (it has no step of its own) for the
/// summary at its end.
fn replicas_to_step(replicas: i32) -> usize {
    usize::try_from(replicas).unwrap_or_default()
}

fn step_to_replicas(step: usize) -> i32 {
    i32::try_from(step).unwrap_or_default()
}

fn registry_image(image: &ImageRef) -> Option<RegistryImage> {
    image.ecr().map(|ecr| RegistryImage {
        account: ecr.account,
        region: ecr.region,
        repository: ecr.repository,
        tag: image.tag.clone(),
    })
}

/// `sha256:ab12cd34ef56… (tag v2)` for an image pinned here, or the image as given.
fn describe(resolved: &Resolved) -> String {
    match (&resolved.digest, &resolved.tag) {
        (Some(digest), Some(tag)) if resolved.pinned => {
            format!("{} (tag {tag})", short_digest(digest))
        }
        _ => resolved.target.clone(),
    }
}

/// What `kubectl rollout history` shows: the reference set, and for an image pinned here the tag
/// it was given by and its digest (an image used as given names both itself).
fn change_cause(params: &DeployParameters, resolved: &Resolved, by: &str) -> String {
    match (&resolved.tag, &resolved.digest) {
        (Some(tag), Some(digest)) if resolved.pinned => format!(
            "eks-deploy: set {} to {} (tag {tag}, digest {digest}, {by})",
            params.container, resolved.target
        ),
        _ => format!(
            "eks-deploy: set {} to {} ({by})",
            params.container, resolved.target
        ),
    }
}

fn waiting(status: &RolloutStatus) -> String {
    match status {
        RolloutStatus::Progressing(what) => what.clone(),
        other => format!("{other:?}"),
    }
}

fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_owned()
}

fn progress(deployment: &Deployment) -> u8 {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use shared::ports::{
        AlarmStates, MockAlarmReader, MockClusterAccess, MockImageRegistry, MockJobResults, reply,
    };

    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config {
            rollback_on_failure: true,
            api_url_override: None,
            deadline_margin: Duration::ZERO,
            max_rollout: Duration::from_secs(3300),
            retry: crate::cluster::RetryPolicy::default(),
            scan_wait: Duration::from_secs(1800),
            scan_poll: Duration::from_secs(30),
            alarm_read: Duration::from_secs(10),
        }
    }

    fn reads_in_a_bake(bake: Duration, already: Duration) -> usize {
        let params = DeployParameters::from_value(json!({
            "cluster": "shop-prod", "namespace": "shop", "deployment": "web", "container": "web",
            "image": "shop:v2", "alarms": ["shop-5xx"]
        }))
        .unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        let mut alarms = MockAlarmReader::new();
        alarms.expect_alarm_states().returning(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            reply(Ok(AlarmStates::default()))
        });
        let deps = Deps::new(
            MockClusterAccess::new(),
            MockJobResults::new(),
            MockImageRegistry::new(),
            alarms,
            config(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let release = Release::new(
                &deps,
                &params,
                Some("job"),
                Instant::now() + Duration::from_secs(30 * 24 * 3600),
            );
            let started = now_millis() - u64::try_from(already.as_millis()).unwrap();
            assert!(matches!(release.bake(started, bake).await, Baked::Done));
        });
        count.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn alarms_are_read_at_the_start_every_interval_and_at_the_end_of_a_bake() {
        // 5 minutes at 10 s: 0, 10, … 300.
        assert_eq!(
            reads_in_a_bake(Duration::from_secs(300), Duration::ZERO),
            31
        );
        // An end between two reads is read too.
        assert_eq!(reads_in_a_bake(Duration::from_secs(25), Duration::ZERO), 4);
        // A bake resumed 25 s in reads from the next slot on (30 s): never two reads within
        // an interval across invocations.
        assert_eq!(
            reads_in_a_bake(Duration::from_secs(300), Duration::from_secs(25)),
            28
        );
    }

    #[test]
    fn the_change_cause_names_the_tag_and_the_digest() {
        let params = DeployParameters::from_value(json!({
            "cluster": "c", "namespace": "shop", "deployment": "web", "container": "web",
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2"
        }))
        .unwrap();
        let resolved = Resolved {
            pinned: true,
            target: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:ab".into(),
            tag: Some("v2".into()),
            digest: Some("sha256:ab".into()),
            ecr: None,
        };
        assert_eq!(
            change_cause(&params, &resolved, "CodePipeline job j-1"),
            "eks-deploy: set web to 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:ab \
             (tag v2, digest sha256:ab, CodePipeline job j-1)"
        );
        let given = Resolved {
            pinned: false,
            target: "nginx".into(),
            tag: None,
            digest: None,
            ecr: None,
        };
        assert_eq!(
            change_cause(&params, &given, "direct invocation"),
            "eks-deploy: set web to nginx (direct invocation)"
        );
    }
}
