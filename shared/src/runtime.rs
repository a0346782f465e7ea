//! Start-up failures reported the way Lambda expects them, and metric lines written where Lambda
//! ships them.

use std::io::Write;

use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::{PooledClient, body::Body, build_request};

use crate::emf::MetricDocument;
use crate::error::{ErrorChain, FunctionError};
use crate::ports::Metrics;

/// Reports an error found before the first event (a bad setting, say) to the Runtime API's
/// `/init/error`, so the console and CloudWatch show its `errorType` (`Config`) and message
/// naming the variable, instead of a bare "Runtime exited". Returns the error for `main` to
/// return, which ends the process.
pub async fn report_init_error(error: FunctionError) -> lambda_runtime::Error {
    tracing::error!(
        error_type = error.error_type(),
        error = %ErrorChain(&error),
        "cannot start"
    );
    let diagnostic = Diagnostic {
        error_type: error.error_type().to_owned(),
        error_message: error.to_string(),
    };
    if let Err(report_failure) = post_init_error(&diagnostic).await {
        tracing::error!(error = %report_failure, "could not report the start-up failure to the Runtime API");
    }
    Box::new(error)
}

async fn post_init_error(diagnostic: &Diagnostic) -> Result<(), lambda_runtime::Error> {
    let body = serde_json::to_vec(diagnostic)?;
    let request = build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", &diagnostic.error_type)
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let response = PooledClient::builder().build().call(request).await?;
    if !response.status().is_success() {
        return Err(format!("the Runtime API answered {}", response.status()).into());
    }
    Ok(())
}

/// Logs a failed invocation with its stable error type and whole error chain; the runtime then
/// reports it to Lambda.
pub fn log_failure(error: &FunctionError) {
    tracing::error!(
        error_type = error.error_type(),
        error = %ErrorChain(error),
        "invocation failed"
    );
}

/// [`Metrics`] written to standard output, one document per line: in Lambda, each line is a
/// log event of the function's log group, where CloudWatch Logs finds the EMF documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutMetrics;

impl Metrics for StdoutMetrics {
    fn emit(&self, document: &MetricDocument) {
        let mut line = document.to_line();
        line.push('\n');
        // One write of the whole line under the lock: never interleaved with a log line.
        let mut out = std::io::stdout().lock();
        if let Err(error) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::warn!(error = %error, "metric line not written");
        }
    }
}
