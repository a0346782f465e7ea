//! What an approval notification means: who gets which links, and sending them once.
//!
//! [`parse`] is pure and tested on the files in `events/approval-notify/`; [`handle`] looks the
//! approval up (best effort), then mails each approver through [`Notifier`], once per approval
//! and approver thanks to the [`Ledger`].
//!
//! Whatever the number of approvers, a delivery makes three calls: every approver's claim in one
//! transaction, every email in one batch publish (ten per call), every record in one batch
//! write. An approver whose email SNS still refuses after the bounded retries of the failed
//! entries alone has their claim released and fails the delivery: its retry finds the others
//! done and mails exactly the ones not mailed.

use serde::Serialize;
use serde_json::Value;
use shared::approval_link::{Approval, ApprovalLink, Approver, Decision, SigningKey, fingerprint};
use shared::events::approval::{ApprovalNotification, parse_sns};
use shared::ports::{ActionHistory, ApprovalApi, Claim, Ledger, Notification, Notifier, Revision};
use shared::{FunctionError, InvalidEvent, UpstreamError};
use tracing::{info, warn};

use crate::config::Config;
use crate::email::Email;
use crate::promotion::{Promoted, promoted};

/// The ports and settings a notification is handled with, built once per cold start.
#[derive(Debug)]
pub struct Deps<A, H, N, L> {
    approvals: A,
    history: H,
    notifier: N,
    ledger: L,
    key: SigningKey,
    config: Config,
}

impl<A: ApprovalApi, H: ActionHistory, N: Notifier, L: Ledger> Deps<A, H, N, L> {
    /// Dependencies over the given ports, key and settings.
    pub fn new(
        approvals: A,
        history: H,
        notifier: N,
        ledger: L,
        key: SigningKey,
        config: Config,
    ) -> Self {
        Self {
            approvals,
            history,
            notifier,
            ledger,
            key,
            config,
        }
    }
}

/// What the invocation did; the function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Every approver has their links (some perhaps from an earlier delivery).
    #[serde(rename_all = "camelCase")]
    Notified {
        /// The pipeline waiting.
        pipeline: String,
        /// Its approval stage.
        stage: String,
        /// Its approval action.
        action: String,
        /// Approvers mailed by this invocation.
        sent: Vec<String>,
        /// Approvers an earlier delivery of the same notification already mailed.
        already_sent: Vec<String>,
        /// The commit being approved, when known.
        commit_id: Option<String>,
    },
    /// Nothing sent, and why.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// Parses the SNS event: exactly one approval notification.
pub fn parse(payload: Value) -> Result<ApprovalNotification, InvalidEvent> {
    let mut notifications = parse_sns(payload)?;
    if notifications.len() != 1 {
        return Err(InvalidEvent::new(format!(
            "Records: expected one approval notification, got {}",
            notifications.len()
        )));
    }
    Ok(notifications.remove(0))
}

/// The links `approver` gets for `notification`, which expires at `expires_at`.
pub fn links(
    key: &SigningKey,
    callback_url: &str,
    notification: &ApprovalNotification,
    approver: &Approver,
    expires_at: i64,
) -> [(Decision, String); 2] {
    let approval = Approval {
        pipeline: notification.approval.pipeline_name.clone(),
        stage: notification.approval.stage_name.clone(),
        action: notification.approval.action_name.clone(),
        token: notification.approval.token.clone(),
    };
    Decision::ALL.map(|decision| {
        let signed =
            ApprovalLink::new(approval.clone(), approver.clone(), decision, expires_at).sign(key);
        // The signed text is URL-safe base64 and dots: no escaping needed.
        (decision, format!("{callback_url}?link={signed}"))
    })
}

/// Handles one SNS delivery of an approval notification at `now` (seconds since the epoch).
pub async fn handle<A: ApprovalApi, H: ActionHistory, N: Notifier, L: Ledger>(
    deps: &Deps<A, H, N, L>,
    payload: Value,
    now: i64,
) -> Result<Outcome, FunctionError> {
    let notification = parse(payload)?;
    let approval = &notification.approval;
    let token_id = fingerprint(&approval.token);
    let expires_at = notification
        .expires_at()
        .ok_or_else(|| InvalidEvent::missing("approval.expires"))?;
    if expires_at <= now {
        info!(pipeline = %approval.pipeline_name, stage = %approval.stage_name, token = %token_id, "approval already expired: nothing sent");
        return Ok(Outcome::Ignored {
            reason: "the approval has expired".into(),
        });
    }

    let LookedUp {
        still_waiting,
        revision,
        promoted,
    } = look_up(deps, &notification).await;
    if !still_waiting {
        info!(pipeline = %approval.pipeline_name, stage = %approval.stage_name, token = %token_id, "approval already decided: nothing sent");
        return Ok(Outcome::Ignored {
            reason: "the approval is no longer waiting".into(),
        });
    }

    // Every approver is attempted even when one fails; the failure then fails the invocation so
    // SNS retries it, and the ledger keeps the retry from mailing the others twice.
    let keys: Vec<String> = deps
        .config
        .approvers
        .iter()
        .map(|approver| ledger_key(&token_id, approver))
        .collect();
    let claims = deps.ledger.claim_all(&keys).await?;
    let mut sent = Vec::new();
    let mut already_sent = Vec::new();
    let mut first_failure: Option<FunctionError> = None;
    let mut granted = Vec::new();
    for ((approver, key), claim) in deps.config.approvers.iter().zip(&keys).zip(claims) {
        match claim {
            Claim::Granted => granted.push((approver, key)),
            Claim::Done => {
                info!(approver = %approver, token = %token_id, "already mailed by an earlier delivery");
                already_sent.push(approver.to_string());
            }
            // Not "already mailed": the invocation holding the claim may have failed to send it.
            Claim::Pending => {
                warn!(pipeline = %approval.pipeline_name, approver = %approver, token = %token_id, "another delivery holds this approver's claim");
                first_failure.get_or_insert(Claim::pending_error("approval email").into());
            }
        }
    }

    let emails: Vec<Notification> = granted
        .iter()
        .map(|&(approver, _)| {
            Email {
                notification: &notification,
                revision: revision.as_ref(),
                approver,
                links: links(
                    &deps.key,
                    &deps.config.callback_url,
                    &notification,
                    approver,
                    expires_at,
                ),
                expires_at,
                promoted: promoted.as_ref(),
                now,
            }
            .render()
        })
        .collect();
    let mut results = if emails.is_empty() {
        Vec::new()
    } else {
        deps.notifier.publish_all(&emails).await
    }
    .into_iter();
    let mut mailed = Vec::new();
    for (approver, key) in granted {
        let result = results.next().unwrap_or_else(|| {
            Err(UpstreamError::new(
                "SNS",
                "PublishBatch",
                None,
                "no answer for this approver's email",
            ))
        });
        match result {
            Ok(message_id) => {
                info!(
                    pipeline = %approval.pipeline_name,
                    stage = %approval.stage_name,
                    approver = %approver,
                    token = %token_id,
                    message_id = %message_id,
                    "approval links sent"
                );
                sent.push(approver.to_string());
                mailed.push(key.clone());
            }
            Err(error) => {
                warn!(
                    pipeline = %approval.pipeline_name,
                    approver = %approver,
                    token = %token_id,
                    error = %shared::error::ErrorChain(&error),
                    "approver not notified"
                );
                // Given back, so the retry of this delivery mails exactly the ones not mailed.
                // A rare path: one call per approver SNS did not take.
                if let Err(release) = deps.ledger.release(key).await {
                    warn!(approver = %approver, error = %shared::error::ErrorChain(&release), "claim not released; it expires after its lease");
                }
                first_failure.get_or_insert(error.into());
            }
        }
    }
    // The emails are out: a failure to record them must not fail the invocation and mail
    // everyone again; their pending claims expire after the lease.
    if !mailed.is_empty()
        && let Err(error) = deps.ledger.complete_all(&mailed).await
    {
        warn!(pipeline = %approval.pipeline_name, token = %token_id, error = %shared::error::ErrorChain(&error), "emails sent but not recorded");
    }
    if let Some(error) = first_failure {
        return Err(error);
    }
    Ok(Outcome::Notified {
        pipeline: approval.pipeline_name.clone(),
        stage: approval.stage_name.clone(),
        action: approval.action_name.clone(),
        sent,
        already_sent,
        commit_id: revision.map(|r| r.id),
    })
}

/// The ledger's key for `approver`'s email about the approval whose token has fingerprint
/// `token_id`: the fingerprint, not the token, as the ledger is readable by more people than
/// approvals should be.
fn ledger_key(token_id: &str, approver: &Approver) -> String {
    format!("approval-email/{token_id}/{approver}")
}

/// What the lookup found out.
struct LookedUp {
    /// Whether the approval still waits for this token.
    still_waiting: bool,
    /// The revision it is about.
    revision: Option<Revision>,
    /// What it promotes (the digest, the earlier environment's deploy).
    promoted: Option<Promoted>,
}

impl LookedUp {
    fn waiting() -> Self {
        Self {
            still_waiting: true,
            revision: None,
            promoted: None,
        }
    }
}

/// Whether the approval still waits for this token, the revision it is about, and what it
/// promotes. Best effort: if a lookup fails, the emails go out without what it would have told
/// rather than not at all.
async fn look_up<A: ApprovalApi, H: ActionHistory, N, L>(
    deps: &Deps<A, H, N, L>,
    notification: &ApprovalNotification,
) -> LookedUp {
    let approval = &notification.approval;
    let state = match deps
        .approvals
        .approval_state(
            &approval.pipeline_name,
            &approval.stage_name,
            &approval.action_name,
            &approval.token,
        )
        .await
    {
        Ok(state) => state,
        Err(error) => {
            warn!(pipeline = %approval.pipeline_name, error = %shared::error::ErrorChain(&error), "cannot look the approval up; sending without the commit");
            return LookedUp::waiting();
        }
    };
    // A known, different state means a redelivery after the decision: the links would be dead.
    if state.status.is_some() && !state.is_waiting_for(&approval.token) {
        return LookedUp {
            still_waiting: false,
            ..LookedUp::waiting()
        };
    }
    let Some(execution_id) = state.execution_id else {
        return LookedUp::waiting();
    };
    let revision = match deps
        .approvals
        .execution_revision(&approval.pipeline_name, &execution_id)
        .await
    {
        Ok(revision) => revision,
        Err(error) => {
            warn!(pipeline = %approval.pipeline_name, execution_id = %execution_id, error = %shared::error::ErrorChain(&error), "cannot look the commit up; sending without it");
            None
        }
    };
    let promoted = match deps
        .history
        .action_runs(&approval.pipeline_name, &execution_id)
        .await
    {
        Ok(runs) => Some(promoted(&runs, &approval.stage_name)),
        Err(error) => {
            warn!(pipeline = %approval.pipeline_name, execution_id = %execution_id, error = %shared::error::ErrorChain(&error), "cannot read the execution's actions; sending without what it promotes");
            None
        }
    };
    LookedUp {
        still_waiting: true,
        revision,
        promoted,
    }
}

#[cfg(test)]
mod tests;
