use approval_callback::config::{Config, SIGNING_KEY_VARIABLE};
use approval_callback::function_url;
use approval_callback::handler::{self, Deps};
use lambda_http::{LambdaEvent, service_fn};
use shared::FunctionError;
use shared::aws::{CodePipelineApprovals, load_sdk_config, load_signing_key};
use shared::events::{MAX_REQUEST_BYTES, RawValue, payload};
use shared::runtime::{log_failure, report_init_error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = match load_sdk_config().await {
        Ok(sdk) => sdk,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    // Once per cold start: every link and form of every request is checked with it.
    let key = match load_signing_key(&sdk, &config.signing_key, SIGNING_KEY_VARIABLE).await {
        Ok(key) => key,
        Err(error) => return Err(report_init_error(error).await),
    };
    let deps = Deps::new(
        CodePipelineApprovals::new(aws_sdk_codepipeline::Client::new(&sdk)),
        key,
    );
    // Every outcome of a request, refusals and upstream failures included, is a page with its
    // own status; only a payload that is not a Function URL request fails the invocation.
    let deps = &deps;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let request =
                match payload(&event.payload, MAX_REQUEST_BYTES).and_then(function_url::parse) {
                    Ok(request) => request,
                    Err(invalid) => {
                        let error = FunctionError::from(invalid);
                        log_failure(&error);
                        return Err(error);
                    }
                };
            let now = chrono::Utc::now().timestamp();
            let mut nonce = [0_u8; 16];
            if let Err(error) = getrandom::fill(&mut nonce) {
                // Without randomness no form can be protected: refuse to serve one.
                tracing::error!(error = %error, "no randomness for the form's nonce");
                return Ok(function_url::response(handler::unavailable()));
            }
            Ok(function_url::response(
                handler::handle(deps, request, now, nonce).await,
            ))
        },
    ))
    .await
}
