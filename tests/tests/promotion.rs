//! Promotion through environments, with the real eks-deploy on the local cluster: the pipeline
//! infra/environments.py generates (Source → Build → DeployStaging → ApproveProduction →
//! DeployProduction), staging and production in two namespaces of the one control plane. The
//! image is built once; what each environment runs is the build's digest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::kubernetes;
use integration_tests::scenarios::deployments::V1;
use integration_tests::scenarios::promotions::{Environments, PromotionRun, REGISTRY};
use integration_tests::unique;
use serde_json::Value;

/// Invokes eks-deploy with `stage`'s waiting job; its response.
async fn deploy(environments: &Environments, run: &PromotionRun, stage: &str) -> Value {
    let job = run.waiting_job(&environments.emulators, stage).await;
    environments.deploy.invoke(&job).await.response()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_digest_goes_to_staging_then_after_the_approval_to_production_and_a_late_staging_job_changes_nothing()
 {
    let environments = Environments::new().await;
    let (image, digest) = environments.push("v2").await;
    let run = environments.start("feat: one-click checkout").await;
    run.built(&environments.emulators, &image, &digest).await;

    let staging = deploy(&environments, &run, "DeployStaging").await;
    assert_eq!(staging["outcome"], "succeeded", "{staging}");
    assert_eq!(environments.image_in(&environments.staging).await, image);
    assert_eq!(environments.image_in(&environments.production).await, V1);
    let (status, _, _) = run
        .stage_run(&environments.sdk, "ApproveProduction")
        .await
        .unwrap();
    assert_eq!(status, "InProgress", "the approval waits after staging");
    assert_eq!(environments.approval_requests_for(&run).await.len(), 1);

    run.decide(&environments.sdk, "Production", true, "staging looks good")
        .await;
    let production = deploy(&environments, &run, "DeployProduction").await;
    assert_eq!(production["outcome"], "succeeded", "{production}");
    assert_eq!(run.status(&environments.sdk).await, "Succeeded");
    // The bytes staging ran: the build's digest, not a rebuild.
    assert_eq!(environments.image_in(&environments.production).await, image);
    assert!(image.ends_with(&format!("@{digest}")), "{image}");

    // CodePipeline delivers the staging job again (a redelivery after production went out):
    // CodePipeline already has its result, and staging is not touched.
    let patches_before = environments.patches_in(&environments.staging).await;
    let jobs = run.jobs_of(&environments.emulators, "DeployStaging").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let again = environments
        .deploy
        .invoke(&jobs[0]["event"])
        .await
        .response();
    assert_eq!(again["outcome"], "alreadyReported", "{again}");
    assert_eq!(
        environments.patches_in(&environments.staging).await,
        patches_before
    );
    assert_eq!(environments.image_in(&environments.staging).await, image);
    assert_eq!(environments.image_in(&environments.production).await, image);
    assert_eq!(run.status(&environments.sdk).await, "Succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_staging_deploy_never_reaches_the_production_approval() {
    let environments = Environments::new().await;
    // Pinned, the image keeps only its repository's name: that says `unpullable`.
    let bad = kubernetes::unpullable(&format!("{REGISTRY}-unpullable"), &unique("v3"));
    let (name, tag) = bad.rsplit_once(':').unwrap();
    let repository = name.rsplit_once('/').unwrap().1;
    integration_tests::scenarios::deployments::ecr_repository(&environments.emulators, repository)
        .await;
    let digest = integration_tests::scenarios::deployments::push_tag(
        &environments.emulators,
        repository,
        tag,
    )
    .await;
    let image = integration_tests::scenarios::deployments::pinned(&bad, &digest);
    let run = environments.start("feat: new image base").await;
    run.built(&environments.emulators, &image, &digest).await;

    let staging = deploy(&environments, &run, "DeployStaging").await;

    assert_eq!(staging["outcome"], "failed", "{staging}");
    assert_eq!(run.status(&environments.sdk).await, "Failed");
    assert_eq!(
        run.stage_run(&environments.sdk, "ApproveProduction").await,
        None,
        "the approval never started"
    );
    assert!(
        environments.approval_requests_for(&run).await.is_empty(),
        "nobody was asked to approve"
    );
    assert!(
        run.jobs_of(&environments.emulators, "DeployProduction")
            .await
            .is_empty()
    );
    // Staging was put back; production never saw the image.
    assert_eq!(environments.image_in(&environments.staging).await, V1);
    assert_eq!(environments.image_in(&environments.production).await, V1);
    assert_eq!(environments.patches_in(&environments.production).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_production_approval_leaves_staging_as_it_is() {
    let environments = Environments::new().await;
    let (image, digest) = environments.push("v2").await;
    let run = environments.start("feat: one-click checkout").await;
    run.built(&environments.emulators, &image, &digest).await;
    let staging = deploy(&environments, &run, "DeployStaging").await;
    assert_eq!(staging["outcome"], "succeeded", "{staging}");
    let patches_before = environments.patches_in(&environments.staging).await;

    run.decide(&environments.sdk, "Production", false, "not this week")
        .await;

    assert_eq!(run.status(&environments.sdk).await, "Failed");
    let (status, summary, _) = run
        .stage_run(&environments.sdk, "ApproveProduction")
        .await
        .unwrap();
    assert_eq!(
        (status.as_str(), summary.as_deref()),
        ("Failed", Some("not this week"))
    );
    assert!(
        run.jobs_of(&environments.emulators, "DeployProduction")
            .await
            .is_empty(),
        "production is never deployed"
    );
    // Staging keeps the image it was given, untouched; production runs what it ran.
    assert_eq!(environments.image_in(&environments.staging).await, image);
    assert_eq!(
        environments.patches_in(&environments.staging).await,
        patches_before
    );
    assert_eq!(environments.image_in(&environments.production).await, V1);
    assert_eq!(environments.patches_in(&environments.production).await, 0);
}
