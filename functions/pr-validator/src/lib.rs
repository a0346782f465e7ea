//! pr-validator: pull-request authors on CodeCommit get a build of their exact head commit and
//! see its result on the pull request.
//!
//! Triggered by two EventBridge events:
//!
//! * `CodeCommit Pull Request State Change` (created, source branch updated, reopened) of a
//!   pull request into a configured destination: starts the validation project's build of the
//!   head commit, comments "Build started" with a link, and stops the pull request's builds of
//!   older commits still running;
//! * `CodeBuild Build State Change` of the validation project's finished builds: comments the
//!   result with a badge, the duration, what failed and links, and approves the pull request's
//!   revision on success or revokes the approval otherwise, unless the pull request has moved
//!   on to a newer commit (then the result is marked superseded and no approval changes).
//!
//! A merge is recorded under the commit it made (see [`merge`]), so that delivery-events can tell
//! the pull request when that commit is deployed.
//!
//! The build carries the pull request in its environment (`PULL_REQUEST_*` variables), so the
//! build event says which pull request and commit it was for without a lookup table, and
//! every effect is idempotent (CodeBuild's and CodeCommit's request tokens), so a redelivered
//! event or a retry never builds or comments twice.

pub mod build;
pub mod config;
pub mod handler;
pub mod merge;
pub mod message;
pub mod pull_request;
