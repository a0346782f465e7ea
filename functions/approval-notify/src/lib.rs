//! approval-notify: mails each approver signed Approve / Reject links when a pipeline waits for
//! a manual approval.
//!
//! Triggered by the SNS message CodePipeline publishes when a manual approval action starts. For
//! each configured approver it publishes one message to the approvers' topic with the attribute
//! `approver` = their address; each approver's email subscription has a filter policy on it, so
//! everyone receives only their own links. A DynamoDB ledger keeps SNS redeliveries from mailing
//! anyone twice.

pub mod config;
pub mod email;
pub mod handler;
pub mod promotion;
