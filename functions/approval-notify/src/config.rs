//! Settings of approval-notify, read once per cold start.

use shared::ConfigError;
use shared::approval_link::Approver;
use shared::aws::KeySource;
use shared::config::{Settings, env_lookup};

/// The environment variable naming the approvers' SNS topic.
pub const TOPIC_VARIABLE: &str = "APPROVERS_TOPIC_ARN";
/// The environment variable listing the approvers.
pub const APPROVERS_VARIABLE: &str = "APPROVERS";
/// The environment variable holding approval-callback's Function URL.
pub const CALLBACK_VARIABLE: &str = "CALLBACK_URL";
/// The environment variable naming the signing key's secret or parameter.
pub const SIGNING_KEY_VARIABLE: &str = "SIGNING_KEY";
/// The environment variable naming the ledger table.
pub const LEDGER_VARIABLE: &str = shared::config::LEDGER_TABLE_VARIABLE;
/// The environment variable setting the ledger claims' lease, in seconds (default 120).
pub const LEASE_VARIABLE: &str = shared::config::LEDGER_LEASE_VARIABLE;

/// Everything approval-notify needs besides the event.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the approvers' emails are published.
    pub topic_arn: String,
    /// Who gets links, in the order configured, without duplicates.
    pub approvers: Vec<Approver>,
    /// approval-callback's Function URL, which the links point to.
    pub callback_url: String,
    /// Where the signing key is kept.
    pub signing_key: KeySource,
    /// The DynamoDB table recording emails already sent.
    pub ledger_table: String,
    /// How long a claim in the ledger holds before a retry may take it over: longer than the
    /// function runs, shorter than Lambda's second retry (about three minutes after the event).
    pub ledger_lease: std::time::Duration,
}

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
        let callback_url = settings.required(CALLBACK_VARIABLE)?;
        check_callback_url(&callback_url)
            .map_err(|reason| ConfigError::new(CALLBACK_VARIABLE, reason))?;
        let signing_key = KeySource::parse(&settings.required(SIGNING_KEY_VARIABLE)?)
            .map_err(|reason| ConfigError::new(SIGNING_KEY_VARIABLE, reason))?;
        Ok(Self {
            topic_arn,
            approvers: approvers(&settings.required(APPROVERS_VARIABLE)?)?,
            callback_url,
            signing_key,
            ledger_table: ledger.table,
            ledger_lease: ledger.lease,
        })
    }
}

/// A JSON list of addresses, or a comma-separated one (what a CloudFormation list parameter
/// joins to).
fn approvers(raw: &str) -> Result<Vec<Approver>, ConfigError> {
    let invalid = |reason: String| ConfigError::new(APPROVERS_VARIABLE, reason);
    let addresses: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|error| invalid(format!("invalid JSON: {error}")))?
    } else {
        raw.split(',').map(str::to_owned).collect()
    };
    let mut approvers: Vec<Approver> = Vec::new();
    for (index, address) in addresses.iter().enumerate() {
        if address.trim().is_empty() {
            continue;
        }
        let approver =
            Approver::new(address).map_err(|reason| invalid(format!("[{index}]: {reason}")))?;
        if !approvers.contains(&approver) {
            approvers.push(approver);
        }
    }
    if approvers.is_empty() {
        return Err(invalid(
            "no approvers: give at least one email address".into(),
        ));
    }
    Ok(approvers)
}

// Links carry approval tokens: they must travel over TLS, except to a local emulator.
fn check_callback_url(url: &str) -> Result<(), String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[") {
            return Err(format!(
                "{url:?}: links carry approval tokens, so they must use https:// (http:// only to 127.0.0.1 or localhost)"
            ));
        }
        rest
    } else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    if rest.is_empty() || rest.starts_with('/') || url.contains(['?', '#', ' ']) {
        return Err(format!(
            "{url:?}: give the Function URL itself, without query or fragment"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::config::map_lookup;

    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:approvers";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:approval-key-AbCdEf";
    const URL: &str = "https://abcdefghij.lambda-url.us-east-1.on.aws/";

    fn with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut pairs: Vec<(String, String)> = [
            (TOPIC_VARIABLE, TOPIC),
            (APPROVERS_VARIABLE, "alice@example.com, Bob@Example.com"),
            (CALLBACK_VARIABLE, URL),
            (SIGNING_KEY_VARIABLE, SECRET),
            (LEDGER_VARIABLE, "ledger"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        for (name, value) in overrides {
            pairs.retain(|(n, _)| n != name);
            pairs.push(((*name).to_owned(), (*value).to_owned()));
        }
        Config::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn approvers_come_as_a_comma_list_or_json_lower_cased_and_deduplicated() {
        let config = with(&[]).unwrap();
        let names: Vec<_> = config.approvers.iter().map(Approver::as_str).collect();
        assert_eq!(names, ["alice@example.com", "bob@example.com"]);
        assert_eq!(config.signing_key, KeySource::SecretsManager(SECRET.into()));
        assert_eq!(config.ledger_lease, std::time::Duration::from_secs(120));

        let config = with(&[(
            APPROVERS_VARIABLE,
            r#"["carol@example.com", "CAROL@example.com"]"#,
        )])
        .unwrap();
        assert_eq!(config.approvers.len(), 1);
    }

    #[test]
    fn local_http_callbacks_are_allowed_only_on_loopback() {
        assert!(
            with(&[(
                CALLBACK_VARIABLE,
                "http://127.0.0.1:9000/lambda-url/approval-callback/"
            )])
            .is_ok()
        );
        assert!(with(&[(CALLBACK_VARIABLE, "http://localhost:9000/")]).is_ok());
        for bad in [
            "http://approvals.example.com/",
            "ftp://example.com/",
            "https://",
            "https://example.com/?link=x",
        ] {
            let error = with(&[(CALLBACK_VARIABLE, bad)]).unwrap_err();
            assert_eq!(error.variable(), CALLBACK_VARIABLE, "{bad}: {error}");
        }
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[(TOPIC_VARIABLE, "approvers")], TOPIC_VARIABLE),
            (&[(LEASE_VARIABLE, "3601")], LEASE_VARIABLE),
            (&[(APPROVERS_VARIABLE, "alice")], APPROVERS_VARIABLE),
            (&[(APPROVERS_VARIABLE, " , ")], APPROVERS_VARIABLE),
            (&[(SIGNING_KEY_VARIABLE, "my-key")], SIGNING_KEY_VARIABLE),
            (&[(APPROVERS_VARIABLE, "[\"x\"")], APPROVERS_VARIABLE),
        ];
        for (overrides, variable) in cases {
            let error = with(overrides).unwrap_err();
            assert_eq!(error.variable(), variable, "{error}");
        }
        let error = Config::from_lookup(map_lookup(&[])).unwrap_err();
        assert_eq!(error.variable(), TOPIC_VARIABLE);
    }
}
