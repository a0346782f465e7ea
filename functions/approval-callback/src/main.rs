use std::convert::Infallible;

use approval_callback::config::{Config, SIGNING_KEY_VARIABLE};
use approval_callback::handler::{self, Deps};
use lambda_http::{Request, service_fn};
use shared::aws::{CodePipelineApprovals, load_sdk_config, load_signing_key};
use shared::runtime::report_init_error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return Err(report_init_error(error.into()).await),
    };
    let sdk = load_sdk_config().await;
    // Once per cold start: every link and form of every request is checked with it.
    let key = match load_signing_key(&sdk, &config.signing_key, SIGNING_KEY_VARIABLE).await {
        Ok(key) => key,
        Err(error) => return Err(report_init_error(error).await),
    };
    let deps = Deps::new(
        CodePipelineApprovals::new(aws_sdk_codepipeline::Client::new(&sdk)),
        key,
    );
    // Every outcome, refusals and upstream failures included, is a page with its own status:
    // the handler never fails the invocation.
    lambda_http::run(service_fn(|request: Request| async {
        let now = chrono::Utc::now().timestamp();
        let mut nonce = [0_u8; 16];
        if let Err(error) = getrandom::fill(&mut nonce) {
            // Without randomness no form can be protected: refuse to serve one.
            tracing::error!(error = %error, "no randomness for the form's nonce");
            return Ok::<_, Infallible>(handler::unavailable());
        }
        Ok(handler::handle(&deps, request, now, nonce).await)
    }))
    .await
}
