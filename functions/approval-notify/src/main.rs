use std::time::Duration;

use approval_notify::config::{Config, SIGNING_KEY_VARIABLE};
use approval_notify::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::{
    CodePipelineApprovals, DynamoLedger, SnsTopic, load_sdk_config, load_signing_key,
};
use shared::runtime::{log_failure, report_init_error};

/// A claim not completed within this time (the invocation died) may be taken over by a retry.
const LEDGER_LEASE: Duration = Duration::from_secs(5 * 60);
/// Longer than any approval lives (7 days) and so than any redelivery of its notification.
const LEDGER_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = load_sdk_config().await;
    // Once per cold start: every link of every invocation is signed with it.
    let key = match load_signing_key(&sdk, &config.signing_key, SIGNING_KEY_VARIABLE).await {
        Ok(key) => key,
        Err(error) => return Err(report_init_error(error).await),
    };
    let deps = Deps::new(
        CodePipelineApprovals::new(aws_sdk_codepipeline::Client::new(&sdk)),
        SnsTopic::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn),
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            &config.ledger_table,
            LEDGER_LEASE,
            LEDGER_RETENTION,
        ),
        key,
        config,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        handler::handle(&deps, event.payload, chrono::Utc::now().timestamp())
            .await
            .inspect_err(log_failure)
    }))
    .await
}
