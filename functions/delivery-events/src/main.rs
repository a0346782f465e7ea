use std::time::Duration;

use delivery_events::config::Config;
use delivery_events::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::aws::{CodeCommit, CodePipeline, DynamoLedger, SnsTopic, load_sdk_config};
use shared::events::{MAX_EVENT_BYTES, RawValue, payload};
use shared::runtime::StdoutMetrics;
use shared::runtime::{log_failure, report_init_error};

/// EventBridge and Lambda give up on an event within a day; keep records a week.
const LEDGER_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

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
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.ledger.table.clone(),
        config.ledger.lease,
        LEDGER_RETENTION,
    );
    let deps = Deps {
        notifier: SnsTopic::new(aws_sdk_sns::Client::new(&sdk), config.topic_arn.clone()),
        ledger: ledger.clone(),
        pipelines: CodePipeline::new(aws_sdk_codepipeline::Client::new(&sdk)),
        pull_requests: CodeCommit::new(aws_sdk_codecommit::Client::new(&sdk)),
        merges: ledger.clone(),
        restores: ledger,
        metrics: StdoutMetrics,
        config,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let outcome = match payload(&event.payload, MAX_EVENT_BYTES) {
                Ok(payload) => handler::handle(deps, payload).await,
                Err(invalid) => Err(invalid.into()),
            };
            outcome.inspect_err(log_failure)
        },
    ))
    .await
}
