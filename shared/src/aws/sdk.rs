//! The one SDK configuration every function loads at cold start, with its retries and time
//! limits set explicitly rather than left to the SDK's defaults.
//!
//! A throttled or failing AWS call (`ThrottlingException`, HTTP 500/502/503/504, a reset
//! connection, a timed-out attempt) is retried by the SDK in its standard mode, with exponential
//! back-off and jitter, before the handler ever sees an error. Only when every attempt failed does
//! the invocation fail with `Upstream`, and Lambda's own retries (then the dead-letter queue) take
//! over. Every effect the functions produce is idempotent or claimed in a ledger, so a retried call
//! whose first attempt did reach AWS produces nothing twice (except SNS, whose standard topics
//! cannot deduplicate: a publish whose answer was lost may be delivered twice, never lost).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;

use crate::config::{Settings, env_lookup};
use crate::error::ConfigError;

/// Variable names of the SDK settings.
pub mod variables {
    /// Attempts per AWS call, the first included (the SDK's own standard variable), 1–10.
    pub const MAX_ATTEMPTS: &str = "AWS_MAX_ATTEMPTS";
    /// The first retry's back-off ceiling in milliseconds; each next one doubles.
    pub const INITIAL_BACKOFF_MS: &str = "SDK_INITIAL_BACKOFF_MS";
    /// The longest back-off in milliseconds.
    pub const MAX_BACKOFF_MS: &str = "SDK_MAX_BACKOFF_MS";
    /// How long opening a connection may take, in milliseconds.
    pub const CONNECT_TIMEOUT_MS: &str = "SDK_CONNECT_TIMEOUT_MS";
    /// How long one attempt may take, in milliseconds: a hung call is abandoned and retried.
    pub const ATTEMPT_TIMEOUT_MS: &str = "SDK_ATTEMPT_TIMEOUT_MS";
    /// How long a call may take over all its attempts and back-offs, in milliseconds.
    pub const OPERATION_TIMEOUT_MS: &str = "SDK_OPERATION_TIMEOUT_MS";
}

/// How every AWS call is retried and bounded in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkSettings {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first retry waits a random time up to this; each next one up to twice the last.
    pub initial_backoff: Duration,
    /// No retry waits longer than this.
    pub max_backoff: Duration,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
    /// The longest a call may take, retries included.
    pub operation_timeout: Duration,
}

impl Default for SdkSettings {
    /// Three attempts, 200 ms then 400 ms of back-off at most, 3 s to connect, 5 s per attempt and
    /// 15 s per call: a throttled call gets through within a second or two, and a dead endpoint
    /// fails the invocation well within the functions' 30 s timeout, so Lambda can retry it.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

impl SdkSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(env_lookup)
    }

    /// Reads the settings through `lookup`; unset ones keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use variables::*;
        let settings = Settings::new(lookup);
        let defaults = Self::default();
        let millis = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
            let value = settings.parsed_or(name, default)?;
            if value == 0 {
                return Err(ConfigError::new(name, "must be positive"));
            }
            Ok(Duration::from_millis(value))
        };
        let max_attempts = settings.parsed_or(MAX_ATTEMPTS, defaults.max_attempts)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::new(MAX_ATTEMPTS, "must be between 1 and 10"));
        }
        let parsed = Self {
            max_attempts,
            initial_backoff: millis(INITIAL_BACKOFF_MS, defaults.initial_backoff)?,
            max_backoff: millis(MAX_BACKOFF_MS, defaults.max_backoff)?,
            connect_timeout: millis(CONNECT_TIMEOUT_MS, defaults.connect_timeout)?,
            attempt_timeout: millis(ATTEMPT_TIMEOUT_MS, defaults.attempt_timeout)?,
            operation_timeout: millis(OPERATION_TIMEOUT_MS, defaults.operation_timeout)?,
        };
        if parsed.initial_backoff > parsed.max_backoff {
            return Err(ConfigError::new(
                INITIAL_BACKOFF_MS,
                format!("must not exceed {MAX_BACKOFF_MS}"),
            ));
        }
        if parsed.attempt_timeout > parsed.operation_timeout {
            return Err(ConfigError::new(
                ATTEMPT_TIMEOUT_MS,
                format!("must not exceed {OPERATION_TIMEOUT_MS}"),
            ));
        }
        Ok(parsed)
    }

    /// The SDK's standard retry mode with these attempts and back-offs.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// These time limits.
    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    /// Stalled-stream protection off. It watches the throughput of every request and response
    /// body, poll by poll, with a timer of its own: made for large S3 transfers, it costs every
    /// one of our calls (a few hundred bytes each way) work for nothing. A stalled answer is
    /// still abandoned and retried: the attempt timeout bounds it.
    pub fn stalled_stream_protection(&self) -> StalledStreamProtectionConfig {
        StalledStreamProtectionConfig::disabled()
    }
}

/// Loads the shared SDK configuration once per cold start; every client is built from it.
/// Endpoints, credentials and region come from the SDK's standard settings; retries and time
/// limits from [`SdkSettings`], whose malformed values are a `Config` error naming the variable.
pub async fn load_sdk_config() -> Result<aws_config::SdkConfig, ConfigError> {
    let settings = SdkSettings::from_env()?;
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .retry_config(settings.retry_config())
        .timeout_config(settings.timeout_config())
        .stalled_stream_protection(settings.stalled_stream_protection())
        .load()
        .await)
}

#[cfg(test)]
mod tests {
    use aws_config::retry::RetryMode;

    use super::*;
    use crate::config::map_lookup;

    #[test]
    fn defaults_retry_three_times_in_standard_mode_within_bounded_time() {
        let settings = SdkSettings::from_lookup(map_lookup(&[])).unwrap();
        assert_eq!(settings, SdkSettings::default());
        let retry = settings.retry_config();
        assert_eq!(retry.mode(), RetryMode::Standard);
        assert_eq!(retry.max_attempts(), 3);
        assert_eq!(retry.initial_backoff(), Duration::from_millis(200));
        let timeouts = settings.timeout_config();
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(15)));
        // A stalled answer is bounded by the attempt timeout, not by the throughput monitor.
        assert!(!settings.stalled_stream_protection().is_enabled());
    }

    #[test]
    fn settings_are_read_from_their_variables() {
        use variables::*;
        let settings = SdkSettings::from_lookup(map_lookup(&[
            (MAX_ATTEMPTS, "5"),
            (INITIAL_BACKOFF_MS, "20"),
            (MAX_BACKOFF_MS, "100"),
            (CONNECT_TIMEOUT_MS, "500"),
            (ATTEMPT_TIMEOUT_MS, "800"),
            (OPERATION_TIMEOUT_MS, "4000"),
        ]))
        .unwrap();
        assert_eq!(settings.max_attempts, 5);
        assert_eq!(settings.initial_backoff, Duration::from_millis(20));
        assert_eq!(settings.max_backoff, Duration::from_millis(100));
        assert_eq!(settings.attempt_timeout, Duration::from_millis(800));
        assert_eq!(settings.operation_timeout, Duration::from_secs(4));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        use variables::*;
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[(MAX_ATTEMPTS, "0")], MAX_ATTEMPTS),
            (&[(MAX_ATTEMPTS, "many")], MAX_ATTEMPTS),
            (&[(ATTEMPT_TIMEOUT_MS, "0")], ATTEMPT_TIMEOUT_MS),
            (&[(CONNECT_TIMEOUT_MS, "-1")], CONNECT_TIMEOUT_MS),
            (
                &[(INITIAL_BACKOFF_MS, "900"), (MAX_BACKOFF_MS, "100")],
                INITIAL_BACKOFF_MS,
            ),
            (
                &[(ATTEMPT_TIMEOUT_MS, "9000"), (OPERATION_TIMEOUT_MS, "1000")],
                ATTEMPT_TIMEOUT_MS,
            ),
        ];
        for (pairs, variable) in cases {
            let error = SdkSettings::from_lookup(map_lookup(pairs)).unwrap_err();
            assert_eq!(error.variable(), variable, "{error}");
        }
    }
}
