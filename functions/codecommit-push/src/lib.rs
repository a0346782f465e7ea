//! codecommit-push: starts the routed CodePipeline on exactly the commit a developer pushed.
//!
//! Triggered by EventBridge `CodeCommit Repository State Change` events. A push to a branch that
//! matches a route (repository + branch pattern → pipeline) starts that pipeline with
//! `sourceRevisions` pinned to the pushed commit and the event id as idempotency token.

pub mod config;
pub mod handler;
