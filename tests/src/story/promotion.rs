//! The promotion chapter: staging, then production after an approval, the same image.
//!
//! Self-contained: its own pipeline (the shape infra/environments.py generates from
//! infra/environments.yml: Source → Build → DeployStaging → ApproveProduction →
//! DeployProduction), its own commit and image, and two environments on the one local control
//! plane, as two EKS cluster records (`…-staging`, the story's cluster) leading to it, each in a
//! namespace of its own (README, "Environments", "Locally"). It uses the story's functions:
//! eks-deploy, approval-notify and approval-callback.

use serde_json::{Value, json};

use super::{World, without_links};
use crate::approvals;
use crate::runtime_api::InvocationResult;
use crate::scenarios::deployments::{container_images, ecr_repository, push_tag};
use crate::scenarios::promotions::PromotionRun;
use crate::timeline::Timeline;
use crate::{fixtures, http, kubernetes};

/// The branch the chapter's pipeline delivers.
const BRANCH: &str = "release";

/// One environment of the chapter.
struct Stage {
    title: &'static str,
    cluster: String,
    namespace: String,
}

impl Stage {
    fn user_parameters(&self) -> String {
        json!({"cluster": self.cluster, "namespace": self.namespace, "deployment": "web",
               "container": "web", "image": "#{BuildVariables.IMAGE_URI}"})
        .to_string()
    }
}

/// Tells the chapter on `timeline`.
pub(super) async fn tell(world: &World, timeline: &mut Timeline) {
    timeline.chapter("Promotion: staging first, then production after an approval, the same image");
    let names = &world.names;
    let staging = Stage {
        title: "Staging",
        cluster: format!("{}-staging", names.cluster),
        namespace: format!("{}-staging", names.namespace),
    };
    let production = Stage {
        title: "Production",
        cluster: names.cluster.clone(),
        namespace: format!("{}-production", names.namespace),
    };
    kubernetes::eks_cluster(&world.sdk, &staging.cluster).await;
    for stage in [&staging, &production] {
        let namespace = stage.namespace.clone();
        kubernetes::apply(
            &world.kube,
            [
                kubernetes::manifest("infra/k8s/app.yaml"),
                kubernetes::manifest("infra/k8s/rbac.yaml"),
            ]
            .concat(),
            |object| {
                if object["kind"] == "Namespace" {
                    object["metadata"]["name"] = json!(namespace);
                } else {
                    object["metadata"]["namespace"] = json!(namespace);
                }
            },
        )
        .await;
        kubernetes::settled(
            &world.kube,
            &stage.namespace,
            "web",
            std::time::Duration::from_secs(60),
        )
        .await;
    }
    let pipeline = format!("{}-promote", names.pipeline);
    // Its own branch, so the chapter's commit is the one it builds, whatever main holds.
    fixtures::PipelineSpec::new(&pipeline, &names.repository, BRANCH)
        .build(&names.image_project)
        .environment_deploy(staging.title, "eks-deploy", &staging.user_parameters())
        .environment_approval(production.title, &world.approval_requests)
        .environment_deploy(
            production.title,
            "eks-deploy",
            &production.user_parameters(),
        )
        .create(&world.sdk)
        .await;
    timeline.step(
        "platform team",
        &format!(
            "infra/environments.yml: staging ({}, namespace {}), production ({}, namespace {}, approval first); \
             pipeline {pipeline}: Source → Build → DeployStaging → ApproveProduction → DeployProduction. \
             Locally both clusters are the one control plane, the environments two namespaces",
            staging.cluster, staging.namespace, production.cluster, production.namespace
        ),
    );

    // A commit, built once: the image is pushed and exported pinned to its digest. CodeCommit
    // creates a branch only in an empty repository, so the chapter's branch starts at main's tip.
    let codecommit = aws_sdk_codecommit::Client::new(&world.sdk);
    let main = codecommit
        .get_branch()
        .repository_name(&names.repository)
        .branch_name("main")
        .send()
        .await
        .expect("GetBranch main")
        .branch
        .and_then(|branch| branch.commit_id)
        .expect("main has a commit");
    codecommit
        .create_branch()
        .repository_name(&names.repository)
        .branch_name(BRANCH)
        .commit_id(&main)
        .send()
        .await
        .expect("CreateBranch release");
    let commit = fixtures::commit(
        &world.sdk,
        &names.repository,
        BRANCH,
        Some(&main),
        "feat: gift cards",
    )
    .await;
    let execution_id = aws_sdk_codepipeline::Client::new(&world.sdk)
        .start_pipeline_execution()
        .name(&pipeline)
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartPipelineExecution {pipeline}: {e:?}"))
        .pipeline_execution_id()
        .unwrap_or_default()
        .to_owned();
    let run = PromotionRun {
        name: pipeline.clone(),
        execution_id,
        commit: commit.clone(),
    };
    ecr_repository(&world.emulators, "shop").await;
    let digest = push_tag(&world.emulators, "shop", &commit[..12]).await;
    let image = format!("{}@{digest}", super::REGISTRY);
    run.built(&world.emulators, &image, &digest).await;
    timeline.step(
        "CodeBuild",
        &format!(
            "{}: built {} once, pushed {image}",
            &commit[..7],
            &commit[..12]
        ),
    );

    // Staging: deployed at once.
    let response = deploy(world, &run, "DeployStaging").await;
    timeline.step(
        "eks-deploy (staging)",
        response["summary"]
            .as_str()
            .or(response["message"].as_str())
            .unwrap_or_default(),
    );
    timeline.expect(
        response["outcome"] == "succeeded" && image_in(world, &staging).await == image,
        "staging runs the build's image, pinned to its digest",
    );
    timeline.expect(
        image_in(world, &production).await != image,
        "production does not, yet",
    );

    // The production approval: its email says what is promoted, from the pipeline's records.
    let waiting = run.stage_run(&world.sdk, "ApproveProduction").await;
    timeline.step(
        "CodePipeline",
        &format!(
            "stage ApproveProduction: {}",
            waiting
                .as_ref()
                .map_or("never started", |(s, _, _)| s.as_str())
        ),
    );
    let Some(email) = approval_email(world, &pipeline, timeline).await else {
        return;
    };
    timeline.expect(
        email.contains(&format!("Image:    {digest}"))
            && email.contains(&format!("{}  feat: gift cards", &commit[..7]))
            && email.contains("So far:   in staging since ")
            && email.contains("rollout succeeded"),
        "the approval email names the digest, the commit and how staging has done",
    );
    let Some(approve) = approvals::link_after(&email, "Approve:") else {
        timeline.expect(false, "the email holds alice's Approve link");
        return;
    };
    let decided = approvals::decide_by_link(
        &approve,
        &world.callback.origin(),
        "Staging is fine: promote",
    )
    .await;
    timeline.step(
        "alice (browser)",
        &format!(
            "approves the promotion: HTTP {}, \"{}\"",
            decided.result.status, decided.result_heading
        ),
    );

    // Production: the same digest.
    let response = deploy(world, &run, "DeployProduction").await;
    timeline.step(
        "eks-deploy (production)",
        response["summary"]
            .as_str()
            .or(response["message"].as_str())
            .unwrap_or_default(),
    );
    timeline.expect(
        response["outcome"] == "succeeded" && image_in(world, &production).await == image,
        "production runs exactly the bytes staging ran (the same digest, not rebuilt)",
    );
    timeline.expect(
        run.status(&world.sdk).await == "Succeeded",
        "the execution succeeded",
    );

    // A late redelivery of the staging job changes nothing.
    let jobs = run.jobs_of(&world.emulators, "DeployStaging").await;
    if let Some(job) = jobs.first() {
        let again = match world.deploy.invoke(&job["event"]).await {
            InvocationResult::Response(value) => value,
            other => json!(format!("{other:?}")),
        };
        timeline.step(
            "CodePipeline",
            &format!(
                "delivers the staging job again: eks-deploy {}",
                again["outcome"]
            ),
        );
        timeline.expect(
            again["outcome"] == "alreadyReported" && image_in(world, &staging).await == image,
            "the redelivered staging job changed nothing",
        );
    }
}

async fn deploy(world: &World, run: &PromotionRun, stage: &str) -> Value {
    let jobs: Vec<Value> = run
        .jobs_of(&world.emulators, stage)
        .await
        .into_iter()
        .filter(|job| job["status"] == "InProgress")
        .collect();
    let Some(job) = jobs.first() else {
        return json!({"outcome": "no job", "message": format!("{stage} has no waiting job")});
    };
    match world.deploy.invoke(&job["event"]).await {
        InvocationResult::Response(value) => value,
        other => json!({"outcome": "error", "message": format!("{other:?}")}),
    }
}

async fn image_in(world: &World, stage: &Stage) -> String {
    let deployment = kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(
        world.kube.clone(),
        &stage.namespace,
    )
    .get("web")
    .await;
    deployment
        .ok()
        .and_then(|d| container_images(&d).first().map(|(_, image)| image.clone()))
        .unwrap_or_default()
}

/// approval-notify mails the production approval of `pipeline`; alice's email, shown without
/// her links.
async fn approval_email(world: &World, pipeline: &str, timeline: &mut Timeline) -> Option<String> {
    let url = format!(
        "{}/sns/published?topicArn={}",
        world.emulators.admin, world.approval_requests
    );
    let (_, published) = http::json("GET", &url, None).await;
    let message = published["messages"].as_array().and_then(|messages| {
        messages
            .iter()
            .rev()
            .find(|m| m["message"].as_str().unwrap_or_default().contains(pipeline))
            .cloned()
    });
    let Some(message) = message else {
        timeline.expect(false, "CodePipeline asked for the production approval");
        return None;
    };
    let email = world.mail_approvers(&message, timeline).await?;
    let text = email["message"].as_str().unwrap_or_default().to_owned();
    let shown = without_links(&text, 14);
    timeline.step(
        "alice (email)",
        &format!(
            "{}\n{}",
            email["subject"].as_str().unwrap_or_default(),
            shown.join("\n")
        ),
    );
    Some(text)
}
