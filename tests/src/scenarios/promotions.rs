//! Two environments on the one local cluster, as infra/environments.py generates the pipeline:
//! Source → Build → DeployStaging → ApproveProduction → DeployProduction. Staging and production
//! are two EKS cluster records (`shop-staging-…`, `shop-prod-…`) that both lead to the local
//! control plane, each environment in a namespace of its own with `web` running V1 and
//! eks-deploy's Role of `infra/k8s/rbac.yaml`. One eks-deploy serves both, as in AWS.

use aws_config::SdkConfig;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

use super::deployments::{V1, container_images, ecr_repository, pinned, push_tag};
use crate::aws::sdk_config;
use crate::kubernetes::DeploymentSpec;
use crate::{Emulators, Function, fixtures, kubernetes, unique};

/// One environment: its EKS cluster record and its namespace.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `staging`, `production`.
    pub name: String,
    /// The stage title the generator gives it (`Staging`).
    pub title: String,
    /// The EKS cluster record.
    pub cluster: String,
    /// The namespace `web` runs in.
    pub namespace: String,
}

impl Environment {
    /// eks-deploy's `UserParameters` for this environment, as infra/environments.py writes them.
    pub fn user_parameters(&self) -> String {
        json!({"cluster": self.cluster, "namespace": self.namespace, "deployment": "web",
               "container": "web", "image": "#{BuildVariables.IMAGE_URI}"})
        .to_string()
    }
}

/// Staging and production, the approval topic, eks-deploy.
pub struct Environments {
    pub emulators: Emulators,
    pub sdk: SdkConfig,
    pub client: kube::Client,
    pub staging: Environment,
    pub production: Environment,
    /// Where the production approval's request goes (approval-notify's trigger).
    pub approval_requests: String,
    pub deploy: Function,
}

impl std::fmt::Debug for Environments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environments")
            .field("staging", &self.staging)
            .field("production", &self.production)
            .finish_non_exhaustive()
    }
}

/// The image repository of the shop's images.
pub const REPOSITORY: &str = "shop";
/// Images live here.
pub const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop";

impl Environments {
    /// Both environments running V1 (progress deadline 2 s), eks-deploy started.
    pub async fn new() -> Self {
        let emulators = Emulators::load();
        ecr_repository(&emulators, REPOSITORY).await;
        push_tag(&emulators, REPOSITORY, "v1").await;
        let sdk = sdk_config(&emulators).await;
        let client = kubernetes::client(&emulators);
        let mut environments = Vec::new();
        for (name, title, cluster) in [
            ("staging", "Staging", "shop-staging"),
            ("production", "Production", "shop-prod"),
        ] {
            let environment = Environment {
                name: name.to_owned(),
                title: title.to_owned(),
                cluster: unique(cluster),
                namespace: unique(&format!("shop-{name}")),
            };
            kubernetes::eks_cluster(&sdk, &environment.cluster).await;
            kubernetes::namespace_for_eks_deploy(&client, &environment.namespace, |_| {}).await;
            DeploymentSpec::new(&environment.namespace, "web", &[("web", V1)])
                .progress_deadline(2)
                .create(&client)
                .await;
            environments.push(environment);
        }
        let production = environments.pop().unwrap();
        let staging = environments.pop().unwrap();
        let approval_requests = fixtures::topic(&sdk, &unique("approval-requests")).await;
        let deploy = Function::start("eks-deploy", &emulators.function_env()).await;
        Self {
            emulators,
            sdk,
            client,
            staging,
            production,
            approval_requests,
            deploy,
        }
    }

    /// The pipeline infra/environments.py generates from the two environments, on a repository
    /// of its own with one commit, started on it: the build waits.
    pub async fn start(&self, message: &str) -> PromotionRun {
        let repository = unique("shop-repo");
        fixtures::repository(&self.sdk, &repository).await;
        let commit = fixtures::commit(&self.sdk, &repository, "main", None, message).await;
        let name = unique("shop-main");
        fixtures::PipelineSpec::new(&name, &repository, "main")
            .build(&format!("{name}-image"))
            .environment_deploy(
                &self.staging.title,
                "eks-deploy",
                &self.staging.user_parameters(),
            )
            .environment_approval(&self.production.title, &self.approval_requests)
            .environment_deploy(
                &self.production.title,
                "eks-deploy",
                &self.production.user_parameters(),
            )
            .create(&self.sdk)
            .await;
        let execution_id = aws_sdk_codepipeline::Client::new(&self.sdk)
            .start_pipeline_execution()
            .name(&name)
            .send()
            .await
            .unwrap()
            .pipeline_execution_id()
            .unwrap()
            .to_owned();
        PromotionRun {
            name,
            execution_id,
            commit,
        }
    }

    /// Pushes `tag` of the shop's repository; the image pinned to its digest, as the build
    /// exports it (`IMAGE_URI`), and the digest.
    pub async fn push(&self, tag: &str) -> (String, String) {
        let digest = push_tag(&self.emulators, REPOSITORY, tag).await;
        (pinned(&format!("{REGISTRY}:{tag}"), &digest), digest)
    }

    /// The image `web` runs in `environment`.
    pub async fn image_in(&self, environment: &Environment) -> String {
        let deployment = Api::<Deployment>::namespaced(self.client.clone(), &environment.namespace)
            .get("web")
            .await
            .unwrap();
        container_images(&deployment)[0].1.clone()
    }

    /// How many PATCHes eks-deploy made in `environment`'s namespace so far.
    pub async fn patches_in(&self, environment: &Environment) -> usize {
        let user = &self.emulators.kubernetes.deploy_user;
        kubernetes::requests(&self.emulators)
            .await
            .iter()
            .filter(|r| {
                r["method"] == "PATCH"
                    && r["user"].as_str() == Some(user.as_str())
                    && r["path"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&format!("/namespaces/{}/", environment.namespace))
            })
            .count()
    }

    /// The approval requests published for `run` (the SNS messages CodePipeline sent).
    pub async fn approval_requests_for(&self, run: &PromotionRun) -> Vec<Value> {
        let (code, answer) = crate::http::json(
            "GET",
            &format!(
                "{}/sns/published?topicArn={}",
                self.emulators.admin, self.approval_requests
            ),
            None,
        )
        .await;
        assert_eq!(code, 200, "{answer}");
        answer["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.to_string().contains(&run.name))
            .collect()
    }
}

/// One execution of the two-environment pipeline.
#[derive(Debug, Clone)]
pub struct PromotionRun {
    pub name: String,
    pub execution_id: String,
    pub commit: String,
}

impl PromotionRun {
    /// The build finishes, exporting `image` (pinned) and its digest.
    pub async fn built(&self, emulators: &Emulators, image: &str, digest: &str) {
        fixtures::complete_action(
            emulators,
            &self.execution_id,
            "Build",
            "Build",
            "Succeeded",
            json!({"IMAGE_URI": image, "IMAGE_DIGEST": digest}),
        )
        .await;
    }

    /// Every job of `stage`'s deploy action in this execution, oldest first, as `{jobId,
    /// status, event}`.
    pub async fn jobs_of(&self, emulators: &Emulators, stage: &str) -> Vec<Value> {
        let url = format!(
            "{}/codepipeline/jobs?pipeline={}&executionId={}",
            emulators.admin, self.name, self.execution_id
        );
        let (code, answer) = crate::http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{answer}");
        answer["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|job| job["stage"] == stage)
            .collect()
    }

    /// The one waiting job of `stage`'s deploy, as the event CodePipeline invokes eks-deploy with.
    pub async fn waiting_job(&self, emulators: &Emulators, stage: &str) -> Value {
        let jobs: Vec<Value> = self
            .jobs_of(emulators, stage)
            .await
            .into_iter()
            .filter(|job| job["status"] == "InProgress")
            .collect();
        assert_eq!(jobs.len(), 1, "{stage}: {jobs:?}");
        jobs[0]["event"].clone()
    }

    /// The execution's status.
    pub async fn status(&self, sdk: &SdkConfig) -> String {
        aws_sdk_codepipeline::Client::new(sdk)
            .get_pipeline_execution()
            .pipeline_name(&self.name)
            .pipeline_execution_id(&self.execution_id)
            .send()
            .await
            .unwrap()
            .pipeline_execution()
            .and_then(|e| e.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    }

    /// `stage`'s action's latest run as GetPipelineState shows it: (status, summary, token);
    /// `None` when it never ran.
    pub async fn stage_run(
        &self,
        sdk: &SdkConfig,
        stage: &str,
    ) -> Option<(String, Option<String>, Option<String>)> {
        let state = aws_sdk_codepipeline::Client::new(sdk)
            .get_pipeline_state()
            .name(&self.name)
            .send()
            .await
            .unwrap();
        state
            .stage_states()
            .iter()
            .find(|s| s.stage_name() == Some(stage))
            .and_then(|s| s.action_states().first())
            .and_then(|a| a.latest_execution())
            .map(|run| {
                (
                    run.status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    run.summary().map(str::to_owned),
                    run.token().map(str::to_owned),
                )
            })
    }

    /// An approver decides the production approval (PutApprovalResult with its token).
    pub async fn decide(&self, sdk: &SdkConfig, title: &str, approve: bool, summary: &str) {
        use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
        let stage = format!("Approve{title}");
        let (_, _, token) = self
            .stage_run(sdk, &stage)
            .await
            .unwrap_or_else(|| panic!("{stage} never ran"));
        aws_sdk_codepipeline::Client::new(sdk)
            .put_approval_result()
            .pipeline_name(&self.name)
            .stage_name(&stage)
            .action_name(format!("{title}Gate"))
            .token(token.unwrap())
            .result(
                ApprovalResult::builder()
                    .summary(summary)
                    .status(if approve {
                        ApprovalStatus::Approved
                    } else {
                        ApprovalStatus::Rejected
                    })
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}
