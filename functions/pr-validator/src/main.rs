use lambda_runtime::{LambdaEvent, service_fn};
use pr_validator::config::Config;
use pr_validator::handler::{self, Deps};
use std::time::Duration;

use shared::aws::{CodeBuild, CodeCommit, DynamoLedger, load_sdk_config};
use shared::events::{MAX_EVENT_BYTES, RawValue, payload};
use shared::runtime::{log_failure, report_init_error};

/// A merge waits for its deploy through builds, approvals and retries: keep it a month.
const MERGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

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
    // One CodeBuild client for builds and their test reports.
    let codebuild = CodeBuild::new(aws_sdk_codebuild::Client::new(&sdk));
    let merges = config.merge_ledger.clone().map(|table| {
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
            Duration::from_secs(shared::config::DEFAULT_LEDGER_LEASE_SECONDS),
            MERGE_RETENTION,
        )
    });
    let deps = Deps::new(
        CodeCommit::new(aws_sdk_codecommit::Client::new(&sdk)),
        codebuild.clone(),
        codebuild,
        config,
    )
    .recording_merges(merges);
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
