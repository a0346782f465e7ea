use std::time::Duration;

use mockall::predicate::eq;
use serde_json::json;
use shared::UpstreamError;
use shared::ports::{
    ClusterTarget, MockAlarmReader, MockClusterAccess, MockImageRegistry, MockJobResults,
    RegistryImage, reply,
};

use super::*;
use crate::testing::*;

mod releases;

const JOB: &str = "11111111-abcd-1111-abcd-111111111111";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:0ccf1ae";
const OLD: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:9b1de4f";
const DIGEST: &str = "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";
/// IMAGE pinned to the digest its tag names.
const PINNED: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

/// ECR, where IMAGE's tag names DIGEST: asked exactly once.
fn registry() -> MockImageRegistry {
    let mut registry = MockImageRegistry::new();
    registry
        .expect_digest()
        .withf(|image: &RegistryImage| {
            image.account == "123456789012"
                && image.region == "us-east-1"
                && image.repository == "shop"
                && image.tag.as_deref() == Some("0ccf1ae")
        })
        .times(1)
        .returning(|_| reply(Ok(Some(DIGEST.to_owned()))));
    registry
}

/// Deps without a registry or alarms: any call to them fails the test.
fn deps<C: ClusterAccess, J: JobResults>(
    clusters: C,
    jobs: J,
    config: Config,
) -> Deps<C, J, MockImageRegistry, MockAlarmReader> {
    Deps::new(
        clusters,
        jobs,
        MockImageRegistry::new(),
        MockAlarmReader::new(),
        config,
    )
}

/// Deps whose registry resolves IMAGE once, without alarms.
fn pinning<C: ClusterAccess, J: JobResults>(
    clusters: C,
    jobs: J,
    config: Config,
) -> Deps<C, J, MockImageRegistry, MockAlarmReader> {
    Deps::new(clusters, jobs, registry(), MockAlarmReader::new(), config)
}

/// No canary left behind: the GET at the start of a release finds none.
fn no_canary() -> Exchange {
    Exchange::get(CANARY, json!({})).failing(404, "NotFound")
}

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/eks-deploy/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn config() -> Config {
    Config {
        rollback_on_failure: true,
        api_url_override: None,
        deadline_margin: Duration::ZERO,
        max_rollout: Duration::from_secs(3300),
        retry: crate::cluster::RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(1),
        },
        scan_wait: Duration::from_secs(1800),
        scan_poll: Duration::from_millis(50),
        alarm_read: Duration::from_millis(20),
    }
}

fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn clusters(client: kube::Client) -> MockClusterAccess {
    let mut clusters = MockClusterAccess::new();
    clusters
        .expect_client()
        .with(eq(ClusterTarget::own("shop-prod")))
        .times(1)
        .returning(move |_| reply(Ok(client.clone())));
    clusters
}

/// The patch of a job: it records the job among those applied.
fn job_patch() -> serde_json::Value {
    let mut patch = expected_patch("41", PINNED, OLD, &job_cause());
    patch["metadata"]["annotations"]["eks-deploy.cicd/jobs"] = serde_json::json!(JOB);
    patch
}

fn job_cause() -> String {
    format!(
        "eks-deploy: set web to {PINNED} (tag 0ccf1ae, digest {DIGEST}, CodePipeline job {JOB})"
    )
}

fn rollback_cause() -> String {
    format!("eks-deploy: rolled web back to {OLD} after a failed rollout of {PINNED}")
}

fn failing_pods() -> Value {
    let pod = |name: &str| {
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": PINNED}, {"name": "proxy", "image": "envoy:1.30"}]},
               "status": {"containerStatuses": [
                   {"name": "web", "image": PINNED, "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{PINNED}\"")}}}]}})
    };
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "70"},
           "items": [pod("web-7d4b9c-x2k8p"), pod("web-7d4b9c-q9z4m")]})
}

#[tokio::test]
async fn a_job_patches_the_image_follows_the_rollout_and_reports_success() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            job_patch(),
            deployment("42", 4, PINNED, rolled_out(3)),
        ),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![
                modified(deployment("43", 4, PINNED, rolling(4, 2))),
                modified(deployment("44", 4, PINNED, rolled_out(4))),
            ],
        ),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(|job, result| {
            job == JOB
                && result.summary.starts_with(
                    "shop/web: container web runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas (rolled out in "
                )
                && result.continuation_token.is_none()
                && result.external_execution_id.as_deref() == Some("shop-prod/shop/web")
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters(client), jobs, config());

    let outcome = handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();

    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    server.await.unwrap();
}

const ROLE: &str = "arn:aws:iam::210987654321:role/eks-deploy-target";
const EXECUTION: &str = "3f2c9a1e-7b4d-4c8e-9f10-2a3b4c5d6e7f";

/// job-deploy.json for the production environment of another account.
fn cross_account_job() -> Value {
    let mut job = event("job-deploy.json");
    let parameters = json!({
        "cluster": "shop-prod", "namespace": "shop", "deployment": "web", "container": "web",
        "image": IMAGE, "roleArn": ROLE, "externalId": "shop-main-production",
        "environment": "production", "pipelineExecutionId": EXECUTION,
    });
    job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(parameters.to_string());
    job
}

fn production_target() -> ClusterTarget {
    ClusterTarget {
        cluster: "shop-prod".into(),
        role: Some(shared::ports::RoleSession {
            role_arn: ROLE.into(),
            external_id: "shop-main-production".into(),
            session_name: shared::ports::SessionName::for_execution("production", EXECUTION),
        }),
    }
}

#[tokio::test]
async fn a_cluster_of_another_account_is_reached_through_a_session_named_after_the_execution() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, PINNED, rolled_out(3))),
    ]);
    let mut clusters = MockClusterAccess::new();
    clusters
        .expect_client()
        .withf(|target| {
            *target == production_target()
                && target.role.as_ref().unwrap().session_name.as_str()
                    == format!("production-{EXECUTION}")
        })
        .times(1)
        .returning(move |_| reply(Ok(client.clone())));
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(|job, result| job == JOB && result.continuation_token.is_none())
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters, jobs, config());

    let outcome = handle(&deps, cross_account_job(), in_an_hour())
        .await
        .unwrap();

    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_role_that_refuses_this_function_fails_the_job_as_a_configuration_error() {
    let mut clusters = MockClusterAccess::new();
    clusters
        .expect_client()
        .with(eq(production_target()))
        .times(1)
        .returning(|_| {
            reply(Err(UpstreamError::new(
                "STS",
                "AssumeRole",
                Some(shared::aws::ACCESS_DENIED.into()),
                format!("not allowed to assume {ROLE}"),
            )))
        });
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(|job, failure| {
            job == JOB
                && failure.kind == FailureKind::ConfigurationError
                && failure.message.starts_with("cannot reach cluster shop-prod: STS AssumeRole failed: AccessDenied: not allowed to assume")
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = deps(clusters, jobs, config());

    let outcome = handle(&deps, cross_account_job(), in_an_hour())
        .await
        .unwrap();

    assert!(
        matches!(outcome, Outcome::InvalidParameters { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_external_id_without_a_role_fails_the_job_naming_the_field() {
    let mut job = cross_account_job();
    let configuration =
        &mut job["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"];
    let mut parameters: Value =
        serde_json::from_str(configuration["UserParameters"].as_str().unwrap()).unwrap();
    parameters.as_object_mut().unwrap().remove("roleArn");
    configuration["UserParameters"] = json!(parameters.to_string());
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(|_, failure| {
            failure.kind == FailureKind::ConfigurationError
                && failure
                    .message
                    .starts_with("UserParameters.roleArn: missing")
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = deps(MockClusterAccess::new(), jobs, config());

    handle(&deps, job, in_an_hour()).await.unwrap();
}

#[tokio::test]
async fn invalid_parameters_fail_the_job_as_a_configuration_error_without_touching_the_cluster() {
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .with(
            eq(JOB),
            eq(JobFailure {
                kind: FailureKind::ConfigurationError,
                message: "UserParameters.image: missing".into(),
                external_execution_id: None,
            }),
        )
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = deps(MockClusterAccess::new(), jobs, config());

    let outcome = handle(&deps, event("job-invalid-parameters.json"), in_an_hour())
        .await
        .unwrap();

    assert_eq!(
        outcome,
        Outcome::InvalidParameters {
            message: "UserParameters.image: missing".into()
        }
    );
}

#[tokio::test]
async fn a_failed_rollout_is_rolled_back_and_the_job_fails_with_the_pods_reasons() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            job_patch(),
            deployment("42", 4, PINNED, rolled_out(3)),
        ),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![modified(deployment("43", 4, PINNED, stuck(4)))],
        ),
        Exchange::get(
            "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb",
            failing_pods(),
        ),
        Exchange::get(DEPLOYMENT, deployment("43", 4, PINNED, stuck(4))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            expected_patch("43", OLD, PINNED, &rollback_cause()),
            deployment("44", 5, OLD, stuck(4)),
        ),
        Exchange::watch(
            &watch_uri("44", 240),
            vec![modified(deployment("45", 5, OLD, rolled_out(5)))],
        ),
    ]);
    let expected = format!(
        "shop/web: the rollout of {PINNED} failed: the rollout exceeded its progress deadline \
         (ReplicaSet \"web-7d4b9c\" has timed out progressing). Pods: ImagePullBackOff: Back-off pulling image \
         \"{PINNED}\" (pods web-7d4b9c-q9z4m, web-7d4b9c-x2k8p). Rolled back to {OLD} (rollout complete)."
    );
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .with(
            eq(JOB),
            eq(JobFailure {
                kind: FailureKind::JobFailed,
                message: expected.clone(),
                external_execution_id: Some("shop-prod/shop/web".into()),
            }),
        )
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters(client), jobs, config());

    let outcome = handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::Failed { message: expected });
    server.await.unwrap();
}

#[tokio::test]
async fn a_failed_rollout_stays_when_the_parameters_turn_rollback_off() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            job_patch(),
            deployment("42", 4, PINNED, rolled_out(3)),
        ),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![modified(deployment("43", 4, PINNED, stuck(4)))],
        ),
        Exchange::get(
            "/api/v1/namespaces/shop/pods?&labelSelector=app%3Dweb",
            failing_pods(),
        ),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(|_, failure| {
            failure
                .message
                .ends_with(". Not rolled back (rollback is off).")
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters(client), jobs, config());

    handle(&deps, event("job-no-rollback.json"), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_rollout_longer_than_the_invocation_continues_with_a_token() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            job_patch(),
            deployment("42", 4, PINNED, rolling(4, 1)),
        ),
        Exchange {
            answer: Answer::Silence,
            ..Exchange::watch(&watch_uri("42", 1), vec![])
        },
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(|job, result| {
            let token = result
                .continuation_token
                .as_deref()
                .and_then(|token| Continuation::decode(token).ok());
            job == JOB
                && result.summary
                    == format!("shop/web: rolling out {PINNED} (1 of 3 new replicas updated)")
                && result.percent_complete == Some(33)
                && token.is_some_and(|t| {
                    t.image == IMAGE && t.target() == PINNED && t.previous.as_deref() == Some(OLD)
                })
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters(client), jobs, config());

    let deadline = SystemTime::now() + Duration::from_millis(1500);
    let outcome = handle(&deps, event("job-deploy.json"), deadline)
        .await
        .unwrap();

    assert!(matches!(outcome, Outcome::InProgress { .. }), "{outcome:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_continued_job_follows_the_rollout_without_patching_again() {
    let (client, server) = scripted(vec![
        Exchange::get(DEPLOYMENT, deployment("52", 4, IMAGE, rolling(4, 2))),
        Exchange::watch(
            &watch_uri("52", 240),
            vec![modified(deployment("53", 4, IMAGE, rolled_out(4)))],
        ),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(|_, result| result.summary.contains("runs") && result.continuation_token.is_none())
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let mut config = config();
    config.max_rollout = Duration::from_secs(u64::MAX / 4);
    let deps = deps(clusters(client), jobs, config);

    let outcome = handle(&deps, event("job-continuation.json"), in_an_hour())
        .await
        .unwrap();

    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn an_image_already_deployed_and_rolled_out_is_a_success_with_nothing_to_do() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, PINNED, rolled_out(3))),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(|_, result| {
            result.summary
                == "shop/web: container web already runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas; nothing to do"
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = pinning(clusters(client), jobs, config());

    handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_redelivered_job_that_was_already_reported_changes_nothing() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, PINNED, rolled_out(3))),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .times(1)
        .returning(|_, _| reply(Ok(Reported::AlreadyReported)));
    let deps = pinning(clusters(client), jobs, config());

    let outcome = handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::AlreadyReported);
    server.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_job_with_the_reason() {
    let mut clusters = MockClusterAccess::new();
    clusters.expect_client().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "EKS",
            "DescribeCluster",
            Some("ResourceNotFoundException".into()),
            "No cluster found for name: shop-prod.",
        )))
    });
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(|_, failure| {
            failure.kind == FailureKind::JobFailed
                && failure.message == "cannot reach cluster shop-prod: EKS DescribeCluster failed: ResourceNotFoundException: No cluster found for name: shop-prod."
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    let deps = deps(clusters, jobs, config());

    handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_result_codepipeline_did_not_take_fails_the_invocation_so_lambda_retries() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, PINNED, rolled_out(3))),
    ]);
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed().times(1).returning(|_, _| {
        reply(Err(UpstreamError::new(
            "CodePipeline",
            "PutJobSuccessResult",
            Some("ThrottlingException".into()),
            "Rate exceeded",
        )))
    });
    let deps = pinning(clusters(client), jobs, config());

    let error = handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
    server.await.unwrap();
}

#[tokio::test]
async fn a_direct_invocation_answers_with_the_outcome() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, PINNED, rolled_out(3))),
    ]);
    let deps = pinning(clusters(client), MockJobResults::new(), config());

    let outcome = handle(&deps, event("direct-deploy.json"), in_an_hour())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }));
    server.await.unwrap();
}

#[tokio::test]
async fn invalid_direct_invocations_are_invalid_events_naming_the_field() {
    for (name, expected) in [
        (
            "invalid-direct-bad-namespace.json",
            "namespace: \"Shop_Prod\" is not a valid name",
        ),
        (
            "invalid-not-an-object.json",
            "expected a CodePipeline job or the deployment parameters as a JSON object, got an array",
        ),
        (
            "invalid-job-without-id.json",
            "CodePipeline.job: missing field `id`",
        ),
    ] {
        let deps = deps(MockClusterAccess::new(), MockJobResults::new(), config());
        let error = handle(&deps, event(name), in_an_hour()).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent", "{name}");
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
}

#[test]
fn the_sample_events_carry_the_parameters_expected_here() {
    let Invocation::Job(job) = parse(event("job-deploy.json")).unwrap() else {
        panic!("job-deploy.json is a job");
    };
    assert_eq!(job.id, JOB);
    let params = DeployParameters::from_user_parameters(job.user_parameters()).unwrap();
    assert_eq!(params.image, IMAGE);
    // The job's artifact credentials are never kept.
    assert!(!format!("{job:?}").contains("EXAMPLE+secret"));
}

#[tokio::test]
async fn a_job_delivered_again_after_a_later_deployment_does_not_put_its_image_back() {
    // The job set IMAGE and was reported; a later deployment set NEWER; the job comes again.
    const NEWER: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:5e6f7a8";
    let mut later = deployment("50", 5, NEWER, rolled_out(3));
    later["metadata"]["annotations"]["eks-deploy.cicd/jobs"] =
        json!(format!("{JOB} 22222222-abcd-2222-abcd-222222222222"));
    let (client, server) = scripted(vec![no_canary(), Exchange::get(DEPLOYMENT, later)]);
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(|job, failure| {
            job == JOB
                && failure.message
                    == format!(
                        "shop/web: CodePipeline job {JOB} already set container web to {PINNED}, and it now runs {NEWER}: not set again"
                    )
        })
        .times(1)
        .returning(|_, _| reply(Ok(Reported::AlreadyReported)));
    let deps = pinning(clusters(client), jobs, config());

    let outcome = handle(&deps, event("job-deploy.json"), in_an_hour())
        .await
        .unwrap();

    assert_eq!(outcome, Outcome::AlreadyReported);
    server.await.unwrap();
}
