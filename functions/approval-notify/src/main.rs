use std::time::Duration;

use approval_notify::config::{Config, SIGNING_KEY_VARIABLE};
use approval_notify::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::aws::{
    CodePipeline, CodePipelineApprovals, DynamoLedger, SnsTopic, load_sdk_config, load_signing_key,
};
use shared::events::{MAX_EVENT_BYTES, RawValue, payload};
use shared::runtime::{log_failure, report_init_error};

/// Longer than any approval lives (7 days) and so than any redelivery of its notification.
const LEDGER_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

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
    // Once per cold start: every link of every invocation is signed with it.
    let key = match load_signing_key(&sdk, &config.signing_key, SIGNING_KEY_VARIABLE).await {
        Ok(key) => key,
        Err(error) => return Err(report_init_error(error).await),
    };
    let codepipeline = aws_sdk_codepipeline::Client::new(&sdk);
    let deps = Deps::new(
        CodePipelineApprovals::new(codepipeline.clone()),
        // The execution's action runs: what the approval promotes, for the email.
        CodePipeline::new(codepipeline),
        SnsTopic::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn),
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.ledger_table,
            config.ledger_lease,
            LEDGER_RETENTION,
        ),
        key,
        config,
    );
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let outcome = match payload(&event.payload, MAX_EVENT_BYTES) {
                Ok(payload) => handler::handle(deps, payload, chrono::Utc::now().timestamp()).await,
                Err(invalid) => Err(invalid.into()),
            };
            outcome.inspect_err(log_failure)
        },
    ))
    .await
}
