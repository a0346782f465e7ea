use mockall::Sequence;
use mockall::predicate::eq;
use serde_json::json;
use shared::UpstreamError;
use shared::ports::{
    Claim, MockBuildApi, MockLedger, MockNotifier, MockTestReports, Notification, reply,
};
use shared::reports::{BuildTests, FailedCase, TestReport};

use super::*;
use crate::message::{compose, deduplication_key};

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/codebuild-status/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn build(name: &str) -> BuildStateChange {
    build_event(event(name)).detail
}

fn build_event(payload: Value) -> EventBridgeEvent<BuildStateChange> {
    match parse(payload).unwrap() {
        Incoming::Build(event) => *event,
        other => panic!("not a build event: {other:?}"),
    }
}

/// The settings the sample events are written for: `events/env.json`.
fn config() -> Config {
    config_with(&[])
}

fn config_with(extra: &[(&str, &str)]) -> Config {
    let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
    let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = env["CodeBuildStatusFunction"].clone();
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Config::from_lookup(move |name| {
        extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| variables[name].as_str().map(str::to_owned))
    })
    .unwrap()
}

fn record(id: &str, number: u64, status: BuildStatus, branch: &str) -> BuildRecord {
    BuildRecord {
        id: id.to_owned(),
        number: Some(number),
        status,
        complete: status.is_final(),
        source_version: Some(
            "arn:aws:s3:::shop-pipeline-artifacts/shop-main/SourceOutp/x.zip".into(),
        ),
        variables: vec![("SOURCE_BRANCH".into(), branch.into())],
        ..BuildRecord::default()
    }
}

const SUCCEEDED_ID: &str = "shop-image:7e0f5a2b-4c6d-4b8e-9f0a-1b2c3d4e5f6a";

fn fixed() -> Report {
    Report {
        kind: NotifyOn::Fixed,
        previous_failure: Some(44),
    }
}

#[test]
fn finished_pipeline_builds_notify_by_status() {
    let config = config();
    let cases = [
        ("build-failed.json", NotifyOn::Failed),
        ("build-stopped.json", NotifyOn::Stopped),
        ("build-timed-out.json", NotifyOn::TimedOut),
    ];
    for (name, kind) in cases {
        assert_eq!(
            classify(&build(name), &config),
            Interest::Notify(Report {
                kind,
                previous_failure: None
            }),
            "{name}"
        );
    }
    assert_eq!(
        classify(&build("build-succeeded.json"), &config),
        Interest::CheckForFix
    );
}

#[test]
fn running_and_pull_request_builds_are_left_alone() {
    let config = config();
    assert_eq!(
        classify(&build("build-in-progress.json"), &config),
        Interest::Ignore(IgnoreReason::NotFinished)
    );
    assert_eq!(
        classify(&build("pull-request-build-failed.json"), &config),
        Interest::Ignore(IgnoreReason::PullRequestBuild)
    );
    // Even without the project setting, the variable pr-validator sets marks the build.
    let mut unnamed = config.clone();
    unnamed.pull_request_project = None;
    assert_eq!(
        classify(&build("pull-request-build-failed.json"), &unnamed),
        Interest::Ignore(IgnoreReason::PullRequestBuild)
    );
}

#[test]
fn the_policy_decides_per_project() {
    let only_failures = config_with(&[("NOTIFY_ON", r#"{"shop-image": ["FAILED"]}"#)]);
    assert_eq!(
        classify(&build("build-stopped.json"), &only_failures),
        Interest::Ignore(IgnoreReason::NotNotified {
            status: "STOPPED".into()
        })
    );
    assert_eq!(
        classify(&build("build-succeeded.json"), &only_failures),
        Interest::Ignore(IgnoreReason::NotNotified {
            status: "SUCCEEDED".into()
        })
    );
    let every_success = config_with(&[("NOTIFY_ON", r#"{"*": ["SUCCEEDED"]}"#)]);
    assert_eq!(
        classify(&build("build-succeeded.json"), &every_success),
        Interest::Notify(Report {
            kind: NotifyOn::Succeeded,
            previous_failure: None
        })
    );
}

#[test]
fn a_success_after_a_failure_of_the_same_branch_is_a_fix() {
    let history = [
        record("shop-image:running", 46, BuildStatus::InProgress, "main"),
        record(SUCCEEDED_ID, 45, BuildStatus::Succeeded, "main"),
        record(
            "shop-image:other-branch",
            45,
            BuildStatus::Succeeded,
            "release/2.4",
        ),
        record("shop-image:failed", 44, BuildStatus::TimedOut, "main"),
        record("shop-image:older", 43, BuildStatus::Succeeded, "main"),
    ];
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &history),
        Ok(fixed())
    );
}

#[test]
fn a_success_after_a_success_or_a_stop_is_no_news() {
    let after_success = [
        record(SUCCEEDED_ID, 45, BuildStatus::Succeeded, "main"),
        record("shop-image:a", 44, BuildStatus::Succeeded, "main"),
        record("shop-image:b", 43, BuildStatus::Failed, "main"),
    ];
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &after_success),
        Err(IgnoreReason::NotAFix)
    );
    let after_stop = [
        record(SUCCEEDED_ID, 45, BuildStatus::Succeeded, "main"),
        record("shop-image:a", 44, BuildStatus::Stopped, "main"),
    ];
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &after_stop),
        Err(IgnoreReason::NotAFix)
    );
    let failures_elsewhere_only = [
        record(SUCCEEDED_ID, 45, BuildStatus::Succeeded, "main"),
        record("shop-image:a", 44, BuildStatus::Failed, "release/2.4"),
    ];
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &failures_elsewhere_only),
        Err(IgnoreReason::NotAFix)
    );
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &[]),
        Err(IgnoreReason::NotAFix)
    );
}

#[test]
fn a_build_not_yet_listed_is_compared_with_the_builds_numbered_before_it() {
    let history = [
        record("shop-image:newer", 47, BuildStatus::Failed, "main"),
        record("shop-image:failed", 44, BuildStatus::Failed, "main"),
    ];
    assert_eq!(
        fix_report(&build("build-succeeded.json"), &history),
        Ok(fixed())
    );
}

#[test]
fn the_failure_message_tells_what_failed_where_and_links_to_build_and_logs() {
    let event = build_event(event("build-failed.json"));
    let notification = compose(
        &event,
        &Report {
            kind: NotifyOn::Failed,
            previous_failure: None,
        },
        &BuildTests::None,
    );

    assert_eq!(
        notification.subject,
        "FAILED: shop-image #42 on main (0ccf1ae)"
    );
    assert_eq!(
        notification.body,
        "Build shop-image #42 on main failed.\n\
         \n\
         What went wrong: the BUILD phase ended FAILED.\n\
         \x20 COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101\n\
         \n\
         Project     shop-image\n\
         Build       #42\n\
         Branch      main\n\
         Commit      0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e\n\
         Started by  codepipeline/shop-main\n\
         Duration    3 min 10 s\n\
         \n\
         Build details: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/shop-image/build/shop-image%3A4b7c2d9e-1f3a-4e5b-8c6d-7e8f9a0b1c2d/?region=us-east-1\n\
         Logs:          https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/shop-image;stream=4b7c2d9e-1f3a-4e5b-8c6d-7e8f9a0b1c2d\n"
    );
    assert_eq!(
        notification.attributes,
        vec![
            ("project".to_owned(), "shop-image".to_owned()),
            ("status".to_owned(), "FAILED".to_owned()),
            ("branch".to_owned(), "main".to_owned()),
        ]
    );
}

#[test]
fn stop_timeout_and_fix_messages_say_so() {
    let stopped = compose(
        &build_event(event("build-stopped.json")),
        &Report {
            kind: NotifyOn::Stopped,
            previous_failure: None,
        },
        &BuildTests::None,
    );
    assert_eq!(stopped.subject, "STOPPED: shop-image #43 on main (0ccf1ae)");
    assert!(
        stopped
            .body
            .starts_with("Build shop-image #43 on main was stopped before it finished.")
    );

    let timed_out = compose(
        &build_event(event("build-timed-out.json")),
        &Report {
            kind: NotifyOn::TimedOut,
            previous_failure: None,
        },
        &BuildTests::None,
    );
    assert_eq!(
        timed_out.subject,
        "TIMED OUT: shop-image #44 on main (0ccf1ae)"
    );
    assert!(
        timed_out
            .body
            .contains("BUILD_TIMED_OUT: Build has timed out.")
    );
    assert!(
        timed_out
            .attributes
            .contains(&("status".to_owned(), "TIMED_OUT".to_owned()))
    );

    let fixed = compose(
        &build_event(event("build-succeeded.json")),
        &fixed(),
        &BuildTests::None,
    );
    assert_eq!(fixed.subject, "FIXED: shop-image #45 on main (9b1de4f)");
    assert!(
        fixed.body.starts_with(
            "Build shop-image #45 on main succeeded after build #44 had failed: fixed."
        )
    );
    assert!(!fixed.body.contains("What went wrong"));
}

#[test]
fn subjects_fit_sns_even_for_long_names() {
    let mut long = event("build-failed.json");
    long["detail"]["project-name"] = json!("p".repeat(90));
    long["detail"]["additional-information"]["environment"]["environment-variables"][1]["value"] =
        json!(format!("feature/{}\nnext-line", "b".repeat(80)));
    let notification = compose(
        &build_event(long),
        &Report {
            kind: NotifyOn::Failed,
            previous_failure: None,
        },
        &BuildTests::None,
    );
    assert!(notification.subject.chars().count() <= 100);
    assert!(!notification.subject.contains('\n'));
}

#[test]
fn the_deduplication_key_names_the_build_and_its_status() {
    let failed = build("build-failed.json");
    let report = Report {
        kind: NotifyOn::Failed,
        previous_failure: None,
    };
    assert_eq!(
        deduplication_key(&failed, &report),
        "codebuild-status/arn:aws:codebuild:us-east-1:123456789012:build/shop-image:4b7c2d9e-1f3a-4e5b-8c6d-7e8f9a0b1c2d/FAILED"
    );
    // A redelivery with another event id is the same fact.
    let mut again = event("build-failed.json");
    again["id"] = json!("00000000-0000-4000-8000-000000000000");
    assert_eq!(
        deduplication_key(&build_event(again).detail, &report),
        deduplication_key(&failed, &report)
    );
}

fn expect_delivery(
    ledger: &mut MockLedger,
    notifier: &mut MockNotifier,
    key: String,
    expected: Notification,
) {
    let mut order = Sequence::new();
    ledger
        .expect_claim()
        .with(eq(key.clone()))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(Claim::Granted)));
    notifier
        .expect_publish()
        .with(eq(expected))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok("m-1".to_owned())));
    ledger
        .expect_complete()
        .with(eq(key))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(())));
}

const FAILED_ID: &str = "shop-image:4b7c2d9e-1f3a-4e5b-8c6d-7e8f9a0b1c2d";
const IMAGE_TESTS: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-image-tests:3a9c";

/// BatchGetBuilds of `id`, answering a build that filed `report_arns`.
fn expect_build_read(mock: &mut MockBuildApi, id: &'static str, report_arns: &[&str]) {
    let record = BuildRecord {
        report_arns: report_arns.iter().map(|a| (*a).to_owned()).collect(),
        ..record(id, 42, BuildStatus::Failed, "main")
    };
    mock.expect_build()
        .with(eq(id))
        .times(1)
        .returning(move |_| reply(Ok(Some(record.clone()))));
}

/// The image's test report: 2 of 120 cases failed.
fn image_tests() -> TestReport {
    TestReport {
        arn: IMAGE_TESTS.into(),
        status: "FAILED".into(),
        total: 120,
        passed: 118,
        failed: 2,
        skipped: 0,
        duration_nanos: Some(41_000_000_000),
        failures: vec![
            FailedCase {
                prefix: Some("checkout".into()),
                name: "pays_with_a_card".into(),
                message: Some("expected 200, got 502\nat checkout.test.js:41".into()),
            },
            FailedCase {
                prefix: Some("checkout".into()),
                name: "refunds".into(),
                message: None,
            },
        ],
    }
}

#[tokio::test]
async fn a_failed_build_is_claimed_published_and_recorded() {
    let parsed = build_event(event("build-failed.json"));
    let report = Report {
        kind: NotifyOn::Failed,
        previous_failure: None,
    };
    // The event does not name the build's reports: BatchGetBuilds does.
    let mut builds = MockBuildApi::new();
    expect_build_read(&mut builds, FAILED_ID, &[IMAGE_TESTS]);
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .withf(|arns| arns == [IMAGE_TESTS])
        .times(1)
        .returning(|_| reply(Ok(vec![image_tests()])));
    let tests = BuildTests::Read(vec![image_tests()]);
    let (mut ledger, mut notifier) = (MockLedger::new(), MockNotifier::new());
    expect_delivery(
        &mut ledger,
        &mut notifier,
        deduplication_key(&parsed.detail, &report),
        compose(&parsed, &report, &tests),
    );
    let deps = Deps::new(builds, reports, notifier, ledger, config());

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Notified {
            subject: "FAILED: shop-image #42 on main (0ccf1ae)".into(),
            status: "FAILED".into(),
            message_id: "m-1".into(),
        }
    );
}

#[test]
fn the_failure_email_lists_the_failing_tests_with_counts_and_the_reports_link() {
    let event = build_event(event("build-failed.json"));
    let notification = compose(
        &event,
        &failed_report(),
        &BuildTests::Read(vec![image_tests()]),
    );
    assert!(
        notification.body.contains(
            "Reason: exit status 101\n\
             \n\
             Tests (shop-image-tests): 118 passed, 2 failed, 0 skipped (98.3 %) in 41 s.\n\
             \x20 - checkout.pays_with_a_card: expected 200, got 502\n\
             \x20 - checkout.refunds\n\
             \x20 Report: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/testReports/reports/shop-image-tests%3A3a9c?region=us-east-1\n\
             \n\
             Project     shop-image\n"
        ),
        "{}",
        notification.body
    );
    assert_eq!(
        notification.subject, "FAILED: shop-image #42 on main (0ccf1ae)",
        "the subject stays as SNS takes it"
    );
}

#[tokio::test]
async fn reports_that_cannot_be_read_leave_the_email_without_them_not_unsent() {
    let parsed = build_event(event("build-failed.json"));
    let mut builds = MockBuildApi::new();
    expect_build_read(&mut builds, FAILED_ID, &[IMAGE_TESTS]);
    let mut reports = MockTestReports::new();
    reports.expect_reports().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "CodeBuild",
            "DescribeTestCases",
            Some("ThrottlingException".into()),
            "Rate exceeded",
        )))
    });
    let unreadable = BuildTests::Unreadable {
        code: Some("ThrottlingException".into()),
    };
    let expected = compose(&parsed, &failed_report(), &unreadable);
    assert!(
        expected
            .body
            .contains("Tests: the build's test reports could not be read (ThrottlingException)"),
        "{}",
        expected.body
    );
    let (mut ledger, mut notifier) = (MockLedger::new(), MockNotifier::new());
    expect_delivery(
        &mut ledger,
        &mut notifier,
        deduplication_key(&parsed.detail, &failed_report()),
        expected,
    );
    let deps = Deps::new(builds, reports, notifier, ledger, config());

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();
    assert!(matches!(outcome, Outcome::Notified { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_fix_reads_the_history_then_publishes() {
    let parsed = build_event(event("build-succeeded.json"));
    let mut builds = MockBuildApi::new();
    builds
        .expect_recent_builds()
        .with(eq("shop-image"), eq(25_usize))
        .times(1)
        .returning(|_, _| {
            reply(Ok(vec![
                BuildRecord {
                    report_arns: vec![IMAGE_TESTS.into()],
                    ..record(SUCCEEDED_ID, 45, BuildStatus::Succeeded, "main")
                },
                record("shop-image:failed", 44, BuildStatus::Failed, "main"),
            ]))
        });
    // The history names the fixed build's reports: no build is read again.
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .withf(|arns| arns == [IMAGE_TESTS])
        .times(1)
        .returning(|_| reply(Ok(vec![image_tests()])));
    let (mut ledger, mut notifier) = (MockLedger::new(), MockNotifier::new());
    expect_delivery(
        &mut ledger,
        &mut notifier,
        deduplication_key(&parsed.detail, &fixed()),
        compose(&parsed, &fixed(), &BuildTests::Read(vec![image_tests()])),
    );
    let deps = Deps::new(builds, reports, notifier, ledger, config());

    let outcome = handle(&deps, event("build-succeeded.json")).await.unwrap();
    assert!(matches!(outcome, Outcome::Notified { ref status, .. } if status == "FIXED"));
}

#[tokio::test]
async fn a_success_that_fixes_nothing_sends_nothing() {
    let mut builds = MockBuildApi::new();
    builds.expect_recent_builds().times(1).returning(|_, _| {
        reply(Ok(vec![record(
            "shop-image:ok",
            44,
            BuildStatus::Succeeded,
            "main",
        )]))
    });
    let deps = Deps::new(
        builds,
        MockTestReports::new(),
        MockNotifier::new(),
        MockLedger::new(),
        config(),
    );

    let outcome = handle(&deps, event("build-succeeded.json")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: IgnoreReason::NotAFix
        }
    );
}

#[tokio::test]
async fn a_redelivered_event_sends_nothing_the_second_time() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim()
        .times(1)
        .returning(|_| reply(Ok(Claim::Done)));
    let deps = Deps::new(
        MockBuildApi::new(),
        MockTestReports::new(),
        MockNotifier::new(),
        ledger,
        config(),
    );

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: IgnoreReason::AlreadyNotified
        }
    );
}

#[tokio::test]
async fn a_delivery_meeting_a_pending_claim_fails_so_it_is_retried_and_nothing_is_lost() {
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim()
        .times(1)
        .returning(|_| reply(Ok(Claim::Pending)));
    // No publish now; Lambda retries the event once the claim's lease has run out.
    let deps = Deps::new(
        MockBuildApi::new(),
        MockTestReports::new(),
        MockNotifier::new(),
        ledger,
        config(),
    );

    let error = handle(&deps, event("build-failed.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
    assert!(error.to_string().contains("ClaimPending"), "{error}");
}

#[tokio::test]
async fn a_failed_publish_gives_the_claim_back_and_fails_for_a_retry() {
    let mut ledger = MockLedger::new();
    let mut order = Sequence::new();
    ledger
        .expect_claim()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(Claim::Granted)));
    ledger
        .expect_release()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(())));
    let mut notifier = MockNotifier::new();
    notifier.expect_publish().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "SNS",
            "Publish",
            Some("ThrottledException".into()),
            "Rate exceeded",
        )))
    });
    let mut builds = MockBuildApi::new();
    expect_build_read(&mut builds, FAILED_ID, &[]);
    let deps = Deps::new(builds, MockTestReports::new(), notifier, ledger, config());

    let error = handle(&deps, event("build-failed.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn ignored_and_invalid_events_call_nothing() {
    for name in ["build-in-progress.json", "pull-request-build-failed.json"] {
        let deps = Deps::new(
            MockBuildApi::new(),
            MockTestReports::new(),
            MockNotifier::new(),
            MockLedger::new(),
            config(),
        );
        let outcome = handle(&deps, event(name)).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{name}");
    }
    for name in [
        "invalid-missing-build-status.json",
        "invalid-foreign-codecommit-push.json",
    ] {
        let deps = Deps::new(
            MockBuildApi::new(),
            MockTestReports::new(),
            MockNotifier::new(),
            MockLedger::new(),
            config(),
        );
        let error = handle(&deps, event(name)).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent", "{name}");
    }
    let missing = parse(event("invalid-missing-build-status.json")).unwrap_err();
    assert_eq!(missing.message(), "detail: missing field `build-status`");
}

// --- the sweep -------------------------------------------------------------------------------

/// When `events/codebuild-status/scheduled-sweep.json` fired.
fn swept_at() -> chrono::DateTime<chrono::Utc> {
    "2026-11-23T10:05:00Z".parse().unwrap()
}

/// A pipeline build of main that ended `minutes` before the sweep's schedule fired.
fn ended(uuid: &str, number: u64, status: BuildStatus, minutes: i64) -> BuildRecord {
    let end = swept_at() - chrono::Duration::minutes(minutes);
    BuildRecord {
        arn: Some(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/shop-image:{uuid}"
        )),
        start_time: Some(end - chrono::Duration::seconds(190)),
        end_time: Some(end),
        variables: vec![
            ("SOURCE_BRANCH".into(), "main".into()),
            (
                "SOURCE_COMMIT".into(),
                "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e".into(),
            ),
        ],
        ..record(&format!("shop-image:{uuid}"), number, status, "main")
    }
}

fn failed_report() -> Report {
    Report {
        kind: NotifyOn::Failed,
        previous_failure: None,
    }
}

#[test]
fn a_scheduled_event_is_the_sweep() {
    match parse(event("scheduled-sweep.json")).unwrap() {
        Incoming::Sweep(sweep) => {
            assert_eq!(
                shared::events::schedule::scheduled_at(&sweep),
                Ok(swept_at())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_sweep_tells_once_what_the_lost_events_of_its_window_would_have_told() {
    let mut lost = ended("lost", 50, BuildStatus::Failed, 10);
    lost.report_arns = vec![IMAGE_TESTS.into()];
    let told = ended("told", 49, BuildStatus::TimedOut, 20);
    let history = vec![
        ended("just-now", 52, BuildStatus::Failed, 1),
        ended("running", 51, BuildStatus::InProgress, 0),
        lost.clone(),
        told.clone(),
        // A success after a success: no fix to tell.
        ended("fine", 48, BuildStatus::Succeeded, 30),
        ended("earlier", 47, BuildStatus::Succeeded, 40),
        // Out of the window, and a stop is no failure to be fixed.
        ended("long-ago", 46, BuildStatus::Stopped, 90),
    ];
    let mut builds = MockBuildApi::new();
    builds
        .expect_recent_builds()
        .with(eq("shop-image"), eq(25_usize))
        .times(1)
        .return_once(move |_, _| reply(Ok(history)));
    let lost_event = lost.state_change().unwrap();
    let (mut ledger, mut notifier) = (MockLedger::new(), MockNotifier::new());
    expect_delivery(
        &mut ledger,
        &mut notifier,
        deduplication_key(&lost_event.detail, &failed_report()),
        compose(
            &lost_event,
            &failed_report(),
            &BuildTests::Read(vec![image_tests()]),
        ),
    );
    let told_key = deduplication_key(
        &told.state_change().unwrap().detail,
        &Report {
            kind: NotifyOn::TimedOut,
            previous_failure: None,
        },
    );
    ledger
        .expect_claim()
        .with(eq(told_key))
        .times(1)
        .returning(|_| reply(Ok(Claim::Done)));
    // The sweep's record names the reports: no build is read again.
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .withf(|arns| arns == [IMAGE_TESTS])
        .times(1)
        .returning(|_| reply(Ok(vec![image_tests()])));
    let deps = Deps::new(builds, reports, notifier, ledger, config());

    let outcome = handle(&deps, event("scheduled-sweep.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Swept {
            checked: 4,
            notified: vec![lost.arn.unwrap()],
        }
    );
}

#[tokio::test]
async fn a_sweep_leaves_a_pending_claim_to_its_holder_and_fails_after_trying_every_build() {
    let pending = ended("pending", 50, BuildStatus::Failed, 10);
    let refused = ended("refused", 49, BuildStatus::Failed, 20);
    let history = vec![pending.clone(), refused.clone()];
    let mut builds = MockBuildApi::new();
    builds
        .expect_recent_builds()
        .times(1)
        .return_once(move |_, _| reply(Ok(history)));
    let key = |record: &BuildRecord| {
        deduplication_key(&record.state_change().unwrap().detail, &failed_report())
    };
    let mut ledger = MockLedger::new();
    ledger
        .expect_claim()
        .with(eq(key(&pending)))
        .times(1)
        .returning(|_| reply(Ok(Claim::Pending)));
    ledger
        .expect_claim()
        .with(eq(key(&refused)))
        .times(1)
        .returning(|_| reply(Ok(Claim::Granted)));
    ledger
        .expect_release()
        .with(eq(key(&refused)))
        .times(1)
        .returning(|_| reply(Ok(())));
    let mut notifier = MockNotifier::new();
    notifier.expect_publish().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "SNS",
            "Publish",
            Some("InternalError".into()),
            "down",
        )))
    });
    let deps = Deps::new(builds, MockTestReports::new(), notifier, ledger, config());

    let error = handle(&deps, event("scheduled-sweep.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
    assert!(error.to_string().contains("SNS Publish"), "{error}");
}

#[tokio::test]
async fn a_sweep_without_projects_reads_nothing() {
    let deps = Deps::new(
        MockBuildApi::new(),
        MockTestReports::new(),
        MockNotifier::new(),
        MockLedger::new(),
        config_with(&[("BUILD_PROJECTS", "")]),
    );
    let outcome = handle(&deps, event("scheduled-sweep.json")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Swept {
            checked: 0,
            notified: vec![],
        }
    );
}
