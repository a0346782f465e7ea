#[cfg(feature = "aws")]
use aws_config::SdkConfig;

#[cfg(feature = "aws")]
use super::upstream;
#[cfg(feature = "aws")]
use crate::approval_link::SigningKey;
#[cfg(feature = "aws")]
use crate::error::{ConfigError, FunctionError, UpstreamError};

/// Where the approval links' signing key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A Secrets Manager secret (name or ARN); its `SecretString` is the key. CloudFormation can
    /// generate one (`GenerateSecretString`), so this is what the template uses.
    SecretsManager(String),
    /// An SSM Parameter Store parameter (name or ARN), normally a `SecureString`.
    Parameter(String),
}

impl KeySource {
    /// Reads a setting naming the key: a Secrets Manager or SSM parameter ARN, `secretsmanager:NAME`,
    /// `ssm:NAME`, or a parameter name starting with `/`.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let setting = setting.trim();
        if let Some(name) = setting.strip_prefix("secretsmanager:") {
            return non_empty(name).map(Self::SecretsManager);
        }
        if let Some(name) = setting.strip_prefix("ssm:") {
            return non_empty(name).map(Self::Parameter);
        }
        if setting.starts_with("arn:") {
            return match setting.split(':').nth(2) {
                Some("secretsmanager") => Ok(Self::SecretsManager(setting.to_owned())),
                Some("ssm") if setting.contains(":parameter/") => {
                    Ok(Self::Parameter(setting.to_owned()))
                }
                _ => Err(format!(
                    "{setting:?} is neither a Secrets Manager secret nor an SSM parameter ARN"
                )),
            };
        }
        if setting.starts_with('/') {
            return Ok(Self::Parameter(setting.to_owned()));
        }
        Err(format!(
            "{setting:?}: give a secret or parameter ARN, secretsmanager:NAME, ssm:NAME or /parameter/name"
        ))
    }
}

fn non_empty(name: &str) -> Result<String, String> {
    if name.is_empty() {
        Err("the name after the prefix is empty".into())
    } else {
        Ok(name.to_owned())
    }
}

#[cfg(feature = "aws")]
/// Reads the signing key from `source`, once per cold start. `variable` names the setting, for
/// the `Config` error a too-short or empty key gives. The key itself is never logged.
pub async fn load_signing_key(
    sdk: &SdkConfig,
    source: &KeySource,
    variable: &str,
) -> Result<SigningKey, FunctionError> {
    let bytes = match source {
        KeySource::SecretsManager(id) => {
            let output = aws_sdk_secretsmanager::Client::new(sdk)
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|error| upstream("SecretsManager", "GetSecretValue", error))?;
            match (output.secret_string(), output.secret_binary()) {
                (Some(text), _) => text.trim().as_bytes().to_vec(),
                (None, Some(binary)) => binary.as_ref().to_vec(),
                (None, None) => Vec::new(),
            }
        }
        KeySource::Parameter(name) => {
            let output = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|error| upstream("SSM", "GetParameter", error))?;
            output
                .parameter()
                .and_then(|parameter| parameter.value())
                .map(|value| value.trim().as_bytes().to_vec())
                .ok_or_else(|| {
                    UpstreamError::new("SSM", "GetParameter", None, "the parameter has no value")
                })?
        }
    };
    SigningKey::new(&bytes).map_err(|error| ConfigError::new(variable, error.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_are_told_apart_by_prefix() {
        let cases = [
            (
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:approval-key-AbCdEf",
                KeySource::SecretsManager(
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:approval-key-AbCdEf"
                        .into(),
                ),
            ),
            (
                "arn:aws:ssm:us-east-1:123456789012:parameter/cicd/approval-key",
                KeySource::Parameter(
                    "arn:aws:ssm:us-east-1:123456789012:parameter/cicd/approval-key".into(),
                ),
            ),
            (
                "secretsmanager:approval-key",
                KeySource::SecretsManager("approval-key".into()),
            ),
            (
                "ssm:approval-key",
                KeySource::Parameter("approval-key".into()),
            ),
            (
                "/cicd/approval-key",
                KeySource::Parameter("/cicd/approval-key".into()),
            ),
        ];
        for (setting, expected) in cases {
            assert_eq!(KeySource::parse(setting).unwrap(), expected, "{setting}");
        }
        for bad in ["approval-key", "arn:aws:s3:::bucket/key", "ssm:", ""] {
            assert!(KeySource::parse(bad).is_err(), "{bad}");
        }
    }
}
