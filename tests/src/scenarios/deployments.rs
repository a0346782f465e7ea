//! A Deployment `web` in a namespace of its own on the local cluster, with eks-deploy's Role from
//! `infra/k8s/rbac.yaml`, the EKS cluster record leading to it, and eks-deploy: what a deploy
//! changes.

use aws_config::SdkConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use serde_json::{Value, json};

use super::with_settings;
use crate::aws::sdk_config;
use crate::kubernetes::DeploymentSpec;
use crate::{Emulators, Function, fixtures, kubernetes, unique};

/// The image `web` runs before a deploy.
pub const V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1";
/// The image a deploy sets.
pub const V2: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2";

/// The emulated ECR repository V1 and V2 are in (eks-deploy resolves a tag with DescribeImages).
const REPOSITORY: &str = "shop";

/// The digest the registry gives `manifest`: sha256 over its bytes.
fn digest_of(manifest: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(manifest.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A fixed manifest for `tag`: every test pushing it gets the same image, so tests sharing the
/// emulator (and the repository) never move each other's tags.
fn manifest_of(tag: &str) -> String {
    let seed = digest_of(&format!("shop:{tag}"));
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": seed},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3_623_807, "digest": seed}],
    })
    .to_string()
}

/// Creates `repository` unless already there.
pub async fn ecr_repository(emulators: &Emulators, repository: &str) {
    let (code, answer) = crate::http::json(
        "POST",
        &format!("{}/ecr/repository", emulators.admin),
        Some(&json!({"repositoryName": repository})),
    )
    .await;
    assert!(
        code == 200 || answer.to_string().contains("already exists"),
        "{code} {answer}"
    );
}

/// Pushes `tag` to `repository` (its fixed manifest) unless already there; its digest.
pub async fn push_tag(emulators: &Emulators, repository: &str, tag: &str) -> String {
    let manifest = manifest_of(tag);
    let (code, answer) = crate::http::json(
        "POST",
        &format!("{}/ecr/image", emulators.admin),
        Some(&json!({"repositoryName": repository, "imageTag": tag, "imageManifest": manifest})),
    )
    .await;
    let digest = digest_of(&manifest);
    if code == 200 {
        assert_eq!(answer["imageDigest"], digest.as_str(), "{answer}");
    } else {
        assert!(
            answer.to_string().contains("already exists"),
            "{code} {answer}"
        );
    }
    digest
}

/// Creates the repository and pushes V1 and V2 (tags `v1`, `v2`) unless already there; their
/// digests.
async fn push_shop_images(emulators: &Emulators) -> (String, String) {
    ecr_repository(emulators, REPOSITORY).await;
    (
        push_tag(emulators, REPOSITORY, "v1").await,
        push_tag(emulators, REPOSITORY, "v2").await,
    )
}

/// How a summary shows an image pinned to `digest` from `tag`: `sha256:` and 12 hex digits.
pub fn summarized(digest: &str, tag: &str) -> String {
    format!("{}… (tag {tag})", &digest[..digest.len().min(19)])
}

/// `image` pinned to `digest`, as eks-deploy sets it: `registry/repository@sha256:…`.
pub fn pinned(image: &str, digest: &str) -> String {
    let name = image.rsplit_once(':').map_or(image, |(name, _)| name);
    format!("{name}@{digest}")
}

/// The cluster, the Deployment `web` (3 replicas, rolled out), and eks-deploy.
pub struct DeploymentScenario {
    /// V1's digest in the emulated ECR.
    pub v1_digest: String,
    /// V2's digest in the emulated ECR.
    pub v2_digest: String,
    pub emulators: Emulators,
    pub sdk: SdkConfig,
    pub client: kube::Client,
    pub cluster: String,
    pub namespace: String,
    pub function: Function,
}

impl std::fmt::Debug for DeploymentScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentScenario")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl DeploymentScenario {
    /// `web` running `containers` (name, image), with a progress deadline of 2 s.
    pub async fn new(containers: &[(&str, &str)]) -> Self {
        Self::with(containers, 2, &[]).await
    }

    /// `web` running `containers` (name, image), with a progress deadline of
    /// `progress_deadline_seconds`, and `extra_env` in eks-deploy's environment (SDK retry and
    /// timeout settings, say).
    pub async fn with(
        containers: &[(&str, &str)],
        progress_deadline_seconds: i32,
        extra_env: &[(String, String)],
    ) -> Self {
        Self::of(
            |namespace| {
                DeploymentSpec::new(namespace, "web", containers)
                    .progress_deadline(progress_deadline_seconds)
            },
            |_| {},
            extra_env,
        )
        .await
    }

    /// The Deployment `spec` makes (given the scenario's namespace), in a namespace whose Role is
    /// `infra/k8s/rbac.yaml`'s as `edit_role` leaves it, and eks-deploy with `extra_env`.
    pub async fn of(
        spec: impl FnOnce(&str) -> DeploymentSpec,
        edit_role: impl FnOnce(&mut Role),
        extra_env: &[(String, String)],
    ) -> Self {
        let emulators = Emulators::load();
        let (v1_digest, v2_digest) = push_shop_images(&emulators).await;
        let sdk = sdk_config(&emulators).await;
        let cluster = unique("shop-prod");
        kubernetes::eks_cluster(&sdk, &cluster).await;
        let client = kubernetes::client(&emulators);
        let namespace = unique("shop");
        kubernetes::namespace_for_eks_deploy(&client, &namespace, edit_role).await;
        spec(&namespace).create(&client).await;
        let env = with_settings(emulators.function_env(), extra_env);
        let function = Function::start("eks-deploy", &env).await;
        Self {
            v1_digest,
            v2_digest,
            emulators,
            sdk,
            client,
            cluster,
            namespace,
            function,
        }
    }

    /// The parameters of a direct invocation setting container `web` to `image`.
    pub fn params(&self, image: &str) -> Value {
        json!({"cluster": self.cluster, "namespace": self.namespace, "deployment": "web", "container": "web", "image": image})
    }

    /// V2 as a deploy sets it: pinned to its digest.
    pub fn v2_pinned(&self) -> String {
        pinned(V2, &self.v2_digest)
    }

    /// V2 as a summary shows it.
    pub fn v2_summarized(&self) -> String {
        summarized(&self.v2_digest, "v2")
    }

    /// Pushes `image` (`registry/repository:tag` of the emulated ECR) so eks-deploy can resolve
    /// it; the image pinned to its digest.
    pub async fn push(&self, image: &str) -> String {
        let (name, tag) = image.rsplit_once(':').unwrap();
        let repository = name
            .split_once('/')
            .map_or(name, |(_, repository)| repository);
        ecr_repository(&self.emulators, repository).await;
        let digest = push_tag(&self.emulators, repository, tag).await;
        pinned(image, &digest)
    }

    /// The Deployment as it is now.
    pub async fn deployment(&self) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), &self.namespace)
            .get("web")
            .await
            .unwrap()
    }

    /// The requests eks-deploy made to the namespace so far (through the fault proxy, as its
    /// EKS user), oldest first, as `{method, path, query, user, status, watch, fault}`.
    pub async fn requests(&self) -> Vec<Value> {
        let user = self.emulators.kubernetes.deploy_user.clone();
        kubernetes::requests(&self.emulators)
            .await
            .into_iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("/namespaces/{}/", self.namespace))
            })
            .filter(|r| r["user"].as_str() == Some(user.as_str()))
            .collect()
    }

    /// How many PATCHes eks-deploy made to anything in the namespace.
    pub async fn patches(&self) -> usize {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r["method"] == "PATCH")
            .count()
    }

    /// A pipeline whose Deploy action invokes eks-deploy with `parameters` (by default, the
    /// scenario's Deployment and the build's image), started on a commit, its build finished
    /// with `image` as IMAGE_URI: the Deploy action waits.
    pub async fn pipeline_run(&self, image: &str, parameters: Option<Value>) -> PipelineRun {
        let repository = unique("shop-repo");
        fixtures::repository(&self.sdk, &repository).await;
        fixtures::commit(
            &self.sdk,
            &repository,
            "main",
            None,
            "feat: one-click checkout",
        )
        .await;
        let name = unique("shop-main");
        let parameters = parameters.unwrap_or_else(|| {
            json!({"cluster": self.cluster, "namespace": self.namespace, "deployment": "web",
                   "container": "web", "image": "#{BuildVariables.IMAGE_URI}"})
        });
        fixtures::deploy_pipeline(
            &self.sdk,
            &name,
            &repository,
            "eks-deploy",
            &parameters.to_string(),
        )
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
        fixtures::complete_action(
            &self.emulators,
            &execution_id,
            "Build",
            "Build",
            "Succeeded",
            json!({"IMAGE_URI": image}),
        )
        .await;
        PipelineRun { name, execution_id }
    }
}

/// A pipeline execution waiting at its Deploy action (see [`DeploymentScenario::pipeline_run`]).
#[derive(Debug, Clone)]
pub struct PipelineRun {
    pub name: String,
    pub execution_id: String,
}

impl PipelineRun {
    /// The one job CodePipeline has for the Deploy action, as the event it invokes with.
    pub async fn job(&self, emulators: &Emulators) -> Value {
        let jobs = fixtures::waiting_jobs(emulators, &self.name).await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        jobs[0]["event"].clone()
    }

    /// The execution's status, and the Deploy action's latest execution as `{status, summary,
    /// error: {code, message}, percent}` (null before it ran).
    pub async fn status(&self, emulators: &Emulators) -> (String, Value) {
        let sdk = sdk_config(emulators).await;
        let client = aws_sdk_codepipeline::Client::new(&sdk);
        let execution = client
            .get_pipeline_execution()
            .pipeline_name(&self.name)
            .pipeline_execution_id(&self.execution_id)
            .send()
            .await
            .unwrap();
        let status = execution
            .pipeline_execution()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_owned();
        let state = client
            .get_pipeline_state()
            .name(&self.name)
            .send()
            .await
            .unwrap();
        let deploy = state
            .stage_states()
            .iter()
            .find(|s| s.stage_name() == Some("Deploy"))
            .and_then(|s| s.action_states().first())
            .and_then(|a| a.latest_execution())
            .map(|e| {
                json!({"status": e.status().map(|s| s.as_str()), "summary": e.summary(),
                       "error": e.error_details().map(|d| json!({"code": d.code(), "message": d.message()})),
                       "percent": e.percent_complete()})
            })
            .unwrap_or(Value::Null);
        (status, deploy)
    }
}

/// The (name, image) of each of the Deployment's containers.
pub fn container_images(deployment: &Deployment) -> Vec<(String, String)> {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}
