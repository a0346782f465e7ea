//! Settings of delivery-events, read once per cold start.

use std::collections::BTreeMap;

use shared::ConfigError;
use shared::config::{LedgerSettings, Settings, env_lookup};

/// The environment a pipeline not named in `PIPELINE_ENVIRONMENTS` deploys to.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// Everything delivery-events needs besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SNS topic delivery notifications go to.
    pub topic_arn: String,
    /// The DynamoDB table recording what was told already (and the merges pr-validator
    /// recorded, and the outages of each environment), and its claims' lease.
    pub ledger: LedgerSettings,
    /// The environment each pipeline deploys to (the `environment` message attribute).
    pub environments: BTreeMap<String, String>,
}

/// The environment variable naming the topic.
pub const TOPIC_VARIABLE: &str = "TOPIC_ARN";
/// The environment variable naming the ledger table.
pub const LEDGER_VARIABLE: &str = shared::config::LEDGER_TABLE_VARIABLE;
/// The environment variable setting the ledger claims' lease, in seconds (default 120).
pub const LEASE_VARIABLE: &str = shared::config::LEDGER_LEASE_VARIABLE;
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
        let topic_arn = settings.sns_topic_arn(TOPIC_VARIABLE)?;
        let ledger = settings.ledger()?;
        let environments: BTreeMap<String, String> = match settings.optional(ENVIRONMENTS_VARIABLE)
        {
            None => BTreeMap::new(),
            Some(_) => settings.json(ENVIRONMENTS_VARIABLE)?,
        };
        // The environment is a metric dimension's value: CloudWatch takes 1 to 1024 printable
        // ASCII characters, not blank.
        if let Some((pipeline, _)) = environments.iter().find(|(_, env)| {
            env.trim().is_empty()
                || env.len() > 255
                || !env.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        }) {
            return Err(ConfigError::new(
                ENVIRONMENTS_VARIABLE,
                format!(
                    "the environment of {pipeline:?} must be 1 to 255 printable ASCII characters, not blank"
                ),
            ));
        }
        Ok(Self {
            topic_arn,
            ledger,
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
        assert_eq!(config.ledger.lease, std::time::Duration::from_secs(120));
        assert_eq!(config.ledger.table, "ledger");
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
        let error = Config::from_lookup(map_lookup(&[
            (TOPIC_VARIABLE, TOPIC),
            (LEDGER_VARIABLE, "ledger"),
            (ENVIRONMENTS_VARIABLE, r#"{"shop-main":"produção"}"#),
        ]))
        .unwrap_err();
        assert_eq!(error.variable(), ENVIRONMENTS_VARIABLE, "{error}");
        let error = Config::from_lookup(map_lookup(&[(TOPIC_VARIABLE, TOPIC)])).unwrap_err();
        assert!(error.to_string().contains(LEDGER_VARIABLE), "{error}");
    }
}
