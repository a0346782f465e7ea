//! delivery-events: tells how a pipeline execution ended, in plain words.
//!
//! Triggered by EventBridge `CodePipeline Pipeline/Stage/Action Execution State Change` events
//! of the routed pipelines; the execution's own end tells. A deploy (with its environment, image
//! digest, commit, approver and push-to-running time), a failure (the stage, the action, what it
//! reported, its logs), a rollback, a rejected or expired approval, a stop, a supersession: each
//! is told once per execution and end, whatever EventBridge redelivers or reorders, through SNS;
//! a deploy's end is also told on the merged pull request the deployed commit came from, and
//! counted in DORA's four keys as EMF metric lines.

pub mod config;
pub mod dora;
pub mod handler;
pub mod report;
