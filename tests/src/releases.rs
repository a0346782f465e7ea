//! What a safe release reads, set from the tests' side through the emulator's admin API
//! (CloudWatch alarms and their states, ECR scan results), and what it leaves in the cluster
//! (the canary Deployment `<name>-canary`, seen with a watch).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::{Emulators, http};

/// The reason CloudWatch gives a metric alarm that fired, as the tests set it.
pub const FIRING_REASON: &str = "Threshold Crossed: 3 datapoints [12.0, 9.0, 7.0] were greater than or equal to the threshold (5.0).";

/// Makes (or resets) metric alarm `name`, in `OK`.
pub async fn alarm(emulators: &Emulators, name: &str) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/cloudwatch/alarm", emulators.admin),
        Some(&json!({"alarmName": name, "stateValue": "OK",
                     "stateReason": "Threshold Crossed: no datapoints were greater than or equal to the threshold (5.0)."})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// Sets alarm `name` to `ALARM` with [`FIRING_REASON`], as CloudWatch does when its metric
/// crosses the threshold.
pub async fn fire(emulators: &Emulators, name: &str) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/cloudwatch/alarm-state", emulators.admin),
        Some(&json!({"alarmName": name, "stateValue": "ALARM", "stateReason": FIRING_REASON})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["StateValue"], "ALARM", "{answer}");
}

/// Sets the scan of `repository:tag`: `status` (`IN_PROGRESS`, `COMPLETE`, `FAILED`) and, for
/// a complete one, `findings` (`{name, severity, packageName?}` each).
pub async fn scan(
    emulators: &Emulators,
    repository: &str,
    tag: &str,
    status: &str,
    findings: Value,
) {
    let mut body = json!({"repositoryName": repository, "imageTag": tag, "status": status});
    if status == "COMPLETE" {
        body["findings"] = findings;
    }
    let (code, answer) = http::json(
        "POST",
        &format!("{}/ecr/scan", emulators.admin),
        Some(&body),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// A watch on Deployment `namespace/name`, opened at the version the cluster is at now, so
/// that nothing done after this call is missed even before the watch connects.
#[derive(Debug)]
pub struct DeploymentWatch {
    api: Api<Deployment>,
    name: String,
    from: String,
}

/// What the watch saw: `ADDED`, `MODIFIED` or `DELETED`, and the object then.
pub type Seen = Vec<(&'static str, Deployment)>;

impl DeploymentWatch {
    /// Remembers where the cluster is now.
    pub async fn start(client: &kube::Client, namespace: &str, name: &str) -> Self {
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .unwrap();
        Self {
            api,
            name: name.to_owned(),
            from: list.metadata.resource_version.unwrap_or_default(),
        }
    }

    /// Every version of the Deployment from the start until `done` says so (given what was seen
    /// so far) or `limit` passes.
    pub async fn until(self, limit: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let mut seen: Seen = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        let mut from = self.from.clone();
        // A watch the server ends early (its timeout) is opened again where it left off.
        while tokio::time::Instant::now() < deadline && !done(&seen) {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", self.name))
                .timeout(u32::try_from(remaining.as_secs()).unwrap_or(1).max(1));
            let stream = self.api.watch(&params, &from).await.unwrap();
            let mut stream = Box::pin(stream);
            let _ = tokio::time::timeout_at(deadline, async {
                while let Some(Ok(event)) = stream.next().await {
                    let (kind, object) = match event {
                        WatchEvent::Added(o) => ("ADDED", o),
                        WatchEvent::Modified(o) => ("MODIFIED", o),
                        WatchEvent::Deleted(o) => ("DELETED", o),
                        WatchEvent::Bookmark(_) | WatchEvent::Error(_) => continue,
                    };
                    from = object.metadata.resource_version.clone().unwrap_or_default();
                    seen.push((kind, object));
                    if done(&seen) {
                        break;
                    }
                }
            })
            .await;
        }
        seen
    }
}

/// Whether the watch saw the Deployment deleted.
pub fn deleted(seen: &Seen) -> bool {
    seen.iter().any(|(kind, _)| *kind == "DELETED")
}

/// The replica counts the Deployment was asked for, in order, each once.
pub fn replica_steps(seen: &Seen) -> Vec<i32> {
    let mut steps: Vec<i32> = Vec::new();
    for (_, deployment) in seen {
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if steps.last() != Some(&replicas) {
            steps.push(replicas);
        }
    }
    steps
}

/// Whether the version seen has all its `replicas` pods available.
pub fn available(deployment: &Deployment, replicas: i32) -> bool {
    let status = deployment.status.clone().unwrap_or_default();
    deployment.spec.as_ref().and_then(|s| s.replicas) == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status.observed_generation == deployment.metadata.generation
}

/// A canary of `web` left by an earlier release owned by `owner` (a pipeline stopped mid-bake):
/// `web-canary`, 1 replica of `image`, as eks-deploy makes it.
pub async fn abandoned_canary(client: &kube::Client, namespace: &str, owner: &str, image: &str) {
    let canary: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-canary", "namespace": namespace,
                     "labels": {"app": "web", "track": "canary"},
                     "annotations": {"eks-deploy.cicd/canary-owner": owner, "eks-deploy.cicd/canary-of": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web", "track": "canary"}},
            "template": {"metadata": {"labels": {"app": "web", "track": "canary"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &canary)
        .await
        .unwrap_or_else(|e| panic!("the abandoned canary in {namespace}: {e}"));
}

/// The canary of `web`, if there is one.
pub async fn canary(client: &kube::Client, namespace: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt("web-canary")
        .await
        .unwrap()
}
