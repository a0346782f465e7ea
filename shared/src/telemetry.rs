//! Logging set up the way Lambda expects it.

/// Installs the global `tracing` subscriber. It honours Lambda's advanced logging controls:
/// `AWS_LAMBDA_LOG_FORMAT=JSON` gives one JSON object per line, and `AWS_LAMBDA_LOG_LEVEL`
/// (else `RUST_LOG`, else `INFO`) sets the level. Every invocation runs inside the runtime's span,
/// which carries its `requestId`.
///
/// Call it once, first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
