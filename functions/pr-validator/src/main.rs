use lambda_runtime::{LambdaEvent, service_fn};
use pr_validator::config::Config;
use pr_validator::handler::{self, Deps};
use serde_json::Value;
use shared::aws::{CodeBuild, CodeCommit, load_sdk_config};
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
        CodeCommit::new(aws_sdk_codecommit::Client::new(&sdk)),
        CodeBuild::new(aws_sdk_codebuild::Client::new(&sdk)),
        config,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        handler::handle(&deps, event.payload)
            .await
            .inspect_err(log_failure)
    }))
    .await
}
