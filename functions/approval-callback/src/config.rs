//! Settings of approval-callback, read once per cold start.

use shared::ConfigError;
use shared::aws::KeySource;
use shared::config::{Settings, env_lookup};

/// The environment variable naming the signing key's secret or parameter.
pub const SIGNING_KEY_VARIABLE: &str = "SIGNING_KEY";

/// Everything approval-callback needs besides the request.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the signing key is kept: the same key approval-notify signs with.
    pub signing_key: KeySource,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings::new(lookup);
        let signing_key = KeySource::parse(&settings.required(SIGNING_KEY_VARIABLE)?)
            .map_err(|reason| ConfigError::new(SIGNING_KEY_VARIABLE, reason))?;
        Ok(Self { signing_key })
    }
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    #[test]
    fn the_signing_key_setting_is_required_and_checked() {
        let config =
            Config::from_lookup(map_lookup(&[(SIGNING_KEY_VARIABLE, "/cicd/approval-key")]))
                .unwrap();
        assert_eq!(
            config.signing_key,
            KeySource::Parameter("/cicd/approval-key".into())
        );
        for pairs in [&[][..], &[(SIGNING_KEY_VARIABLE, "approval-key")][..]] {
            let error = Config::from_lookup(map_lookup(pairs)).unwrap_err();
            assert_eq!(error.variable(), SIGNING_KEY_VARIABLE);
        }
    }
}
