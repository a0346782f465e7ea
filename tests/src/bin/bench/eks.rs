//! eks-deploy's requests to the Kubernetes API and to AWS for one deployment driven by a
//! CodePipeline job, on the local cluster (the real controllers, kwok's pods): a normal rollout,
//! a failed one (an image that cannot be pulled, rolled back), a rollout several times longer
//! (more replicas, pods slower to get Ready), and a canary of two alarm-gated steps, with short
//! bakes and with bakes three times as long.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use integration_tests::runtime_api::InvocationResult;
use integration_tests::scenarios::deployments::{ecr_repository, push_tag};
use integration_tests::{Emulators, fixtures, http, kubernetes, releases, unique};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AwsLog;
use crate::measure::{Subject, outcome_of};
use crate::workloads::EksDeploy;

/// The requests of one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRequests {
    /// What was deployed.
    pub scenario: String,
    /// The Deployment's replicas.
    pub replicas: i32,
    /// How long each pod takes to become Ready (kwok's pod-ready delay).
    pub ready_after: String,
    /// How the job ended (`succeeded`, `failed`).
    pub outcome: String,
    /// How long the invocation took, in seconds.
    pub seconds: f64,
    /// Kubernetes API requests by verb and resource (`GET deployment`, `WATCH deployments`…).
    pub kubernetes: BTreeMap<String, u64>,
    /// AWS calls by `service:operation`.
    pub aws: BTreeMap<String, u64>,
    /// `rolling`, or `canary` (two steps, gated by an alarm).
    pub strategy: String,
    /// Each canary step's bake, in seconds.
    pub bakes: Vec<u64>,
}

/// How often eks-deploy reads the alarms while baking (`ALARM_READ_SECONDS`, its default; the
/// bench leaves it so).
pub const ALARM_READ_SECONDS: u64 = 10;

impl RolloutRequests {
    /// The alarm reads the README promises: one before anything changes, then at each bake's
    /// start, every `ALARM_READ_SECONDS` and at its end.
    pub fn documented_alarm_reads(&self) -> u64 {
        if self.strategy != "canary" {
            return 0;
        }
        1 + self
            .bakes
            .iter()
            .map(|bake| bake.div_ceil(ALARM_READ_SECONDS) + 1)
            .sum::<u64>()
    }

    /// The alarm reads made (`DescribeAlarms`, whatever the service's signing name).
    pub fn alarm_reads(&self) -> u64 {
        self.aws
            .iter()
            .filter(|(call, _)| call.ends_with(":DescribeAlarms"))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Every Kubernetes request.
    pub fn kubernetes_requests(&self) -> u64 {
        self.kubernetes.values().sum()
    }
}

struct Case {
    scenario: &'static str,
    replicas: i32,
    ready_after: &'static str,
    progress_deadline: i32,
    bad_image: bool,
    /// A canary of two steps (10 %, then 50 %) baking this many seconds each under an alarm.
    canary_bake: Option<u64>,
}

const CASES: [Case; 5] = [
    Case {
        scenario: "normal rollout",
        replicas: 3,
        ready_after: "200ms",
        progress_deadline: 30,
        bad_image: false,
        canary_bake: None,
    },
    Case {
        scenario: "failed rollout (image cannot be pulled; rolled back)",
        replicas: 3,
        ready_after: "200ms",
        progress_deadline: 2,
        bad_image: true,
        canary_bake: None,
    },
    Case {
        scenario: "long rollout (4x the replicas, pods 5x slower to get Ready)",
        replicas: 12,
        ready_after: "1s",
        progress_deadline: 30,
        bad_image: false,
        canary_bake: None,
    },
    Case {
        scenario: "canary 10 % → 50 %, each step baked 10 s under an alarm, then promoted",
        replicas: 3,
        ready_after: "200ms",
        progress_deadline: 30,
        bad_image: false,
        canary_bake: Some(10),
    },
    Case {
        scenario: "canary as above, bakes 3x longer (30 s each)",
        replicas: 3,
        ready_after: "200ms",
        progress_deadline: 30,
        bad_image: false,
        canary_bake: Some(30),
    },
];

/// Runs every case, each in a fresh eks-deploy process (so DescribeCluster is counted too).
pub async fn run(
    emulators: &Emulators,
    sdk: &SdkConfig,
    subject: &Subject,
    aws_log: &AwsLog,
) -> Vec<RolloutRequests> {
    let mut results = Vec::new();
    for case in &CASES {
        // The Deployment's progress deadline decides when a stuck rollout fails.
        let target = EksDeploy::setup(
            emulators,
            sdk,
            case.replicas,
            case.progress_deadline,
            Some(case.ready_after),
        )
        .await;
        let image = if case.bad_image {
            // Pinned to its digest, the image keeps only its repository's name: that one says
            // it cannot be pulled (the local cluster's convention).
            let image = kubernetes::unpullable(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop-unpullable",
                &unique("v2"),
            );
            let tag = image
                .rsplit_once(':')
                .map(|(_, tag)| tag)
                .unwrap_or_default();
            ecr_repository(emulators, "shop-unpullable").await;
            push_tag(emulators, "shop-unpullable", tag).await;
            image
        } else {
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v2".to_owned()
        };
        let plan = match case.canary_bake {
            None => json!({}),
            Some(bake) => {
                let alarm = unique("shop-5xx");
                releases::alarm(emulators, &alarm).await;
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": format!("{bake}s")},
                                                                {"weight": 50, "bake": format!("{bake}s")}]},
                       "alarms": [alarm]})
            }
        };
        let job = pipeline_job(emulators, sdk, &target, &image, &plan).await;
        let (function, _) = subject.start().await;
        assert!(
            function
                .runtime()
                .wait_for_polls(1, Duration::from_secs(30))
                .await
        );
        clear_kubernetes_log(emulators).await;
        aws_log.clear().await;
        let started = Instant::now();
        let result = function
            .runtime()
            .invoke_with_budget(&job, Duration::from_secs(600), Duration::from_secs(600))
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let kube_requests = kubernetes::requests(emulators).await;
        let aws = aws_log.counts().await;
        function.stop().await;
        assert!(
            matches!(result, InvocationResult::Response(_)),
            "{}: {result:?}",
            case.scenario
        );
        let outcome = job_outcome(&aws).unwrap_or_else(|| outcome_of(&result));
        results.push(RolloutRequests {
            scenario: case.scenario.to_owned(),
            replicas: case.replicas,
            ready_after: case.ready_after.to_owned(),
            outcome,
            seconds,
            kubernetes: count_kubernetes(&kube_requests, &emulators.kubernetes.deploy_user),
            aws,
            strategy: if case.canary_bake.is_some() {
                "canary".to_owned()
            } else {
                "rolling".to_owned()
            },
            bakes: case.canary_bake.map(|b| vec![b, b]).unwrap_or_default(),
        });
    }
    results
}

fn job_outcome(aws: &BTreeMap<String, u64>) -> Option<String> {
    if aws.contains_key("codepipeline:PutJobSuccessResult") {
        Some("job succeeded".to_owned())
    } else if aws.contains_key("codepipeline:PutJobFailureResult") {
        Some("job failed".to_owned())
    } else {
        None
    }
}

async fn clear_kubernetes_log(emulators: &Emulators) {
    let (code, answer) = http::json(
        "DELETE",
        &format!("{}/kubernetes/requests", emulators.admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// A pipeline whose Deploy action invokes eks-deploy for `target` with the release `plan`
/// (strategy, alarms) merged into its parameters, its build finished with `image`: the job
/// CodePipeline gives the function.
async fn pipeline_job(
    emulators: &Emulators,
    sdk: &SdkConfig,
    target: &EksDeploy,
    image: &str,
    plan: &Value,
) -> Value {
    let repository = unique("shop-repo");
    fixtures::repository(sdk, &repository).await;
    fixtures::commit(sdk, &repository, "main", None, "feat: one-click checkout").await;
    let name = unique("shop-main");
    let mut parameters = json!({"cluster": target.cluster(), "namespace": target.namespace(),
                                "deployment": "web", "container": "web",
                                "image": "#{BuildVariables.IMAGE_URI}"});
    for (key, value) in plan.as_object().into_iter().flatten() {
        parameters[key] = value.clone();
    }
    fixtures::deploy_pipeline(
        sdk,
        &name,
        &repository,
        "eks-deploy",
        &parameters.to_string(),
    )
    .await;
    let execution_id = aws_sdk_codepipeline::Client::new(sdk)
        .start_pipeline_execution()
        .name(&name)
        .send()
        .await
        .unwrap()
        .pipeline_execution_id
        .unwrap();
    fixtures::complete_action(
        emulators,
        &execution_id,
        "Build",
        "Build",
        "Succeeded",
        json!({"IMAGE_URI": image}),
    )
    .await;
    let jobs = fixtures::waiting_jobs(emulators, &name).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs[0]["event"].clone()
}

/// Requests of the function (through the fault proxy, as its EKS user), by verb and resource.
fn count_kubernetes(requests: &[Value], user: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for request in requests {
        if request["user"].as_str() != Some(user) {
            continue;
        }
        let method = request["method"].as_str().unwrap_or_default();
        let path = request["path"].as_str().unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // .../namespaces/<ns>/<resource>[/<name>[/<subresource>]]
        let at = segments.iter().position(|s| *s == "namespaces");
        let (resource, named) = match at {
            Some(i) => (
                segments.get(i + 2).copied().unwrap_or("namespace"),
                segments.len() > i + 3,
            ),
            None => (segments.last().copied().unwrap_or_default(), false),
        };
        let verb = match method {
            "GET" if request["watch"].as_bool() == Some(true) => "WATCH",
            "GET" if !named => "LIST",
            other => other,
        };
        let noun = if named {
            resource.trim_end_matches('s')
        } else {
            resource
        };
        *counts.entry(format!("{verb} {noun}")).or_default() += 1;
    }
    counts
}
