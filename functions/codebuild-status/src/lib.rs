//! codebuild-status (in progress).
pub mod config;
