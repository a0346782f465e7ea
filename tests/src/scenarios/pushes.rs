//! A repository with one commit on `main` and a pipeline following it: what codecommit-push
//! starts pipelines on.

use aws_config::SdkConfig;
use aws_sdk_codepipeline::types::PipelineExecutionSummary;
use serde_json::{Value, json};

use crate::aws::sdk_config;
use crate::{Emulators, Function, event_id, fixtures, sample_event, unique};

/// A repository with one commit on `main`, and a pipeline following `main`.
pub struct PushScenario {
    pub emulators: Emulators,
    pub sdk: SdkConfig,
    pub repository: String,
    pub pipeline: String,
    /// The first commit on `main`.
    pub first: String,
}

impl std::fmt::Debug for PushScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushScenario")
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

impl PushScenario {
    pub async fn new() -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let repository = unique("shop");
        let pipeline = unique("shop-main");
        fixtures::repository(&sdk, &repository).await;
        let first =
            fixtures::commit(&sdk, &repository, "main", None, "chore: initial import").await;
        fixtures::pipeline(&sdk, &pipeline, &repository, "main").await;
        Self {
            emulators,
            sdk,
            repository,
            pipeline,
            first,
        }
    }

    /// Pushes a commit to `main` after `parent`; returns its id.
    pub async fn commit(&self, parent: &str, message: &str) -> String {
        fixtures::commit(&self.sdk, &self.repository, "main", Some(parent), message).await
    }

    /// `PIPELINE_ROUTES` sending the pushes to `main` to the pipeline.
    pub fn routes(&self) -> String {
        json!([{"repository": self.repository, "branch": "main", "pipeline": self.pipeline}])
            .to_string()
    }

    /// codecommit-push, against the emulators, with `routes` as its `PIPELINE_ROUTES`.
    pub async fn function(&self, routes: &str) -> Function {
        self.function_with_env(self.emulators.function_env(), routes)
            .await
    }

    /// codecommit-push with the environment `env`, and `routes` as its `PIPELINE_ROUTES`.
    pub async fn function_with_env(
        &self,
        mut env: Vec<(String, String)>,
        routes: &str,
    ) -> Function {
        env.push(("PIPELINE_ROUTES".into(), routes.into()));
        Function::start("codecommit-push", &env).await
    }

    /// The sample push event `sample`, for the repository and `commit`, with a fresh event id.
    pub fn push_event(&self, sample: &str, commit: &str) -> Value {
        let mut event = sample_event("codecommit-push", sample);
        event["id"] = json!(event_id());
        event["detail"]["repositoryName"] = json!(self.repository);
        event["detail"]["commitId"] = json!(commit);
        event
    }

    /// The pipeline's executions, as CodePipeline lists them.
    pub async fn executions(&self) -> Vec<PipelineExecutionSummary> {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .list_pipeline_executions()
            .pipeline_name(&self.pipeline)
            .send()
            .await
            .unwrap()
            .pipeline_execution_summaries()
            .to_vec()
    }
}
