//! Releases: digest pinning, the scan gate, canary steps, alarm-gated bakes and their
//! continuations, each against a scripted API server and mocked ECR / CloudWatch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use shared::deploy_contract::{DeployFailure, IMAGE_DIGEST, IMAGE_TAG, PREVIOUS_IMAGE};
use shared::ports::{AlarmState, AlarmStates, AlarmValue, Finding, ScanFindings, ScanState};

use super::*;
use crate::continuation::Phase;

const REASON: &str =
    "Threshold Crossed: 3 datapoints [12.0, 9.0, 7.0] were greater than the threshold (5.0).";

/// A job deploying IMAGE with `plan` merged into its parameters, continued with `token`.
fn job(plan: Value, token: Option<&Continuation>) -> Value {
    let mut event = event("job-deploy.json");
    let mut params = json!({"cluster": "shop-prod", "namespace": "shop", "deployment": "web",
                            "container": "web", "image": IMAGE});
    for (key, value) in plan.as_object().unwrap() {
        params[key] = value.clone();
    }
    let job = &mut event["CodePipeline.job"];
    job["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(params.to_string());
    if let Some(token) = token {
        job["data"]["continuationToken"] = json!(token.encode().unwrap());
    }
    event
}

fn canary_plan() -> Value {
    json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "0s"}, {"weight": 50, "bake": "0s"}]},
           "alarms": ["shop-5xx"]})
}

fn state(value: AlarmValue) -> AlarmStates {
    AlarmStates {
        found: vec![AlarmState {
            name: "shop-5xx".into(),
            value,
            reason: if value == AlarmValue::Alarm {
                REASON.into()
            } else {
                "Threshold Crossed: no datapoints were greater than the threshold".into()
            },
        }],
        missing: vec![],
    }
}

/// CloudWatch answering `reads` in order, each exactly once, always for `shop-5xx`.
fn alarms(reads: Vec<AlarmStates>) -> MockAlarmReader {
    let count = reads.len();
    let queue = Arc::new(Mutex::new(VecDeque::from(reads)));
    let mut alarms = MockAlarmReader::new();
    alarms
        .expect_alarm_states()
        .withf(|names: &[String]| names == ["shop-5xx"])
        .times(count)
        .returning(move |_| reply(Ok(queue.lock().unwrap().pop_front().unwrap())));
    alarms
}

fn succeeds(check: impl Fn(&JobSuccess) -> bool + Send + 'static) -> MockJobResults {
    let mut jobs = MockJobResults::new();
    jobs.expect_succeed()
        .withf(move |job, result| job == JOB && check(result))
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    jobs
}

fn fails(kind: FailureKind, check: impl Fn(&str) -> bool + Send + 'static) -> MockJobResults {
    let mut jobs = MockJobResults::new();
    jobs.expect_fail()
        .withf(move |job, failure| job == JOB && failure.kind == kind && check(&failure.message))
        .times(1)
        .returning(|_, _| reply(Ok(Reported::Recorded)));
    jobs
}

/// The canary the first step creates, as POSTed.
fn created_canary(replicas: i64) -> Value {
    canary_as_created(PINNED, replicas, JOB)
}

fn with_main_rollout(mut script: Vec<Exchange>) -> Vec<Exchange> {
    script.extend(rollout_of_main());
    script
}

fn canary_watch(resource_version: &str) -> String {
    watch_uri_of("web-canary", resource_version, 240)
}

fn rollout_of_main() -> Vec<Exchange> {
    vec![
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            job_patch(),
            deployment("42", 4, PINNED, rolled_out(3)),
        ),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![modified(deployment("44", 4, PINNED, rolled_out(4)))],
        ),
    ]
}

#[tokio::test]
async fn a_canary_steps_through_its_weights_then_promotes_the_pinned_image() {
    let mut script = vec![
        no_canary(),
        // Step 1: 10% of 3 replicas is 1 pod.
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        no_canary(),
        Exchange::post(
            DEPLOYMENTS,
            created_canary(1),
            canary("60", PINNED, 1, JOB, json!({})),
        ),
        Exchange::watch(
            &canary_watch("60"),
            vec![modified(canary("61", PINNED, 1, JOB, available(1, 1)))],
        ),
        // Step 2: 50% of 3 is 2 pods; the canary is ours, so it is scaled, not created again.
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::get(CANARY, canary("61", PINNED, 1, JOB, available(1, 1))),
        Exchange::merge_patch(
            CANARY_PATCH,
            json!({"spec": {"replicas": 2}, "metadata": {"resourceVersion": "61"}}),
            canary("62", PINNED, 2, JOB, available(1, 1)),
        ),
        Exchange::watch(
            &canary_watch("62"),
            vec![modified(canary("63", PINNED, 2, JOB, available(1, 2)))],
        ),
    ];
    script.extend(rollout_of_main());
    script.push(Exchange::delete(CANARY_DELETE));
    let (client, server) = scripted(script);
    let jobs = succeeds(|result| {
        result.summary
            == "shop/web: canary 10% baked 0s, 50% baked 0s, promoted sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas"
            && result.output_variables[shared::deploy_contract::IMAGE] == PINNED
            && result.output_variables[IMAGE_DIGEST] == DIGEST
            && result.output_variables[IMAGE_TAG] == "0ccf1ae"
            && result.output_variables[PREVIOUS_IMAGE] == OLD
            && result.continuation_token.is_none()
    });
    let ok = || state(AlarmValue::Ok);
    let deps = Deps::new(
        clusters(client),
        jobs,
        registry(),
        alarms(vec![ok(), ok(), ok()]),
        config(),
    );

    let outcome = handle(&deps, job(canary_plan(), None), in_an_hour())
        .await
        .unwrap();

    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn an_alarm_in_the_first_step_deletes_the_canary_and_leaves_the_main_deployment_alone() {
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        no_canary(),
        Exchange::post(
            DEPLOYMENTS,
            created_canary(1),
            canary("60", PINNED, 1, JOB, json!({})),
        ),
        Exchange::watch(
            &canary_watch("60"),
            vec![modified(canary("61", PINNED, 1, JOB, available(1, 1)))],
        ),
        Exchange::delete(CANARY_DELETE),
    ]);
    let expected =
        format!("aborted at 10%: alarm shop-5xx ALARM ({REASON}); the canary was deleted");
    let jobs = fails(FailureKind::JobFailed, move |message| message == expected);
    let deps = Deps::new(
        clusters(client),
        jobs,
        registry(),
        alarms(vec![state(AlarmValue::Ok), state(AlarmValue::Alarm)]),
        config(),
    );

    let outcome = handle(&deps, job(canary_plan(), None), in_an_hour())
        .await
        .unwrap();

    let Outcome::Failed { message } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(matches!(
        DeployFailure::read(&message),
        DeployFailure::CanaryAborted { weight: 10, .. }
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn an_alarm_in_the_bake_after_the_rollout_rolls_back_to_the_recorded_image() {
    let mut script = vec![no_canary()];
    script.extend(rollout_of_main());
    let rollback =
        format!("eks-deploy: rolled web back to {OLD} after a failed rollout of {PINNED}");
    script.extend([
        Exchange::get(DEPLOYMENT, deployment("44", 4, PINNED, rolled_out(4))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            expected_patch("44", OLD, PINNED, &rollback),
            deployment("45", 5, OLD, rolled_out(4)),
        ),
        Exchange::watch(
            &watch_uri("45", 240),
            vec![modified(deployment("46", 5, OLD, rolled_out(5)))],
        ),
    ]);
    let (client, server) = scripted(script);
    let jobs = fails(FailureKind::JobFailed, |message| {
        message
            == format!(
                "aborted at 100%: alarm shop-5xx ALARM ({REASON}) in the bake after the rollout of {PINNED}. \
                 Rolled back to {OLD} (rollout complete)."
            )
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        registry(),
        alarms(vec![state(AlarmValue::Ok), state(AlarmValue::Alarm)]),
        config(),
    );

    let outcome = handle(
        &deps,
        job(json!({"alarms": ["shop-5xx"], "bakeAfter": "10m"}), None),
        in_an_hour(),
    )
    .await
    .unwrap();

    let Outcome::Failed { message } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(matches!(
        DeployFailure::read(&message),
        DeployFailure::RolledBack { ref to, .. } if to == OLD
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn an_alarm_that_does_not_exist_or_already_fires_is_a_configuration_error_before_any_change()
{
    for (read, expected) in [
        (
            AlarmStates {
                found: vec![],
                missing: vec!["shop-5xx".into()],
            },
            "alarms: no CloudWatch alarm is named shop-5xx".to_owned(),
        ),
        (
            state(AlarmValue::Alarm),
            format!(
                "alarms: alarm shop-5xx is already in ALARM ({REASON}) before the deploy; nothing was changed"
            ),
        ),
    ] {
        let (client, server) = scripted(vec![]);
        let expected_message = expected.clone();
        let jobs = fails(FailureKind::ConfigurationError, move |message| {
            message == expected_message
        });
        let deps = Deps::new(
            clusters(client),
            jobs,
            MockImageRegistry::new(),
            alarms(vec![read]),
            config(),
        );
        let outcome = handle(&deps, job(canary_plan(), None), in_an_hour())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::InvalidParameters { message: expected });
        server.await.unwrap();
    }
}

#[tokio::test]
async fn a_strategy_longer_than_the_action_may_run_is_refused() {
    let (client, server) = scripted(vec![]);
    let jobs = fails(FailureKind::ConfigurationError, |message| {
        message
            .starts_with("strategy: the bakes (2h) and MAX_ROLLOUT_SECONDS (82800 s) add up to 25h")
    });
    let mut config = config();
    config.max_rollout = Duration::from_secs(82_800);
    let deps = deps(clusters(client), jobs, config);
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 50, "bake": "2h"}]}});
    handle(&deps, job(plan, None), in_an_hour()).await.unwrap();
    server.await.unwrap();
}

fn scan(state: ScanState) -> ScanFindings {
    ScanFindings {
        state,
        counts: [
            ("CRITICAL".to_owned(), 2),
            ("HIGH".to_owned(), 1),
            ("LOW".to_owned(), 4),
        ]
        .into(),
        top: vec![
            Finding {
                id: "CVE-2026-0001".into(),
                package: Some("openssl".into()),
                severity: "CRITICAL".into(),
            },
            Finding {
                id: "CVE-2026-0002".into(),
                package: None,
                severity: "CRITICAL".into(),
            },
        ],
    }
}

#[tokio::test]
async fn findings_above_the_gate_fail_the_job_before_anything_is_patched() {
    let (client, server) = scripted(vec![no_canary()]);
    let mut gated = registry();
    gated
        .expect_scan_findings()
        .withf(|image, digest| image.repository == "shop" && digest == DIGEST)
        .times(1)
        .returning(|_, _| reply(Ok(scan(ScanState::Complete))));
    let jobs = fails(FailureKind::JobFailed, |message| {
        message
            == format!(
                "shop/web: the scan of {IMAGE} (sha256:ab12cd34ef56…) has findings above HIGH: 2 CRITICAL, 1 HIGH, 4 LOW; \
                 top findings: CVE-2026-0001 in openssl (CRITICAL), CVE-2026-0002 (CRITICAL)"
            )
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    handle(
        &deps,
        job(json!({"scanGate": {"maxSeverity": "HIGH"}}), None),
        in_an_hour(),
    )
    .await
    .unwrap();
    server.await.unwrap();

    // CRITICAL allowed: the same findings pass.
    let (client, server) = scripted(with_main_rollout(vec![no_canary()]));
    let mut gated = registry();
    gated
        .expect_scan_findings()
        .times(1)
        .returning(|_, _| reply(Ok(scan(ScanState::Complete))));
    let jobs = succeeds(|result| result.summary.contains("runs sha256:ab12cd34ef56…"));
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    handle(
        &deps,
        job(json!({"scanGate": {"maxSeverity": "CRITICAL"}}), None),
        in_an_hour(),
    )
    .await
    .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_scan_in_progress_is_waited_for_across_invocations_up_to_the_limit() {
    // First invocation: the scan runs the whole time; the job continues in the scan phase.
    let (client, server) = scripted(vec![no_canary()]);
    let mut gated = registry();
    gated
        .expect_scan_findings()
        .times(1..)
        .returning(|_, _| reply(Ok(scan(ScanState::InProgress))));
    let jobs = succeeds(|result| {
        let token = result
            .continuation_token
            .as_deref()
            .and_then(|token| Continuation::decode(token).ok());
        result.summary.starts_with(&format!(
            "shop/web: waiting for the scan of {IMAGE} (sha256:ab12cd34ef56…)"
        )) && token.is_some_and(|t| t.phase == Phase::Scan && t.target() == PINNED)
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    let gate = json!({"scanGate": {"maxSeverity": "HIGH"}});
    let outcome = handle(
        &deps,
        job(gate.clone(), None),
        SystemTime::now() + Duration::from_millis(400),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::InProgress { .. }), "{outcome:?}");
    server.await.unwrap();

    // Continued past SCAN_WAIT_SECONDS: the job fails saying so, nothing was patched.
    let token = Continuation {
        image: IMAGE.into(),
        target: Some(PINNED.into()),
        previous: None,
        started_at: crate::release::now_seconds() - 1900,
        earlier_verdict: None,
        phase: Phase::Scan,
        step: 0,
        bake_started: None,
        owner: None,
    };
    let (client, server) = scripted(vec![]);
    let mut gated = MockImageRegistry::new();
    gated
        .expect_scan_findings()
        .times(1)
        .returning(|_, _| reply(Ok(scan(ScanState::InProgress))));
    let jobs = fails(FailureKind::JobFailed, |message| {
        message.contains("was still in progress after 190")
            && message.contains("(SCAN_WAIT_SECONDS is 1800): not deployed")
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    handle(&deps, job(gate, Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn an_image_without_a_scan_fails_unless_the_gate_does_not_require_one() {
    let (client, server) = scripted(vec![no_canary()]);
    let mut gated = registry();
    gated
        .expect_scan_findings()
        .times(1)
        .returning(|_, _| reply(Ok(scan(ScanState::NotScanned))));
    let jobs = fails(FailureKind::JobFailed, |message| {
        message.contains("has no scan: turn on scan on push for repository shop or set scanGate.requireScan to false")
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    handle(
        &deps,
        job(json!({"scanGate": {"maxSeverity": "HIGH"}}), None),
        in_an_hour(),
    )
    .await
    .unwrap();
    server.await.unwrap();

    let (client, server) = scripted(with_main_rollout(vec![no_canary()]));
    let mut gated = registry();
    gated
        .expect_scan_findings()
        .times(1)
        .returning(|_, _| reply(Ok(scan(ScanState::NotScanned))));
    let jobs = succeeds(|_| true);
    let deps = Deps::new(
        clusters(client),
        jobs,
        gated,
        MockAlarmReader::new(),
        config(),
    );
    handle(
        &deps,
        job(
            json!({"scanGate": {"maxSeverity": "HIGH", "requireScan": false}}),
            None,
        ),
        in_an_hour(),
    )
    .await
    .unwrap();
    server.await.unwrap();
}

fn continued(phase: Phase, step: usize, bake_started: Option<u64>) -> Continuation {
    Continuation {
        image: IMAGE.into(),
        target: Some(PINNED.into()),
        previous: None,
        started_at: crate::release::now_seconds() - 30,
        earlier_verdict: None,
        phase,
        step,
        bake_started,
        owner: None,
    }
}

#[tokio::test]
async fn a_redelivered_continuation_mid_bake_reads_the_alarms_and_goes_on_without_a_second_canary()
{
    let one_step = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "5m"}]},
                          "alarms": ["shop-5xx"]});
    // The bake began an hour ago: it is over after one read; then the main rollout.
    let started = millis_ago(Duration::from_secs(3600));
    let token = continued(Phase::Canary, 0, Some(started));
    let mut script = rollout_of_main();
    script.push(Exchange::delete(CANARY_DELETE));
    let (client, server) = scripted(script);
    let jobs = succeeds(|result| {
        result
            .summary
            .starts_with("shop/web: canary 10% baked 5m, promoted sha256:ab12cd34ef56…")
    });
    let deps = Deps::new(
        clusters(client),
        jobs,
        MockImageRegistry::new(),
        alarms(vec![state(AlarmValue::Ok)]),
        config(),
    );
    handle(&deps, job(one_step, Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_step_resumed_after_its_invocation_died_reuses_the_canary_as_it_is() {
    // The previous invocation scaled the canary to step 2 and died before its token: the
    // canary is ours and already so, so nothing is created or patched again.
    let token = continued(Phase::Canary, 1, None);
    let mut script = vec![
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::get(CANARY, canary("63", PINNED, 2, JOB, available(1, 2))),
    ];
    script.extend(rollout_of_main());
    script.push(Exchange::delete(CANARY_DELETE));
    let (client, server) = scripted(script);
    let jobs = succeeds(|result| result.summary.contains("promoted"));
    let deps = Deps::new(
        clusters(client),
        jobs,
        MockImageRegistry::new(),
        alarms(vec![state(AlarmValue::Ok)]),
        config(),
    );
    handle(&deps, job(canary_plan(), Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

/// The job that started a release; CodePipeline gives each continuation a job of its own.
const FIRST_JOB: &str = "22222222-abcd-2222-abcd-222222222222";

#[tokio::test]
async fn a_continuation_job_scales_the_canary_the_release_made_under_its_first_job() {
    let token = Continuation {
        owner: Some(FIRST_JOB.into()),
        ..continued(Phase::Canary, 1, None)
    };
    let mut script = vec![
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::get(CANARY, canary("61", PINNED, 1, FIRST_JOB, available(1, 1))),
        Exchange::merge_patch(
            CANARY_PATCH,
            json!({"spec": {"replicas": 2}, "metadata": {"resourceVersion": "61"}}),
            canary("62", PINNED, 2, FIRST_JOB, available(1, 1)),
        ),
        Exchange::watch(
            &canary_watch("62"),
            vec![modified(canary(
                "63",
                PINNED,
                2,
                FIRST_JOB,
                available(1, 2),
            ))],
        ),
    ];
    script.extend(rollout_of_main());
    script.push(Exchange::delete(CANARY_DELETE));
    let (client, server) = scripted(script);
    let jobs = succeeds(|result| result.summary.contains("promoted"));
    let deps = Deps::new(
        clusters(client),
        jobs,
        MockImageRegistry::new(),
        alarms(vec![state(AlarmValue::Ok)]),
        config(),
    );
    handle(&deps, job(canary_plan(), Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_new_canary_release_records_its_job_as_the_canarys_owner_in_the_token() {
    // A budget that ends in the first step's bake (alarms read every 20 ms, the bake 5 m); a
    // watch is opened only with a second or more left.
    let plan = json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "5m"}]},
                      "alarms": ["shop-5xx"]});
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        no_canary(),
        Exchange::post(
            DEPLOYMENTS,
            created_canary(1),
            canary("60", PINNED, 1, JOB, json!({})),
        ),
        // The watch lasts no longer than the second left.
        Exchange::watch(
            &watch_uri_of("web-canary", "60", 1),
            vec![modified(canary("61", PINNED, 1, JOB, available(1, 1)))],
        ),
    ]);
    let jobs = succeeds(|result| {
        result
            .continuation_token
            .as_deref()
            .and_then(|token| Continuation::decode(token).ok())
            .is_some_and(|token| {
                token.owner.as_deref() == Some(JOB)
                    && token.phase == Phase::Canary
                    && token.bake_started.is_some()
            })
    });
    let mut reads = MockAlarmReader::new();
    reads
        .expect_alarm_states()
        .times(1..)
        .returning(|_| reply(Ok(state(AlarmValue::Ok))));
    let deps = Deps::new(clusters(client), jobs, registry(), reads, config());
    let outcome = handle(
        &deps,
        job(plan, None),
        SystemTime::now() + Duration::from_millis(1800),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, Outcome::InProgress { .. }), "{outcome:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_token_from_before_this_jobs_promotion_redelivered_makes_no_canary_again() {
    // The job baked step 1, went on to step 2 and promoted; its invocation is delivered again
    // with the token it started from.
    let started = millis_ago(Duration::from_secs(3600));
    let token = continued(Phase::Canary, 0, Some(started));
    let mut promoted = deployment("44", 4, PINNED, rolled_out(4));
    promoted["metadata"]["annotations"]["eks-deploy.cicd/jobs"] = json!(JOB);
    let (client, server) = scripted(vec![
        // Step 2 reads the main Deployment: this job put the target there already.
        Exchange::get(DEPLOYMENT, promoted.clone()),
        // The promotion: nothing to patch, the rollout complete, the canary gone.
        Exchange::get(DEPLOYMENT, promoted),
        Exchange::delete(CANARY_DELETE).failing(404, "NotFound"),
    ]);
    let jobs = succeeds(|result| result.summary.contains("promoted"));
    let deps = Deps::new(
        clusters(client),
        jobs,
        MockImageRegistry::new(),
        alarms(vec![state(AlarmValue::Ok)]),
        config(),
    );
    handle(&deps, job(canary_plan(), Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_promotion_resumed_after_the_patch_does_not_patch_again() {
    let token = continued(Phase::Rollout, 2, None);
    let (client, server) = scripted(vec![
        Exchange::get(DEPLOYMENT, deployment("42", 4, PINNED, rolling(4, 2))),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![modified(deployment("43", 4, PINNED, rolled_out(4)))],
        ),
        Exchange::delete(CANARY_DELETE),
    ]);
    let jobs = succeeds(|result| result.summary.contains("promoted"));
    let deps = deps(clusters(client), jobs, config());
    handle(&deps, job(canary_plan(), Some(&token)), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_canary_abandoned_by_an_earlier_release_is_removed_first() {
    let mut script = vec![
        Exchange::get(
            CANARY,
            canary(
                "30",
                "shop:old",
                1,
                "99999999-dead-9999-dead-999999999999",
                available(1, 1),
            ),
        ),
        Exchange::delete(CANARY_DELETE),
    ];
    script.extend(rollout_of_main());
    let (client, server) = scripted(script);
    let jobs = succeeds(|_| true);
    let deps = pinning(clusters(client), jobs, config());
    handle(&deps, job(json!({}), None), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn an_image_outside_ecr_is_used_as_given() {
    const HUB: &str = "docker.io/library/nginx:1.27";
    let cause = format!("eks-deploy: set web to {HUB} (CodePipeline job {JOB})");
    let mut patch = expected_patch("41", HUB, OLD, &cause);
    patch["metadata"]["annotations"]["eks-deploy.cicd/jobs"] = json!(JOB);
    let (client, server) = scripted(vec![
        no_canary(),
        Exchange::get(DEPLOYMENT, deployment("41", 3, OLD, rolled_out(3))),
        Exchange::patch(
            DEPLOYMENT_PATCH,
            patch,
            deployment("42", 4, HUB, rolled_out(3)),
        ),
        Exchange::watch(
            &watch_uri("42", 240),
            vec![modified(deployment("43", 4, HUB, rolled_out(4)))],
        ),
    ]);
    let jobs = succeeds(|result| {
        result.summary.contains(&format!("runs {HUB} on 3 of 3"))
            && result.output_variables[IMAGE_DIGEST].is_empty()
            && result.output_variables[IMAGE_TAG] == "1.27"
    });
    let deps = deps(clusters(client), jobs, config());
    handle(&deps, job(json!({"image": HUB}), None), in_an_hour())
        .await
        .unwrap();
    server.await.unwrap();
}
