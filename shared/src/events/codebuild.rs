//! CodeBuild's `Build State Change` events as EventBridge delivers them.
//!
//! `aws_lambda_events` types them too, but requires fields (artifact, environment, timeout,
//! every phase's start time) that some builds do not carry; a missing one there would turn a
//! real build into an `InvalidEvent` and lose its notification. Only what the functions read is
//! required here.

use serde::{Deserialize, Serialize};

/// The EventBridge `source` of CodeBuild events.
pub const SOURCE: &str = "aws.codebuild";

/// `detail-type` of build status changes.
pub const BUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";

/// A build changed status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildStateChange {
    /// The build's new status.
    pub build_status: BuildStatus,
    /// The project's name.
    pub project_name: String,
    /// The build's ARN (`arn:aws:codebuild:REGION:ACCOUNT:build/PROJECT:UUID`).
    pub build_id: String,
    /// The phase the build is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_phase: Option<String>,
    /// Everything else CodeBuild tells about the build.
    #[serde(default)]
    pub additional_information: BuildInformation,
}

/// A build's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    /// Running.
    InProgress,
    /// Finished successfully.
    Succeeded,
    /// A command failed.
    Failed,
    /// CodeBuild itself failed.
    Fault,
    /// Someone stopped it.
    Stopped,
    /// It ran out of time.
    TimedOut,
    /// A status CodeBuild may add later.
    #[default]
    #[serde(other)]
    Other,
}

impl BuildStatus {
    /// Whether the build has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::InProgress | Self::Other)
    }

    /// Whether the build ended because something went wrong with it (not a person stopping it).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Fault | Self::TimedOut)
    }

    /// The status as CodeBuild spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Fault => "FAULT",
            Self::Stopped => "STOPPED",
            Self::TimedOut => "TIMED_OUT",
            Self::Other => "UNKNOWN",
        }
    }

    /// Parses CodeBuild's spelling (as BatchGetBuilds returns it).
    pub fn parse(status: &str) -> Self {
        match status {
            "IN_PROGRESS" => Self::InProgress,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "FAULT" => Self::Fault,
            "STOPPED" => Self::Stopped,
            "TIMED_OUT" => Self::TimedOut,
            _ => Self::Other,
        }
    }
}

/// The `additional-information` of a build event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildInformation {
    /// Whether the build has finished.
    #[serde(default)]
    pub build_complete: bool,
    /// The build's number within its project (CodeBuild sends it as a float).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<f64>,
    /// Who started it: `codepipeline/<pipeline>`, a user, or a role session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// When it started, as CodeBuild words it (`Sep 1, 2017 4:12:29 PM`, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_start_time: Option<String>,
    /// The source version asked for: a commit, a branch, a pull request ref, or an S3 object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Where the build's logs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<BuildLogs>,
    /// The build's phases so far.
    #[serde(default)]
    pub phases: Vec<BuildPhase>,
    /// The build environment, with its variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BuildEnvironment>,
}

/// Where a build's logs are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildLogs {
    /// The CloudWatch Logs group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// The CloudWatch Logs stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    /// A console link to the log stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_link: Option<String>,
}

/// One phase of a build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildPhase {
    /// `SUBMITTED`, `PROVISIONING`, `BUILD`, `POST_BUILD`…
    pub phase_type: String,
    /// `SUCCEEDED`, `FAILED`…; absent while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_status: Option<String>,
    /// Why it ended as it did (`COMMAND_EXECUTION_ERROR: ... exit status 2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_context: Option<Vec<String>>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_in_seconds: Option<f64>,
}

/// The environment a build ran in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildEnvironment {
    /// Its variables, including those the starter overrode.
    #[serde(default)]
    pub environment_variables: Vec<EnvironmentVariable>,
}

/// A build environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    /// Its name.
    pub name: String,
    /// Its value (for `PLAINTEXT` variables; a reference for the others).
    #[serde(default)]
    pub value: String,
    /// `PLAINTEXT`, `PARAMETER_STORE` or `SECRETS_MANAGER`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl BuildStateChange {
    /// The plain-text value of the environment variable `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.additional_information
            .environment
            .as_ref()?
            .environment_variables
            .iter()
            .find(|v| v.name == name && v.kind.as_deref().is_none_or(|k| k == "PLAINTEXT"))
            .map(|v| v.value.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The build's number, when CodeBuild gave one.
    pub fn build_number(&self) -> Option<u64> {
        self.additional_information
            .build_number
            .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0)
            .map(|n| n as u64)
    }

    /// How the build ended, as BatchGetBuilds words it. A Build State Change event's
    /// `build-status` is IN_PROGRESS, SUCCEEDED, FAILED or STOPPED (CodeBuild user guide, build
    /// notifications sample): a build that timed out or faulted arrives as FAILED, and only the
    /// phase that ended it says TIMED_OUT or FAULT.
    pub fn outcome(&self) -> BuildStatus {
        if self.build_status != BuildStatus::Failed {
            return self.build_status;
        }
        match self.failed_phase().and_then(|p| p.phase_status.as_deref()) {
            Some("TIMED_OUT") => BuildStatus::TimedOut,
            Some("FAULT") => BuildStatus::Fault,
            _ => BuildStatus::Failed,
        }
    }

    /// The phase that failed, with its context messages.
    pub fn failed_phase(&self) -> Option<&BuildPhase> {
        self.additional_information.phases.iter().find(|phase| {
            phase
                .phase_status
                .as_deref()
                .is_some_and(|s| matches!(s, "FAILED" | "FAULT" | "TIMED_OUT" | "STOPPED"))
        })
    }

    /// The build's id without the ARN prefix (`project:uuid`), as the console and the
    /// CodeBuild API name builds.
    pub fn build_short_id(&self) -> &str {
        self.build_id
            .rsplit_once(":build/")
            .map_or(self.build_id.as_str(), |(_, id)| id)
    }
}

/// The parts of a build ARN, `arn:PARTITION:codebuild:REGION:ACCOUNT:build/PROJECT:UUID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildArn<'a> {
    /// `aws`, `aws-cn`…
    pub partition: &'a str,
    /// The build's region.
    pub region: &'a str,
    /// The build's account.
    pub account: &'a str,
    /// `PROJECT:UUID`, as the CodeBuild API names builds.
    pub build_id: &'a str,
    /// The build's project.
    pub project: &'a str,
}

impl<'a> BuildArn<'a> {
    /// The parts of `arn`, or `None` when it is not a build ARN.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("codebuild"),
            Some(region),
            Some(account),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let build_id = rest.strip_prefix("build/")?;
        let (project, _) = build_id.split_once(':')?;
        if region.is_empty() || account.is_empty() || project.is_empty() {
            return None;
        }
        Some(Self {
            partition,
            region,
            account,
            build_id,
            project,
        })
    }
}

/// The CodeBuild console page of the build with ARN `build_arn`
/// (`arn:aws:codebuild:REGION:ACCOUNT:build/PROJECT:UUID`), or `None` when it is not a build ARN.
pub fn build_console_url(build_arn: &str) -> Option<String> {
    let BuildArn {
        partition,
        region,
        account,
        build_id,
        project,
    } = BuildArn::parse(build_arn)?;
    let host = match partition {
        "aws-cn" => format!("{region}.console.amazonaws.cn"),
        "aws-us-gov" => format!("{region}.console.amazonaws-us-gov.com"),
        _ => format!("{region}.console.aws.amazon.com"),
    };
    Some(format!(
        "https://{host}/codesuite/codebuild/{account}/projects/{}/build/{}/?region={region}",
        encode_segment(project),
        encode_segment(build_id)
    ))
}

/// How long the build took: from its start to the event, else the sum of its phases' durations.
pub fn build_duration(
    event: &aws_lambda_events::event::eventbridge::EventBridgeEvent<BuildStateChange>,
) -> Option<u64> {
    let info = &event.detail.additional_information;
    let from_clock = info
        .build_start_time
        .as_deref()
        .and_then(parse_codebuild_time)
        .zip(event.time)
        .and_then(|(start, end)| u64::try_from((end - start).num_seconds()).ok());
    from_clock.or_else(|| {
        let total: f64 = info
            .phases
            .iter()
            .filter_map(|p| p.duration_in_seconds)
            .sum();
        // Whole seconds of a finite, positive sum: the cast cannot truncate anything that matters.
        (total > 0.0 && total.is_finite()).then(|| total.round() as u64)
    })
}

/// Parses CodeBuild's event time format, `Sep 1, 2017 4:12:29 PM` (UTC).
pub fn parse_codebuild_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%b %d, %Y %I:%M:%S %p")
        .ok()
        .map(|naive| naive.and_utc())
}

/// `time` in CodeBuild's event time format, `Sep 1, 2017 4:12:29 PM` (UTC, whole seconds).
pub fn codebuild_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%b %-d, %Y %-I:%M:%S %p").to_string()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode_segment(segment: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_read_back_as_they_are_written() {
        let time = parse_codebuild_time("Sep 1, 2017 4:12:29 PM").unwrap();
        assert_eq!(codebuild_time(time), "Sep 1, 2017 4:12:29 PM");
        let noon = parse_codebuild_time("Nov 23, 2026 12:03:07 PM").unwrap();
        assert_eq!(codebuild_time(noon), "Nov 23, 2026 12:03:07 PM");
    }

    #[test]
    fn a_time_out_or_fault_told_as_failed_is_known_by_its_phase() {
        let ended = |status: BuildStatus, phase: &str| BuildStateChange {
            build_status: status,
            additional_information: BuildInformation {
                phases: vec![
                    BuildPhase {
                        phase_type: "BUILD".into(),
                        phase_status: Some(phase.into()),
                        ..BuildPhase::default()
                    },
                    BuildPhase {
                        phase_type: "FINALIZING".into(),
                        phase_status: Some("SUCCEEDED".into()),
                        ..BuildPhase::default()
                    },
                ],
                ..BuildInformation::default()
            },
            ..BuildStateChange::default()
        };
        assert_eq!(
            ended(BuildStatus::Failed, "TIMED_OUT").outcome(),
            BuildStatus::TimedOut
        );
        assert_eq!(
            ended(BuildStatus::Failed, "FAULT").outcome(),
            BuildStatus::Fault
        );
        assert_eq!(
            ended(BuildStatus::Failed, "FAILED").outcome(),
            BuildStatus::Failed
        );
        // What BatchGetBuilds says is taken as it is.
        assert_eq!(
            ended(BuildStatus::TimedOut, "TIMED_OUT").outcome(),
            BuildStatus::TimedOut
        );
        assert_eq!(
            ended(BuildStatus::Stopped, "STOPPED").outcome(),
            BuildStatus::Stopped
        );
    }

    #[test]
    fn a_build_arn_gives_its_console_page() {
        assert_eq!(
            build_console_url(
                "arn:aws:codebuild:eu-west-1:123456789012:build/shop-pr:9a2b7c4d-6e8f-4d0a-1b2c-3d4e5f6a7b8c"
            )
            .as_deref(),
            Some(
                "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/shop-pr/build/shop-pr%3A9a2b7c4d-6e8f-4d0a-1b2c-3d4e5f6a7b8c/?region=eu-west-1"
            )
        );
        for not_a_build in [
            "shop-pr:9a2b",
            "arn:aws:codebuild:eu-west-1:123456789012:project/shop-pr",
            "arn:aws:s3:::bucket/key",
            "arn:aws:codebuild:::build/x:y",
        ] {
            assert_eq!(build_console_url(not_a_build), None, "{not_a_build}");
        }
    }
}
