//! A canary release stopped by an alarm: the canary comes up at 25 % and bakes, the 5xx alarm
//! fires (set through the emulator, as CloudWatch would on a metric crossing its threshold), the
//! release is aborted, the job says why, and the main Deployment never changed.

use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::json;

use super::Names;
use crate::releases::{self, DeploymentWatch, FIRING_REASON};
use crate::runtime_api::InvocationResult;
use crate::scenarios::deployments::{container_images, ecr_repository, push_tag};
use crate::timeline::Timeline;
use crate::{Emulators, Function, fixtures, kubernetes};

/// The canary's first step and its bake: long enough for the alarm read after the one at its
/// start (alarms are read every 10 s).
const WEIGHT: u8 = 25;
const BAKE: &str = "30s";

/// Tells the chapter; `deploy` is eks-deploy, `kube` the cluster's admin client.
pub(super) async fn tell(
    emulators: &Emulators,
    sdk: &SdkConfig,
    names: &Names,
    kube: &kube::Client,
    deploy: &Function,
    timeline: &mut Timeline,
) {
    timeline.chapter("A canary release: an alarm fires at 25 %, the release is aborted");
    let alarm = format!("{}-5xx", names.namespace);
    releases::alarm(emulators, &alarm).await;
    timeline.step(
        "CloudWatch",
        &format!("alarm {alarm} (HTTPCode_Target_5XX_Count ≥ 1 in a minute): OK"),
    );
    let pipeline = format!("{}-canary", names.pipeline);
    let user_parameters = json!({
        "cluster": names.cluster, "namespace": names.namespace, "deployment": "web",
        "container": "web", "image": "#{BuildVariables.IMAGE_URI}",
        "strategy": {"type": "canary", "steps": [{"weight": WEIGHT, "bake": BAKE}, {"weight": 50, "bake": BAKE}]},
        "alarms": [alarm]
    });
    fixtures::deploy_pipeline(
        sdk,
        &pipeline,
        &names.repository,
        "eks-deploy",
        &user_parameters.to_string(),
    )
    .await;
    timeline.step(
        "platform team",
        &format!(
            "pipeline {pipeline}: Deploy with {}",
            json!({"strategy": user_parameters["strategy"], "alarms": user_parameters["alarms"]})
        ),
    );
    let Some(execution) = aws_sdk_codepipeline::Client::new(sdk)
        .start_pipeline_execution()
        .name(&pipeline)
        .send()
        .await
        .ok()
        .and_then(|started| started.pipeline_execution_id)
    else {
        timeline.expect(false, "the canary pipeline started");
        return;
    };
    ecr_repository(emulators, "shop").await;
    let digest = push_tag(emulators, "shop", "checkout-v3").await;
    let image = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@{digest}");
    fixtures::complete_action(
        emulators,
        &execution,
        "Build",
        "Build",
        "Succeeded",
        json!({"IMAGE_URI": image}),
    )
    .await;
    timeline.step("CodeBuild", &format!("pushed {image}"));
    let jobs = fixtures::waiting_jobs(emulators, &pipeline).await;
    let Some(job) = jobs.first() else {
        timeline.expect(false, "the canary pipeline reached its Deploy action");
        return;
    };
    let before = kubernetes::settled(kube, &names.namespace, "web", Duration::from_secs(30)).await;
    let replicas = before.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    timeline.step(
        "CodePipeline",
        &format!(
            "Deploy: invokes eks-deploy (job {})",
            job["jobId"].as_str().unwrap_or("-")
        ),
    );

    // While eks-deploy works, someone watches the canary and, once it bakes, the 5xx alarm fires.
    let watch = DeploymentWatch::start(kube, &names.namespace, "web-canary").await;
    let observe = async {
        let seen = watch
            .until(Duration::from_secs(40), |seen| {
                seen.last()
                    .is_some_and(|(_, canary)| releases::available(canary, 1))
            })
            .await;
        let up = seen.last().map(|(_, canary)| canary.clone());
        if up.as_ref().is_some_and(|c| releases::available(c, 1)) {
            releases::fire(emulators, &alarm).await;
        }
        up
    };
    let (result, canary) = tokio::join!(deploy.invoke(&job["event"]), observe);

    let canary_images = canary.as_ref().map(container_images).unwrap_or_default();
    timeline.step(
        "kubectl",
        &format!(
            "{}/web-canary: {} replica ({WEIGHT} % of web's {replicas}, rounded up), available, running {}",
            names.namespace,
            canary
                .as_ref()
                .and_then(|c| c.spec.as_ref())
                .and_then(|s| s.replicas)
                .unwrap_or_default(),
            canary_images
                .first()
                .map(|(_, image)| image.as_str())
                .unwrap_or("-")
        ),
    );
    timeline.expect(
        canary.as_ref().is_some_and(|c| releases::available(c, 1))
            && canary_images.first().is_some_and(|(_, i)| *i == image),
        "the canary came up at 25 %: 1 pod of the new image beside web's 3, and baked",
    );
    timeline.step(
        "CloudWatch",
        &format!("alarm {alarm} → ALARM ({FIRING_REASON})"),
    );
    let outcome = match &result {
        InvocationResult::Response(value) => value.clone(),
        other => json!({"outcome": format!("{other:?}")}),
    };
    let message = outcome["message"].as_str().unwrap_or_default();
    timeline.step("eks-deploy", message);
    timeline.expect(
        message
            == format!("aborted at {WEIGHT}%: alarm {alarm} ALARM ({FIRING_REASON}); the canary was deleted"),
        "the release was aborted at 25 %, naming the alarm and its reason",
    );
    let (status, error) = execution_failure(sdk, &pipeline, &execution).await;
    timeline.step(
        "CodePipeline",
        &format!("{pipeline}: execution {status}; Deploy: {error}"),
    );
    timeline.expect(
        status == "Failed" && error.contains(&format!("alarm {alarm} ALARM")),
        "the job failed with the reason: the pipeline stops",
    );
    let left = releases::canary(kube, &names.namespace).await;
    let after = kubernetes::settled(kube, &names.namespace, "web", Duration::from_secs(30)).await;
    timeline.step(
        "kubectl",
        &format!(
            "{}/web-canary: {}; {}/web: generation {}, {}",
            names.namespace,
            if left.is_none() {
                "NotFound"
            } else {
                "still there"
            },
            names.namespace,
            after.metadata.generation.unwrap_or_default(),
            container_images(&after)
                .iter()
                .map(|(c, i)| format!("{c}={i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    timeline.expect(left.is_none(), "the canary was deleted");
    timeline.expect(
        after.metadata.generation == before.metadata.generation
            && container_images(&after) == container_images(&before),
        "the main Deployment never changed",
    );
}

/// The execution's status and the Deploy action's error, `code: message`.
async fn execution_failure(sdk: &SdkConfig, pipeline: &str, execution: &str) -> (String, String) {
    let client = aws_sdk_codepipeline::Client::new(sdk);
    let status = client
        .get_pipeline_execution()
        .pipeline_name(pipeline)
        .pipeline_execution_id(execution)
        .send()
        .await
        .ok()
        .and_then(|e| e.pipeline_execution)
        .and_then(|e| e.status)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let error = client
        .get_pipeline_state()
        .name(pipeline)
        .send()
        .await
        .ok()
        .and_then(|state| {
            state
                .stage_states()
                .iter()
                .find(|s| s.stage_name() == Some("Deploy"))
                .and_then(|s| s.action_states().first())
                .and_then(|a| a.latest_execution())
                .and_then(|e| e.error_details())
                .map(|d| {
                    format!(
                        "{}: {}",
                        d.code().unwrap_or_default(),
                        d.message().unwrap_or_default()
                    )
                })
        })
        .unwrap_or_default();
    (status, error)
}
