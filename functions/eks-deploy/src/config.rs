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
}

/// Variable names.
pub mod variables {
    /// `true` (default) or `false`.
    pub const ROLLBACK_ON_FAILURE: &str = "ROLLBACK_ON_FAILURE";
    /// An `https://` URL; for local runs against the Kubernetes emulator.
    pub const KUBERNETES_API_URL: &str = "KUBERNETES_API_URL";
    /// Seconds, default 20.
    pub const DEADLINE_MARGIN_SECONDS: &str = "DEADLINE_MARGIN_SECONDS";
    /// Seconds, default 3300 (CodePipeline gives a Lambda action an hour in all).
    pub const MAX_ROLLOUT_SECONDS: &str = "MAX_ROLLOUT_SECONDS";
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
        let max_rollout = settings.parsed_or(MAX_ROLLOUT_SECONDS, 3300_u64)?;
        if max_rollout == 0 {
            return Err(ConfigError::new(MAX_ROLLOUT_SECONDS, "must be positive"));
        }
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
            max_rollout: Duration::from_secs(max_rollout),
            retry: RetryPolicy {
                attempts,
                ..RetryPolicy::default()
            },
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
