//! eks-deploy, the real binary, against the emulated EKS (DescribeCluster) and the Kubernetes
//! emulator over HTTPS, which checks every EKS token with botocore and rolls Deployments out (or
//! fails to, for images marked bad).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::aws::sdk_config;
use integration_tests::{Emulators, Function, kubernetes, unique};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

const V1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1";
const V2: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2";
const PROXY: &str = "envoyproxy/envoy:v1.30";

struct Scenario {
    emulators: Emulators,
    client: kube::Client,
    cluster: String,
    namespace: String,
    function: Function,
}

impl Scenario {
    async fn new() -> Self {
        let emulators = Emulators::load();
        let sdk = sdk_config(&emulators).await;
        let cluster = unique("shop-prod");
        kubernetes::eks_cluster(&sdk, &cluster).await;
        let client = kubernetes::client(&emulators);
        let namespace = unique("shop");
        kubernetes::deployment(
            &client,
            &namespace,
            "web",
            3,
            2,
            &[("web", V1), ("proxy", PROXY)],
        )
        .await;
        let function = Function::start("eks-deploy", &emulators.function_env()).await;
        Self {
            emulators,
            client,
            cluster,
            namespace,
            function,
        }
    }

    fn params(&self, image: &str) -> Value {
        json!({"cluster": self.cluster, "namespace": self.namespace, "deployment": "web", "container": "web", "image": image})
    }

    async fn deployment(&self) -> Deployment {
        Api::<Deployment>::namespaced(self.client.clone(), &self.namespace)
            .get("web")
            .await
            .unwrap()
    }
}

fn images(deployment: &Deployment) -> Vec<(String, String)> {
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

fn annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_is_patched_into_its_container_and_followed_until_rolled_out() {
    let scenario = Scenario::new().await;
    let before = scenario.deployment().await;

    let response = scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();

    assert_eq!(response["outcome"], "succeeded", "{response}");
    let summary = response["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "{}/web: container web runs {V2} on 3 of 3 replicas",
            scenario.namespace
        )),
        "{summary}"
    );
    let after = scenario.deployment().await;
    assert_eq!(
        images(&after),
        vec![("web".into(), V2.into()), ("proxy".into(), PROXY.into())],
        "the other container is kept"
    );
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1)
    );
    assert_eq!(
        annotation(&after, "eks-deploy.cicd/previous-image"),
        Some(format!("web={V1}").as_str())
    );
    assert_eq!(
        annotation(&after, "kubernetes.io/change-cause"),
        Some(format!("eks-deploy: set web to {V2} (direct invocation)").as_str())
    );
    let status = after.status.unwrap();
    assert_eq!(status.observed_generation, after.metadata.generation);
    assert_eq!(
        (status.updated_replicas, status.available_replicas),
        (Some(3), Some(3))
    );

    // The same image again: nothing to patch, and a success.
    let again = scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();
    assert_eq!(again["outcome"], "succeeded");
    assert!(
        again["summary"]
            .as_str()
            .unwrap()
            .ends_with("nothing to do"),
        "{again}"
    );
    assert_eq!(
        scenario.deployment().await.metadata.generation,
        after.metadata.generation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_never_starts_fails_with_the_pods_reason_and_is_rolled_back() {
    let scenario = Scenario::new().await;
    let bad = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{}",
        unique("bad")
    );
    kubernetes::mark_image_bad(&scenario.emulators, &bad, "ImagePullBackOff").await;

    let response = scenario
        .function
        .invoke(&scenario.params(&bad))
        .await
        .response();

    assert_eq!(response["outcome"], "failed", "{response}");
    let message = response["message"].as_str().unwrap();
    assert!(
        message.contains("the rollout exceeded its progress deadline"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "ImagePullBackOff: Back-off pulling image \"{bad}\""
        )),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("Rolled back to {V1} (rollout complete).")),
        "{message}"
    );
    let after = scenario.deployment().await;
    assert_eq!(images(&after)[0], ("web".to_owned(), V1.to_owned()));
    assert!(matches!(
        eks_deploy::rollout::status_of(&after),
        eks_deploy::rollout::RolloutStatus::Complete { replicas: 3 }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_image_is_reported_and_left_when_rollback_is_off() {
    let scenario = Scenario::new().await;
    let crashing = format!("shop:{}", unique("crash"));
    kubernetes::mark_image_bad(&scenario.emulators, &crashing, "CrashLoopBackOff").await;
    let mut params = scenario.params(&crashing);
    params["rollbackOnFailure"] = json!(false);

    let response = scenario.function.invoke(&params).await.response();

    let message = response["message"].as_str().unwrap();
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    assert!(
        message.ends_with("Not rolled back (rollback is off)."),
        "{message}"
    );
    assert_eq!(images(&scenario.deployment().await)[0].1, crashing);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rollout_is_followed_with_a_watch_not_by_polling() {
    let scenario = Scenario::new().await;
    let user_requests = |requests: &[Value]| -> Vec<(String, bool)> {
        requests
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("/namespaces/{}/", scenario.namespace))
            })
            .filter(|r| r["user"].as_str().unwrap_or_default() != "emulator-admin")
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or_default().to_owned(),
                    r["watch"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    let before = user_requests(&kubernetes::requests(&scenario.emulators).await).len();

    scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();

    let after = user_requests(&kubernetes::requests(&scenario.emulators).await);
    let made = &after[before..];
    assert_eq!(
        made,
        [
            ("GET".to_owned(), false),
            ("PATCH".to_owned(), false),
            ("GET".to_owned(), true)
        ],
        "one read, one patch, one watch for a whole rollout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_without_the_container_fails_clearly() {
    let scenario = Scenario::new().await;
    let mut params = scenario.params(V2);
    params["container"] = json!("api");

    let response = scenario.function.invoke(&params).await.response();

    assert_eq!(response["outcome"], "failed");
    assert_eq!(
        response["message"],
        format!(
            "{}/web: deployment web has no container named api (it has: web, proxy)",
            scenario.namespace
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_an_invalid_event_naming_the_field() {
    let scenario = Scenario::new().await;
    let mut params = scenario.params(V2);
    params["namespace"] = json!("Not_A_Namespace");

    let result = scenario.function.invoke(&params).await;

    assert_eq!(result.error_type(), "InvalidEvent");
}
