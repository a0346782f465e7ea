//! The Kubernetes emulator from the tests' side: a client with the emulator's static token,
//! Deployments to deploy to, and the EKS cluster record that points at the emulator.

use std::time::Duration;

use aws_config::SdkConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util_lite::next_event;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::{Emulators, http};

/// A client for the emulated API server, authenticated with its static token.
pub fn client(emulators: &Emulators) -> kube::Client {
    let ca = STANDARD.decode(&emulators.kubernetes.ca_data).unwrap();
    shared::aws::kube_client(
        &emulators.kubernetes.server,
        &ca,
        &emulators.kubernetes.static_token,
    )
    .unwrap()
}

/// Creates the EKS cluster `name` in the AWS emulator; its endpoint and CA are the Kubernetes
/// emulator's, so DescribeCluster leads to it.
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

/// Creates Deployment `name` in `namespace` with the given containers (name, image), and waits
/// until its first rollout is complete.
pub async fn deployment(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    replicas: i32,
    progress_deadline_seconds: i32,
    containers: &[(&str, &str)],
) -> Deployment {
    let containers: Vec<_> = containers
        .iter()
        .map(|(container, image)| json!({"name": container, "image": image}))
        .collect();
    let object: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}
        }
    }))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &object).await.unwrap();
    settled(client, namespace, name, Duration::from_secs(20)).await
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

/// Makes the emulator's kubelet fail to run `image`, the way `reason` says.
pub async fn mark_image_bad(emulators: &Emulators, image: &str, reason: &str) {
    control(
        emulators,
        "bad-images",
        json!({"image": image, "reason": reason}),
    )
    .await;
}

/// Tells the Kubernetes emulator `body` at its control endpoint `path` (`faults`,
/// `drop-watches`, `bad-images`).
pub async fn control(emulators: &Emulators, path: &str, body: serde_json::Value) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/kubernetes/{path}", emulators.admin),
        Some(&body),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// The requests the Kubernetes emulator served, as `{method, path, query, user, status, watch}`.
pub async fn requests(emulators: &Emulators) -> Vec<serde_json::Value> {
    let (code, answer) = http::json(
        "GET",
        &format!("{}/kubernetes/requests", emulators.admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    answer["requests"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| answer.as_array().cloned().unwrap_or_default())
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
