//! AWS adapters of the capability traits in [`crate::ports`].
//!
//! Endpoints, credentials, region and retries come from the SDK's standard settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_MAX_ATTEMPTS`…), so the same binary
//! runs against AWS and against the local emulators.

mod codebuild;
mod codecommit;
mod codepipeline;
mod dynamodb;
#[cfg(feature = "kubernetes")]
mod eks;
mod sns;

pub use codebuild::CodeBuild;
pub use codecommit::CodeCommit;
pub use codepipeline::CodePipeline;
pub use dynamodb::DynamoLedger;
#[cfg(feature = "kubernetes")]
pub use eks::{ClusterEndpoint, EksClusters, EksToken, TOKEN_LIFETIME, TokenError, kube_client};
pub use sns::SnsTopic;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::UpstreamError;

/// Loads the shared SDK configuration once per cold start; every client is built from it.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Turns an SDK failure into an [`UpstreamError`] that keeps the service's error code.
pub(crate) fn upstream<E, R>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, R>,
) -> UpstreamError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.code().map(str::to_owned);
    let message = match (&error, error.message()) {
        (SdkError::ServiceError(_), Some(message)) => message.to_owned(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    UpstreamError::new(service, operation, code, message).with_source(error)
}
