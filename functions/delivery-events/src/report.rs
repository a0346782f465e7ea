//! What an execution's end tells, built from the end event and the execution's action runs
//! (ListActionExecutions): pure, tested on `events/delivery-events/` and on runs written out.
//!
//! The pipeline's own end event is the one that tells, never an action's: with automatic stage
//! retries an action's failure is not the execution's, and reading the runs makes the message
//! as rich whichever of the events EventBridge delivers first (the failed action, who rejected
//! an approval and why, the deploy's image and approver).

use chrono::{DateTime, Utc};
use shared::deploy_contract::{self, DeployFailure};
use shared::ports::{ActionRun, Notification};
use shared::text::{clip, human_duration, short_commit};

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every stage succeeded: the release runs in the environment.
    Deployed,
    /// An action failed (or the execution did, without a failed action to show).
    Failed,
    /// The deploy failed and the cluster was put back to the image it ran before.
    RolledBack {
        /// The image running again.
        to: String,
    },
    /// CodePipeline's own rollback (automatic on a stage's failure, or by hand) succeeded: the
    /// revisions of an earlier successful execution run again.
    PipelineRolledBack,
    /// A manual approval was rejected.
    Rejected,
    /// A manual approval expired unanswered.
    Expired,
    /// Someone stopped the execution.
    Stopped,
    /// A newer execution overtook it.
    Superseded,
    /// The pipeline's definition changed under it.
    Canceled,
}

impl Ending {
    /// The `status` message attribute (and the ledger key's part).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deployed => "DEPLOYED",
            Self::Failed => "FAILED",
            Self::RolledBack { .. } | Self::PipelineRolledBack => "ROLLED_BACK",
            Self::Rejected => "REJECTED",
            Self::Expired => "EXPIRED",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Canceled => "CANCELED",
        }
    }
}

/// The state a pipeline execution ended in, as its event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndState {
    /// `SUCCEEDED`.
    Succeeded,
    /// `FAILED`.
    Failed,
    /// `STOPPED`.
    Stopped,
    /// `SUPERSEDED`.
    Superseded,
    /// `CANCELED`.
    Canceled,
}

impl EndState {
    /// The state of an execution event, if it is an end.
    pub fn of(state: &str) -> Option<Self> {
        Some(match state {
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "STOPPED" => Self::Stopped,
            "SUPERSEDED" => Self::Superseded,
            "CANCELED" => Self::Canceled,
            _ => return None,
        })
    }

    /// As the event spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Stopped => "STOPPED",
            Self::Superseded => "SUPERSEDED",
            Self::Canceled => "CANCELED",
        }
    }
}

/// An execution's end, from its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnd {
    /// The pipeline.
    pub pipeline: String,
    /// The execution.
    pub execution_id: String,
    /// Its attempt (1 unless a failed stage was retried).
    pub attempt: u32,
    /// How it ended.
    pub state: EndState,
    /// When (the event's time).
    pub at: DateTime<Utc>,
    /// The environment the pipeline deploys to.
    pub environment: String,
    /// The execution's page in the CodePipeline console, when the event says the region.
    pub console_link: Option<String>,
    /// Whether the execution is CodePipeline's rollback to an earlier execution's revisions.
    pub rollback: bool,
}

impl ExecutionEnd {
    /// The ledger key of one effect of this end: once per execution, attempt and end state,
    /// whatever EventBridge redelivers.
    pub fn key(&self, effect: &str) -> String {
        format!(
            "delivery#{}#{}#{}#{}#{effect}",
            self.pipeline,
            self.execution_id,
            self.attempt,
            self.state.as_str()
        )
    }
}

/// The action at fault in a failed execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAction {
    /// Its stage.
    pub stage: String,
    /// The action.
    pub action: String,
    /// Its category (`Build`, `Deploy`, `Invoke`…).
    pub category: String,
    /// The error code it reported.
    pub error_code: Option<String>,
    /// What it said.
    pub message: Option<String>,
    /// Where to look: its link, or its log stream.
    pub link: Option<String>,
}

/// A manual approval's decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Who decided.
    pub by: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// The commit the execution built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCommit {
    /// Its repository, when the source says.
    pub repository: Option<String>,
    /// The commit id.
    pub commit_id: String,
    /// Its message's first line.
    pub subject: Option<String>,
    /// When it was committed (the committer's date).
    pub committed_at: Option<DateTime<Utc>>,
}

/// The deploy action's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployResult {
    /// The image applied.
    pub image: Option<String>,
    /// Its digest (`sha256:…`), when known.
    pub digest: Option<String>,
    /// The image it replaced.
    pub previous_image: Option<String>,
    /// When the deploy action finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Everything told about an execution's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The end.
    pub end: ExecutionEnd,
    /// How it ended, in people's terms.
    pub ending: Ending,
    /// The action at fault (failures, rollbacks, rejections).
    pub failed: Option<FailedAction>,
    /// The approval's decision (who approved a deploy, who rejected and why).
    pub decision: Option<Decision>,
    /// The commit.
    pub source: Option<SourceCommit>,
    /// The deploy (deployed, failed or rolled back).
    pub deploy: Option<DeployResult>,
    /// When the execution started (its first action): it starts on the push.
    pub started_at: Option<DateTime<Utc>>,
}

/// The categories of actions that change an environment: a failure there is a failed deploy.
const DEPLOY_CATEGORIES: [&str; 2] = ["Deploy", "Invoke"];

impl Report {
    /// Builds the report of `end` from its execution's action runs.
    pub fn build(end: ExecutionEnd, runs: &[ActionRun]) -> Self {
        let failed_run = newest(runs.iter().filter(|r| r.status == "Failed"));
        let approval = newest(runs.iter().filter(|r| r.category == "Approval"));
        let deploy_run = deploy_run(runs, failed_run);
        let ending = match end.state {
            EndState::Succeeded if end.rollback => Ending::PipelineRolledBack,
            EndState::Succeeded => Ending::Deployed,
            EndState::Stopped => Ending::Stopped,
            EndState::Superseded => Ending::Superseded,
            EndState::Canceled => Ending::Canceled,
            EndState::Failed => match failed_run {
                Some(run) if run.category == "Approval" => {
                    if was_rejected(run) {
                        Ending::Rejected
                    } else {
                        Ending::Expired
                    }
                }
                Some(run) if DEPLOY_CATEGORIES.contains(&run.category.as_str()) => {
                    match failure_text(run).map(DeployFailure::read) {
                        Some(DeployFailure::RolledBack { to, .. }) => Ending::RolledBack { to },
                        Some(DeployFailure::CanaryAborted { .. }) => Ending::RolledBack {
                            to: run
                                .output_variables
                                .get(deploy_contract::PREVIOUS_IMAGE)
                                .filter(|v| !v.is_empty())
                                .cloned()
                                .unwrap_or_else(|| "the stable version".into()),
                        },
                        _ => Ending::Failed,
                    }
                }
                _ => Ending::Failed,
            },
        };
        let decision = approval
            .filter(|run| run.status == "Succeeded" || ending == Ending::Rejected)
            .map(decision_of);
        Self {
            failed: failed_run
                .filter(|_| end.state == EndState::Failed)
                .map(failed_action),
            decision,
            source: source_commit(runs),
            deploy: deploy_run.map(deploy_result),
            started_at: runs.iter().filter_map(|r| r.started_at).min(),
            ending,
            end,
        }
    }

    /// Whether the end is a deploy that failed (DORA's change failure): a failed deploy action,
    /// or a rollback. A build, a rejection or a stop changed nothing in the environment.
    pub fn is_failed_deploy(&self) -> bool {
        match self.ending {
            Ending::RolledBack { .. } => true,
            Ending::Failed => self
                .failed
                .as_ref()
                .is_some_and(|f| DEPLOY_CATEGORIES.contains(&f.category.as_str())),
            _ => false,
        }
    }

    /// How long from the execution's start (the push) to the deploy's end (the new version
    /// running).
    pub fn push_to_running(&self) -> Option<std::time::Duration> {
        let running = self
            .deploy
            .as_ref()
            .and_then(|d| d.finished_at)
            .unwrap_or(self.end.at);
        seconds_between(self.started_at?, running)
    }

    /// DORA's lead time for changes: from the commit (its committer's date) to the deploy's
    /// success.
    pub fn lead_time(&self) -> Option<std::time::Duration> {
        seconds_between(self.source.as_ref()?.committed_at?, self.end.at)
    }

    /// The message people read.
    pub fn notification(&self) -> Notification {
        let end = &self.end;
        let (pipeline, env) = (&end.pipeline, &end.environment);
        let at = end.at.format("%Y-%m-%d %H:%M UTC");
        let commit = self.source.as_ref().map(|s| {
            let subject = s.subject.as_deref().unwrap_or_default();
            format!("{} {subject}", short_commit(&s.commit_id))
                .trim_end()
                .to_owned()
        });
        let at_action = self
            .failed
            .as_ref()
            .map(|f| format!(" at {} / {}", f.stage, f.action))
            .unwrap_or_default();
        let subject = match &self.ending {
            Ending::Deployed => match &commit {
                Some(commit) => format!("DEPLOYED: {pipeline} to {env} ({commit})"),
                None => format!("DEPLOYED: {pipeline} to {env}"),
            },
            Ending::Failed => format!("FAILED: {pipeline} to {env}{at_action}"),
            Ending::RolledBack { .. } => format!("ROLLED BACK: {pipeline} in {env}"),
            Ending::PipelineRolledBack => match &commit {
                Some(commit) => format!("ROLLED BACK: {pipeline} in {env} to {commit}"),
                None => format!("ROLLED BACK: {pipeline} in {env}"),
            },
            Ending::Rejected => format!("REJECTED: {pipeline} to {env}{at_action}"),
            Ending::Expired => {
                format!("EXPIRED: {pipeline} to {env}: approval{at_action} unanswered")
            }
            Ending::Stopped => format!("STOPPED: {pipeline} to {env} was stopped"),
            Ending::Superseded => {
                format!("SUPERSEDED: {pipeline} to {env}, a newer execution took over")
            }
            Ending::Canceled => format!("CANCELED: {pipeline} to {env}, the pipeline changed"),
        };
        let mut body = match &self.ending {
            Ending::Deployed => {
                format!("The release through {pipeline} runs in {env} since {at}.\n")
            }
            Ending::Failed => {
                format!("The release through {pipeline} to {env} failed{at_action} at {at}.\n")
            }
            Ending::RolledBack { to } => format!(
                "The deploy through {pipeline} to {env} failed{at_action} at {at} and was rolled back: {env} runs {to} again.\n"
            ),
            Ending::PipelineRolledBack => format!(
                "CodePipeline rolled {pipeline} back in {env} at {at}: the revisions of an earlier successful execution run again.\n"
            ),
            Ending::Rejected => format!(
                "The approval{at_action} of {pipeline} to {env} was rejected at {at}: the release does not go out.\n"
            ),
            Ending::Expired => format!(
                "The approval{at_action} of {pipeline} to {env} expired unanswered at {at}: the release does not go out.\n"
            ),
            Ending::Stopped => {
                format!("The release through {pipeline} to {env} was stopped at {at}.\n")
            }
            Ending::Superseded => format!(
                "The release through {pipeline} to {env} was superseded by a newer execution at {at}: the newer one goes out instead.\n"
            ),
            Ending::Canceled => format!(
                "The release through {pipeline} to {env} was canceled at {at}: the pipeline's definition changed.\n"
            ),
        };
        body.push('\n');
        let mut line = |label: &str, value: &str| body.push_str(&format!("{label}: {value}\n"));
        if let Some(commit) = &commit {
            line("Commit", commit);
        }
        if let Some(failed) = &self.failed {
            if let Some(code) = &failed.error_code {
                line("Error", code);
            }
            // A rejection's message is its decision, told below with who made it.
            if let Some(message) = failed
                .message
                .as_ref()
                .filter(|_| self.ending != Ending::Rejected)
            {
                let label = if self.ending == Ending::Expired {
                    "Reason"
                } else {
                    "Reported"
                };
                line(label, &clip(message, 2000));
            }
        }
        if let Some(decision) = &self.decision {
            let verb = if self.ending == Ending::Rejected {
                "Rejected by"
            } else {
                "Approved by"
            };
            let by = decision.by.as_deref().unwrap_or("someone unknown");
            match &decision.comment {
                Some(comment) => line(verb, &format!("{by}: {}", clip(comment, 1000))),
                None => line(verb, by),
            }
        }
        if matches!(
            self.ending,
            Ending::Deployed
                | Ending::RolledBack { .. }
                | Ending::PipelineRolledBack
                | Ending::Failed
        ) && let Some(deploy) = &self.deploy
        {
            if let Some(image) = &deploy.image {
                line("Image", image);
            }
            if self.ending == Ending::Deployed {
                line(
                    "Digest",
                    deploy
                        .digest
                        .as_deref()
                        .unwrap_or("unknown (the deploy action reported none)"),
                );
            }
        }
        if self.ending == Ending::Deployed
            && let Some(took) = self.push_to_running()
        {
            line("Push to running", &human_duration(took.as_secs()));
        }
        line("Execution", &end.execution_id);
        if let Some(link) = self.failed.as_ref().and_then(|f| f.link.as_deref()) {
            line("Logs", link);
        }
        if let Some(link) = &end.console_link {
            line("Details", link);
        }
        Notification::new(
            &subject,
            body,
            vec![
                ("pipeline".into(), end.pipeline.clone()),
                ("environment".into(), end.environment.clone()),
                ("status".into(), self.ending.as_str().into()),
            ],
        )
    }

    /// The comment for the pull request the deployed commit came from: for a deploy, a failed
    /// deploy and a rollback only (a build failure or a rejection never reached the
    /// environment).
    pub fn pull_request_comment(&self) -> Option<String> {
        let env = &self.end.environment;
        let at = self.end.at.format("%H:%M UTC");
        let day = self.end.at.format("%Y-%m-%d");
        let mut text = match &self.ending {
            Ending::Deployed => {
                let digest = self
                    .deploy
                    .as_ref()
                    .and_then(|d| d.digest.as_deref())
                    .map(short_digest)
                    .unwrap_or_else(|| "image digest unknown".into());
                let approved = self
                    .decision
                    .as_ref()
                    .and_then(|d| d.by.as_deref())
                    .map(|by| format!(", approved by {by}"))
                    .unwrap_or_default();
                format!("Deployed to {env} at {at} ({digest}{approved})")
            }
            Ending::RolledBack { to } => {
                let why = self.failure_reason();
                format!(
                    "Rolled back in {env} at {at}: the deploy failed ({why}); {env} runs `{}` again",
                    clip(&to.replace('`', "'"), 300)
                )
            }
            Ending::Failed if self.is_failed_deploy() => {
                format!("Deploy to {env} failed at {at}: {}", self.failure_reason())
            }
            _ => return None,
        };
        text.push_str(&format!(
            "\n\n{day}, pipeline {}, execution {}",
            self.end.pipeline, self.end.execution_id
        ));
        if let Some(link) = &self.end.console_link {
            text.push_str(&format!(" ([details]({link}))"));
        }
        Some(text)
    }

    /// Why the failed action failed, short, in one line.
    fn failure_reason(&self) -> String {
        let message = self
            .failed
            .as_ref()
            .and_then(|f| f.message.as_deref())
            .unwrap_or("no reason reported");
        let reason = match DeployFailure::read(message) {
            DeployFailure::RolledBack { reason, .. }
            | DeployFailure::CanaryAborted { reason, .. } => reason,
            DeployFailure::Failed => message.to_owned(),
        };
        let one_line: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        clip(one_line.trim(), 500)
    }
}

/// `sha256:` and the first 12 hex digits: enough to tell images apart at a glance.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<std::time::Duration> {
    u64::try_from((to - from).num_seconds())
        .ok()
        .map(std::time::Duration::from_secs)
}

/// The run that changed last (ListActionExecutions lists newest started first; a retried
/// action's last run is the one that counts).
fn newest<'a>(runs: impl Iterator<Item = &'a ActionRun>) -> Option<&'a ActionRun> {
    runs.fold(None, |best: Option<&ActionRun>, run| match best {
        Some(best) if best.updated_at >= run.updated_at => Some(best),
        _ => Some(run),
    })
}

/// The deploy action: the failed one when a deploy failed, else the last deploy that
/// succeeded, the one that reported an image first.
fn deploy_run<'a>(runs: &'a [ActionRun], failed: Option<&'a ActionRun>) -> Option<&'a ActionRun> {
    if let Some(failed) = failed.filter(|r| DEPLOY_CATEGORIES.contains(&r.category.as_str())) {
        return Some(failed);
    }
    let deploys = runs
        .iter()
        .filter(|r| r.status == "Succeeded" && DEPLOY_CATEGORIES.contains(&r.category.as_str()));
    let with_image: Vec<&ActionRun> = deploys
        .clone()
        .filter(|r| r.output_variables.contains_key(deploy_contract::IMAGE))
        .collect();
    if with_image.is_empty() {
        newest(deploys)
    } else {
        newest(with_image.into_iter())
    }
}

fn failure_text(run: &ActionRun) -> Option<&str> {
    run.error_message
        .as_deref()
        .or(run.summary.as_deref())
        .filter(|m| !m.trim().is_empty())
}

fn failed_action(run: &ActionRun) -> FailedAction {
    let link = run
        .url
        .clone()
        .or_else(|| run.log_stream_arn.as_deref().and_then(log_stream_link));
    let message = if run.category == "Approval" {
        // An approval's summary is the decision (with the approver's comment); its error
        // message only repeats it, or says it expired.
        run.summary.clone().or_else(|| run.error_message.clone())
    } else {
        failure_text(run).map(str::to_owned)
    };
    FailedAction {
        stage: run.stage.clone(),
        action: run.action.clone(),
        category: run.category.clone(),
        error_code: run.error_code.clone(),
        message,
        link,
    }
}

/// A CloudWatch console link to a log stream, from its ARN
/// (`arn:<partition>:logs:<region>:<account>:log-group:<group>:log-stream:<stream>`).
fn log_stream_link(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, _, region, _, resource] = parts.as_slice() else {
        return None;
    };
    let (group, stream) = resource
        .strip_prefix("log-group:")?
        .split_once(":log-stream:")?;
    let escape = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                other => format!("$25{other:02X}"),
            })
            .collect()
    };
    Some(format!(
        "https://{region}.{}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}",
        console_domain(partition),
        escape(group),
        escape(stream)
    ))
}

/// The AWS console's domain in `partition`.
pub fn console_domain(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "console.amazonaws.cn",
        "aws-us-gov" => "console.amazonaws-us-gov.com",
        _ => "console.aws.amazon.com",
    }
}

/// Whether a failed approval was rejected rather than left to expire: a rejection carries the
/// decision's summary (PutApprovalResult requires one); an expiry carries none and says so.
fn was_rejected(run: &ActionRun) -> bool {
    let said = |text: &Option<String>, word: &str| {
        text.as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains(word))
    };
    if said(&run.error_message, "expire") || said(&run.summary, "expire") {
        return said(&run.summary, "reject");
    }
    run.summary.is_some() || said(&run.error_message, "reject")
}

/// Who decided an approval and their comment. approval-callback records
/// `<Approved|Rejected> by <address> via the email link[: <comment>]`; a decision made in the
/// console records the comment alone, and the decider is the identity that made it.
fn decision_of(run: &ActionRun) -> Decision {
    let summary = run
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let parsed = summary.and_then(|summary| {
        let rest = summary
            .strip_prefix("Approved by ")
            .or_else(|| summary.strip_prefix("Rejected by "))?;
        let (who, comment) = match rest.split_once(": ") {
            Some((who, comment)) => (who, Some(comment.trim().to_owned())),
            None => (rest, None),
        };
        let who = who.split(" via ").next().unwrap_or(who).trim();
        (!who.is_empty() && !who.contains(char::is_whitespace))
            .then(|| (who.to_owned(), comment.filter(|c| !c.is_empty())))
    });
    match parsed {
        Some((by, comment)) => Decision {
            by: Some(by),
            comment,
            at: run.updated_at,
        },
        None => Decision {
            by: run.updated_by.as_deref().map(identity_name),
            comment: summary.map(str::to_owned),
            at: run.updated_at,
        },
    }
}

/// The person behind an IAM ARN: a user's name, or an assumed role's session name.
fn identity_name(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_owned()
}

fn source_commit(runs: &[ActionRun]) -> Option<SourceCommit> {
    let source = runs
        .iter()
        .find(|r| r.category == "Source" && r.status == "Succeeded")?;
    let variable = |name: &str| {
        source
            .output_variables
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let commit_id = variable("CommitId").or_else(|| source.external_id.clone())?;
    let message = variable("CommitMessage").or_else(|| source.summary.clone());
    Some(SourceCommit {
        repository: variable("RepositoryName")
            .or_else(|| source.configuration.get("RepositoryName").cloned()),
        commit_id,
        subject: message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(|line| clip(line.trim(), 72))
            .filter(|line| !line.is_empty()),
        committed_at: variable("CommitterDate")
            .and_then(|date| DateTime::parse_from_rfc3339(&date).ok())
            .map(|date| date.with_timezone(&Utc)),
    })
}

fn deploy_result(run: &ActionRun) -> DeployResult {
    let variable = |name: &str| {
        run.output_variables
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    let image = variable(deploy_contract::IMAGE);
    let digest = variable(deploy_contract::IMAGE_DIGEST)
        .filter(|d| deploy_contract::is_digest(d))
        .or_else(|| {
            image
                .as_deref()
                .and_then(deploy_contract::digest_of)
                .map(str::to_owned)
        });
    DeployResult {
        image,
        digest,
        previous_image: variable(deploy_contract::PREVIOUS_IMAGE),
        finished_at: run.updated_at,
    }
}

#[cfg(test)]
pub(crate) mod tests;
