//! What every function of the CI/CD-to-EKS backend shares: configuration lookup, telemetry, the
//! typed event details `aws_lambda_events` lacks, the capability traits ("ports") the handlers are
//! written against, their AWS adapters, and the error types Lambda reports.
//!
//! Handlers depend on the traits in [`ports`], never on an SDK client directly, so their decisions
//! are tested with mocks and their I/O with the local emulators.

pub mod approval_link;
pub mod aws;
pub mod config;
pub mod deploy_contract;
pub mod emf;
pub mod error;
pub mod events;
pub mod glob;
pub mod ports;
pub mod reports;
pub mod runtime;
pub mod telemetry;
pub mod text;

pub use error::{ConfigError, FunctionError, InvalidEvent, UpstreamError};
