//! eks-deploy into a cluster of another account: the real binary assumes the environment's role
//! (the emulated STS judges the role's trust policy and ExternalId as STS does), describes the
//! cluster as that role (the emulator answers in the role's account), and signs the EKS token
//! with the session's credentials, which the local cluster's TokenReview webhook checks (secret
//! and session token of the live session) and maps to the assumed-role user.
//!
//! One test function: it counts the AssumeRole calls in the emulator's request log, which the
//! tests of one file running in parallel would share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use integration_tests::scenarios::deployments::{
    DeploymentScenario, V1, V2, container_images as images,
};
use integration_tests::{Emulators, http, kubernetes, unique};
use serde_json::{Value, json};

const TARGET_ACCOUNT: &str = "210987654321";
const EXTERNAL_ID: &str = "shop-main-production";
/// Locally eks-deploy runs as this role (tests/emulator/local_cluster.py): the target role
/// trusts it, as infra/target-account.yaml trusts the main stack's EksDeployRole.
const DEPLOY_ROLE: &str = "arn:aws:iam::123456789012:role/eks-cicd-EksDeployRole";

/// The target account's role (infra/target-account.yaml's `eks-deploy-target`), trusting
/// eks-deploy's role with the ExternalId; its ARN.
async fn target_role(emulators: &Emulators, name: &str) -> String {
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": DEPLOY_ROLE}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]});
    let (code, answer) = http::json(
        "POST",
        &format!("{}/iam/role", emulators.admin),
        Some(&json!({"accountId": TARGET_ACCOUNT, "roleName": name, "trustPolicy": policy})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    answer["arn"].as_str().unwrap().to_owned()
}

/// `sdk` in a session of `role` (what the target account's administrator would use).
async fn as_role(sdk: &SdkConfig, role: &str) -> SdkConfig {
    let answer = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(role)
        .role_session_name("target-admin")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap();
    let given = answer.credentials().unwrap();
    sdk.to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                given.access_key_id(),
                given.secret_access_key(),
                Some(given.session_token().to_owned()),
                None,
                "assumed",
            )),
        )
        .build()
}

async fn aws_calls(emulators: &Emulators, operation: &str) -> usize {
    let (code, answer) =
        http::json("GET", &format!("{}/aws/requests", emulators.admin), None).await;
    assert_eq!(code, 200, "{answer}");
    answer["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == operation)
        .count()
}

fn cross_account(scenario: &DeploymentScenario, cluster: &str, role: &str, image: &str) -> Value {
    let mut params = scenario.params(image);
    params["cluster"] = json!(cluster);
    params["roleArn"] = json!(role);
    params["externalId"] = json!(EXTERNAL_ID);
    params["environment"] = json!("production");
    params
}

/// The users the cluster saw in eks-deploy's requests to the scenario's namespace.
async fn users(scenario: &DeploymentScenario) -> std::collections::BTreeSet<String> {
    kubernetes::requests(&scenario.emulators)
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("/namespaces/{}/", scenario.namespace))
        })
        .filter_map(|r| r["user"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_of_another_account_is_deployed_to_as_the_assumed_role_named_after_the_execution()
{
    let scenario = DeploymentScenario::new(&[("web", V1)]).await;
    let role_name = unique("eks-deploy-target");
    let role = target_role(&scenario.emulators, &role_name).await;
    let cluster = unique("shop-prod-target");
    // The cluster exists in the target account only: this account's DescribeCluster of it fails.
    kubernetes::eks_cluster(&as_role(&scenario.sdk, &role).await, &cluster).await;
    let assumed_before = aws_calls(&scenario.emulators, "AssumeRole").await;

    // A wrong ExternalId: STS refuses, the deploy fails as a configuration error, and nothing in
    // the cluster changes.
    let mut refused = cross_account(&scenario, &cluster, &role, V2);
    refused["externalId"] = json!("someone-else");
    refused["pipelineExecutionId"] = json!("0c0c0c0c-1111-2222-3333-444455556666");
    let answer = scenario.function.invoke(&refused).await.response();
    assert_eq!(answer["outcome"], "invalidParameters", "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("not allowed to assume {role}")),
        "{message}"
    );
    assert!(message.contains("AccessDenied"), "{message}");
    assert_eq!(images(&scenario.deployment().await)[0].1, V1);
    assert!(users(&scenario).await.is_empty());

    // Through the pipeline: the execution id comes from #{codepipeline.PipelineExecutionId}.
    let mut parameters = cross_account(&scenario, &cluster, &role, "#{BuildVariables.IMAGE_URI}");
    parameters["pipelineExecutionId"] = json!("#{codepipeline.PipelineExecutionId}");
    let run = scenario.pipeline_run(V2, Some(parameters)).await;
    let answer = scenario
        .function
        .invoke(&run.job(&scenario.emulators).await)
        .await
        .response();
    assert_eq!(answer["outcome"], "succeeded", "{answer}");
    let (status, deploy) = run.status(&scenario.emulators).await;
    assert_eq!(status, "Succeeded", "{deploy}");
    assert_eq!(
        images(&scenario.deployment().await)[0].1,
        scenario.v2_pinned()
    );
    let session = format!("production-{}", run.execution_id);
    assert_eq!(
        users(&scenario).await,
        [format!(
            "arn:aws:sts::{TARGET_ACCOUNT}:assumed-role/{role_name}/{session}"
        )]
        .into(),
        "every request to the cluster was made as the assumed role, in the execution's session"
    );

    // The same execution again (a redelivered job, direct this time): the session's credentials
    // are taken from the cache, the cluster's client too; nothing to do.
    let mut again = cross_account(&scenario, &cluster, &role, V2);
    again["pipelineExecutionId"] = json!(run.execution_id);
    let answer = scenario.function.invoke(&again).await.response();
    assert_eq!(answer["outcome"], "succeeded", "{answer}");
    assert!(
        answer["summary"]
            .as_str()
            .unwrap()
            .ends_with("nothing to do"),
        "{answer}"
    );
    // The refused attempt and the execution's session: two AssumeRole calls in all.
    assert_eq!(
        aws_calls(&scenario.emulators, "AssumeRole").await - assumed_before,
        2
    );
}
