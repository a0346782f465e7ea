//! A repository whose `main` is delivered by a pipeline Source → Build → Approval → Deploy, a
//! pull request merged into `main` (pr-validator records the merge), the delivery topic with an
//! inbox, and delivery-events taking the pipeline's events as its rule routes them: how a
//! release ends, as the team, the pull request's author and CloudWatch see it.
//!
//! The Deploy action is a Lambda invoke action whose job the scenario reports as eks-deploy
//! does (its output variables on success, its rollback message on failure), so that every end
//! can be played without a cluster; eks-deploy's own tests and the end-to-end story run it.

use aws_config::SdkConfig;
use serde_json::{Value, json};

use super::pull_requests::comments;
use crate::aws::sdk_config;
use crate::pipeline_events::PipelineEventBus;
use crate::runtime_api::InvocationResult;
use crate::{Emulators, Function, emf, fixtures, http, unique};

/// The image registry of the scenario's deploys.
pub const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop";
/// The feature branch merged into `main`.
pub const FEATURE_BRANCH: &str = "feature/checkout";

/// Everything set up, and delivery-events running.
pub struct DeliveryScenario {
    pub emulators: Emulators,
    pub sdk: SdkConfig,
    /// The pull requests' author.
    pub author: SdkConfig,
    pub repository: String,
    pub pipeline: String,
    pub ledger: String,
    pub topic: String,
    inbox: String,
    /// The commit on `main` before the merge.
    pub main: String,
    pub bus: PipelineEventBus,
    pub function: Function,
    pub pr_validator: Function,
}

impl std::fmt::Debug for DeliveryScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryScenario")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// A pull request merged into `main`.
#[derive(Debug, Clone)]
pub struct Merged {
    pub pull_request_id: String,
    /// The commit the merge put on `main` (a fast-forward: the branch's head).
    pub commit: String,
}

impl DeliveryScenario {
    /// Everything fresh, delivery-events with `extra_env` added to its environment.
    pub async fn new(extra_env: &[(String, String)]) -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let author = fixtures::user(&emulators, &sdk, &unique("mary")).await;
        let repository = unique("shop");
        fixtures::repository(&sdk, &repository).await;
        let main =
            fixtures::commit(&author, &repository, "main", None, "chore: initial import").await;
        let pipeline = unique("shop-main");
        let approvals = fixtures::topic(&sdk, &unique("approval-requests")).await;
        let user_parameters = json!({"cluster": "shop-prod", "namespace": "shop", "deployment": "web",
                                     "container": "web", "image": "#{BuildVariables.IMAGE_URI}"});
        fixtures::PipelineSpec::new(&pipeline, &repository, "main")
            .build(&unique("shop-image"))
            .approval(&approvals)
            .deploy("eks-deploy", &user_parameters.to_string())
            .create(&sdk)
            .await;
        let ledger = unique("ledger");
        fixtures::ledger_table(&sdk, &ledger).await;
        let (topic, inbox) = fixtures::topic_with_inbox(&sdk, &unique("deliveries"), None).await;
        let bus = PipelineEventBus::new(&emulators, &pipeline).await;
        let mut env = super::with_settings(emulators.function_env(), extra_env);
        env.extend([
            ("TOPIC_ARN".to_owned(), topic.clone()),
            ("LEDGER_TABLE".to_owned(), ledger.clone()),
            (
                "PIPELINE_ENVIRONMENTS".to_owned(),
                json!({ pipeline.clone(): "production" }).to_string(),
            ),
        ]);
        let function = Function::start("delivery-events", &env).await;
        let mut validator_env = emulators.function_env();
        validator_env.extend([
            ("PR_VALIDATION_PROJECT".to_owned(), unique("shop-pr")),
            ("PR_REPOSITORIES".to_owned(), repository.clone()),
            ("PR_DESTINATIONS".to_owned(), "main".to_owned()),
            ("LEDGER_TABLE".to_owned(), ledger.clone()),
        ]);
        let pr_validator = Function::start("pr-validator", &validator_env).await;
        Self {
            emulators,
            sdk,
            author,
            repository,
            pipeline,
            ledger,
            topic,
            inbox,
            main,
            bus,
            function,
            pr_validator,
        }
    }

    /// The author opens a pull request from a new branch with one commit, and merges it into
    /// `main` (fast-forward); CodeCommit tells pr-validator, which records the merge.
    pub async fn merge_pull_request(&self, message: &str) -> Merged {
        let codecommit = aws_sdk_codecommit::Client::new(&self.author);
        let branch = format!("{FEATURE_BRANCH}-{}", unique("b"));
        let tip = self.branch_tip("main").await;
        codecommit
            .create_branch()
            .repository_name(&self.repository)
            .branch_name(&branch)
            .commit_id(&tip)
            .send()
            .await
            .unwrap();
        let head =
            fixtures::commit(&self.author, &self.repository, &branch, Some(&tip), message).await;
        let id =
            fixtures::pull_request(&self.author, &self.repository, &branch, "main", message).await;
        codecommit
            .merge_pull_request_by_fast_forward()
            .pull_request_id(&id)
            .repository_name(&self.repository)
            .source_commit_id(&head)
            .send()
            .await
            .unwrap();
        let url = format!(
            "{}/codecommit/pull-request-event?pullRequestId={id}&repositoryName={}&event=pullRequestMergeStatusUpdated",
            self.emulators.admin, self.repository
        );
        let (code, event) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{event}");
        let recorded = self.pr_validator.invoke(&event).await.response();
        assert_eq!(recorded["outcome"], "mergeRecorded", "{recorded}");
        assert_eq!(recorded["mergeCommit"], head.as_str(), "{recorded}");
        Merged {
            pull_request_id: id,
            commit: head,
        }
    }

    /// A commit pushed straight to `main` (no pull request).
    pub async fn push_to_main(&self, message: &str) -> String {
        let tip = self.branch_tip("main").await;
        fixtures::commit(&self.author, &self.repository, "main", Some(&tip), message).await
    }

    async fn branch_tip(&self, branch: &str) -> String {
        aws_sdk_codecommit::Client::new(&self.sdk)
            .get_branch()
            .repository_name(&self.repository)
            .branch_name(branch)
            .send()
            .await
            .unwrap()
            .branch
            .and_then(|b| b.commit_id)
            .unwrap()
    }

    /// Starts the pipeline on `commit` and lets its build pass: the execution waits for approval.
    pub async fn run_to_approval(&self, commit: &str) -> String {
        let execution = aws_sdk_codepipeline::Client::new(&self.sdk)
            .start_pipeline_execution()
            .name(&self.pipeline)
            .source_revisions(
                aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                    .action_name("Source")
                    .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                    .revision_value(commit)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .pipeline_execution_id
            .unwrap();
        fixtures::complete_action(
            &self.emulators,
            &execution,
            "Build",
            "Build",
            "Succeeded",
            json!({"IMAGE_URI": format!("{REGISTRY}:{}", &commit[..12])}),
        )
        .await;
        execution
    }

    /// An execution on `main`'s tip whose build fails.
    pub async fn build_fails(&self) -> String {
        let execution = aws_sdk_codepipeline::Client::new(&self.sdk)
            .start_pipeline_execution()
            .name(&self.pipeline)
            .send()
            .await
            .unwrap()
            .pipeline_execution_id
            .unwrap();
        fixtures::complete_action(
            &self.emulators,
            &execution,
            "Build",
            "Build",
            "Failed",
            json!({}),
        )
        .await;
        execution
    }

    /// The waiting approval's token (the pipeline's mode is SUPERSEDED: GetPipelineState shows it).
    async fn approval_token(&self) -> String {
        let runs = aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_state()
            .name(&self.pipeline)
            .send()
            .await
            .unwrap();
        runs.stage_states()
            .iter()
            .find(|s| s.stage_name() == Some("Approval"))
            .and_then(|s| s.action_states().first())
            .and_then(|a| a.latest_execution())
            .and_then(|e| e.token())
            .unwrap()
            .to_owned()
    }

    /// The approver decides, as approval-callback records it (`<status> by <who> via the email
    /// link: <comment>`).
    pub async fn decide(&self, approve: bool, who: &str, comment: &str) {
        let status = if approve { "Approved" } else { "Rejected" };
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .put_approval_result()
            .pipeline_name(&self.pipeline)
            .stage_name("Approval")
            .action_name("ProductionGate")
            .token(self.approval_token().await)
            .result(
                aws_sdk_codepipeline::types::ApprovalResult::builder()
                    .summary(format!("{status} by {who} via the email link: {comment}"))
                    .status(if approve {
                        aws_sdk_codepipeline::types::ApprovalStatus::Approved
                    } else {
                        aws_sdk_codepipeline::types::ApprovalStatus::Rejected
                    })
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    async fn deploy_job(&self, execution: &str) -> String {
        let jobs = fixtures::waiting_jobs(&self.emulators, &self.pipeline).await;
        jobs.iter()
            .find(|job| job["executionId"] == execution)
            .and_then(|job| job["jobId"].as_str())
            .unwrap_or_else(|| panic!("no deploy job for {execution}: {jobs:?}"))
            .to_owned()
    }

    /// The deploy succeeds, reporting `variables` as eks-deploy's final PutJobSuccessResult.
    pub async fn deploy_succeeds(&self, execution: &str, variables: &[(&str, &str)]) {
        let mut request = aws_sdk_codepipeline::Client::new(&self.sdk)
            .put_job_success_result()
            .job_id(self.deploy_job(execution).await);
        for (name, value) in variables {
            request = request.output_variables(*name, *value);
        }
        request.send().await.unwrap();
    }

    /// The deploy fails with `message`, as eks-deploy's PutJobFailureResult.
    pub async fn deploy_fails(&self, execution: &str, message: &str) {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .put_job_failure_result()
            .job_id(self.deploy_job(execution).await)
            .failure_details(
                aws_sdk_codepipeline::types::FailureDetails::builder()
                    .r#type(aws_sdk_codepipeline::types::FailureType::JobFailed)
                    .message(message)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    /// EventBridge delivers the pipeline's new events its rule routes to delivery-events.
    pub async fn deliver(&self) -> Vec<(Value, InvocationResult)> {
        self.bus.deliver(&self.function).await
    }

    /// What the team's inbox received since the last look.
    pub async fn inbox(&self) -> Vec<fixtures::Delivered> {
        fixtures::received(&self.sdk, &self.inbox).await
    }

    /// The comments on pull request `id`.
    pub async fn comments(&self, id: &str) -> Vec<String> {
        comments(&self.author, id).await
    }

    /// The EMF documents delivery-events wrote so far, each checked against the specification.
    pub fn metric_documents(&self) -> Vec<Value> {
        self.function
            .logs()
            .iter()
            .filter(|line| line.contains("\"_aws\""))
            .map(|line| emf::check(line).unwrap_or_else(|why| panic!("{why}: {line}")))
            .collect()
    }
}
