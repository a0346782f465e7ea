//! AWS adapters of the capability traits in [`crate::ports`].
//!
//! Endpoints, credentials and region come from the SDK's standard settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`…), so the same binary runs against AWS and
//! against the local emulators; retries and time limits are set explicitly ([`SdkSettings`]).
//!
//! Everything here but [`KeySource`] needs the `aws` feature.

#[cfg(feature = "aws")]
mod approvals;
#[cfg(feature = "release-gates")]
mod cloudwatch;
#[cfg(feature = "aws")]
mod codebuild;
#[cfg(feature = "aws")]
mod codecommit;
#[cfg(feature = "aws")]
mod codepipeline;
#[cfg(feature = "aws")]
mod dynamodb;
#[cfg(feature = "release-gates")]
mod ecr;
#[cfg(feature = "kubernetes")]
mod eks;
#[cfg(feature = "aws")]
mod sdk;
mod signing_key;
#[cfg(feature = "aws")]
mod sns;
#[cfg(feature = "kubernetes")]
mod sts;

#[cfg(feature = "aws")]
pub use approvals::CodePipelineApprovals;
#[cfg(feature = "release-gates")]
pub use cloudwatch::CloudWatchAlarms;
#[cfg(feature = "aws")]
pub use codebuild::CodeBuild;
#[cfg(feature = "aws")]
pub use codecommit::CodeCommit;
#[cfg(feature = "aws")]
pub use codepipeline::CodePipeline;
#[cfg(feature = "aws")]
pub use dynamodb::DynamoLedger;
#[cfg(feature = "release-gates")]
pub use ecr::EcrRegistry;
#[cfg(feature = "kubernetes")]
pub use eks::{
    ACCESS_DENIED, ClusterEndpoint, EksClusters, EksToken, MAX_CACHED_CLIENTS, TOKEN_LIFETIME,
    TokenError, kube_client,
};
#[cfg(feature = "aws")]
pub use sdk::{SdkSettings, load_sdk_config, variables as sdk_variables};
pub use signing_key::KeySource;
#[cfg(feature = "aws")]
pub use signing_key::load_signing_key;
#[cfg(feature = "aws")]
pub use sns::SnsTopic;
#[cfg(feature = "kubernetes")]
pub use sts::{Clock, MAX_CACHED_SESSIONS, REFRESH_MARGIN, SESSION_DURATION, StsRoleSessions};

#[cfg(feature = "aws")]
use aws_smithy_runtime_api::client::result::SdkError;
#[cfg(feature = "aws")]
use aws_smithy_types::error::display::DisplayErrorContext;
#[cfg(feature = "aws")]
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[cfg(feature = "aws")]
use crate::error::UpstreamError;

#[cfg(feature = "aws")]
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
