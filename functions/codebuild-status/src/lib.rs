//! codebuild-status: tells people, through SNS, what happened to a pipeline build, in a message
//! they can act on without opening the console.
//!
//! Triggered by EventBridge `CodeBuild Build State Change` events of pipeline builds. Failed,
//! stopped and timed-out builds notify; a success notifies only when it fixes the branch (the
//! previous completed build of the same project and branch had failed). Which statuses notify is
//! configurable per project. Pull-request builds are pr-validator's to report.

pub mod config;
pub mod handler;
pub mod message;
