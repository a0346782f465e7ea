//! An image build project, a ledger and a topic with an inbox subscribed, and codebuild-status
//! telling the topic about the project's builds.

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::aws::sdk_config;
use crate::fixtures::{self, Delivered};
use crate::{Emulators, Function, codebuild, unique};

/// The commit every build of the scenario builds.
pub const COMMIT: &str = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e";

/// An image build project, codebuild-status notifying a topic about it, and an inbox (an SQS
/// queue) subscribed to the topic without a filter.
pub struct BuildStatusScenario {
    pub emulators: Emulators,
    pub sdk: SdkConfig,
    pub project: String,
    /// The topic's ARN.
    pub topic: String,
    /// The inbox queue's URL.
    pub inbox: String,
    pub function: Function,
}

impl std::fmt::Debug for BuildStatusScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildStatusScenario")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl BuildStatusScenario {
    pub async fn new() -> Self {
        Self::with("shop-image", &[]).await
    }

    /// Like [`Self::new`], with a project whose name starts with `project_prefix`.
    pub async fn named(project_prefix: &str) -> Self {
        Self::with(project_prefix, &[]).await
    }

    /// Like [`Self::new`], notifying what the `NOTIFY_ON` policy `policy` says.
    pub async fn with_notify_on(policy: &str) -> Self {
        Self::with("shop-image", &[("NOTIFY_ON".to_owned(), policy.to_owned())]).await
    }

    /// A project whose name starts with `project_prefix`, and `extra` in the function's
    /// environment.
    pub async fn with(project_prefix: &str, extra: &[(String, String)]) -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let project = unique(project_prefix);
        fixtures::image_project(&sdk, &project).await;
        let table = unique("ledger");
        fixtures::ledger_table(&sdk, &table).await;
        let (topic, inbox) = fixtures::topic_with_inbox(&sdk, &unique("builds"), None).await;
        let mut env = emulators.function_env();
        env.extend([
            ("TOPIC_ARN".to_owned(), topic.clone()),
            ("LEDGER_TABLE".to_owned(), table),
            ("PR_VALIDATION_PROJECT".to_owned(), "shop-pr".to_owned()),
            ("BUILD_PROJECTS".to_owned(), project.clone()),
            // As the template gives it: the group the image buildspec files into.
            ("REPORT_GROUPS".to_owned(), format!("{project}-tests")),
        ]);
        env.extend(extra.iter().cloned());
        let function = Function::start("codebuild-status", &env).await;
        Self {
            emulators,
            sdk,
            project,
            topic,
            inbox,
            function,
        }
    }

    /// Starts a pipeline build of [`COMMIT`] on `branch`, as the pipeline's build action does.
    pub async fn start_build(&self, branch: &str) -> String {
        codebuild::start_pipeline_build(&self.sdk, &self.project, branch, COMMIT).await
    }

    /// Finishes `build` with `status` after 192 s, as CodeBuild would; anything but a success
    /// ended in the BUILD phase with failing tests.
    pub async fn finish(&self, build: &str, status: &str) {
        let mut end = json!({"buildId": build, "status": status, "durationSeconds": 192});
        if status != "SUCCEEDED" {
            end["failedPhase"] = json!("BUILD");
            end["context"] = json!(codebuild::FAILED_TESTS);
        }
        codebuild::complete(&self.emulators, &end).await;
    }

    /// Finishes `build` like [`Self::finish`], having filed `reports` (`[{group, testCases,
    /// status?, pageLimit?}]`, the emulator's `/codebuild/complete` form) on the way.
    pub async fn finish_with_reports(&self, build: &str, status: &str, reports: Value) {
        let mut end =
            json!({"buildId": build, "status": status, "durationSeconds": 192, "reports": reports});
        if status != "SUCCEEDED" {
            end["failedPhase"] = json!("BUILD");
            end["context"] = json!(codebuild::FAILED_TESTS);
        }
        codebuild::complete(&self.emulators, &end).await;
    }

    /// The EventBridge event CodeBuild emits for `build` now.
    pub async fn event(&self, build: &str) -> Value {
        codebuild::event(&self.emulators, build).await
    }

    /// Everything waiting in the inbox (taken out of it).
    pub async fn inbox(&self) -> Vec<Delivered> {
        fixtures::received(&self.sdk, &self.inbox).await
    }
}
