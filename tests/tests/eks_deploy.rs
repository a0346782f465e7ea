//! eks-deploy, the real binary, against the emulated EKS (DescribeCluster) and the local cluster:
//! a real kube-apiserver (EKS tokens checked by its TokenReview webhook, RBAC from
//! `infra/k8s/rbac.yaml`), the real Deployment and ReplicaSet controllers, and kwok's pods, which
//! never pull an image whose tag says `unpullable` and crash-loop on one that says `crashloop`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::kubernetes::DeploymentSpec;
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
            "{}/web: container web runs {} on 3 of 3 replicas",
            scenario.namespace,
            scenario.v2_summarized()
        )),
        "{summary}"
    );
    let after = scenario.deployment().await;
    assert_eq!(
        images(&after),
        vec![
            ("web".into(), scenario.v2_pinned()),
            ("proxy".into(), PROXY.into())
        ],
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
        Some(
            format!(
                "eks-deploy: set web to {} (tag v2, digest {}, direct invocation)",
                scenario.v2_pinned(),
                scenario.v2_digest
            )
            .as_str()
        )
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
    // Pinned, the image keeps only its repository's name: that says `unpullable`.
    let bad = kubernetes::unpullable(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-unpullable",
        &unique("v3"),
    );
    let pinned = scenario.push(&bad).await;

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
            "ImagePullBackOff: Back-off pulling image \"{pinned}\""
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
    let crashing = kubernetes::crash_looping("shop", &unique("v3"));
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
            // The Deployment, and its canary (none: a 404).
            ("GET".to_owned(), false),
            ("GET".to_owned(), false),
            ("PATCH".to_owned(), false),
            ("GET".to_owned(), true)
        ],
        "two reads (the Deployment, its canary), one patch, one watch for a whole rollout"
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
        deploy["summary"].as_str().unwrap().contains(&format!(
            "runs {} on 3 of 3 replicas",
            scenario.v2_summarized()
        )),
        "{deploy}"
    );
    assert_eq!(
        images(&scenario.deployment().await)[0].1,
        scenario.v2_pinned()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollout_fails_the_pipeline_with_the_reason_after_rolling_back() {
    let scenario = web_with_a_proxy().await;
    let bad = kubernetes::unpullable("shop", &unique("v3"));
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

// ---------------------------------------------------------------------------------------------
// What the real control plane does that a hand-written one did not.

/// `web` as `spec` makes it in the scenario's namespace, with the shipped Role.
async fn web(spec: impl FnOnce(&str) -> DeploymentSpec) -> DeploymentScenario {
    DeploymentScenario::of(spec, |_| {}, &[]).await
}

/// A bad image, then the rollback to the ReplicaSet that ran before: the Deployment controller
/// keeps the failed rollout's ProgressDeadlineExceeded until it sees progress, and with these
/// strategies the first status after the rollback still carries it.
async fn rolled_back_despite_the_kept_verdict(scenario: &DeploymentScenario) {
    // Pinned, the image keeps only its repository's name: that says `unpullable`.
    let bad = kubernetes::unpullable(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-unpullable",
        &unique("v3"),
    );
    scenario.push(&bad).await;

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
        message.ends_with(&format!("Rolled back to {V1} (rollout complete).")),
        "{message}"
    );
    let after = kubernetes::settled(
        &scenario.client,
        &scenario.namespace,
        "web",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(images(&after)[0].1, V1);
    let status = after.status.unwrap();
    assert_eq!(
        (status.updated_replicas, status.available_replicas),
        (
            after.spec.as_ref().unwrap().replicas,
            after.spec.as_ref().unwrap().replicas
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_of_one_replica_is_complete_though_the_controller_keeps_the_old_verdict() {
    let scenario = web(|namespace| {
        DeploymentSpec::new(namespace, "web", &[("web", V1), ("proxy", PROXY)]).replicas(1)
    })
    .await;
    rolled_back_despite_the_kept_verdict(&scenario).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_of_two_replicas_surging_one_is_complete_though_the_controller_keeps_the_old_verdict()
 {
    let scenario = web(|namespace| {
        DeploymentSpec::new(namespace, "web", &[("web", V1), ("proxy", PROXY)])
            .replicas(2)
            .strategy(json!(1), json!(1))
    })
    .await;
    rolled_back_despite_the_kept_verdict(&scenario).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_that_stays_quiet_for_longer_than_thirty_seconds_is_followed_by_one_watch() {
    // The new pod never pulls: nothing changes for 40 s, until the controller's deadline.
    let scenario = web(|namespace| {
        DeploymentSpec::new(namespace, "web", &[("web", V1)])
            .replicas(1)
            .progress_deadline(40)
    })
    .await;
    let bad = kubernetes::unpullable("shop", &unique("v3"));

    let response = scenario
        .function
        .runtime()
        .invoke_with_budget(
            &scenario.params(&bad),
            Duration::from_secs(120),
            Duration::from_secs(120),
        )
        .await
        .response();

    assert_eq!(response["outcome"], "failed", "{response}");
    let watches: Vec<Value> = scenario
        .requests()
        .await
        .into_iter()
        .filter(|r| r["watch"] == true)
        .collect();
    assert_eq!(
        watches.len(),
        2,
        "one watch for the rollout (quiet for 40 s), one for the rollback: {watches:#?}"
    );
    let logs = scenario.function.log_records();
    assert!(
        !logs
            .iter()
            .any(|r| r["fields"]["message"] == "watch interrupted, resuming"),
        "{logs:?}"
    );
}

/// The (verb, resource) RBAC sees in a request eks-deploy made, and the name it carries.
fn rbac_request(request: &Value) -> (String, String, Option<String>) {
    let path = request["path"].as_str().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let at = segments.iter().position(|s| *s == "namespaces").unwrap();
    let resource = segments[at + 2].to_owned();
    let name = segments.get(at + 3).map(|s| (*s).to_owned()).or_else(|| {
        request["query"]["fieldSelector"]
            .as_str()
            .and_then(|s| s.strip_prefix("metadata.name="))
            .map(str::to_owned)
    });
    let named = segments.len() > at + 3;
    let verb = match request["method"].as_str().unwrap_or_default() {
        "GET" if request["watch"] == true => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "PATCH" => "patch",
        "PUT" => "update",
        "POST" => "create",
        "DELETE" => "delete",
        other => panic!("a {other} request: {request}"),
    };
    (verb.to_owned(), resource, name)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_eks_deploy_makes_is_allowed_by_the_shipped_role_which_grants_nothing_more() {
    let scenario = web_with_a_proxy().await;
    // A rollout, the same image again, and a failure with its rollback (the pods' reasons).
    for image in [
        V2.to_owned(),
        V2.to_owned(),
        kubernetes::unpullable("shop", &unique("v3")),
    ] {
        scenario.function.invoke(&scenario.params(&image)).await;
    }
    // A canary release (back to V1, a short bake): the canary is created, scaled, and deleted.
    let mut canary = scenario.params(V1);
    canary["strategy"] = json!({"type": "canary", "steps": [{"weight": 50, "bake": "1s"}]});
    let released = scenario.function.invoke(&canary).await.response();
    assert_eq!(released["outcome"], "succeeded", "{released}");

    let requests = scenario.requests().await;
    // Refused is 403; a 404 is a GET finding nothing (no canary left by an earlier release).
    let refused: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            let status = r["status"].as_u64().unwrap_or_default();
            let not_found = status == 404 && r["method"] == "GET";
            !((200..300).contains(&status) || not_found)
        })
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    let used: std::collections::BTreeSet<(String, String)> = requests
        .iter()
        .map(|r| {
            let (verb, resource, _) = rbac_request(r);
            (verb, resource)
        })
        .collect();
    let role = kubernetes::manifest("infra/k8s/rbac.yaml")
        .into_iter()
        .find(|o| o["kind"] == "Role")
        .unwrap();
    let mut granted = std::collections::BTreeSet::new();
    // resource -> the names the Role's rules for it allow, when they name objects.
    let mut named: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for rule in role["rules"].as_array().unwrap() {
        for resource in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                granted.insert((
                    verb.as_str().unwrap().to_owned(),
                    resource.as_str().unwrap().to_owned(),
                ));
            }
            if let Some(names) = rule["resourceNames"].as_array() {
                named
                    .entry(resource.as_str().unwrap().to_owned())
                    .or_default()
                    .extend(names.iter().map(|n| n.as_str().unwrap().to_owned()));
            }
        }
    }
    // Where the Role names the objects, every request for that resource names one of them, but
    // a create, which RBAC cannot narrow by name (it names no existing object).
    for request in &requests {
        let (verb, resource, name) = rbac_request(request);
        if let Some(names) = named.get(&resource)
            && verb != "create"
        {
            assert!(
                name.as_ref().is_some_and(|name| names.contains(name)),
                "{request} is outside {names:?}"
            );
        }
    }
    assert_eq!(
        used, granted,
        "what eks-deploy used against what the Role grants"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_without_patch_fails_the_job_naming_the_verb_and_resource_and_changes_nothing() {
    let scenario = DeploymentScenario::of(
        |namespace| DeploymentSpec::new(namespace, "web", &[("web", V1)]),
        |role| {
            for rule in role.rules.iter_mut().flatten() {
                rule.verbs.retain(|verb| verb != "patch");
            }
        },
        &[],
    )
    .await;
    let before = scenario.deployment().await;
    let run = scenario.pipeline_run(V2, None).await;

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
    for part in [
        "PATCH deployment was forbidden by the cluster's RBAC",
        &format!(
            "User \"{}\" cannot patch resource \"deployments\" in API group \"apps\"",
            scenario.emulators.kubernetes.deploy_user
        ),
        "infra/k8s/rbac.yaml",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    let after = scenario.deployment().await;
    assert_eq!(images(&after)[0].1, V1);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    let forbidden: Vec<Value> = scenario
        .requests()
        .await
        .into_iter()
        .filter(|r| r["status"] == 403)
        .collect();
    assert_eq!(
        forbidden.len(),
        1,
        "refused once, not retried: {forbidden:#?}"
    );
}
