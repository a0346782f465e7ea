//! The notification a person reads: subject, plain-text body and filterable attributes.
//! Pure: the same build state always gives the same message.

use std::fmt::Write as _;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use shared::events::codebuild::{BuildStateChange, build_console_url, build_duration};
use shared::ports::Notification;
use shared::reports::BuildTests;
use shared::text::{clip, human_duration, is_commit_id};

use crate::config::NotifyOn;

/// The build environment variable carrying the branch the pipeline built (set by the pipeline's
/// build action from `#{SourceVariables.BranchName}`).
pub const BRANCH_VARIABLE: &str = "SOURCE_BRANCH";
/// The build environment variable carrying the commit the pipeline built
/// (`#{SourceVariables.CommitId}`).
pub const COMMIT_VARIABLE: &str = "SOURCE_COMMIT";

/// Where a build's source came from, as far as the event tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// The branch, when known.
    pub branch: Option<String>,
    /// The full commit id, when known.
    pub commit: Option<String>,
    /// The raw source version, when neither tells more.
    pub version: Option<String>,
}

impl SourceRef {
    /// What the build event says about its source: the pipeline's variables first, then the
    /// source version when it is a branch ref or a commit.
    pub fn of(build: &BuildStateChange) -> Self {
        let version = build
            .additional_information
            .source_version
            .clone()
            .filter(|v| !v.is_empty());
        let (branch_from_version, commit_from_version) = match version.as_deref() {
            Some(v) if is_commit_id(v) => (None, Some(v.to_owned())),
            Some(v) => (v.strip_prefix("refs/heads/").map(str::to_owned), None),
            None => (None, None),
        };
        Self {
            branch: build
                .variable(BRANCH_VARIABLE)
                .map(str::to_owned)
                .or(branch_from_version),
            commit: build
                .variable(COMMIT_VARIABLE)
                .map(str::to_owned)
                .filter(|c| is_commit_id(c))
                .or(commit_from_version),
            version,
        }
    }

    /// The branch if known, else the source version: what the subject says the build was "on".
    pub fn label(&self) -> Option<&str> {
        self.branch.as_deref().or(self.version.as_deref())
    }
}

/// What is being told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The kind of news.
    pub kind: NotifyOn,
    /// For a fix: the number of the failed build it follows.
    pub previous_failure: Option<u64>,
}

/// Composes the notification for `event` reported as `report`, with what the build's test
/// reports say (`tests`).
pub fn compose(
    event: &EventBridgeEvent<BuildStateChange>,
    report: &Report,
    tests: &BuildTests,
) -> Notification {
    let build = &event.detail;
    let source = SourceRef::of(build);
    let number = build.build_number();
    let status_word = match report.kind {
        NotifyOn::TimedOut => "TIMED OUT",
        other => other.as_str(),
    };

    let mut subject = format!("{status_word}: {}", build.project_name);
    if let Some(number) = number {
        let _ = write!(subject, " #{number}");
    }
    if let Some(label) = source.label() {
        let _ = write!(subject, " on {}", clip(label, 40));
    }
    if let Some(commit) = &source.commit {
        let _ = write!(subject, " ({})", &commit[..7]);
    }

    let build_name = match number {
        Some(n) => format!("{} #{n}", build.project_name),
        None => build.project_name.clone(),
    };
    let on = source
        .label()
        .map(|l| format!(" on {l}"))
        .unwrap_or_default();
    let mut body = String::new();
    match report.kind {
        NotifyOn::Fixed => {
            let _ = write!(body, "Build {build_name}{on} succeeded");
            match report.previous_failure {
                Some(previous) => {
                    let _ = writeln!(body, " after build #{previous} had failed: fixed.");
                }
                None => body.push_str(" after the previous build had failed: fixed.\n"),
            }
        }
        NotifyOn::Succeeded => {
            let _ = writeln!(body, "Build {build_name}{on} succeeded.");
        }
        NotifyOn::Stopped => {
            let _ = writeln!(
                body,
                "Build {build_name}{on} was stopped before it finished."
            );
        }
        NotifyOn::TimedOut => {
            let _ = writeln!(
                body,
                "Build {build_name}{on} ran out of time and was stopped."
            );
        }
        NotifyOn::Failed | NotifyOn::Fault => {
            let _ = writeln!(body, "Build {build_name}{on} failed.");
        }
    }
    if let Some(phase) = build.failed_phase() {
        let _ = writeln!(
            body,
            "\nWhat went wrong: the {} phase ended {}.",
            phase_name(&phase.phase_type),
            phase.phase_status.as_deref().unwrap_or("FAILED")
        );
        for context in phase.phase_context.iter().flatten() {
            let context = context.trim().trim_start_matches(':').trim();
            if !context.is_empty() {
                let _ = writeln!(body, "  {context}");
            }
        }
    }

    let tests = tests.plain();
    if !tests.is_empty() {
        body.push('\n');
        body.push_str(&tests);
    }

    body.push('\n');
    let mut facts: Vec<(&str, String)> = vec![("Project", build.project_name.clone())];
    if let Some(n) = number {
        facts.push(("Build", format!("#{n}")));
    }
    if let Some(branch) = &source.branch {
        facts.push(("Branch", branch.clone()));
    }
    match (&source.commit, &source.version) {
        (Some(commit), _) => facts.push(("Commit", commit.clone())),
        (None, Some(version)) if source.branch.is_none() => facts.push(("Source", version.clone())),
        _ => {}
    }
    if let Some(initiator) = &build.additional_information.initiator {
        facts.push(("Started by", initiator.clone()));
    }
    if let Some(duration) = build_duration(event) {
        facts.push(("Duration", human_duration(duration)));
    }
    for (label, value) in facts {
        let _ = writeln!(body, "{label:<11} {value}");
    }

    body.push('\n');
    if let Some(url) = build_console_url(&build.build_id) {
        let _ = writeln!(body, "Build details: {url}");
    }
    match build
        .additional_information
        .logs
        .as_ref()
        .and_then(|logs| logs.deep_link.as_deref())
        .filter(|link| !link.is_empty())
    {
        Some(link) => {
            let _ = writeln!(body, "Logs:          {link}");
        }
        None => body.push_str(
            "Logs:          not available (the build may not have started its log stream)\n",
        ),
    }

    let mut attributes = vec![
        ("project".to_owned(), build.project_name.clone()),
        ("status".to_owned(), report.kind.as_str().to_owned()),
    ];
    if let Some(branch) = source.branch {
        attributes.push(("branch".to_owned(), branch));
    }
    Notification::new(&subject, body, attributes)
}

/// The key naming the fact a notification tells: this build reached this status.
///
/// Not the event id: CodeBuild may emit the same state change more than once under different
/// ids, and a redelivery and a duplicate emission are the same news to a person. The build ARN
/// and the status name the fact itself, so either way only one message goes out.
pub fn deduplication_key(build: &BuildStateChange, report: &Report) -> String {
    format!(
        "codebuild-status/{}/{}",
        build.build_id,
        report.kind.as_str()
    )
}

fn phase_name(phase: &str) -> String {
    phase.replace('_', " ")
}
