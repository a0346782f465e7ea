//! Settings of delivery-events, read once per cold start.

use std::collections::BTreeMap;

use shared::ConfigError;
use shared::config::{Settings, env_lookup};

/// The environment a pipeline not named in `PIPELINE_ENVIRONMENTS` deploys to.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// Everything delivery-events needs besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SNS topic delivery notifications go to.
    pub topic_arn: String,
    /// The DynamoDB table recording notifications already sent.
    pub ledger_table: String,
    /// How long a claim in the ledger holds before a retry may take it over.
    pub ledger_lease: std::time::Duration,
    /// The environment each pipeline deploys to (the `environment` message attribute).
    pub environments: BTreeMap<String, String>,
}

/// The environment variable naming the topic.
pub const TOPIC_VARIABLE: &str = "TOPIC_ARN";
/// The environment variable naming the ledger table.
pub const LEDGER_VARIABLE: &str = "LEDGER_TABLE";
/// The environment variable setting the ledger claims' lease, in seconds (default 120).
pub const LEASE_VARIABLE: &str = "LEDGER_LEASE_SECONDS";
/// The environment variable mapping pipelines to environments, as a JSON object.
pub const ENVIRONMENTS_VARIABLE: &str = "PIPELINE_ENVIRONMENTS";

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);
        let topic_arn = settings.required(TOPIC_VARIABLE)?;
        if !topic_arn.starts_with("arn:") || topic_arn.split(':').count() != 6 {
            return Err(ConfigError::new(
                TOPIC_VARIABLE,
                format!("{topic_arn:?} is not an SNS topic ARN"),
            ));
        }
        let environments: BTreeMap<String, String> = match settings.optional(ENVIRONMENTS_VARIABLE)
        {
            None => BTreeMap::new(),
            Some(_) => settings.json(ENVIRONMENTS_VARIABLE)?,
        };
        if let Some((pipeline, _)) = environments.iter().find(|(_, env)| env.trim().is_empty()) {
            return Err(ConfigError::new(
                ENVIRONMENTS_VARIABLE,
                format!("the environment of {pipeline:?} is empty"),
            ));
        }
        Ok(Self {
            topic_arn,
            ledger_table: settings.required(LEDGER_VARIABLE)?,
            ledger_lease: settings.seconds_or(LEASE_VARIABLE, 120, 1..=900)?,
            environments,
        })
    }

    /// The environment `pipeline` deploys to.
    pub fn environment_of(&self, pipeline: &str) -> &str {
        self.environments
            .get(pipeline)
            .map_or(DEFAULT_ENVIRONMENT, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:deliveries";

    #[test]
    fn pipelines_deploy_to_production_unless_mapped() {
        let config = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
            (ENVIRONMENTS_VARIABLE, r#"{"shop-release":"staging"}"#),
        ]))
        .unwrap();
        assert_eq!(config.environment_of("shop-main"), "production");
        assert_eq!(config.environment_of("shop-release"), "staging");
        assert_eq!(config.ledger_lease, std::time::Duration::from_secs(120));
    }

    #[test]
    fn bad_settings_are_named() {
        let error = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, "not-an-arn"),
            (LEDGER_VARIABLE, "ledger"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains(TOPIC_VARIABLE), "{error}");
        let error = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
            (ENVIRONMENTS_VARIABLE, r#"{"shop-main":" "}"#),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains(ENVIRONMENTS_VARIABLE), "{error}");
        let error = Config::from_lookup(map_lookup(&[(TOPIC_VARIABLE, TOPIC)])).unwrap_err();
        assert!(error.to_string().contains(LEDGER_VARIABLE), "{error}");
    }
}
