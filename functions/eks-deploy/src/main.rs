use std::time::{Duration, UNIX_EPOCH};

use aws_config::Region;
use eks_deploy::config::Config;
use eks_deploy::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::ConfigError;
use shared::aws::{
    CloudWatchAlarms, CodePipeline, EcrRegistry, EksClusters, StsRoleSessions, load_sdk_config,
};
use shared::events::{MAX_EVENT_BYTES, RawValue, payload};
use shared::runtime::{log_failure, report_init_error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = match load_sdk_config().await {
        Ok(sdk) => sdk,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let (Some(credentials), Some(region)) = (
        sdk.credentials_provider(),
        sdk.region().map(Region::to_string),
    ) else {
        let error = ConfigError::new(
            "AWS_REGION",
            "no region or credentials to sign EKS tokens with",
        );
        return Err(report_init_error(error.into()).await);
    };
    // One cache of role sessions per cold start: a rollout continued over several invocations
    // reuses its execution's session until shortly before it expires.
    let roles = StsRoleSessions::new(aws_sdk_sts::Client::new(&sdk));
    let clusters = EksClusters::new(
        aws_sdk_eks::Client::new(&sdk),
        credentials,
        roles,
        region,
        config.api_url_override.clone(),
    );
    let deps = Deps::new(
        clusters,
        CodePipeline::new(aws_sdk_codepipeline::Client::new(&sdk)),
        EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk)),
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(&sdk)),
        config,
    );
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let outcome = match payload(&event.payload, MAX_EVENT_BYTES) {
                Ok(payload) => handler::handle(deps, payload, deadline).await,
                Err(invalid) => Err(invalid.into()),
            };
            outcome.inspect_err(log_failure)
        },
    ))
    .await
}
