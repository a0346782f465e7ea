//! codebuild-status, the real binary, against the emulated CodeBuild, SNS, SQS and DynamoDB:
//! what lands in a subscriber's inbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use integration_tests::calls::AwsFault;
use integration_tests::codebuild::test_cases;
use integration_tests::scenarios::build_status::{BuildStatusScenario, COMMIT};
use integration_tests::{codebuild, fixtures, unique};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_lands_in_the_inbox_once_with_its_reason_links_and_attributes() {
    let scenario = BuildStatusScenario::new().await;
    let build = scenario.start_build("main").await;
    scenario.finish(&build, "FAILED").await;
    let event = scenario.event(&build).await;

    let response = scenario.function.invoke(&event).await.response();

    assert_eq!(response["outcome"], "notified", "{response}");
    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let mail = &inbox[0];
    assert!(
        mail.subject.starts_with(&format!(
            "FAILED: {} #1 on main (0ccf1ae)",
            scenario.project
        )),
        "{}",
        mail.subject
    );
    assert!(mail.subject.chars().count() <= 100 && !mail.subject.contains('\n'));
    assert!(
        mail.message
            .contains("What went wrong: the BUILD phase ended FAILED."),
        "{}",
        mail.message
    );
    assert!(mail.message.contains("Reason: exit status 101"));
    assert!(mail.message.contains(&format!("Commit      {COMMIT}")));
    assert!(
        mail.message.contains(
            "Build details: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/"
        )
    );
    assert!(mail.message.contains("Logs:          https://"));
    assert_eq!(mail.attributes.get("project"), Some(&scenario.project));
    assert_eq!(
        mail.attributes.get("status").map(String::as_str),
        Some("FAILED")
    );
    assert_eq!(
        mail.attributes.get("branch").map(String::as_str),
        Some("main")
    );

    // EventBridge delivers the same event again; then CodeBuild repeats the news under a new id.
    let again = scenario.function.invoke(&event).await.response();
    assert_eq!(again["reason"]["kind"], "alreadyNotified");
    let repeated = scenario.event(&build).await;
    assert_ne!(repeated["id"], event["id"]);
    let again = scenario.function.invoke(&repeated).await.response();
    assert_eq!(again["reason"]["kind"], "alreadyNotified");
    assert!(scenario.inbox().await.is_empty(), "no second message");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_builds_email_lists_its_failing_tests_with_counts_and_the_reports_link() {
    let scenario = BuildStatusScenario::new().await;
    let build = scenario.start_build("main").await;
    let cases = [
        test_cases("SUCCEEDED", 118, "checkout"),
        test_cases("FAILED", 14, "checkout"),
    ]
    .concat();
    scenario
        .finish_with_reports(
            &build,
            "FAILED",
            json!([{"group": "tests", "testCases": cases}]),
        )
        .await;

    let response = scenario
        .function
        .invoke(&scenario.event(&build).await)
        .await
        .response();

    assert_eq!(response["outcome"], "notified", "{response}");
    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let mail = &inbox[0];
    assert!(
        mail.subject.starts_with(&format!(
            "FAILED: {} #1 on main (0ccf1ae)",
            scenario.project
        )),
        "the subject keeps its rules: {}",
        mail.subject
    );
    let group = format!("{}-tests", scenario.project);
    assert!(
        mail.message.contains(&format!(
            "Reason: exit status 101\n\nTests ({group}): 118 passed, 14 failed, 0 skipped (89.3 %) in 33 s.\n  - checkout.failed_0: assertion 'left == right' failed\n"
        )),
        "{}",
        mail.message
    );
    let listed = mail
        .message
        .lines()
        .filter(|l| l.starts_with("  - checkout.failed_"))
        .count();
    assert_eq!(listed, 10, "{}", mail.message);
    assert!(
        mail.message.contains("\n  and 4 more.\n"),
        "{}",
        mail.message
    );
    assert!(
        mail.message.contains(&format!(
            "  Report: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/{}/testReports/reports/{group}%3A",
            scenario.emulators.account_id
        )),
        "{}",
        mail.message
    );
    assert!(
        mail.message.contains("Build details: https://"),
        "{}",
        mail.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_that_cannot_be_read_leave_the_email_without_them_not_unsent() {
    let scenario = BuildStatusScenario::new().await;
    let build = scenario.start_build("main").await;
    scenario
        .finish_with_reports(
            &build,
            "FAILED",
            json!([{"group": "tests", "testCases": test_cases("FAILED", 2, "checkout")}]),
        )
        .await;
    // Throttled past the SDK's retries (the tests' SDK makes one attempt).
    let throttled = AwsFault::add(
        &scenario.emulators,
        json!({"service": "codebuild", "operation": "DescribeTestCases",
               "match": format!("{}-tests", scenario.project), "status": 400, "count": 1}),
    )
    .await;

    let response = scenario
        .function
        .invoke(&scenario.event(&build).await)
        .await
        .response();

    assert_eq!(response["outcome"], "notified", "{response}");
    assert_eq!(throttled.served().await, 1);
    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0].message.contains(
            "Tests: the build's test reports could not be read (ThrottlingException); they are on the build's page.\n"
        ),
        "{}",
        inbox[0].message
    );
    assert!(inbox[0].message.contains("Reason: exit status 101"));
    let logs = scenario.function.log_records();
    assert!(
        logs.iter().any(|r| r["level"] == "WARN"
            && r["fields"]["message"]
                == "test reports not read: the notification goes out without them"),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subjects_are_ascii_under_100_characters_whatever_the_branch_and_project_are_called() {
    // SNS refuses a subject with non-ASCII text or of 100 characters: the email would be lost.
    let scenario =
        BuildStatusScenario::named(&format!("shop-image{}", "-storefront".repeat(6))).await;
    let accented = scenario.start_build("feature/crème-brûlée").await;
    scenario.finish(&accented, "FAILED").await;
    let response = scenario
        .function
        .invoke(&scenario.event(&accented).await)
        .await
        .response();
    assert_eq!(response["outcome"], "notified", "{response}");

    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let subject = &inbox[0].subject;
    assert!(
        subject.starts_with("FAILED: shop-image-storefront"),
        "{subject}"
    );
    assert!(
        subject
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control()),
        "{subject}"
    );
    assert!(subject.chars().count() <= 99, "{subject}");
    assert!(subject.ends_with("..."), "{subject}");
    assert_eq!(
        inbox[0].attributes.get("branch").map(String::as_str),
        Some("feature/crème-brûlée"),
        "the attribute keeps the branch as it is, for filter policies"
    );

    let short = BuildStatusScenario::new().await;
    let build = short.start_build("feature/crème-brûlée").await;
    short.finish(&build, "FAILED").await;
    let response = short
        .function
        .invoke(&short.event(&build).await)
        .await
        .response();
    assert_eq!(response["outcome"], "notified", "{response}");
    let inbox = short.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0]
            .subject
            .ends_with(" #1 on feature/creme-brulee (0ccf1ae)"),
        "{}",
        inbox[0].subject
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_success_after_a_failure_of_the_branch_is_reported_fixed_and_only_then() {
    let scenario = BuildStatusScenario::new().await;
    let failed = scenario.start_build("main").await;
    scenario.finish(&failed, "FAILED").await;
    let other_branch = scenario.start_build("release/2.4").await;
    scenario.finish(&other_branch, "SUCCEEDED").await;
    let fixed = scenario.start_build("main").await;
    scenario.finish(&fixed, "SUCCEEDED").await;
    let still_fine = scenario.start_build("main").await;
    scenario.finish(&still_fine, "SUCCEEDED").await;

    let release = scenario
        .function
        .invoke(&scenario.event(&other_branch).await)
        .await
        .response();
    assert_eq!(
        release["reason"]["kind"], "notAFix",
        "the release branch never failed"
    );
    let response = scenario
        .function
        .invoke(&scenario.event(&fixed).await)
        .await
        .response();
    assert_eq!(response["status"], "FIXED", "{response}");
    let response = scenario
        .function
        .invoke(&scenario.event(&still_fine).await)
        .await
        .response();
    assert_eq!(response["reason"]["kind"], "notAFix");

    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0]
            .subject
            .starts_with(&format!("FIXED: {} #3 on main", scenario.project)),
        "{}",
        inbox[0].subject
    );
    assert!(
        inbox[0]
            .message
            .contains("succeeded after build #1 had failed: fixed."),
        "{}",
        inbox[0].message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_and_timed_out_builds_notify_and_running_ones_do_not() {
    let scenario = BuildStatusScenario::new().await;
    let running = scenario.start_build("main").await;
    let response = scenario
        .function
        .invoke(&scenario.event(&running).await)
        .await
        .response();
    assert_eq!(response["reason"]["kind"], "notFinished");

    let stopped = scenario.start_build("main").await;
    scenario.finish(&stopped, "STOPPED").await;
    let timed_out = scenario.start_build("main").await;
    scenario.finish(&timed_out, "TIMED_OUT").await;
    for build in [&stopped, &timed_out] {
        let response = scenario
            .function
            .invoke(&scenario.event(build).await)
            .await
            .response();
        assert_eq!(response["outcome"], "notified", "{response}");
    }

    let statuses: Vec<String> = scenario
        .inbox()
        .await
        .into_iter()
        .map(|m| m.attributes["status"].clone())
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&"STOPPED".to_owned()) && statuses.contains(&"TIMED_OUT".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_out_that_codebuild_reports_as_failed_is_told_as_timed_out_and_matches_its_policy() {
    // The event says FAILED; only the BUILD phase's TIMED_OUT status tells a time-out.
    let scenario = BuildStatusScenario::with_notify_on(r#"{"*": ["TIMED_OUT"]}"#).await;
    let timed_out = scenario.start_build("main").await;
    codebuild::complete(
        &scenario.emulators,
        &json!({"buildId": timed_out, "status": "TIMED_OUT"}),
    )
    .await;
    let failed = scenario.start_build("main").await;
    scenario.finish(&failed, "FAILED").await;
    let event = scenario.event(&timed_out).await;
    assert_eq!(event["detail"]["build-status"], "FAILED", "{event}");

    let response = scenario.function.invoke(&event).await.response();
    assert_eq!(response["outcome"], "notified", "{response}");
    assert_eq!(response["status"], "TIMED_OUT");
    let response = scenario
        .function
        .invoke(&scenario.event(&failed).await)
        .await
        .response();
    assert_eq!(
        response["reason"]["kind"], "notNotified",
        "a failure is not notified under this policy: {response}"
    );

    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0].subject.starts_with("TIMED OUT: "),
        "{}",
        inbox[0].subject
    );
    assert_eq!(inbox[0].attributes["status"], "TIMED_OUT");
    assert!(
        inbox[0].message.contains("ran out of time"),
        "{}",
        inbox[0].message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_whose_event_was_lost_is_told_by_the_sweep_exactly_once() {
    let scenario = BuildStatusScenario::new().await;
    let build = scenario.start_build("main").await;
    scenario
        .finish_with_reports(
            &build,
            "FAILED",
            json!([{"group": "tests", "testCases": test_cases("FAILED", 1, "checkout")}]),
        )
        .await;
    codebuild::lose_event(&scenario.emulators, &build).await;
    assert!(scenario.inbox().await.is_empty());

    // The schedule fires a few minutes after the build ended (it ends 192 s after its start).
    let fired = chrono::Utc::now() + chrono::Duration::minutes(10);
    let sweep = codebuild::scheduled_event("codebuild-status", fired);
    let response = scenario.function.invoke(&sweep).await.response();

    assert_eq!(response["outcome"], "swept", "{response}");
    let arn = format!(
        "arn:aws:codebuild:{}:{}:build/{build}",
        scenario.emulators.region, scenario.emulators.account_id
    );
    assert_eq!(response["notified"], json!([arn]), "{response}");
    let inbox = scenario.inbox().await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(
        inbox[0].subject.starts_with(&format!(
            "FAILED: {} #1 on main (0ccf1ae)",
            scenario.project
        )),
        "{}",
        inbox[0].subject
    );
    assert!(
        inbox[0].message.contains("Reason: exit status 101"),
        "the same message the event would have given: {}",
        inbox[0].message
    );
    assert!(inbox[0].message.contains("Duration    3 min 12 s"));
    assert!(
        inbox[0].message.contains(&format!(
            "Tests ({}-tests): 0 passed, 1 failed, 0 skipped (0.0 %) in 0 s.\n  - checkout.failed_0: assertion 'left == right' failed\n",
            scenario.project
        )),
        "the sweep's email has the tests the event's would have: {}",
        inbox[0].message
    );

    // CodeBuild's event arrives late after all, and the schedule fires again: nothing more.
    let late = scenario.event(&build).await;
    let response = scenario.function.invoke(&late).await.response();
    assert_eq!(response["reason"]["kind"], "alreadyNotified", "{response}");
    let next = codebuild::scheduled_event("codebuild-status", fired + chrono::Duration::minutes(5));
    let response = scenario.function.invoke(&next).await.response();
    assert_eq!(response["notified"], json!([]), "{response}");
    assert_eq!(response["checked"], 1);
    assert!(scenario.inbox().await.is_empty(), "no second message");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_filter_on_the_message_attributes() {
    let scenario = BuildStatusScenario::new().await;
    // The template's example subscription: main's failures, time-outs and fixes only.
    let main_only = fixtures::inbox(
        &scenario.sdk,
        &scenario.topic,
        &unique("main-only"),
        Some(r#"{"branch": ["main"], "status": ["FAILED", "TIMED_OUT", "FIXED"]}"#),
    )
    .await;

    let feature = scenario.start_build("feature/cart").await;
    scenario.finish(&feature, "FAILED").await;
    scenario
        .function
        .invoke(&scenario.event(&feature).await)
        .await
        .response();
    let main = scenario.start_build("main").await;
    scenario.finish(&main, "FAILED").await;
    scenario
        .function
        .invoke(&scenario.event(&main).await)
        .await
        .response();

    let everything: Vec<String> = scenario
        .inbox()
        .await
        .into_iter()
        .map(|m| m.attributes["branch"].clone())
        .collect();
    assert_eq!(everything.len(), 2, "{everything:?}");
    let filtered = fixtures::received(&scenario.sdk, &main_only).await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0].attributes["branch"], "main");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_event_is_an_invalid_event_error() {
    let scenario = BuildStatusScenario::new().await;
    let result = scenario
        .function
        .invoke(&integration_tests::sample_event(
            "codebuild-status",
            "invalid-missing-build-status.json",
        ))
        .await;
    assert_eq!(result.error_type(), "InvalidEvent");
    assert!(scenario.inbox().await.is_empty());
}
