use codecommit_push::config::Config;
use codecommit_push::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::aws::{CodeCommit, CodePipeline, load_sdk_config};
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
    let deps = Deps::new(
        CodePipeline::new(aws_sdk_codepipeline::Client::new(&sdk)),
        CodeCommit::new(aws_sdk_codecommit::Client::new(&sdk)),
        config.routes,
    );
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
