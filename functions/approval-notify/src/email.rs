//! The email each approver receives: what is being approved, and their own two links.

use chrono::DateTime;
use shared::approval_link::{Approver, Decision};
use shared::events::approval::ApprovalNotification;
use shared::ports::{Notification, Revision};

use crate::promotion::{Promoted, standing};

/// The message attribute the approvers' subscriptions filter on.
pub const APPROVER_ATTRIBUTE: &str = "approver";

/// Everything one approver's email shows.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    /// The approval notification.
    pub notification: &'a ApprovalNotification,
    /// The revision being approved, when it could be looked up.
    pub revision: Option<&'a Revision>,
    /// Who it is for.
    pub approver: &'a Approver,
    /// Their Approve and Reject URLs.
    pub links: [(Decision, String); 2],
    /// When the approval expires, in seconds since the epoch.
    pub expires_at: i64,
    /// What the approval promotes, from the execution's records, when they could be read.
    pub promoted: Option<&'a Promoted>,
    /// Now, in seconds since the epoch: how long the earlier environment has run it.
    pub now: i64,
}

impl Email<'_> {
    /// The SNS message: subject, plain-text body, and the `approver` attribute.
    pub fn render(&self) -> Notification {
        let approval = &self.notification.approval;
        let subject = format!(
            "Approval needed: {} ({}/{})",
            approval.pipeline_name, approval.stage_name, approval.action_name
        );
        let mut body = String::new();
        let mut line = |text: &str| {
            body.push_str(text);
            body.push('\n');
        };
        line(&format!("Hello {},", self.approver));
        line("");
        line(&format!(
            "Pipeline {} is waiting for your approval at stage {} (action {}).",
            approval.pipeline_name, approval.stage_name, approval.action_name
        ));
        line("");
        let mut facts: Vec<(&str, String)> = vec![("Pipeline", approval.pipeline_name.clone())];
        facts.push((
            "Stage",
            format!("{} / {}", approval.stage_name, approval.action_name),
        ));
        if let Some(digest) = self.promoted.and_then(|p| p.digest.as_deref()) {
            facts.push(("Image", digest.to_owned()));
        }
        if let Some(revision) = self.revision {
            let short = revision.id.get(..7).unwrap_or(&revision.id);
            let subject = revision
                .summary
                .as_deref()
                .and_then(|summary| summary.lines().next())
                .unwrap_or_default();
            facts.push((
                "Commit",
                format!("{short}  {subject}").trim_end().to_owned(),
            ));
        }
        if let (Some(from), Some(now)) = (
            self.promoted.and_then(|p| p.from.as_ref()),
            DateTime::from_timestamp(self.now, 0),
        ) {
            facts.push(("So far", standing(from, now)));
        }
        if let Some(data) = approval.custom_data.as_deref().filter(|d| !d.is_empty()) {
            facts.push(("Comments", one_line(data)));
        }
        if let Some(link) = approval.external_entity_link.as_deref() {
            facts.push(("Review", link.to_owned()));
        }
        if let Some(link) = approval.approval_review_link.as_deref() {
            facts.push(("Console", link.to_owned()));
        }
        facts.push(("Expires", format_time(self.expires_at)));
        for (label, value) in facts {
            line(&format!("  {:<10}{value}", format!("{label}:")));
        }
        line("");
        for (decision, url) in &self.links {
            line(&format!("{}:", decision.verb()));
            line(url);
            line("");
        }
        line("Each link opens a confirmation page; nothing is decided until you press its button.");
        line("These links are yours alone: please do not forward this email. They stop working");
        line("when the approval expires or once it has been decided.");
        Notification::new(
            &subject,
            body,
            vec![(APPROVER_ATTRIBUTE.to_owned(), self.approver.to_string())],
        )
    }
}

// Custom data is free text: keep the email's layout whatever it holds.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `2026-11-30 10:00 UTC`.
pub fn format_time(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0)
        .map(|time| time.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| seconds.to_string())
}
