//! Settings read from the environment through a lookup function.
//!
//! Each function's `Config::from_lookup` takes any `Fn(&str) -> Option<String>`; `from_env` passes
//! the process environment. Tests pass a map, so they never mutate the process environment (which
//! is shared by every test thread).

use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::ConfigError;

/// Typed access to named settings, each failure naming its variable.
#[derive(Debug, Clone, Copy)]
pub struct Settings<F> {
    lookup: F,
}

impl<F> Settings<F>
where
    F: Fn(&str) -> Option<String>,
{
    /// Settings answered by `lookup`.
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value of `name`, or `None` when it is unset or blank (CloudFormation cannot unset a
    /// variable once a parameter fills it, so blank means unset).
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name`; a missing or blank value is an error naming it.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    }

    /// `name` parsed with [`FromStr`], or `default` when unset.
    pub fn parsed_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|error| ConfigError::new(name, format!("cannot parse {raw:?}: {error}"))),
        }
    }

    /// `name` in whole seconds within `range`, or `default` when unset.
    pub fn seconds_or(
        &self,
        name: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<std::time::Duration, ConfigError> {
        let seconds = self.parsed_or(name, default)?;
        if !range.contains(&seconds) {
            return Err(ConfigError::new(
                name,
                format!(
                    "must be between {} and {} seconds",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(std::time::Duration::from_secs(seconds))
    }

    /// `name` holding JSON, deserialized into `T`; the error gives the JSON path at fault.
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let raw = self.required(name)?;
        let deserializer = &mut serde_json::Deserializer::from_str(&raw);
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." {
                ConfigError::new(name, format!("invalid JSON: {inner}"))
            } else {
                ConfigError::new(name, format!("invalid JSON at {path}: {inner}"))
            }
        })
    }
}

/// The variable naming the DynamoDB table a function records the effects it produced in (see
/// [`crate::ports::Ledger`]): the same name in every function that has one.
pub const LEDGER_TABLE_VARIABLE: &str = "LEDGER_TABLE";
/// The variable setting the ledger claims' lease, in seconds: longer than the function runs,
/// shorter than Lambda's second retry (about three minutes after the event).
pub const LEDGER_LEASE_VARIABLE: &str = "LEDGER_LEASE_SECONDS";
/// The lease when [`LEDGER_LEASE_VARIABLE`] is unset, in seconds.
pub const DEFAULT_LEDGER_LEASE_SECONDS: u64 = 120;

/// Where a function records the effects it produced, and how long a claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    /// The DynamoDB table.
    pub table: String,
    /// How long a claim holds before a retry may take it over.
    pub lease: Duration,
}

impl<F> Settings<F>
where
    F: Fn(&str) -> Option<String>,
{
    /// `name` holding an SNS topic ARN (`arn:<partition>:sns:<region>:<account>:<topic>`):
    /// checked at cold start, so a topic name or another service's ARN is a configuration error
    /// naming the variable rather than an `InvalidParameter` on the first message.
    pub fn sns_topic_arn(&self, name: &str) -> Result<String, ConfigError> {
        let arn = self.required(name)?;
        let parts: Vec<&str> = arn.split(':').collect();
        let fits = parts.len() == 6
            && parts[0] == "arn"
            && !parts[1].is_empty()
            && parts[2] == "sns"
            && parts[3..].iter().all(|part| !part.is_empty());
        if !fits {
            return Err(ConfigError::new(
                name,
                format!("{arn:?} is not an SNS topic ARN"),
            ));
        }
        Ok(arn)
    }

    /// The ledger's table ([`LEDGER_TABLE_VARIABLE`], required) and lease
    /// ([`LEDGER_LEASE_VARIABLE`], 1 to 900 seconds, default 120).
    pub fn ledger(&self) -> Result<LedgerSettings, ConfigError> {
        Ok(LedgerSettings {
            table: self.required(LEDGER_TABLE_VARIABLE)?,
            lease: self.seconds_or(LEDGER_LEASE_VARIABLE, DEFAULT_LEDGER_LEASE_SECONDS, 1..=900)?,
        })
    }
}

/// The items of a comma-separated list, trimmed, blanks left out.
pub fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `name` is a CodeBuild project name CodeBuild takes: checked at cold start, so a typo
/// is a clear configuration error rather than a ResourceNotFoundException on the first event.
pub fn is_project_name(name: &str) -> bool {
    (2..=255).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Looks settings up in the process environment.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A lookup over fixed pairs, for tests and tools.
pub fn map_lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Route {
        pipeline: String,
    }

    #[test]
    fn a_missing_setting_names_its_variable() {
        let settings = Settings::new(map_lookup(&[]));
        let error = settings.required("PIPELINE_ROUTES").unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration PIPELINE_ROUTES: is not set"
        );
    }

    #[test]
    fn a_blank_setting_counts_as_unset() {
        let settings = Settings::new(map_lookup(&[("TOPIC_ARN", "  ")]));
        assert_eq!(settings.optional("TOPIC_ARN"), None);
        assert!(settings.required("TOPIC_ARN").is_err());
    }

    #[test]
    fn values_are_trimmed() {
        let settings = Settings::new(map_lookup(&[("TOPIC_ARN", " arn:aws:sns:x \n")]));
        assert_eq!(settings.required("TOPIC_ARN").unwrap(), "arn:aws:sns:x");
    }

    #[test]
    fn parsed_settings_fall_back_to_their_default_and_reject_garbage() {
        let settings = Settings::new(map_lookup(&[("MAX_ATTEMPTS", "five")]));
        assert_eq!(settings.parsed_or("TIMEOUT_SECONDS", 30_u32).unwrap(), 30);
        let error = settings.parsed_or("MAX_ATTEMPTS", 3_u32).unwrap_err();
        assert_eq!(error.variable(), "MAX_ATTEMPTS");
        assert!(error.reason().contains("\"five\""), "{error}");
    }

    #[test]
    fn json_errors_point_at_the_path() {
        let settings = Settings::new(map_lookup(&[(
            "ROUTES",
            r#"[{"pipeline":"a"},{"pipe":"b"}]"#,
        )]));
        let error = settings.json::<Vec<Route>>("ROUTES").unwrap_err();
        assert_eq!(error.variable(), "ROUTES");
        assert!(error.reason().starts_with("invalid JSON at [1]"), "{error}");
        assert!(error.reason().contains("unknown field `pipe`"), "{error}");
    }

    #[test]
    fn topic_arns_are_checked_and_named() {
        let settings = Settings::new(map_lookup(&[
            ("GOOD", "arn:aws-cn:sns:cn-north-1:123456789012:builds"),
            ("NAME", "builds"),
            ("QUEUE", "arn:aws:sqs:us-east-1:123456789012:builds"),
            ("SHORT", "arn:aws:sns:us-east-1::builds"),
        ]));
        assert_eq!(
            settings.sns_topic_arn("GOOD").unwrap(),
            "arn:aws-cn:sns:cn-north-1:123456789012:builds"
        );
        for name in ["NAME", "QUEUE", "SHORT", "UNSET"] {
            assert_eq!(settings.sns_topic_arn(name).unwrap_err().variable(), name);
        }
    }

    #[test]
    fn the_ledger_has_a_table_and_a_bounded_lease() {
        let settings = Settings::new(map_lookup(&[(LEDGER_TABLE_VARIABLE, "ledger")]));
        assert_eq!(
            settings.ledger().unwrap(),
            LedgerSettings {
                table: "ledger".into(),
                lease: Duration::from_secs(120)
            }
        );
        let settings = Settings::new(map_lookup(&[
            (LEDGER_TABLE_VARIABLE, "ledger"),
            (LEDGER_LEASE_VARIABLE, "901"),
        ]));
        assert_eq!(
            settings.ledger().unwrap_err().variable(),
            LEDGER_LEASE_VARIABLE
        );
        let settings = Settings::new(map_lookup(&[]));
        assert_eq!(
            settings.ledger().unwrap_err().variable(),
            LEDGER_TABLE_VARIABLE
        );
    }

    #[test]
    fn json_settings_deserialize() {
        let settings = Settings::new(map_lookup(&[("ROUTES", r#"[{"pipeline":"a"}]"#)]));
        let routes: Vec<Route> = settings.json("ROUTES").unwrap();
        assert_eq!(
            routes,
            vec![Route {
                pipeline: "a".into()
            }]
        );
    }
}
