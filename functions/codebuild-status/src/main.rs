use std::time::Duration;

use codebuild_status::config::Config;
use codebuild_status::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::{CodeBuild, DynamoLedger, SnsTopic, load_sdk_config};
use shared::runtime::{log_failure, report_init_error};

/// A claim older than the function's longest run can be taken over by a retry.
const LEDGER_LEASE: Duration = Duration::from_secs(120);
/// EventBridge and Lambda give up on an event within a day; keep records a week.
const LEDGER_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = load_sdk_config().await;
    let deps = Deps::new(
        CodeBuild::new(aws_sdk_codebuild::Client::new(&sdk)),
        SnsTopic::new(aws_sdk_sns::Client::new(&sdk), config.topic_arn.clone()),
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.ledger_table.clone(),
            LEDGER_LEASE,
            LEDGER_RETENTION,
        ),
        config,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        handler::handle(&deps, event.payload)
            .await
            .inspect_err(log_failure)
    }))
    .await
}
