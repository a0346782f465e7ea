//! CodeCommit events as EventBridge delivers them. `aws_lambda_events` has the SNS-era
//! `CodeCommitEvent` but not these EventBridge details, so they are typed here after
//! <https://docs.aws.amazon.com/codecommit/latest/userguide/monitoring-events.html>.

use serde::{Deserialize, Serialize};

/// The EventBridge `source` of every CodeCommit event.
pub const SOURCE: &str = "aws.codecommit";

/// `detail-type` of pushes, branch and tag creation and deletion.
pub const REPOSITORY_STATE_CHANGE: &str = "CodeCommit Repository State Change";

/// What happened to a reference (branch or tag) of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStateChange {
    /// `referenceCreated`, `referenceUpdated`, `referenceDeleted`, `unreferencedMergeCommitCreated`.
    pub event: RepositoryEventKind,
    /// The repository's name.
    pub repository_name: String,
    /// The repository's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// `branch` or `tag`; absent on unreferenced merge commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_type: Option<ReferenceType>,
    /// The branch or tag name (`main`, `release/1.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_name: Option<String>,
    /// The full reference (`refs/heads/main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_full_name: Option<String>,
    /// The commit the reference now points to; absent when it was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// The commit the reference pointed to before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_commit_id: Option<String>,
    /// Who pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user_arn: Option<String>,
}

/// The kind of repository change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepositoryEventKind {
    /// A branch or tag was created.
    ReferenceCreated,
    /// A branch or tag moved to another commit (a push, a merge, a force-push).
    ReferenceUpdated,
    /// A branch or tag was deleted.
    ReferenceDeleted,
    /// A merge commit was made that no reference points to (yet).
    UnreferencedMergeCommitCreated,
    /// A kind CodeCommit may add later: ignored rather than failed, so a new event kind
    /// never lands in the dead-letter queue.
    #[serde(other)]
    Other,
}

/// What kind of reference changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReferenceType {
    /// A branch (`refs/heads/...`).
    Branch,
    /// A tag (`refs/tags/...`).
    Tag,
    /// Anything else.
    #[serde(other)]
    Other,
}

/// `detail-type` of pull request changes: created, source branch updated, closed or reopened,
/// merged, and approval changes.
pub const PULL_REQUEST_STATE_CHANGE: &str = "CodeCommit Pull Request State Change";

/// What happened to a pull request.
///
/// CodeCommit writes some fields unlike its API: `isMerged` is the string `"True"` or `"False"`,
/// `pullRequestStatus` is `Open` or `Closed` (the API says `OPEN`/`CLOSED`), and the repository
/// comes as a one-element `repositoryNames` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestStateChange {
    /// What changed.
    pub event: PullRequestEventKind,
    /// The pull request's id (a number, as a string).
    pub pull_request_id: String,
    /// Open or closed, after the change.
    pub pull_request_status: PullRequestStatus,
    /// The repository (CodeCommit pull requests have exactly one).
    pub repository_names: Vec<String>,
    /// Whether it was merged.
    #[serde(default, with = "is_merged")]
    pub is_merged: bool,
    /// The branch to merge from (`refs/heads/feature/cart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_reference: Option<String>,
    /// The branch to merge into (`refs/heads/main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_reference: Option<String>,
    /// The tip of the source branch: the commit to validate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    /// The tip of the destination branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_commit: Option<String>,
    /// The pull request's revision (it changes with its commits; approvals belong to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_id: Option<String>,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Who opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Who made this change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user_arn: Option<String>,
}

impl PullRequestStateChange {
    /// The pull request's repository.
    pub fn repository(&self) -> Option<&str> {
        self.repository_names.first().map(String::as_str)
    }

    /// The destination branch's name, without `refs/heads/`.
    pub fn destination_branch(&self) -> Option<&str> {
        self.destination_reference
            .as_deref()
            .map(|r| r.strip_prefix("refs/heads/").unwrap_or(r))
    }
}

/// The kind of pull request change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PullRequestEventKind {
    /// It was opened.
    PullRequestCreated,
    /// Commits were pushed to its source branch.
    PullRequestSourceBranchUpdated,
    /// It was closed, or reopened (then `pullRequestStatus` is `Open`).
    PullRequestStatusChanged,
    /// It was merged.
    PullRequestMergeStatusUpdated,
    /// Approval rules, approval states, overrides, and kinds CodeCommit may add later.
    #[serde(other)]
    Other,
}

impl PullRequestEventKind {
    /// The kind as CodeCommit spells it (`Other` for the kinds not named here).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PullRequestCreated => "pullRequestCreated",
            Self::PullRequestSourceBranchUpdated => "pullRequestSourceBranchUpdated",
            Self::PullRequestStatusChanged => "pullRequestStatusChanged",
            Self::PullRequestMergeStatusUpdated => "pullRequestMergeStatusUpdated",
            Self::Other => "other",
        }
    }
}

/// A pull request's status, as events and the API spell it (`Open` / `OPEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullRequestStatus {
    /// Open for review.
    #[serde(rename = "Open", alias = "OPEN")]
    Open,
    /// Closed, merged or not.
    #[serde(rename = "Closed", alias = "CLOSED")]
    Closed,
}

/// `isMerged` as CodeCommit's events write it: the strings `"True"` / `"False"` (a JSON boolean
/// is taken too).
mod is_merged {
    use serde::de::{self, Deserializer, Unexpected};
    use serde::{Deserialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Flag(bool),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Flag(flag) => Ok(flag),
            Raw::Text(text) if text.eq_ignore_ascii_case("true") => Ok(true),
            Raw::Text(text) if text.eq_ignore_ascii_case("false") => Ok(false),
            Raw::Text(text) => Err(de::Error::invalid_value(
                Unexpected::Str(&text),
                &"\"True\" or \"False\"",
            )),
        }
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub fn serialize<S: Serializer>(merged: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if *merged { "True" } else { "False" })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn detail(extra: serde_json::Value) -> serde_json::Value {
        let mut detail = json!({
            "event": "pullRequestCreated",
            "pullRequestId": "1",
            "pullRequestStatus": "Open",
            "repositoryNames": ["MyDemoRepo"],
            "isMerged": "False",
            "destinationReference": "refs/heads/main",
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            detail[key] = value.clone();
        }
        detail
    }

    #[test]
    fn is_merged_is_read_from_codecommit_strings_and_written_back_so() {
        let merged: PullRequestStateChange =
            serde_json::from_value(detail(json!({"isMerged": "True"}))).unwrap();
        assert!(merged.is_merged);
        let open: PullRequestStateChange = serde_json::from_value(detail(json!({}))).unwrap();
        assert!(!open.is_merged);
        let flag: PullRequestStateChange =
            serde_json::from_value(detail(json!({"isMerged": true}))).unwrap();
        assert!(flag.is_merged);
        assert_eq!(serde_json::to_value(&merged).unwrap()["isMerged"], "True");
        let error =
            serde_json::from_value::<PullRequestStateChange>(detail(json!({"isMerged": "maybe"})))
                .unwrap_err();
        assert!(
            error.to_string().contains("\"True\" or \"False\""),
            "{error}"
        );
    }

    #[test]
    fn unknown_event_kinds_are_other_and_statuses_take_both_spellings() {
        let approval: PullRequestStateChange = serde_json::from_value(detail(
            json!({"event": "pullRequestApprovalStateChanged", "pullRequestStatus": "CLOSED"}),
        ))
        .unwrap();
        assert_eq!(approval.event, PullRequestEventKind::Other);
        assert_eq!(approval.pull_request_status, PullRequestStatus::Closed);
        assert_eq!(approval.repository(), Some("MyDemoRepo"));
        assert_eq!(approval.destination_branch(), Some("main"));
    }
}
