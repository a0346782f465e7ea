//! A repository with a feature branch one commit ahead of `main`, a validation project building
//! it, an author (an IAM user), and pr-validator running as another identity: what a pull
//! request's author sees.

use aws_config::SdkConfig;
use aws_sdk_codecommit::types::Approval;
use serde_json::{Value, json};

use super::with_settings;
use crate::aws::sdk_config;
use crate::{Emulators, Function, codebuild, fixtures, http, unique};

/// The branch the author's pull requests come from.
pub const FEATURE_BRANCH: &str = "feature/cart";

/// The repository, the author, the validation project and pr-validator.
pub struct PullRequestScenario {
    pub emulators: Emulators,
    /// The function's identity: the approver.
    pub bot: SdkConfig,
    /// The pull requests' author.
    pub author: SdkConfig,
    pub repository: String,
    pub project: String,
    /// The commit on `main`, where every other branch starts.
    pub main: String,
    /// The head of [`FEATURE_BRANCH`], one commit ahead of `main`.
    pub head: String,
    pub function: Function,
}

impl std::fmt::Debug for PullRequestScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequestScenario")
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

impl PullRequestScenario {
    /// Pull requests into `main` validated, and no branch but `main` and [`FEATURE_BRANCH`].
    pub async fn new() -> Self {
        Self::with(&[], "main", &[]).await
    }

    /// `other_branches` made at `main` as well, pull requests into `destinations` (the
    /// `PR_DESTINATIONS` setting) validated, and `extra_env` in pr-validator's environment (SDK
    /// retry and timeout settings, say).
    pub async fn with(
        other_branches: &[&str],
        destinations: &str,
        extra_env: &[(String, String)],
    ) -> Self {
        let emulators = Emulators::load();
        let bot = sdk_config(&emulators).await;
        let author = fixtures::user(&emulators, &bot, &unique("mary")).await;
        let repository = unique("shop");
        fixtures::repository(&bot, &repository).await;
        let main = fixtures::commit(&author, &repository, "main", None, "Initial commit").await;
        for branch in [FEATURE_BRANCH].iter().chain(other_branches) {
            aws_sdk_codecommit::Client::new(&bot)
                .create_branch()
                .repository_name(&repository)
                .branch_name(*branch)
                .commit_id(&main)
                .send()
                .await
                .unwrap();
        }
        let head = fixtures::commit(
            &author,
            &repository,
            FEATURE_BRANCH,
            Some(&main),
            "Add the cart",
        )
        .await;
        let project = unique("shop-pr");
        fixtures::validation_project(&bot, &project, &repository, &emulators.region).await;
        let mut env = with_settings(emulators.function_env(), extra_env);
        env.extend([
            ("PR_VALIDATION_PROJECT".to_owned(), project.clone()),
            ("PR_REPOSITORIES".to_owned(), repository.clone()),
            ("PR_DESTINATIONS".to_owned(), destinations.to_owned()),
            // As the template gives it: the groups the validation buildspec files into.
            (
                "REPORT_GROUPS".to_owned(),
                format!("{project}-tests,{project}-lint"),
            ),
        ]);
        let function = Function::start("pr-validator", &env).await;
        Self {
            emulators,
            bot,
            author,
            repository,
            project,
            main,
            head,
            function,
        }
    }

    /// The author opens a pull request from [`FEATURE_BRANCH`] into `destination`; returns its id.
    pub async fn open(&self, destination: &str) -> String {
        fixtures::pull_request(
            &self.author,
            &self.repository,
            FEATURE_BRANCH,
            destination,
            "Add the cart",
        )
        .await
    }

    /// The author pushes another commit, after `parent`, to [`FEATURE_BRANCH`].
    pub async fn push(&self, parent: &str, message: &str) -> String {
        fixtures::commit(
            &self.author,
            &self.repository,
            FEATURE_BRANCH,
            Some(parent),
            message,
        )
        .await
    }

    /// The event CodeCommit emits for the pull request as it is now.
    pub async fn pull_request_event(&self, id: &str, kind: &str) -> Value {
        let url = format!(
            "{}/codecommit/pull-request-event?pullRequestId={id}&repositoryName={}&event={kind}",
            self.emulators.admin, self.repository
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        event
    }

    /// Gives pr-validator `event`; returns its response.
    pub async fn invoke(&self, event: &Value) -> Value {
        self.function.invoke(event).await.response()
    }

    /// Finishes `build` with `status` after 190 s, as CodeBuild would; a failure is failing tests.
    pub async fn finish(&self, build: &str, status: &str) {
        let mut end = json!({"buildId": build, "status": status, "durationSeconds": 190});
        if status == "FAILED" {
            end["context"] = json!(codebuild::FAILED_TESTS);
        }
        codebuild::complete(&self.emulators, &end).await;
    }

    /// Finishes `build` like [`Self::finish`], having filed `reports` (`[{group, testCases,
    /// status?, pageLimit?}]`, the emulator's `/codebuild/complete` form) on the way.
    pub async fn finish_with_reports(&self, build: &str, status: &str, reports: Value) {
        let mut end =
            json!({"buildId": build, "status": status, "durationSeconds": 190, "reports": reports});
        if status == "FAILED" {
            end["context"] = json!(codebuild::FAILED_TESTS);
        }
        codebuild::complete(&self.emulators, &end).await;
    }

    /// The EventBridge event CodeBuild emits for `build` now.
    pub async fn build_event(&self, build: &str) -> Value {
        codebuild::event(&self.emulators, build).await
    }

    /// Every comment on the pull request, oldest first, as its author reads them.
    pub async fn comments(&self, id: &str) -> Vec<String> {
        comments(&self.author, id).await
    }

    /// The pull request's current revision, and the commit at its head.
    pub async fn revision_and_head(&self, id: &str) -> (String, String) {
        let pull_request = aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request()
            .pull_request_id(id)
            .send()
            .await
            .unwrap()
            .pull_request
            .unwrap();
        let head = pull_request.pull_request_targets()[0]
            .source_commit()
            .unwrap()
            .to_owned();
        (pull_request.revision_id.unwrap(), head)
    }

    /// The approvals of the pull request's `revision`, as its author sees them.
    pub async fn approvals(&self, id: &str, revision: &str) -> Vec<Approval> {
        aws_sdk_codecommit::Client::new(&self.author)
            .get_pull_request_approval_states()
            .pull_request_id(id)
            .revision_id(revision)
            .send()
            .await
            .unwrap()
            .approvals
            .unwrap_or_default()
    }

    /// The ids of the validation project's builds.
    pub async fn builds(&self) -> Vec<String> {
        aws_sdk_codebuild::Client::new(&self.bot)
            .list_builds_for_project()
            .project_name(&self.project)
            .send()
            .await
            .unwrap()
            .ids()
            .to_vec()
    }

    /// How many builds the validation project has run.
    pub async fn build_count(&self) -> usize {
        self.builds().await.len()
    }
}

/// The build pr-validator's `response` says it started (or found running).
pub fn build_id(response: &Value) -> String {
    response["buildId"]
        .as_str()
        .unwrap_or_else(|| panic!("no buildId in {response}"))
        .to_owned()
}

/// Every comment on pull request `id`, oldest first, as `reader` reads them.
pub async fn comments(reader: &SdkConfig, id: &str) -> Vec<String> {
    aws_sdk_codecommit::Client::new(reader)
        .get_comments_for_pull_request()
        .pull_request_id(id)
        .send()
        .await
        .unwrap()
        .comments_for_pull_request_data()
        .iter()
        .flat_map(|group| group.comments())
        .map(|comment| comment.content().unwrap_or_default().to_owned())
        .collect()
}
