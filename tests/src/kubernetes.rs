//! The local cluster from the tests' side: the admin's client, namespaces with eks-deploy's Role
//! from `infra/k8s/rbac.yaml`, Deployments to deploy to, the EKS cluster record that leads to
//! it, and the fault proxy's request log and faults.
//!
//! The cluster is real (kube-apiserver, the controllers, kwok as the kubelets), so pods follow
//! the naming convention of `tests/kubernetes/kwok-stages.yaml`: an image whose reference
//! contains `unpullable` never pulls, one containing `crashloop` crash-loops, others get Ready.

use std::time::Duration;

use aws_config::SdkConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util_lite::next_event;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Emulators, http, workspace_root};

/// The annotation kwok reads for how long a pod takes to become Ready (`"35s"`), set on a
/// Deployment's pod template.
pub const READY_AFTER_ANNOTATION: &str = "pod-ready.stage.kwok.x-k8s.io/delay";

/// An image that never pulls: the pods wait in `ImagePullBackOff`.
pub fn unpullable(repository: &str, tag: &str) -> String {
    format!("{repository}:{tag}-unpullable")
}

/// An image that starts and exits again and again: `CrashLoopBackOff`.
pub fn crash_looping(repository: &str, tag: &str) -> String {
    format!("{repository}:{tag}-crashloop")
}

/// A client for kube-apiserver itself (not through the fault proxy), as the cluster admin.
pub fn client(emulators: &Emulators) -> kube::Client {
    let ca = STANDARD.decode(&emulators.kubernetes.ca_data).unwrap();
    shared::aws::kube_client(
        &emulators.kubernetes.apiserver,
        &ca,
        &emulators.kubernetes.static_token,
    )
    .unwrap()
}

/// Creates the EKS cluster `name` in the AWS emulator; DescribeCluster then gives the local
/// cluster's endpoint (the fault proxy) and CA.
pub async fn eks_cluster(sdk: &SdkConfig, name: &str) {
    use aws_sdk_eks::types::VpcConfigRequest;
    aws_sdk_eks::Client::new(sdk)
        .create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateCluster {name}: {e:?}"));
}

/// The objects of a multi-document YAML manifest, as JSON.
pub fn manifest(path: &str) -> Vec<Value> {
    let path = workspace_root().join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn of_kind<K: DeserializeOwned>(objects: &[Value], kind: &str, namespace: &str) -> Vec<K> {
    objects
        .iter()
        .filter(|object| object["kind"] == kind)
        .map(|object| {
            let mut object = object.clone();
            object["metadata"]["namespace"] = json!(namespace);
            serde_json::from_value(object).unwrap_or_else(|e| panic!("a {kind}: {e}"))
        })
        .collect()
}

/// Creates `namespace` with the Role and RoleBinding of `infra/k8s/rbac.yaml` in it, exactly as
/// shipped but for their namespace; `edit` may change the Role first (a test of what RBAC
/// refuses).
pub async fn namespace_for_eks_deploy(
    client: &kube::Client,
    namespace: &str,
    edit: impl FnOnce(&mut Role),
) {
    let objects = manifest("infra/k8s/rbac.yaml");
    create_namespace(client, namespace).await;
    let mut roles: Vec<Role> = of_kind(&objects, "Role", namespace);
    assert_eq!(roles.len(), 1, "infra/k8s/rbac.yaml has one Role");
    edit(&mut roles[0]);
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &roles[0])
        .await
        .unwrap_or_else(|e| panic!("the Role of infra/k8s/rbac.yaml in {namespace}: {e}"));
    for binding in of_kind::<RoleBinding>(&objects, "RoleBinding", namespace) {
        Api::<RoleBinding>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap_or_else(|e| panic!("the RoleBinding of infra/k8s/rbac.yaml: {e}"));
    }
}

/// Creates `namespace`.
pub async fn create_namespace(client: &kube::Client, namespace: &str) {
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("namespace {namespace}: {e}"));
}

/// A Deployment to create: `name` in `namespace`, the given containers (name, image), its
/// replicas and progress deadline; [`DeploymentSpec::strategy`] and
/// [`DeploymentSpec::ready_after`] change the rest.
#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
    pub progress_deadline_seconds: i32,
    pub containers: Vec<(String, String)>,
    pub max_surge: Option<Value>,
    pub max_unavailable: Option<Value>,
    pub ready_after: Option<String>,
}

impl DeploymentSpec {
    /// `name` in `namespace` running `containers`, 3 replicas, a progress deadline of 2 s, the
    /// default rolling update (25 % / 25 %).
    pub fn new(namespace: &str, name: &str, containers: &[(&str, &str)]) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            replicas: 3,
            progress_deadline_seconds: 2,
            containers: containers
                .iter()
                .map(|(c, i)| ((*c).to_owned(), (*i).to_owned()))
                .collect(),
            max_surge: None,
            max_unavailable: None,
            ready_after: None,
        }
    }

    pub fn replicas(mut self, replicas: i32) -> Self {
        self.replicas = replicas;
        self
    }

    pub fn progress_deadline(mut self, seconds: i32) -> Self {
        self.progress_deadline_seconds = seconds;
        self
    }

    /// A rolling update with these maxSurge / maxUnavailable.
    pub fn strategy(mut self, max_surge: Value, max_unavailable: Value) -> Self {
        self.max_surge = Some(max_surge);
        self.max_unavailable = Some(max_unavailable);
        self
    }

    /// Pods take this long to become Ready (`"35s"`).
    pub fn ready_after(mut self, duration: &str) -> Self {
        self.ready_after = Some(duration.to_owned());
        self
    }

    fn object(&self) -> Deployment {
        let containers: Vec<_> = self
            .containers
            .iter()
            .map(|(container, image)| json!({"name": container, "image": image}))
            .collect();
        let mut template =
            json!({"metadata": {"labels": {"app": self.name}}, "spec": {"containers": containers}});
        if let Some(delay) = &self.ready_after {
            template["metadata"]["annotations"] = json!({READY_AFTER_ANNOTATION: delay});
        }
        let mut spec = json!({
            "replicas": self.replicas,
            "progressDeadlineSeconds": self.progress_deadline_seconds,
            "selector": {"matchLabels": {"app": self.name}},
            "template": template,
        });
        if self.max_surge.is_some() || self.max_unavailable.is_some() {
            spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": self.max_surge, "maxUnavailable": self.max_unavailable}});
        }
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": {"app": self.name}},
            "spec": spec,
        }))
        .unwrap()
    }

    /// Creates it and waits until its first rollout is complete.
    pub async fn create(&self, client: &kube::Client) -> Deployment {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &self.namespace);
        api.create(&PostParams::default(), &self.object())
            .await
            .unwrap_or_else(|e| panic!("deployment {}/{}: {e}", self.namespace, self.name));
        settled(client, &self.namespace, &self.name, Duration::from_secs(60)).await
    }
}

/// Creates Deployment `name` in `namespace` (which must exist) with the given containers (name,
/// image), and waits until its first rollout is complete.
pub async fn deployment(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    replicas: i32,
    progress_deadline_seconds: i32,
    containers: &[(&str, &str)],
) -> Deployment {
    DeploymentSpec::new(namespace, name, containers)
        .replicas(replicas)
        .progress_deadline(progress_deadline_seconds)
        .create(client)
        .await
}

/// Creates the objects of a manifest (`infra/k8s/app.yaml`) as they are, `edit` changing each
/// first; namespaces first, the rest in the file's order.
pub async fn apply(client: &kube::Client, objects: Vec<Value>, edit: impl Fn(&mut Value)) {
    let mut objects = objects;
    objects.sort_by_key(|object| object["kind"] != "Namespace");
    for mut object in objects {
        edit(&mut object);
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let plural = format!("{}s", kind.to_lowercase());
        let group_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let base = if group_version.contains('/') {
            format!("/apis/{group_version}")
        } else {
            format!("/api/{group_version}")
        };
        let path = match namespace {
            Some(namespace) => format!("{base}/namespaces/{namespace}/{plural}"),
            None => format!("{base}/{plural}"),
        };
        let request = ::http::Request::post(&path)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&object).unwrap())
            .unwrap();
        let answer: Value = client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("creating the {kind} of the manifest: {e}"));
        assert_eq!(answer["kind"], kind, "{answer}");
    }
}

/// Waits (with a watch, bounded by `limit`) until the Deployment's rollout is complete or has
/// failed, and returns it.
pub async fn settled(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: Duration,
) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let current = api.get(name).await.unwrap();
        if is_settled(&current) {
            return current;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "{namespace}/{name} did not settle within {limit:?}: {:?}",
            current.status
        );
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(u32::try_from(remaining.as_secs()).unwrap_or(1).max(1));
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let stream = api.watch(&params, &version).await.unwrap();
        if let Some(WatchEvent::Modified(d)) =
            next_event(stream, |d: &Deployment| is_settled(d), remaining).await
            && is_settled(&d)
        {
            return d;
        }
    }
}

fn is_settled(deployment: &Deployment) -> bool {
    let status = eks_deploy::rollout::status_of(deployment);
    !matches!(status, eks_deploy::rollout::RolloutStatus::Progressing(_))
}

/// Tells the fault proxy `body` at its control endpoint `path` (`faults`, `drop-watches`).
pub async fn control(emulators: &Emulators, path: &str, body: Value) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/kubernetes/{path}", emulators.admin),
        Some(&body),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// The requests the fault proxy forwarded or answered itself (everything eks-deploy sent), as
/// `{method, path, query, user, status, watch, fault}`, oldest first.
pub async fn requests(emulators: &Emulators) -> Vec<Value> {
    let (code, answer) = http::json(
        "GET",
        &format!("{}/kubernetes/requests", emulators.admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    answer["requests"].as_array().cloned().unwrap_or_default()
}

mod futures_util_lite {
    use std::time::Duration;

    use futures::{Stream, StreamExt};
    use kube::api::WatchEvent;

    /// The first event whose object satisfies `wanted`, or the last one seen, within `limit`.
    pub async fn next_event<K, S>(
        stream: S,
        wanted: impl Fn(&K) -> bool,
        limit: Duration,
    ) -> Option<WatchEvent<K>>
    where
        S: Stream<Item = Result<WatchEvent<K>, kube::Error>>,
    {
        let mut stream = Box::pin(stream);
        let mut last = None;
        let _ = tokio::time::timeout(limit, async {
            while let Some(Ok(event)) = stream.next().await {
                let done = matches!(&event, WatchEvent::Modified(object) | WatchEvent::Added(object) if wanted(object));
                last = Some(event);
                if done {
                    break;
                }
            }
        })
        .await;
        last
    }
}
