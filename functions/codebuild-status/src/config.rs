//! Settings of codebuild-status, read once per cold start.

use std::collections::BTreeMap;

use serde::Deserialize;
use shared::ConfigError;
use shared::config::{Settings, comma_list, env_lookup, is_project_name};
use shared::events::schedule::SweepWindow;

/// What a finished build can be notified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotifyOn {
    /// A command of the build failed.
    Failed,
    /// CodeBuild itself failed.
    Fault,
    /// Someone stopped the build.
    Stopped,
    /// The build ran out of time.
    TimedOut,
    /// It succeeded, and the previous completed build of the same branch had failed.
    Fixed,
    /// It succeeded (every time).
    Succeeded,
}

impl NotifyOn {
    /// The name used in subjects and in the `status` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::Fault => "FAULT",
            Self::Stopped => "STOPPED",
            Self::TimedOut => "TIMED_OUT",
            Self::Fixed => "FIXED",
            Self::Succeeded => "SUCCEEDED",
        }
    }
}

/// The statuses notified when `NOTIFY_ON` does not say otherwise.
pub const DEFAULT_NOTIFY_ON: [NotifyOn; 5] = [
    NotifyOn::Failed,
    NotifyOn::Fault,
    NotifyOn::Stopped,
    NotifyOn::TimedOut,
    NotifyOn::Fixed,
];

/// Which statuses notify, per project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPolicy {
    default: Vec<NotifyOn>,
    projects: BTreeMap<String, Vec<NotifyOn>>,
}

impl NotifyPolicy {
    /// The statuses that notify for `project`.
    pub fn for_project(&self, project: &str) -> &[NotifyOn] {
        self.projects.get(project).unwrap_or(&self.default)
    }
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        Self {
            default: DEFAULT_NOTIFY_ON.to_vec(),
            projects: BTreeMap::new(),
        }
    }
}

/// Everything codebuild-status needs besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SNS topic build notifications go to.
    pub topic_arn: String,
    /// The DynamoDB table recording notifications already sent.
    pub ledger_table: String,
    /// How long a claim in the ledger holds before a retry may take it over: longer than the
    /// function runs, shorter than Lambda's second retry (about three minutes after the event).
    pub ledger_lease: std::time::Duration,
    /// Which statuses notify, per project.
    pub notify: NotifyPolicy,
    /// The pull-request validation project: its builds are pr-validator's to report.
    pub pull_request_project: Option<String>,
    /// How many earlier builds to look through for the previous one of the same branch (and,
    /// per project, for a sweep's builds).
    pub history_depth: usize,
    /// The projects whose builds a sweep looks at (the pipelines' projects; none: sweeps do
    /// nothing).
    pub sweep_projects: Vec<String>,
    /// Which finished builds a sweep looks at.
    pub sweep_window: SweepWindow,
    /// The report groups whose test reports a notification shows (none: every report a build
    /// files).
    pub report_groups: Vec<String>,
}

/// The environment variable naming the topic.
pub const TOPIC_VARIABLE: &str = "TOPIC_ARN";
/// The environment variable naming the ledger table.
pub const LEDGER_VARIABLE: &str = shared::config::LEDGER_TABLE_VARIABLE;
/// The environment variable holding the notify policy, as JSON.
pub const NOTIFY_VARIABLE: &str = "NOTIFY_ON";
/// The environment variable naming the pull-request validation project.
pub const PULL_REQUEST_PROJECT_VARIABLE: &str = "PR_VALIDATION_PROJECT";
/// The environment variable setting the ledger claims' lease, in seconds (default 120).
pub const LEASE_VARIABLE: &str = shared::config::LEDGER_LEASE_VARIABLE;
/// The environment variable bounding the history search.
pub const HISTORY_VARIABLE: &str = "HISTORY_DEPTH";
/// The environment variable listing the projects a sweep looks at, comma-separated.
pub const PROJECTS_VARIABLE: &str = "BUILD_PROJECTS";

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);
        let topic_arn = settings.sns_topic_arn(TOPIC_VARIABLE)?;
        let ledger = settings.ledger()?;
        let notify = match settings.optional(NOTIFY_VARIABLE) {
            None => NotifyPolicy::default(),
            Some(_) => {
                let mut raw: BTreeMap<String, Vec<NotifyOn>> = settings.json(NOTIFY_VARIABLE)?;
                let default = raw
                    .remove("*")
                    .unwrap_or_else(|| DEFAULT_NOTIFY_ON.to_vec());
                NotifyPolicy {
                    default,
                    projects: raw,
                }
            }
        };
        let history_depth = settings.parsed_or(HISTORY_VARIABLE, 25_usize)?;
        if !(1..=500).contains(&history_depth) {
            return Err(ConfigError::new(
                HISTORY_VARIABLE,
                "must be between 1 and 500",
            ));
        }
        let sweep_projects = comma_list(&settings.optional(PROJECTS_VARIABLE).unwrap_or_default());
        if let Some(bad) = sweep_projects.iter().find(|p| !is_project_name(p)) {
            return Err(ConfigError::new(
                PROJECTS_VARIABLE,
                format!("{bad:?} is not a CodeBuild project name"),
            ));
        }
        Ok(Self {
            topic_arn,
            ledger_table: ledger.table,
            ledger_lease: ledger.lease,
            notify,
            pull_request_project: settings.optional(PULL_REQUEST_PROJECT_VARIABLE),
            history_depth,
            sweep_projects,
            sweep_window: SweepWindow::from_settings(&settings)?,
            report_groups: shared::reports::groups_from_settings(&settings)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:builds";

    #[test]
    fn defaults_notify_failures_stops_timeouts_and_fixes() {
        let config = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
        ]))
        .unwrap();
        assert_eq!(config.notify.for_project("anything"), DEFAULT_NOTIFY_ON);
        assert_eq!(config.history_depth, 25);
        assert_eq!(config.ledger_lease, std::time::Duration::from_secs(120));
        assert_eq!(config.pull_request_project, None);
        assert!(
            config.sweep_projects.is_empty(),
            "no sweep without projects"
        );
        assert_eq!(config.sweep_window, SweepWindow::default());
        assert!(config.report_groups.is_empty(), "every report");
    }

    #[test]
    fn a_sweep_looks_at_the_listed_projects() {
        let config = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
            (PROJECTS_VARIABLE, "shop-image, shop-docs"),
        ]))
        .unwrap();
        assert_eq!(config.sweep_projects, ["shop-image", "shop-docs"]);
    }

    #[test]
    fn the_policy_is_per_project_with_a_default() {
        let config = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
            (
                NOTIFY_VARIABLE,
                r#"{"*": ["FAILED"], "shop-image": ["FAILED", "SUCCEEDED"]}"#,
            ),
        ]))
        .unwrap();
        assert_eq!(config.notify.for_project("other"), [NotifyOn::Failed]);
        assert_eq!(
            config.notify.for_project("shop-image"),
            [NotifyOn::Failed, NotifyOn::Succeeded]
        );
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (
                        shared::reports::GROUPS_VARIABLE,
                        "shop-image-tests,report/x",
                    ),
                ],
                shared::reports::GROUPS_VARIABLE,
            ),
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (PROJECTS_VARIABLE, "shop-image,shop image"),
                ],
                PROJECTS_VARIABLE,
            ),
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (shared::events::schedule::WINDOW_VARIABLE, "1"),
                ],
                shared::events::schedule::WINDOW_VARIABLE,
            ),
            (&[(LEDGER_VARIABLE, "l")], TOPIC_VARIABLE),
            (
                &[(TOPIC_VARIABLE, "builds"), (LEDGER_VARIABLE, "l")],
                TOPIC_VARIABLE,
            ),
            (&[(TOPIC_VARIABLE, TOPIC)], LEDGER_VARIABLE),
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (NOTIFY_VARIABLE, r#"{"*": ["BROKEN"]}"#),
                ],
                NOTIFY_VARIABLE,
            ),
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (HISTORY_VARIABLE, "0"),
                ],
                HISTORY_VARIABLE,
            ),
            (
                &[
                    (TOPIC_VARIABLE, TOPIC),
                    (LEDGER_VARIABLE, "l"),
                    (LEASE_VARIABLE, "0"),
                ],
                LEASE_VARIABLE,
            ),
        ];
        for (pairs, variable) in cases {
            let error = Config::from_lookup(map_lookup(pairs)).unwrap_err();
            assert_eq!(error.variable(), variable, "{error}");
        }
    }
}
