//! Error types with a stable `errorType` for Lambda.
//!
//! CloudWatch, the dead-letter queues and the alarms see `errorType`; a Rust type name there would
//! change with every refactoring, so each failure class maps to one fixed name.

use std::fmt;

use lambda_runtime::Diagnostic;

/// Why an invocation failed. The variant is the `errorType` Lambda reports.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The event is malformed, truncated or not the kind this function handles. Retrying it
    /// cannot help.
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    /// A setting is missing or malformed. Reported at cold start, before any event is taken.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An AWS or Kubernetes API call failed. The work is not lost: the invocation fails, so
    /// Lambda's retry policy and then the dead-letter queue keep the event.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl FunctionError {
    /// The stable name Lambda reports as `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Config(_) => "Config",
            Self::Upstream(_) => "Upstream",
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Self {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// An event this function cannot act on, with the place in the event that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {message}")]
pub struct InvalidEvent {
    message: String,
}

impl InvalidEvent {
    /// An invalid event described by `message`, which should name the field at fault.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// A required field that is absent, named by its path in the event (`detail.commitId`).
    pub fn missing(path: &str) -> Self {
        Self::new(format!("missing field `{path}`"))
    }

    /// What is wrong, without the `invalid event:` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A setting that is missing or malformed, named by its environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration {variable}: {reason}")]
pub struct ConfigError {
    variable: String,
    reason: String,
}

impl ConfigError {
    /// The setting `variable` is unusable because of `reason`.
    pub fn new(variable: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            reason: reason.into(),
        }
    }

    /// The environment variable at fault.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// Why it is unusable.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A failed call to an AWS or Kubernetes API.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct UpstreamError {
    service: &'static str,
    operation: &'static str,
    code: Option<String>,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl UpstreamError {
    /// A failure of `service`'s `operation`, with the service's error code when it gave one.
    pub fn new(
        service: &'static str,
        operation: &'static str,
        code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps the underlying error as the source, for the log line's error chain.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The service that failed (`CodePipeline`, `Kubernetes`…).
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The operation that failed (`StartPipelineExecution`…).
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The service's error code (`PipelineNotFoundException`…), when it answered with one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// What went wrong, as the service said it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Renders an error and its whole chain of sources on one line, for logs.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_class_has_a_stable_error_type() {
        let cases: [(FunctionError, &str); 3] = [
            (
                InvalidEvent::missing("detail.commitId").into(),
                "InvalidEvent",
            ),
            (
                ConfigError::new("PIPELINE_ROUTES", "not set").into(),
                "Config",
            ),
            (
                UpstreamError::new("CodePipeline", "StartPipelineExecution", None, "timeout")
                    .into(),
                "Upstream",
            ),
        ];
        for (error, expected) in cases {
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, expected);
        }
    }

    #[test]
    fn the_diagnostic_message_names_the_field_at_fault() {
        let diagnostic = Diagnostic::from(FunctionError::from(InvalidEvent::missing(
            "detail.commitId",
        )));
        assert_eq!(
            diagnostic.error_message,
            "invalid event: missing field `detail.commitId`"
        );
    }

    #[test]
    fn an_upstream_error_shows_the_service_code() {
        let error = UpstreamError::new(
            "CodePipeline",
            "StartPipelineExecution",
            Some("PipelineNotFoundException".into()),
            "no pipeline x",
        );
        assert_eq!(
            error.to_string(),
            "CodePipeline StartPipelineExecution failed: PipelineNotFoundException: no pipeline x"
        );
    }

    #[test]
    fn the_error_chain_shows_every_cause() {
        let io = std::io::Error::other("connection reset");
        let error =
            UpstreamError::new("CodeCommit", "GetCommit", None, "dispatch failure").with_source(io);
        assert_eq!(
            ErrorChain(&error).to_string(),
            "CodeCommit GetCommit failed: dispatch failure: connection reset"
        );
    }
}
