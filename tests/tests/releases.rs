//! Safe releases with the real eks-deploy binary, on the local cluster (the real Deployment
//! controller, kwok's pods) and the AWS emulator's own ECR and CloudWatch: canary steps, alarms
//! fired through the emulator while a release bakes, the scan gate, continuations redelivered or
//! resumed after a crash, a canary abandoned by an earlier release, and strategies refused.
//!
//! Alarms are read every `ALARM_READ_SECONDS`, never faster than 10 s, in tests too: a test that
//! fires an alarm mid-bake waits for the next read, so those bakes are 30 s and the test ends at
//! the read after the alarm (about 10 s), not at the bake's end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::time::Duration;

use integration_tests::releases::{
    self, DeploymentWatch, FIRING_REASON, abandoned_canary, available, deleted, replica_steps,
};
use integration_tests::scenarios::deployments::{
    DeploymentScenario, PipelineRun, V1, V2, container_images as images,
};
use integration_tests::scenarios::with_settings;
use integration_tests::{Function, kubernetes, unique};
use serde_json::{Value, json};

/// `web`: 3 replicas of V1, a progress deadline long enough for kwok's pods on a busy machine.
async fn web() -> DeploymentScenario {
    DeploymentScenario::with(&[("web", V1)], 10, &[]).await
}

/// eks-deploy with `extra` settings besides the emulators'.
async fn eks_deploy(scenario: &DeploymentScenario, extra: &[(&str, &str)]) -> Function {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = with_settings(scenario.emulators.function_env(), &extra);
    Function::start("eks-deploy", &env).await
}

/// The scenario's deployment parameters with `plan` merged in, the image left to the pipeline.
fn pipeline_params(scenario: &DeploymentScenario, plan: Value) -> Value {
    let mut params = json!({"cluster": scenario.cluster, "namespace": scenario.namespace,
                            "deployment": "web", "container": "web",
                            "image": "#{BuildVariables.IMAGE_URI}"});
    for (key, value) in plan.as_object().unwrap() {
        params[key] = value.clone();
    }
    params
}

/// The scenario's direct-invocation parameters for `image` with `plan` merged in.
fn direct_params(scenario: &DeploymentScenario, image: &str, plan: Value) -> Value {
    let mut params = scenario.params(image);
    for (key, value) in plan.as_object().unwrap() {
        params[key] = value.clone();
    }
    params
}

/// (method, the object's name) of eks-deploy's requests in the namespace: `POST` names the
/// collection (`deployments`), the others the Deployment.
async fn changes(scenario: &DeploymentScenario) -> Vec<(String, String)> {
    scenario
        .requests()
        .await
        .iter()
        .filter(|r| matches!(r["method"].as_str(), Some("POST" | "PATCH" | "DELETE")))
        .map(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                path.rsplit('/').next().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn no_changes() -> Vec<(String, String)> {
    Vec::new()
}

fn count(changes: &[(String, String)], method: &str, name: &str) -> usize {
    changes
        .iter()
        .filter(|(m, n)| m == method && n == name)
        .count()
}

/// An image of the emulated ECR under a tag of this test only, pushed: (image by tag, its tag,
/// the image pinned).
async fn fresh_image(scenario: &DeploymentScenario) -> (String, String, String) {
    let tag = unique("v3");
    let image = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{tag}");
    let pinned = scenario.push(&image).await;
    (image, tag, pinned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_steps_through_its_weights_is_deleted_and_the_main_deployment_gets_the_pinned_image()
 {
    let scenario = web().await;
    let before = scenario.deployment().await;
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "2s"}, {"weight": 50, "bake": "2s"}]}});
    let watch = DeploymentWatch::start(&scenario.client, &scenario.namespace, "web-canary").await;
    let watching = tokio::spawn(watch.until(Duration::from_secs(60), deleted));

    let response = scenario
        .function
        .invoke(&direct_params(&scenario, V2, plan))
        .await
        .response();

    assert_eq!(response["outcome"], "succeeded", "{response}");
    assert_eq!(
        response["summary"],
        format!(
            "{}/web: canary 10% baked 2s, 50% baked 2s, promoted {} on 3 of 3 replicas",
            scenario.namespace,
            scenario.v2_summarized()
        )
    );
    let seen = watching.await.unwrap();
    assert!(deleted(&seen), "the canary is deleted at the end: {seen:?}");
    // 10 % of 3 replicas is 1 pod, 50 % is 2 (rounded up).
    assert_eq!(replica_steps(&seen), [1, 2]);
    let (_, first) = &seen[0];
    assert_eq!(seen[0].0, "ADDED");
    assert_eq!(
        images(first),
        [("web".to_owned(), scenario.v2_pinned())],
        "the canary runs the pinned image"
    );
    let spec = first.spec.as_ref().unwrap();
    let selector = spec.selector.match_labels.clone().unwrap();
    assert_eq!(
        selector.get("track").map(String::as_str),
        Some("canary"),
        "{selector:?}"
    );
    assert_eq!(selector.get("app").map(String::as_str), Some("web"));
    let pod_labels = spec.template.metadata.as_ref().unwrap().labels.clone();
    assert_eq!(
        pod_labels.unwrap().get("app").map(String::as_str),
        Some("web"),
        "the Service's selector picks the canary's pods too"
    );
    assert_eq!(
        first
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("eks-deploy.cicd/canary-owner")
            .map(String::as_str),
        Some("direct")
    );
    assert!(
        seen.iter()
            .any(|(_, canary)| available(canary, 1) || available(canary, 2)),
        "each step waited for the canary's pods: {seen:?}"
    );
    assert!(
        releases::canary(&scenario.client, &scenario.namespace)
            .await
            .is_none()
    );
    let after = kubernetes::settled(
        &scenario.client,
        &scenario.namespace,
        "web",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(images(&after), [("web".to_owned(), scenario.v2_pinned())]);
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1),
        "the main Deployment was patched once"
    );
    let changes = changes(&scenario).await;
    assert_eq!(
        changes,
        [
            ("POST".to_owned(), "deployments".to_owned()),
            ("PATCH".to_owned(), "web-canary".to_owned()),
            ("PATCH".to_owned(), "web".to_owned()),
            ("DELETE".to_owned(), "web-canary".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_the_first_steps_bake_deletes_the_canary_and_fails_the_job_leaving_the_main_deployment()
 {
    let scenario = web().await;
    let alarm = unique("shop-5xx");
    releases::alarm(&scenario.emulators, &alarm).await;
    let before = scenario.deployment().await;
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "30s"}, {"weight": 50, "bake": "1s"}]},
                      "alarms": [alarm]});
    let run = scenario
        .pipeline_run(V2, Some(pipeline_params(&scenario, plan)))
        .await;
    let job = run.job(&scenario.emulators).await;
    let watch = DeploymentWatch::start(&scenario.client, &scenario.namespace, "web-canary").await;

    // The alarm fires once the canary's pod is available: the step is baking.
    let fire = async {
        let seen = watch
            .until(Duration::from_secs(30), |seen| {
                seen.last().is_some_and(|(_, canary)| available(canary, 1))
            })
            .await;
        assert!(!seen.is_empty(), "no canary within 30 s");
        releases::fire(&scenario.emulators, &alarm).await;
    };
    let (response, ()) = tokio::join!(scenario.function.invoke(&job), fire);

    let response = response.response();
    assert_eq!(response["outcome"], "failed", "{response}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "Failed");
    assert_eq!(deploy["error"]["code"], "JobFailed", "{deploy}");
    assert_eq!(
        deploy["error"]["message"],
        format!("aborted at 10%: alarm {alarm} ALARM ({FIRING_REASON}); the canary was deleted")
    );
    assert!(
        releases::canary(&scenario.client, &scenario.namespace)
            .await
            .is_none()
    );
    let after = scenario.deployment().await;
    assert_eq!(images(&after), [("web".to_owned(), V1.to_owned())]);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(count(&changes(&scenario).await, "PATCH", "web"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_in_the_bake_after_the_rollout_rolls_back_to_the_previous_digest() {
    let scenario = web().await;
    // First V2, pinned: the digest a rollback must go back to.
    let first = scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();
    assert_eq!(first["outcome"], "succeeded", "{first}");
    let (image, _, target) = fresh_image(&scenario).await;
    let alarm = unique("shop-p99-latency");
    releases::alarm(&scenario.emulators, &alarm).await;
    let plan = json!({"alarms": [alarm], "bakeAfter": "30s"});
    let watch = DeploymentWatch::start(&scenario.client, &scenario.namespace, "web").await;

    // The alarm fires once the new image runs on every replica: the bake after has begun.
    let fire = async {
        let seen = watch
            .until(Duration::from_secs(30), |seen| {
                seen.last()
                    .is_some_and(|(_, web)| images(web)[0].1 == target && available(web, 3))
            })
            .await;
        assert!(!seen.is_empty(), "no rollout within 30 s");
        releases::fire(&scenario.emulators, &alarm).await;
    };
    let params = direct_params(&scenario, &image, plan);
    let (response, ()) = tokio::join!(scenario.function.invoke(&params), fire);

    let response = response.response();
    assert_eq!(response["outcome"], "failed", "{response}");
    let previous = scenario.v2_pinned();
    assert_eq!(
        response["message"],
        format!(
            "aborted at 100%: alarm {alarm} ALARM ({FIRING_REASON}) in the bake after the rollout of {target}. \
             Rolled back to {previous} (rollout complete)."
        )
    );
    let after = kubernetes::settled(
        &scenario.client,
        &scenario.namespace,
        "web",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(images(&after), [("web".to_owned(), previous)]);
    assert!(matches!(
        eks_deploy::rollout::status_of(&after),
        eks_deploy::rollout::RolloutStatus::Complete { replicas: 3 }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scan_gate_refuses_findings_above_its_severity_naming_the_counts_and_patches_nothing() {
    let scenario = web().await;
    let (image, tag, target) = fresh_image(&scenario).await;
    let findings = json!([
        {"name": "CVE-2026-31001", "severity": "CRITICAL", "packageName": "openssl"},
        {"name": "CVE-2026-31002", "severity": "CRITICAL", "packageName": "zlib"},
        {"name": "CVE-2026-31003", "severity": "HIGH", "packageName": "curl"},
        {"name": "CVE-2026-31004", "severity": "LOW", "packageName": "tar"},
        {"name": "CVE-2026-31005", "severity": "LOW", "packageName": "bash"},
    ]);
    releases::scan(&scenario.emulators, "shop", &tag, "COMPLETE", findings).await;
    let before = scenario.deployment().await;

    let response = scenario
        .function
        .invoke(&direct_params(
            &scenario,
            &image,
            json!({"scanGate": {"maxSeverity": "HIGH"}}),
        ))
        .await
        .response();

    assert_eq!(response["outcome"], "failed", "{response}");
    let digest = target.rsplit_once('@').unwrap().1;
    let message = response["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "{}/web: the scan of {image} ({}…) has findings above HIGH: 2 CRITICAL, 1 HIGH, 2 LOW; top findings: ",
            scenario.namespace,
            &digest[..19]
        )),
        "{message}"
    );
    for finding in [
        "CVE-2026-31001 in openssl (CRITICAL)",
        "CVE-2026-31002 in zlib (CRITICAL)",
    ] {
        assert!(message.contains(finding), "{finding} not in {message}");
    }
    let after = scenario.deployment().await;
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(changes(&scenario).await, no_changes());

    // CRITICAL allowed: the same image goes out.
    let allowed = scenario
        .function
        .invoke(&direct_params(
            &scenario,
            &image,
            json!({"scanGate": {"maxSeverity": "CRITICAL"}}),
        ))
        .await
        .response();
    assert_eq!(allowed["outcome"], "succeeded", "{allowed}");
    assert_eq!(images(&scenario.deployment().await)[0].1, target);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_in_progress_is_waited_for_through_continuations_then_the_image_goes_out() {
    let scenario = web().await;
    let (_, tag, target) = fresh_image(&scenario).await;
    releases::scan(&scenario.emulators, "shop", &tag, "IN_PROGRESS", json!([])).await;
    let image = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:{tag}");
    let run = scenario
        .pipeline_run(
            &image,
            Some(pipeline_params(
                &scenario,
                json!({"scanGate": {"maxSeverity": "HIGH"}}),
            )),
        )
        .await;
    let function = eks_deploy(
        &scenario,
        &[("DEADLINE_MARGIN_SECONDS", "0"), ("SCAN_POLL_SECONDS", "1")],
    )
    .await;

    // A function timeout that ends while the scan runs.
    let first = function
        .invoke_within(&run.job(&scenario.emulators).await, Duration::from_secs(3))
        .await
        .response();

    assert_eq!(first["outcome"], "inProgress", "{first}");
    assert!(
        first["summary"].as_str().unwrap().starts_with(&format!(
            "{}/web: waiting for the scan of {image}",
            scenario.namespace
        )),
        "{first}"
    );
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(
        (status.as_str(), &deploy["status"]),
        ("InProgress", &json!("InProgress")),
        "{deploy}"
    );
    assert_eq!(
        changes(&scenario).await,
        no_changes(),
        "nothing changes while the scan runs"
    );

    releases::scan(
        &scenario.emulators,
        "shop",
        &tag,
        "COMPLETE",
        json!([{"name": "CVE-2026-31009", "severity": "LOW", "packageName": "tar"}]),
    )
    .await;
    let continued = run.job(&scenario.emulators).await;
    assert!(continued["CodePipeline.job"]["data"]["continuationToken"].is_string());
    let second = function.invoke(&continued).await.response();

    assert_eq!(second["outcome"], "succeeded", "{second}");
    assert_eq!(run.status(&scenario.emulators).await.0, "Succeeded");
    assert_eq!(images(&scenario.deployment().await)[0].1, target);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_still_in_progress_after_the_wait_limit_fails_and_deploys_nothing() {
    let scenario = web().await;
    let (image, tag, _) = fresh_image(&scenario).await;
    releases::scan(&scenario.emulators, "shop", &tag, "IN_PROGRESS", json!([])).await;
    let function = eks_deploy(
        &scenario,
        &[("SCAN_WAIT_SECONDS", "2"), ("SCAN_POLL_SECONDS", "1")],
    )
    .await;

    let response = function
        .invoke(&direct_params(
            &scenario,
            &image,
            json!({"scanGate": {"maxSeverity": "HIGH"}}),
        ))
        .await
        .response();

    assert_eq!(response["outcome"], "failed", "{response}");
    let message = response["message"].as_str().unwrap();
    assert!(
        message.contains("was still in progress after")
            && message.ends_with("(SCAN_WAIT_SECONDS is 2): not deployed"),
        "{message}"
    );
    assert_eq!(images(&scenario.deployment().await)[0].1, V1);
    assert_eq!(changes(&scenario).await, no_changes());
}

/// A two-step canary started by a pipeline job whose first invocation runs out of time in the
/// first step: the run, and the continuation job it left.
async fn canary_started(scenario: &DeploymentScenario, plan: Value) -> (PipelineRun, Value) {
    let run = scenario
        .pipeline_run(V2, Some(pipeline_params(scenario, plan)))
        .await;
    let short = eks_deploy(scenario, &[("DEADLINE_MARGIN_SECONDS", "0")]).await;
    let first = short
        .invoke_within(&run.job(&scenario.emulators).await, Duration::from_secs(2))
        .await
        .response();
    assert_eq!(first["outcome"], "inProgress", "{first}");
    assert!(
        first["summary"].as_str().unwrap().contains("canary at 10%"),
        "{first}"
    );
    let continued = run.job(&scenario.emulators).await;
    assert!(continued["CodePipeline.job"]["data"]["continuationToken"].is_string());
    (run, continued)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_continuation_delivered_twice_makes_no_second_canary_and_no_second_patch() {
    let scenario = web().await;
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "2s"}, {"weight": 50, "bake": "2s"}]}});
    let (run, continued) = canary_started(&scenario, plan).await;

    let second = scenario.function.invoke(&continued).await.response();
    assert_eq!(second["outcome"], "succeeded", "{second}");
    let done = changes(&scenario).await;
    // Delivered again: the release is over, and CodePipeline already has its result.
    let again = scenario.function.invoke(&continued).await.response();

    assert_eq!(again["outcome"], "alreadyReported", "{again}");
    let all = changes(&scenario).await;
    assert_eq!(
        all[done.len()..]
            .iter()
            .filter(|(method, _)| method != "DELETE")
            .count(),
        0,
        "the second delivery created and patched nothing: {:?}",
        &all[done.len()..]
    );
    assert_eq!(count(&all, "POST", "deployments"), 1, "one canary: {all:?}");
    assert_eq!(
        count(&all, "PATCH", "web-canary"),
        1,
        "scaled once: {all:?}"
    );
    assert_eq!(count(&all, "PATCH", "web"), 1, "promoted once: {all:?}");
    assert_eq!(run.status(&scenario.emulators).await.0, "Succeeded");
    assert!(
        releases::canary(&scenario.client, &scenario.namespace)
            .await
            .is_none()
    );
    assert_eq!(
        images(&scenario.deployment().await)[0].1,
        scenario.v2_pinned()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_continuation_whose_invocation_died_mid_bake_is_resumed_with_the_same_canary() {
    let scenario = web().await;
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "6s"}, {"weight": 50, "bake": "1s"}]}});
    let (run, continued) = canary_started(&scenario, plan).await;
    // Watched from here on, so that the canary's becoming available is seen even if it comes
    // right after this read.
    let watch = DeploymentWatch::start(&scenario.client, &scenario.namespace, "web-canary").await;
    let created = releases::canary(&scenario.client, &scenario.namespace)
        .await
        .expect("the first invocation made the canary");

    // The continuation's invocation dies (its process killed) while the first step bakes.
    let dying = eks_deploy(&scenario, &[]).await;
    let baking = async {
        if !available(&created, 1) {
            watch
                .until(Duration::from_secs(30), |seen| {
                    seen.last().is_some_and(|(_, canary)| available(canary, 1))
                })
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::select! {
        result = dying.invoke(&continued) => panic!("the invocation ended before it was killed: {result:?}"),
        () = baking => {}
    }
    dying.stop().await;
    assert_eq!(run.status(&scenario.emulators).await.0, "InProgress");

    // CodePipeline invokes the same job again (in a new execution environment).
    let resumed = scenario.function.invoke(&continued).await.response();

    assert_eq!(resumed["outcome"], "succeeded", "{resumed}");
    assert!(
        resumed["summary"]
            .as_str()
            .unwrap()
            .contains("canary 10% baked 6s, 50% baked 1s, promoted"),
        "{resumed}"
    );
    let all = changes(&scenario).await;
    assert_eq!(count(&all, "POST", "deployments"), 1, "one canary: {all:?}");
    assert_eq!(
        count(&all, "PATCH", "web-canary"),
        1,
        "scaled once, to 50 %: {all:?}"
    );
    assert_eq!(count(&all, "PATCH", "web"), 1, "promoted once: {all:?}");
    assert_eq!(run.status(&scenario.emulators).await.0, "Succeeded");
    assert!(
        releases::canary(&scenario.client, &scenario.namespace)
            .await
            .is_none()
    );
    assert_eq!(
        images(&scenario.deployment().await)[0].1,
        scenario.v2_pinned()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_abandoned_by_an_earlier_release_is_removed_with_a_log_line_before_the_deploy() {
    let scenario = web().await;
    let earlier = "99999999-dead-4999-8ead-999999999999";
    abandoned_canary(&scenario.client, &scenario.namespace, earlier, V1).await;

    let response = scenario
        .function
        .invoke(&scenario.params(V2))
        .await
        .response();

    assert_eq!(response["outcome"], "succeeded", "{response}");
    assert!(
        releases::canary(&scenario.client, &scenario.namespace)
            .await
            .is_none()
    );
    let changes = changes(&scenario).await;
    assert_eq!(
        changes,
        [
            ("DELETE".to_owned(), "web-canary".to_owned()),
            ("PATCH".to_owned(), "web".to_owned()),
        ],
        "removed before the deploy"
    );
    let logged: Vec<Value> = scenario
        .function
        .log_records()
        .into_iter()
        .filter(|r| r["fields"]["message"] == "removing a canary abandoned by an earlier release")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["fields"]["abandoned_by"], earlier, "{logged:?}");
    assert_eq!(logged[0]["fields"]["canary"], "web-canary", "{logged:?}");
    assert_eq!(
        images(&scenario.deployment().await)[0].1,
        scenario.v2_pinned()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_strategies_fail_the_job_as_configuration_errors_naming_the_field() {
    let scenario = web().await;
    let step = |weight: u64, bake: &str| json!({"weight": weight, "bake": bake});
    for (strategy, field, problem) in [
        (
            json!({"type": "canary", "steps": [step(50, "1m"), step(20, "1m")]}),
            "strategy.steps[1].weight",
            "20 does not increase on the step before (50)",
        ),
        (
            json!({"type": "canary", "steps": [step(10, "1m"), step(150, "1m")]}),
            "strategy.steps[1].weight",
            "150 is not a whole percentage from 1 to 100",
        ),
        (
            json!({"type": "canary", "steps": [step(10, "5 minutes")]}),
            "strategy.steps[0].bake",
            "\"5 minutes\" is not a duration",
        ),
        (
            json!({"type": "canary", "steps": [{"weight": 10, "bake": "1m", "pause": true}]}),
            "strategy.steps[0].pause",
            "unknown field \"pause\"",
        ),
    ] {
        let run = scenario
            .pipeline_run(
                V2,
                Some(pipeline_params(&scenario, json!({"strategy": strategy}))),
            )
            .await;

        let response = scenario
            .function
            .invoke(&run.job(&scenario.emulators).await)
            .await
            .response();

        assert_eq!(response["outcome"], "invalidParameters", "{response}");
        let (status, deploy) = run.status(&scenario.emulators).await;
        assert_eq!(status, "Failed");
        assert_eq!(deploy["error"]["code"], "ConfigurationError", "{deploy}");
        let message = deploy["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("UserParameters.{field}: {problem}")),
            "{message}"
        );
    }
    assert_eq!(
        scenario.requests().await,
        Vec::<Value>::new(),
        "nothing was asked of the cluster"
    );
    assert_eq!(images(&scenario.deployment().await)[0].1, V1);
}
