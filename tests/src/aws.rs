//! AWS SDK clients pointed at the emulators, for test set-up and assertions.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::Emulators;

/// An SDK configuration for the emulators: static credentials, no retries.
pub async fn sdk_config(emulators: &Emulators) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(emulators.region.clone()))
        .endpoint_url(&emulators.aws.endpoint)
        .credentials_provider(Credentials::new(
            &emulators.aws.access_key_id,
            &emulators.aws.secret_access_key,
            None,
            None,
            "emulator",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}
