//! eks-deploy, the real binary, against the emulated EKS (DescribeCluster) and the Kubernetes
//! emulator over HTTPS, which checks every EKS token with botocore and rolls Deployments out (or
//! fails to, for images marked bad).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::scenarios::deployments::{
    DeploymentScenario, V1, V2, container_images as images,
};
use integration_tests::{Function, kubernetes, unique};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

const PROXY: &str = "envoyproxy/envoy:v1.30";

/// `web` running V1 beside a proxy container, which a deploy of `web` must keep.
async fn web_with_a_proxy() -> DeploymentScenario {
    DeploymentScenario::new(&[("web", V1), ("proxy", PROXY)]).await
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
    let scenario = web_with_a_proxy().await;
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
    let scenario = web_with_a_proxy().await;
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
    let scenario = web_with_a_proxy().await;
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
    let scenario = web_with_a_proxy().await;
    let user_requests = |requests: Vec<Value>| -> Vec<(String, bool)> {
        requests
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or_default().to_owned(),
                    r["watch"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    let before = user_requests(scenario.requests().await).len();

    scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();

    let after = user_requests(scenario.requests().await);
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
    let scenario = web_with_a_proxy().await;
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
    let scenario = web_with_a_proxy().await;
    let mut params = scenario.params(V2);
    params["namespace"] = json!("Not_A_Namespace");

    let result = scenario.function.invoke(&params).await;

    assert_eq!(result.error_type(), "InvalidEvent");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_deploy_action_succeeds_once_the_rollout_is_complete() {
    let scenario = web_with_a_proxy().await;
    let run = scenario.pipeline_run(V2, None).await;

    let response = scenario
        .function
        .invoke(&run.job(&scenario.emulators).await)
        .await
        .response();

    assert_eq!(response["outcome"], "succeeded", "{response}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "Succeeded", "{deploy}");
    assert!(
        deploy["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("runs {V2} on 3 of 3 replicas")),
        "{deploy}"
    );
    assert_eq!(images(&scenario.deployment().await)[0].1, V2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollout_fails_the_pipeline_with_the_reason_after_rolling_back() {
    let scenario = web_with_a_proxy().await;
    let bad = format!("shop:{}", unique("bad"));
    kubernetes::mark_image_bad(&scenario.emulators, &bad, "ImagePullBackOff").await;
    let run = scenario.pipeline_run(&bad, None).await;

    let response = scenario
        .function
        .invoke(&run.job(&scenario.emulators).await)
        .await
        .response();

    assert_eq!(response["outcome"], "failed", "{response}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "Failed");
    assert_eq!(deploy["error"]["code"], "JobFailed", "{deploy}");
    let message = deploy["error"]["message"].as_str().unwrap();
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert!(
        message.ends_with(&format!("Rolled back to {V1} (rollout complete).")),
        "{message}"
    );
    assert_eq!(images(&scenario.deployment().await)[0].1, V1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_longer_than_one_invocation_continues_in_the_next() {
    let scenario = web_with_a_proxy().await;
    let run = scenario.pipeline_run(V2, None).await;
    let mut env = scenario.emulators.function_env();
    env.push(("DEADLINE_MARGIN_SECONDS".into(), "0".into()));
    let function = Function::start("eks-deploy", &env).await;

    // A function timeout too short to see the rollout through.
    let first = function
        .invoke_within(
            &run.job(&scenario.emulators).await,
            Duration::from_millis(800),
        )
        .await
        .response();

    assert_eq!(first["outcome"], "inProgress", "{first}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "InProgress");
    assert_eq!(deploy["status"], "InProgress", "{deploy}");
    let continued = run.job(&scenario.emulators).await;
    assert!(
        continued["CodePipeline.job"]["data"]["continuationToken"].is_string(),
        "{continued}"
    );

    let second = function.invoke(&continued).await.response();

    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(run.status(&scenario.emulators).await.0, "Succeeded");
    let patches = scenario.patches().await;
    assert_eq!(
        patches, 1,
        "the continuation follows the rollout without patching again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_user_parameters_fail_the_pipeline_as_a_configuration_error() {
    let scenario = web_with_a_proxy().await;
    let parameters = json!({"cluster": scenario.cluster, "namespace": scenario.namespace, "deployment": "web", "container": "web"});
    let run = scenario.pipeline_run(V2, Some(parameters)).await;

    let response = scenario
        .function
        .invoke(&run.job(&scenario.emulators).await)
        .await
        .response();

    assert_eq!(response["outcome"], "invalidParameters", "{response}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "Failed");
    assert_eq!(
        deploy["error"],
        json!({"code": "ConfigurationError", "message": "UserParameters.image: missing"})
    );
}
