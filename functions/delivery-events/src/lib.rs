//! delivery-events: tells people, through SNS, how a pipeline execution ended, in plain words.
//!
//! Triggered by EventBridge `CodePipeline Pipeline/Stage/Action Execution State Change` events
//! of the routed pipelines. A failed execution (with the stage, the action, the error it reported
//! and its link), a stopped or superseded one, a rejected or expired approval and a deployed one
//! each notify once per execution and outcome, whatever EventBridge redelivers or reorders.

pub mod config;
pub mod handler;
