use std::future::Future;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};

use crate::error::UpstreamError;
use crate::events::codebuild::{
    BUILD_STATE_CHANGE, BuildArn, BuildEnvironment, BuildInformation, BuildLogs, BuildPhase,
    BuildStateChange, BuildStatus, EnvironmentVariable, SOURCE, codebuild_time,
};

/// Starting, stopping and reading CodeBuild builds.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait BuildApi: Send + Sync {
    /// Build `build_id` (`project:uuid` or its ARN) as it is now; `None` when CodeBuild no
    /// longer has it.
    fn build(
        &self,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<BuildRecord>, UpstreamError>> + Send;

    /// The most recent builds of `project`, newest first, at most `limit` of them.
    fn recent_builds(
        &self,
        project: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<BuildRecord>, UpstreamError>> + Send;

    /// Starts a build of `request.project`. Idempotent under `request.idempotency_token` for
    /// five minutes (CodeBuild's window): the same request again answers the same build.
    fn start_build(
        &self,
        request: &StartBuild,
    ) -> impl Future<Output = Result<StartedBuild, UpstreamError>> + Send;

    /// Stops the build `build_id` (`project:uuid`); a build that has already finished stays
    /// as it is.
    fn stop_build(&self, build_id: &str) -> impl Future<Output = Result<(), UpstreamError>> + Send;
}

/// What the functions need to know of a past or running build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRecord {
    /// `project:uuid`.
    pub id: String,
    /// The build's number within its project.
    pub number: Option<u64>,
    /// Its status.
    pub status: BuildStatus,
    /// Whether it has finished.
    pub complete: bool,
    /// The source version asked for.
    pub source_version: Option<String>,
    /// Its plain-text environment variables.
    pub variables: Vec<(String, String)>,
    /// Its ARN (`arn:aws:codebuild:REGION:ACCOUNT:build/PROJECT:UUID`).
    pub arn: Option<String>,
    /// When it started.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended; `None` while it runs.
    pub end_time: Option<DateTime<Utc>>,
    /// Who started it.
    pub initiator: Option<String>,
    /// Its phases so far, as its events spell them (contexts as `STATUS_CODE: message`).
    pub phases: Vec<BuildPhase>,
    /// Where its logs are.
    pub logs: Option<BuildLogs>,
    /// The ARNs of the test reports it filed, one per report group of its buildspec (its
    /// `reportArns`: the build's state change event does not carry them).
    pub report_arns: Vec<String>,
}

impl BuildRecord {
    /// The value of variable `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Build State Change` event CodeBuild emits for the build as it is now: what a sweep
    /// hands to the event path when that event never came. `None` for a record without a build
    /// ARN (none BatchGetBuilds returns).
    pub fn state_change(&self) -> Option<EventBridgeEvent<BuildStateChange>> {
        let arn = self.arn.as_deref()?;
        let parts = BuildArn::parse(arn)?;
        let detail = BuildStateChange {
            build_status: self.status,
            project_name: parts.project.to_owned(),
            build_id: arn.to_owned(),
            current_phase: self.phases.last().map(|phase| phase.phase_type.clone()),
            additional_information: BuildInformation {
                build_complete: self.complete,
                // Build numbers are far below 2^53: the float CodeBuild sends holds them exactly.
                build_number: self.number.map(|number| number as f64),
                initiator: self.initiator.clone(),
                build_start_time: self.start_time.map(codebuild_time),
                source_version: self.source_version.clone(),
                logs: self.logs.clone(),
                phases: self.phases.clone(),
                environment: Some(BuildEnvironment {
                    environment_variables: self
                        .variables
                        .iter()
                        .map(|(name, value)| EnvironmentVariable {
                            name: name.clone(),
                            value: value.clone(),
                            kind: Some("PLAINTEXT".into()),
                        })
                        .collect(),
                }),
            },
        };
        let mut event = EventBridgeEvent::default();
        event.version = Some("0".into());
        event.detail_type = BUILD_STATE_CHANGE.into();
        event.source = SOURCE.into();
        event.account = Some(parts.account.to_owned());
        event.region = Some(parts.region.to_owned());
        // As CodeBuild dates it: when the build reached its state, in whole seconds.
        event.time = self
            .end_time
            .or(self.start_time)
            .and_then(|time| DateTime::from_timestamp(time.timestamp(), 0));
        event.resources = Some(vec![arn.to_owned()]);
        event.detail = detail;
        Some(event)
    }
}

/// A build to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartBuild {
    /// The project's name.
    pub project: String,
    /// What to build: for a CodeCommit source, a commit id, branch or tag.
    pub source_version: String,
    /// Plain-text environment variables for this build only, added to (or replacing) the
    /// project's.
    pub variables: Vec<(String, String)>,
    /// CodeBuild's idempotency token: the same request with the same token within five
    /// minutes starts nothing new.
    pub idempotency_token: String,
}

/// A build that was started (or had already been started under the same token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBuild {
    /// `project:uuid`.
    pub id: String,
    /// The build's ARN.
    pub arn: String,
    /// Its number within its project.
    pub number: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:codebuild:eu-west-1:123456789012:build/shop-image:6d9e4f1a-3b5c-4a7d-8e9f-0a1b2c3d4e5f";

    fn time(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_finished_build_reads_as_the_event_codebuild_emits_for_it() {
        let record = BuildRecord {
            id: "shop-image:6d9e4f1a-3b5c-4a7d-8e9f-0a1b2c3d4e5f".into(),
            number: Some(44),
            status: BuildStatus::TimedOut,
            complete: true,
            source_version: Some("refs/heads/main".into()),
            variables: vec![("SOURCE_BRANCH".into(), "main".into())],
            arn: Some(ARN.into()),
            start_time: Some(time("2026-11-23T09:41:12.345Z")),
            end_time: Some(time("2026-11-23T10:41:13.678Z")),
            initiator: Some("codepipeline/shop-main".into()),
            phases: vec![BuildPhase {
                phase_type: "BUILD".into(),
                phase_status: Some("TIMED_OUT".into()),
                phase_context: Some(vec!["BUILD_TIMED_OUT: Build has timed out. ".into()]),
                duration_in_seconds: Some(3600.0),
            }],
            logs: None,
            report_arns: Vec::new(),
        };

        let event = record.state_change().unwrap();

        assert_eq!(
            (event.source.as_str(), event.detail_type.as_str()),
            (SOURCE, BUILD_STATE_CHANGE)
        );
        assert_eq!(
            (event.region.as_deref(), event.account.as_deref()),
            (Some("eu-west-1"), Some("123456789012"))
        );
        assert_eq!(event.time, Some(time("2026-11-23T10:41:13Z")));
        let build = &event.detail;
        assert_eq!(build.build_id, ARN);
        assert_eq!(build.project_name, "shop-image");
        assert_eq!(build.outcome(), BuildStatus::TimedOut);
        assert_eq!(build.build_number(), Some(44));
        assert_eq!(build.variable("SOURCE_BRANCH"), Some("main"));
        assert_eq!(
            build.additional_information.build_start_time.as_deref(),
            Some("Nov 23, 2026 9:41:12 AM")
        );
        assert_eq!(crate::events::codebuild::build_duration(&event), Some(3601));
        assert_eq!(build.current_phase.as_deref(), Some("BUILD"));
    }

    #[test]
    fn a_record_without_a_build_arn_has_no_event() {
        let record = BuildRecord {
            id: "p:1".into(),
            ..BuildRecord::default()
        };
        assert_eq!(record.state_change(), None);
        let foreign = BuildRecord {
            id: "p:1".into(),
            arn: Some("arn:aws:s3:::bucket/key".into()),
            ..BuildRecord::default()
        };
        assert_eq!(foreign.state_change(), None);
    }
}
