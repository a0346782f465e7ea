use codecommit_push::config::Config;
use codecommit_push::handler::{self, Deps};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::aws::{CodeCommit, CodePipeline, load_sdk_config};
use shared::runtime::{log_failure, report_init_error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = load_sdk_config().await;
    let deps = Deps::new(
        CodePipeline::new(aws_sdk_codepipeline::Client::new(&sdk)),
        CodeCommit::new(aws_sdk_codecommit::Client::new(&sdk)),
        config.routes,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        handler::handle(&deps, event.payload)
            .await
            .inspect_err(log_failure)
    }))
    .await
}
