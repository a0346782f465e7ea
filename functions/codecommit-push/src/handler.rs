//! What a push means: which pipelines start, on which commit, or why nothing starts.
//!
//! [`decide`] is pure and tested on the files in `events/codecommit-push/`; [`handle`] carries the
//! decision out through [`PipelineApi`] and [`RepositoryApi`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Serialize;
use serde_json::Value;
use shared::events::codecommit::{
    REPOSITORY_STATE_CHANGE, ReferenceType, RepositoryEventKind, RepositoryStateChange, SOURCE,
};
use shared::ports::{PipelineApi, RepositoryApi, StartExecution};
use shared::text::{is_commit_id, short_commit};
use shared::{ConfigError, FunctionError, InvalidEvent};
use tracing::{info, warn};

use crate::config::{ROUTES_VARIABLE, Route, Routes};

/// Markers in a commit message that ask for no pipeline run.
pub const SKIP_MARKERS: [&str; 2] = ["[skip ci]", "[ci skip]"];

/// The ports and settings a push is handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<P, R> {
    pipelines: P,
    repositories: R,
    routes: Routes,
    // Pipeline definitions rarely change; looking the source action up once per cold start
    // keeps GetPipeline off the path of every push.
    source_actions: Mutex<HashMap<(String, String), String>>,
}

impl<P: PipelineApi, R: RepositoryApi> Deps<P, R> {
    /// Dependencies over the given ports and routes.
    pub fn new(pipelines: P, repositories: R, routes: Routes) -> Self {
        Self {
            pipelines,
            repositories,
            routes,
            source_actions: Mutex::new(HashMap::new()),
        }
    }
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Pipelines were started (or had already been started by an earlier delivery).
    #[serde(rename_all = "camelCase")]
    Started {
        /// The repository pushed to.
        repository: String,
        /// The branch pushed to.
        branch: String,
        /// The commit every execution builds.
        commit_id: String,
        /// One per routed pipeline.
        executions: Vec<Execution>,
    },
    /// Nothing to do, and why.
    Ignored {
        /// Why the push starts nothing.
        reason: IgnoreReason,
    },
}

/// A started pipeline execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// The pipeline.
    pub pipeline: String,
    /// Its execution id.
    pub execution_id: String,
}

/// Why a repository change starts nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum IgnoreReason {
    /// A branch or tag was deleted.
    ReferenceDeleted {
        /// The deleted reference.
        reference: String,
    },
    /// A tag was created or moved; pipelines follow branches.
    Tag {
        /// The tag.
        tag: String,
    },
    /// A reference that is neither a branch nor a tag.
    NotABranch,
    /// No route names this repository and branch.
    Unrouted {
        /// The repository.
        repository: String,
        /// The branch.
        branch: String,
    },
    /// The commit message asks for no run.
    SkipCi {
        /// The marker found.
        marker: String,
        /// The commit.
        commit_id: String,
    },
    /// A repository event that is not a push (an unreferenced merge commit, or a kind
    /// CodeCommit added later).
    NotAPush,
    /// The branch has moved on since this push (a newer push, a force-push, a deletion): the
    /// event came late or again, and the newer push's own event builds the newer commit. Built
    /// now, this older commit could deploy after the newer one.
    #[serde(rename_all = "camelCase")]
    Superseded {
        /// The commit the event names.
        commit_id: String,
        /// Where the branch points now; `None` when it was deleted.
        tip: Option<String>,
    },
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReferenceDeleted { reference } => write!(f, "{reference} was deleted"),
            Self::Tag { tag } => write!(f, "tag {tag} is not a branch"),
            Self::NotABranch => f.write_str("the reference is not a branch"),
            Self::Unrouted { repository, branch } => {
                write!(f, "no route for branch {branch} of {repository}")
            }
            Self::SkipCi { marker, commit_id } => {
                write!(f, "commit {} asks to {marker}", short_commit(commit_id))
            }
            Self::NotAPush => f.write_str("the event is not a push to a reference"),
            Self::Superseded {
                commit_id,
                tip: Some(tip),
            } => write!(
                f,
                "commit {} is no longer the branch's tip (now {})",
                short_commit(commit_id),
                short_commit(tip)
            ),
            Self::Superseded {
                commit_id,
                tip: None,
            } => write!(
                f,
                "commit {}'s branch no longer exists",
                short_commit(commit_id)
            ),
        }
    }
}

/// What a repository change asks for, before any I/O.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'r> {
    /// Start nothing.
    Ignore(IgnoreReason),
    /// Build the pushed commit with the routed pipelines, unless its message says otherwise.
    Build(Push<'r>),
}

/// A push to a routed branch.
#[derive(Debug, PartialEq, Eq)]
pub struct Push<'r> {
    /// EventBridge's event id: a redelivery carries the same one, so it is the idempotency
    /// token of every execution started for this push.
    pub event_id: String,
    /// The repository.
    pub repository: String,
    /// The branch.
    pub branch: String,
    /// The pushed commit.
    pub commit_id: String,
    /// The routes taken, one per pipeline.
    pub routes: Vec<&'r Route>,
}

/// Parses a raw EventBridge payload as a repository state change.
pub fn parse(payload: Value) -> Result<EventBridgeEvent<RepositoryStateChange>, InvalidEvent> {
    shared::events::eventbridge(payload, SOURCE, &[REPOSITORY_STATE_CHANGE])
}

/// Decides what a repository change asks for.
pub fn decide<'r>(
    event: &EventBridgeEvent<RepositoryStateChange>,
    routes: &'r Routes,
) -> Result<Decision<'r>, InvalidEvent> {
    let detail = &event.detail;
    let reference = || {
        detail
            .reference_full_name
            .clone()
            .or_else(|| detail.reference_name.clone())
            .unwrap_or_default()
    };
    match detail.event {
        RepositoryEventKind::ReferenceCreated | RepositoryEventKind::ReferenceUpdated => {}
        RepositoryEventKind::ReferenceDeleted => {
            return Ok(Decision::Ignore(IgnoreReason::ReferenceDeleted {
                reference: reference(),
            }));
        }
        RepositoryEventKind::UnreferencedMergeCommitCreated | RepositoryEventKind::Other => {
            return Ok(Decision::Ignore(IgnoreReason::NotAPush));
        }
    }
    let branch = match detail.reference_type {
        Some(ReferenceType::Branch) => detail
            .reference_name
            .clone()
            .or_else(|| {
                detail
                    .reference_full_name
                    .as_deref()
                    .and_then(|full| full.strip_prefix("refs/heads/"))
                    .map(str::to_owned)
            })
            .filter(|name| !name.is_empty())
            .ok_or_else(|| InvalidEvent::missing("detail.referenceName"))?,
        Some(ReferenceType::Tag) => {
            return Ok(Decision::Ignore(IgnoreReason::Tag {
                tag: detail.reference_name.clone().unwrap_or_else(reference),
            }));
        }
        Some(ReferenceType::Other) => return Ok(Decision::Ignore(IgnoreReason::NotABranch)),
        None => return Err(InvalidEvent::missing("detail.referenceType")),
    };
    let commit_id = detail
        .commit_id
        .clone()
        .ok_or_else(|| InvalidEvent::missing("detail.commitId"))?;
    if !is_commit_id(&commit_id) {
        return Err(InvalidEvent::new(
            "detail.commitId: not a commit id (40 hexadecimal characters)",
        ));
    }
    let event_id = shared::events::event_id(event)?.to_owned();
    if !is_request_token(&event_id) {
        return Err(InvalidEvent::new(
            "id: not an EventBridge event id (letters, digits and '-', at most 128)",
        ));
    }
    let matched = routes.matching(&detail.repository_name, &branch);
    if matched.is_empty() {
        return Ok(Decision::Ignore(IgnoreReason::Unrouted {
            repository: detail.repository_name.clone(),
            branch,
        }));
    }
    Ok(Decision::Build(Push {
        event_id,
        repository: detail.repository_name.clone(),
        branch,
        commit_id,
        routes: matched,
    }))
}

/// The skip marker in a commit message, if any (case-insensitive).
pub fn skip_marker(message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    SKIP_MARKERS
        .into_iter()
        .find(|marker| message.contains(marker))
}

/// Handles one repository state change end to end.
pub async fn handle<P: PipelineApi, R: RepositoryApi>(
    deps: &Deps<P, R>,
    payload: Value,
) -> Result<Outcome, FunctionError> {
    let event = parse(payload)?;
    let push = match decide(&event, &deps.routes)? {
        Decision::Ignore(reason) => {
            info!(
                repository = %event.detail.repository_name,
                reason = %reason,
                "push ignored"
            );
            return Ok(Outcome::Ignored { reason });
        }
        Decision::Build(push) => push,
    };
    // An older push delivered after a newer one (or again, after the branch moved on) must not
    // start a pipeline that would deploy the older commit last.
    let tip = deps
        .repositories
        .branch_tip(&push.repository, &push.branch)
        .await?;
    if !tip
        .as_deref()
        .is_some_and(|tip| tip.eq_ignore_ascii_case(&push.commit_id))
    {
        let reason = IgnoreReason::Superseded {
            commit_id: push.commit_id.clone(),
            tip,
        };
        info!(
            repository = %push.repository,
            branch = %push.branch,
            commit = %push.commit_id,
            reason = %reason,
            "push ignored"
        );
        return Ok(Outcome::Ignored { reason });
    }
    let commit = deps
        .repositories
        .commit(&push.repository, &push.commit_id)
        .await?;
    if let Some(marker) = skip_marker(&commit.message) {
        let reason = IgnoreReason::SkipCi {
            marker: marker.to_owned(),
            commit_id: push.commit_id.clone(),
        };
        info!(
            repository = %push.repository,
            branch = %push.branch,
            commit = %push.commit_id,
            reason = %reason,
            "push ignored"
        );
        return Ok(Outcome::Ignored { reason });
    }

    // Every routed pipeline is attempted even when one fails, so one broken pipeline does not
    // hold the others back; the failure then fails the invocation so Lambda retries it, and
    // the idempotency token keeps the retry from starting the others twice.
    let mut executions = Vec::with_capacity(push.routes.len());
    let mut first_failure = None;
    for route in &push.routes {
        match start(deps, &push, route).await {
            Ok(execution) => {
                info!(
                    repository = %push.repository,
                    branch = %push.branch,
                    commit = %push.commit_id,
                    pipeline = %execution.pipeline,
                    execution_id = %execution.execution_id,
                    "pipeline started"
                );
                executions.push(execution);
            }
            Err(error) => {
                warn!(
                    pipeline = %route.pipeline,
                    commit = %push.commit_id,
                    error = %shared::error::ErrorChain(&error),
                    "pipeline not started"
                );
                first_failure.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_failure {
        return Err(error);
    }
    Ok(Outcome::Started {
        repository: push.repository,
        branch: push.branch,
        commit_id: push.commit_id,
        executions,
    })
}

async fn start<P: PipelineApi, R: RepositoryApi>(
    deps: &Deps<P, R>,
    push: &Push<'_>,
    route: &Route,
) -> Result<Execution, FunctionError> {
    let source_action = source_action(deps, route, &push.repository, &push.branch).await?;
    let request = StartExecution {
        pipeline: route.pipeline.clone(),
        source_action,
        commit_id: push.commit_id.clone(),
        client_request_token: push.event_id.clone(),
    };
    match deps.pipelines.start_execution(&request).await {
        Ok(started) => Ok(Execution {
            pipeline: started.pipeline,
            execution_id: started.execution_id,
        }),
        Err(error) => {
            // The pipeline may have been redefined since the lookup; look again next time.
            cache(deps).remove(&(route.pipeline.clone(), push.repository.clone()));
            Err(error.into())
        }
    }
}

async fn source_action<P: PipelineApi, R: RepositoryApi>(
    deps: &Deps<P, R>,
    route: &Route,
    repository: &str,
    branch: &str,
) -> Result<String, FunctionError> {
    if let Some(action) = &route.source_action {
        return Ok(action.clone());
    }
    let key = (route.pipeline.clone(), repository.to_owned());
    if let Some(action) = cache(deps).get(&key) {
        return Ok(action.clone());
    }
    let actions = deps
        .pipelines
        .codecommit_source_actions(&route.pipeline, repository)
        .await?;
    let misconfigured = |reason: String| {
        FunctionError::from(ConfigError::new(
            ROUTES_VARIABLE,
            format!("pipeline {}: {reason}", route.pipeline),
        ))
    };
    match actions.as_slice() {
        [] => Err(misconfigured(format!(
            "no CodeCommit source action reads repository {repository}"
        ))),
        [only] => {
            cache(deps).insert(key, only.name.clone());
            Ok(only.name.clone())
        }
        several => {
            // Several sources on one repository: the one following the pushed branch is meant.
            let mut following = several
                .iter()
                .filter(|action| action.branch.as_deref() == Some(branch));
            match (following.next(), following.next()) {
                (Some(action), None) => Ok(action.name.clone()),
                _ => Err(misconfigured(format!(
                    "{} CodeCommit source actions read repository {repository} ({}); name one with \"sourceAction\"",
                    several.len(),
                    several
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}

fn cache<P, R>(deps: &Deps<P, R>) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
    // A panic elsewhere cannot leave the map half-written, so a poisoned lock is still usable.
    deps.source_actions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn is_request_token(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests;
