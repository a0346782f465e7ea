//! Settings of eks-deploy, read once per cold start.

use std::time::Duration;

use shared::ConfigError;
use shared::config::{Settings, env_lookup};

use crate::cluster::RetryPolicy;

/// Everything eks-deploy needs besides the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Roll back to the previous image when a rollout fails, unless the parameters say otherwise.
    pub rollback_on_failure: bool,
    /// Replaces the API server endpoint DescribeCluster gives (a local API server).
    pub api_url_override: Option<String>,
    /// Time kept before Lambda's deadline to report to CodePipeline.
    pub deadline_margin: Duration,
    /// The longest a rollout may take, over all continuations, before it counts as failed.
    pub max_rollout: Duration,
    /// How Kubernetes API calls are retried.
    pub retry: RetryPolicy,
    /// How long a scan still in progress is waited for, over all continuations.
    pub scan_wait: Duration,
    /// How often a scan in progress is asked about.
    pub scan_poll: Duration,
    /// How often the alarms are read while baking (never under 10 s).
    pub alarm_read: Duration,
}

/// The longest `MAX_ROLLOUT_SECONDS` may be: a CodePipeline Lambda invoke action runs at most
/// 24 h, and an hour of it stays for the invocations in between and the reports.
pub const MAX_ROLLOUT_CEILING: u64 = 82_800;

/// Variable names.
pub mod variables {
    /// `true` (default) or `false`.
    pub const ROLLBACK_ON_FAILURE: &str = "ROLLBACK_ON_FAILURE";
    /// An `https://` URL; for local runs against the Kubernetes emulator.
    pub const KUBERNETES_API_URL: &str = "KUBERNETES_API_URL";
    /// Seconds, default 20.
    pub const DEADLINE_MARGIN_SECONDS: &str = "DEADLINE_MARGIN_SECONDS";
    /// Seconds, default 3300, at most 82800 (23 h): how long the rollouts of a release may take
    /// in all; its bakes come on top, and bakes plus this must fit in the 24 h a CodePipeline
    /// action may run.
    pub const MAX_ROLLOUT_SECONDS: &str = "MAX_ROLLOUT_SECONDS";
    /// Seconds, default 1800: how long the scan gate waits for a scan in progress.
    pub const SCAN_WAIT_SECONDS: &str = "SCAN_WAIT_SECONDS";
    /// Seconds, default 30: how often a scan in progress is asked about.
    pub const SCAN_POLL_SECONDS: &str = "SCAN_POLL_SECONDS";
    /// Seconds, default 10, 10 to 300: how often alarms are read while baking.
    pub const ALARM_READ_SECONDS: &str = "ALARM_READ_SECONDS";
    /// Attempts per Kubernetes API call, default 5.
    pub const KUBERNETES_RETRY_ATTEMPTS: &str = "KUBERNETES_RETRY_ATTEMPTS";
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use variables::*;
        let settings = Settings::new(lookup);
        let api_url_override = settings.optional(KUBERNETES_API_URL);
        if let Some(url) = &api_url_override
            && !url.starts_with("https://")
        {
            return Err(ConfigError::new(
                KUBERNETES_API_URL,
                "must be an https:// URL",
            ));
        }
        let margin = settings.parsed_or(DEADLINE_MARGIN_SECONDS, 20_u64)?;
        let max_rollout =
            settings.seconds_or(MAX_ROLLOUT_SECONDS, 3300, 1..=MAX_ROLLOUT_CEILING)?;
        let attempts = settings.parsed_or(KUBERNETES_RETRY_ATTEMPTS, 5_u32)?;
        if !(1..=10).contains(&attempts) {
            return Err(ConfigError::new(
                KUBERNETES_RETRY_ATTEMPTS,
                "must be between 1 and 10",
            ));
        }
        Ok(Self {
            rollback_on_failure: settings.parsed_or(ROLLBACK_ON_FAILURE, true)?,
            api_url_override,
            deadline_margin: Duration::from_secs(margin),
            max_rollout,
            retry: RetryPolicy {
                attempts,
                ..RetryPolicy::default()
            },
            scan_wait: settings.seconds_or(SCAN_WAIT_SECONDS, 1800, 0..=MAX_ROLLOUT_CEILING)?,
            scan_poll: settings.seconds_or(SCAN_POLL_SECONDS, 30, 1..=600)?,
            alarm_read: settings.seconds_or(ALARM_READ_SECONDS, 10, 10..=300)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    #[test]
    fn defaults_roll_back_and_keep_twenty_seconds() {
        let config = Config::from_lookup(map_lookup(&[])).unwrap();
        assert!(config.rollback_on_failure);
        assert_eq!(config.deadline_margin, Duration::from_secs(20));
        assert_eq!(config.max_rollout, Duration::from_secs(3300));
        assert_eq!(config.api_url_override, None);
        assert_eq!(config.retry.attempts, 5);
        assert_eq!(config.scan_wait, Duration::from_secs(1800));
        assert_eq!(config.scan_poll, Duration::from_secs(30));
        assert_eq!(config.alarm_read, Duration::from_secs(10));
    }

    #[test]
    fn rollouts_may_take_up_to_twenty_three_hours_and_alarms_are_never_read_faster_than_ten_seconds()
     {
        let config =
            Config::from_lookup(map_lookup(&[(variables::MAX_ROLLOUT_SECONDS, "82800")])).unwrap();
        assert_eq!(config.max_rollout, Duration::from_secs(82_800));
        for (name, value) in [
            (variables::MAX_ROLLOUT_SECONDS, "82801"),
            (variables::ALARM_READ_SECONDS, "9"),
            (variables::ALARM_READ_SECONDS, "301"),
            (variables::SCAN_POLL_SECONDS, "0"),
        ] {
            let error = Config::from_lookup(map_lookup(&[(name, value)])).unwrap_err();
            assert_eq!(error.variable(), name, "{error}");
        }
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (name, value) in [
            (variables::ROLLBACK_ON_FAILURE, "maybe"),
            (variables::KUBERNETES_API_URL, "http://127.0.0.1:6443"),
            (variables::DEADLINE_MARGIN_SECONDS, "-3"),
            (variables::MAX_ROLLOUT_SECONDS, "0"),
            (variables::KUBERNETES_RETRY_ATTEMPTS, "99"),
        ] {
            let error = Config::from_lookup(map_lookup(&[(name, value)])).unwrap_err();
            assert_eq!(error.variable(), name, "{error}");
        }
    }
}
