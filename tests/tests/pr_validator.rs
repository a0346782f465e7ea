//! pr-validator, the real binary, against the emulated CodeCommit pull requests and CodeBuild:
//! the comments and approval states a pull request's author sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use aws_sdk_codecommit::types::ApprovalState;
use integration_tests::calls::{AwsFault, CallCounter};
use integration_tests::codebuild::test_cases;
use integration_tests::http;
use integration_tests::scenarios::pull_requests::{PullRequestScenario, build_id};
use integration_tests::{Function, codebuild};
use serde_json::{Value, json};

/// `main` and `develop`, `feature/cart` one commit ahead, and pull requests into `main` and
/// `release/*` validated.
async fn pull_requests_into_main_and_releases() -> PullRequestScenario {
    PullRequestScenario::with(&["develop"], "main,release/*", &[]).await
}

/// The approval states of the pull request's current revision, by state.
async fn approval_states(scenario: &PullRequestScenario, id: &str) -> Vec<ApprovalState> {
    let (revision, _) = scenario.revision_and_head(id).await;
    let approvals = scenario.approvals(id, &revision).await;
    for approval in &approvals {
        assert!(
            !approval
                .user_arn()
                .unwrap_or_default()
                .contains("user/mary"),
            "the author never approves: {approval:?}"
        );
    }
    approvals
        .into_iter()
        .filter_map(|a| a.approval_state)
        .collect()
}

/// The status CodeBuild reports for `build`.
async fn build_status(scenario: &PullRequestScenario, build: &str) -> String {
    let builds = aws_sdk_codebuild::Client::new(&scenario.bot)
        .batch_get_builds()
        .ids(build)
        .send()
        .await
        .unwrap()
        .builds
        .unwrap_or_default();
    builds[0].build_status().unwrap().as_str().to_owned()
}

/// A pull request into main, opened, and the build of its head finished with `status`: the pull
/// request and the build.
async fn opened_and_built(scenario: &PullRequestScenario, status: &str) -> (String, String) {
    let id = scenario.open("main").await;
    let started = scenario
        .invoke(&scenario.pull_request_event(&id, "pullRequestCreated").await)
        .await;
    let build = build_id(&started);
    scenario.finish(&build, status).await;
    (id, build)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_author_sees_the_build_start_then_fail_and_no_approval_even_after_redeliveries() {
    let scenario = pull_requests_into_main_and_releases().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;

    let response = scenario.invoke(&created).await;

    assert_eq!(response["outcome"], "buildStarted", "{response}");
    assert_eq!(response["commitId"], scenario.head.as_str());
    let build = build_id(&response);
    let short = &scenario.head[..7];
    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].starts_with(&format!(
            "Build started for `{short}`: [{} #1](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/",
            scenario.project
        )),
        "{}",
        comments[0]
    );
    // The build is of exactly the head, and says which pull request it validates.
    let started = aws_sdk_codebuild::Client::new(&scenario.bot)
        .batch_get_builds()
        .ids(&build)
        .send()
        .await
        .unwrap()
        .builds
        .unwrap()
        .remove(0);
    assert_eq!(started.source_version(), Some(scenario.head.as_str()));
    let variables: Vec<(String, String)> = started
        .environment()
        .unwrap()
        .environment_variables()
        .iter()
        .map(|v| (v.name().to_owned(), v.value().to_owned()))
        .collect();
    assert!(variables.contains(&("PULL_REQUEST_ID".into(), id.clone())));
    assert!(variables.contains(&("PULL_REQUEST_SOURCE_COMMIT".into(), scenario.head.clone())));
    assert!(variables.contains(&(
        "PULL_REQUEST_DESTINATION_COMMIT".into(),
        scenario.main.clone()
    )));

    // EventBridge delivers the event again: the same build, no second comment.
    let again = scenario.invoke(&created).await;
    assert_eq!(again["buildId"], build.as_str(), "{again}");
    assert_eq!(again["alreadyRunning"], true);
    assert_eq!(scenario.build_count().await, 1);
    assert_eq!(scenario.comments(&id).await.len(), 1);

    scenario.finish(&build, "FAILED").await;
    let failed = scenario.build_event(&build).await;
    let response = scenario.invoke(&failed).await;
    assert_eq!(response["outcome"], "reported", "{response}");
    assert_eq!(response["approval"], "REVOKE");

    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    let result = &comments[1];
    assert!(
        result.starts_with(
            "![build failing](https://img.shields.io/badge/build-failing-red)\n\n**Build ["
        ),
        "{result}"
    );
    assert!(
        result.contains(&format!("of `{short}` failed** after 3 min 10 s.")),
        "{result}"
    );
    assert!(result.contains("The BUILD phase ended FAILED:"), "{result}");
    assert!(result.contains("Reason: exit status 101"), "{result}");
    assert!(result.contains("[Logs](https://console.aws.amazon.com/cloudwatch/"));
    assert!(
        !result.contains("**Tests**"),
        "a build without test reports comments as before: {result}"
    );
    assert_eq!(
        approval_states(&scenario, &id).await,
        [ApprovalState::Revoke],
        "the function's approval is revoked"
    );

    // CodeBuild repeats the news under a new event id: nothing new for the author.
    let repeated = scenario.build_event(&build).await;
    assert_ne!(repeated["id"], failed["id"]);
    let again = scenario.invoke(&repeated).await;
    assert_eq!(again["outcome"], "reported", "{again}");
    assert_eq!(scenario.comments(&id).await.len(), 2);
    assert_eq!(
        approval_states(&scenario, &id).await,
        [ApprovalState::Revoke]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_that_ran_out_of_time_says_timed_out_though_codebuild_calls_it_failed() {
    let scenario = PullRequestScenario::new().await;
    let (id, build) = opened_and_built(&scenario, "TIMED_OUT").await;
    let event = scenario.build_event(&build).await;
    assert_eq!(event["detail"]["build-status"], "FAILED", "{event}");

    let response = scenario.invoke(&event).await;

    assert_eq!(response["outcome"], "reported", "{response}");
    assert_eq!(response["status"], "TIMED_OUT");
    assert_eq!(response["approval"], "REVOKE");
    let comments = scenario.comments(&id).await;
    let result = comments.last().unwrap();
    assert!(
        result.starts_with(
            "![build timed out](https://img.shields.io/badge/build-timed%20out-red)\n\n**Build ["
        ),
        "{result}"
    );
    assert!(result.contains("timed out** after"), "{result}");
    assert!(
        result.contains("The BUILD phase ended TIMED_OUT:"),
        "{result}"
    );
    assert!(result.contains("Build has timed out."), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_whose_event_was_lost_is_reported_by_the_sweep_exactly_once() {
    let scenario = PullRequestScenario::new().await;
    let id = scenario.open("main").await;
    let started = scenario
        .invoke(&scenario.pull_request_event(&id, "pullRequestCreated").await)
        .await;
    let build = build_id(&started);
    let cases = [
        test_cases("SUCCEEDED", 40, "shop::cart"),
        test_cases("FAILED", 2, "shop::cart"),
    ]
    .concat();
    scenario
        .finish_with_reports(
            &build,
            "FAILED",
            json!([{"group": "tests", "testCases": cases}]),
        )
        .await;
    codebuild::lose_event(&scenario.emulators, &build).await;
    assert_eq!(
        scenario.comments(&id).await.len(),
        1,
        "only \"build started\""
    );

    let fired = chrono::Utc::now() + chrono::Duration::minutes(10);
    let response = scenario
        .invoke(&codebuild::scheduled_event("pr-validator", fired))
        .await;

    assert_eq!(response["outcome"], "swept", "{response}");
    assert_eq!(
        response["reported"].as_array().unwrap().len(),
        1,
        "{response}"
    );
    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert!(
        comments[1].starts_with("![build failing]"),
        "{}",
        comments[1]
    );
    assert!(
        comments[1].contains("failed** after 3 min 10 s."),
        "{}",
        comments[1]
    );
    assert!(
        comments[1].contains(": 40 passed, 2 failed, 0 skipped (95.2 %) in 10 s.")
            && comments[1].contains("shop::cart.failed_1: assertion 'left == right' failed\n"),
        "the sweep's comment has the tests the event's would have: {}",
        comments[1]
    );
    assert_eq!(
        approval_states(&scenario, &id).await,
        [ApprovalState::Revoke]
    );

    // The schedule fires again; then the author pushes, and the lost event arrives at last,
    // now about a commit the pull request moved on from: neither says anything more.
    let response = scenario
        .invoke(&codebuild::scheduled_event(
            "pr-validator",
            fired + chrono::Duration::minutes(5),
        ))
        .await;
    assert_eq!(response["reported"], json!([]), "{response}");
    scenario.push(&scenario.head, "Fix the cart").await;
    let late = scenario.build_event(&build).await;
    let response = scenario.invoke(&late).await;
    assert_eq!(response["outcome"], "superseded", "{response}");
    assert!(response.get("commentId").is_none(), "{response}");
    assert_eq!(scenario.comments(&id).await.len(), 2, "no comment more");
}

/// A pull request into main opened, and the build of its head finished with `status` having
/// filed `reports`; pr-validator given the build's event. Returns the result comment.
async fn reported_with(scenario: &PullRequestScenario, status: &str, reports: Value) -> String {
    let id = scenario.open("main").await;
    let started = scenario
        .invoke(&scenario.pull_request_event(&id, "pullRequestCreated").await)
        .await;
    let build = build_id(&started);
    scenario.finish_with_reports(&build, status, reports).await;
    let response = scenario.invoke(&scenario.build_event(&build).await).await;
    assert_eq!(response["outcome"], "reported", "{response}");
    let comments = scenario.comments(&id).await;
    assert_eq!(comments.len(), 2, "{comments:?}");
    comments[1].clone()
}

/// The comment's text outside its code blocks: what Markdown reads as Markdown.
fn outside_code_blocks(comment: &str) -> String {
    comment
        .split("```")
        .step_by(2)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `project` as the comment's Markdown writes it (`-` escaped).
fn escaped(project: &str) -> String {
    project.replace('-', "\\-")
}

/// The failing-case lines of the comment's test block.
fn case_lines<'a>(comment: &'a str, prefix: &str) -> Vec<&'a str> {
    comment
        .lines()
        .filter(|line| line.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_build_comments_its_counts_and_ten_failing_tests_then_how_many_more() {
    let scenario = PullRequestScenario::new().await;
    let group = format!("{}-tests", scenario.project);
    let reads =
        CallCounter::start(&scenario.emulators, "codebuild", "BatchGetReports", &group).await;
    let pages = CallCounter::start(
        &scenario.emulators,
        "codebuild",
        "DescribeTestCases",
        &group,
    )
    .await;
    let cases = [
        test_cases("SUCCEEDED", 412, "shop::cart"),
        test_cases("FAILED", 25, "shop::cart"),
        test_cases("SKIPPED", 2, "shop::cart"),
    ]
    .concat();

    let comment = reported_with(
        &scenario,
        "FAILED",
        json!([{"group": "tests", "testCases": cases}]),
    )
    .await;

    let link = format!(
        "**Tests** [{}\\-tests](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/{}/testReports/reports/{group}%3A",
        escaped(&scenario.project),
        scenario.emulators.account_id
    );
    assert!(comment.contains(&link), "{comment}");
    assert!(
        comment.contains(
            "?region=us-east-1): 412 passed, 25 failed, 2 skipped (93.8 %) in 1 min 49 s.\n"
        ),
        "{comment}"
    );
    let shown = case_lines(&comment, "shop::cart.failed_");
    assert_eq!(shown.len(), 10, "{comment}");
    assert_eq!(
        shown[0], "shop::cart.failed_0: assertion 'left == right' failed",
        "the first line of the message, in the code block"
    );
    assert!(!comment.contains("left: 0"), "{comment}");
    assert!(comment.contains("```\nand 15 more.\n"), "{comment}");
    assert!(
        comment.contains("The BUILD phase ended FAILED:")
            && comment.contains("This revision is not approved until a build passes. [Logs]"),
        "{comment}"
    );
    // Ten failing cases out of 439 cost one report read and one page.
    assert_eq!((reads.count().await, pages.count().await), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn short_pages_are_followed_by_their_token_and_the_reads_stop_at_three_pages() {
    // DescribeTestCases promises at most maxResults cases a page: these pages hold 3.
    let scenario = PullRequestScenario::new().await;
    let group = format!("{}-tests", scenario.project);
    let pages = CallCounter::start(
        &scenario.emulators,
        "codebuild",
        "DescribeTestCases",
        &group,
    )
    .await;
    let cases = [
        test_cases("SUCCEEDED", 5, "shop::cart"),
        test_cases("FAILED", 30, "shop::cart"),
    ]
    .concat();

    let comment = reported_with(
        &scenario,
        "FAILED",
        json!([{"group": "tests", "testCases": cases, "pageLimit": 3}]),
    )
    .await;

    let shown = case_lines(&comment, "shop::cart.failed_");
    assert_eq!(shown.len(), 9, "three pages of three: {comment}");
    assert_eq!(
        shown[3], "shop::cart.failed_3: assertion 'left == right' failed",
        "the second page follows the first: {comment}"
    );
    assert!(shown[8].starts_with("shop::cart.failed_8: "), "{comment}");
    assert!(comment.contains("```\nand 21 more.\n"), "{comment}");
    assert_eq!(pages.count().await, 3, "bounded, whatever the report holds");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_report_groups_are_both_shown_one_still_generating_and_other_groups_are_not_read() {
    let scenario = PullRequestScenario::new().await;
    let coverage = format!("{}-coverage", scenario.project);
    let coverage_reads = CallCounter::start(
        &scenario.emulators,
        "codebuild",
        "BatchGetReports",
        &coverage,
    )
    .await;
    let reports = json!([
        {"group": "tests", "testCases": test_cases("SUCCEEDED", 8, "shop::cart"), "status": "GENERATING"},
        {"group": "lint", "testCases": test_cases("SUCCEEDED", 12, "clippy")},
        // A group the function's role may not read (REPORT_GROUPS names tests and lint only).
        {"group": "coverage", "testCases": test_cases("FAILED", 1, "cov")},
    ]);

    let comment = reported_with(&scenario, "SUCCEEDED", reports).await;

    let project = escaped(&scenario.project);
    let tests = comment
        .find(&format!("**Tests** [{project}\\-tests]("))
        .unwrap_or_else(|| panic!("{comment}"));
    let lint = comment
        .find(&format!("**Tests** [{project}\\-lint]("))
        .unwrap_or_else(|| panic!("{comment}"));
    assert!(tests < lint, "in the build's order: {comment}");
    assert!(
        comment[tests..lint].contains("): the report is still being processed.\n"),
        "{comment}"
    );
    assert!(
        comment[lint..].contains("): 12 passed, 0 failed, 0 skipped (100.0 %) in 3 s.\n"),
        "{comment}"
    );
    assert!(!comment.contains("coverage"), "{comment}");
    assert!(
        !comment.contains("```"),
        "no failing case, no code block: {comment}"
    );
    assert!(comment.contains("This revision is approved."), "{comment}");
    assert_eq!(
        coverage_reads.count().await,
        0,
        "a group not read is not asked for"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn test_names_cannot_inject_markdown_or_links_and_a_100_kb_message_is_cut() {
    let scenario = PullRequestScenario::new().await;
    let cases = json!([
        {"prefix": "x](https://evil.example/1) <b>",
         "name": "```\n[click me](https://evil.example/2) <img src=x onerror=alert(1)> **bold** _it_ # h",
         "status": "FAILED",
         "message": "<script>alert(1)</script> ``` [a](https://evil.example/3)\nsecond line"},
        {"prefix": "shop::cart", "name": "huge_message", "status": "FAILED", "message": "x".repeat(100_000)},
        {"prefix": "shop::cart", "name": "passes", "status": "SUCCEEDED"},
    ]);

    let comment = reported_with(
        &scenario,
        "FAILED",
        json!([{"group": "tests", "testCases": cases}]),
    )
    .await;

    assert!(comment.chars().count() <= 10_240, "{}", comment.len());
    assert_eq!(
        comment.matches("```").count(),
        4,
        "the phase's code block and the tests' one, no fence of theirs: {comment}"
    );
    let markdown = outside_code_blocks(&comment);
    assert!(!markdown.contains("evil.example"), "{markdown}");
    assert!(
        !markdown.contains("<img") && !markdown.contains("<script"),
        "{markdown}"
    );
    let block = comment.split("```").nth(3).unwrap_or_default();
    let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len(),
        3,
        "the fence's language and one line per case: {block}"
    );
    assert!(
        lines[1].starts_with(
            "x](https://evil.example/1) <b>.''' [click me](https://evil.example/2) <img"
        ),
        "shown as text, on one line: {}",
        lines[1]
    );
    assert!(
        lines[1].contains(": <script>alert(1)</script> ''' [a]"),
        "{}",
        lines[1]
    );
    assert!(!block.contains("second line"), "{block}");
    let huge = lines[2];
    assert!(huge.starts_with("shop::cart.huge_message: xxx"), "{huge}");
    assert!(
        huge.ends_with('…') && huge.chars().count() < 400,
        "{}",
        huge.chars().count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_that_cannot_be_read_leave_the_result_comment_without_them_not_unsaid() {
    let scenario = PullRequestScenario::new().await;
    let denied = AwsFault::add(
        &scenario.emulators,
        json!({"service": "codebuild", "operation": "BatchGetReports",
               "match": format!("{}-tests", scenario.project), "status": 400,
               "code": "AccessDeniedException", "count": 1,
               "message": "not authorized to perform: codebuild:BatchGetReports"}),
    )
    .await;

    let comment = reported_with(
        &scenario,
        "FAILED",
        json!([{"group": "tests", "testCases": test_cases("FAILED", 3, "shop::cart")}]),
    )
    .await;

    assert_eq!(denied.served().await, 1);
    assert!(comment.starts_with("![build failing]"), "{comment}");
    assert!(comment.contains("Reason: exit status 101"), "{comment}");
    assert!(
        comment.contains(
            "\n**Tests**: the build's test reports could not be read; they are on the build's page.\n"
        ),
        "{comment}"
    );
    assert!(
        !comment.contains("AccessDenied"),
        "the code stays in the log: {comment}"
    );
    assert!(comment.contains("This revision is not approved until a build passes."));
    let logs = scenario.function.log_records();
    assert!(
        logs.iter().any(|r| r["level"] == "WARN"
            && r["fields"]["message"]
                == "test reports not read: the notification goes out without them"
            && r["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("AccessDeniedException"))),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_stops_the_old_build_marks_it_superseded_and_only_the_new_head_is_approved() {
    let scenario = pull_requests_into_main_and_releases().await;
    let id = scenario.open("main").await;
    let created = scenario.pull_request_event(&id, "pullRequestCreated").await;
    let first = build_id(&scenario.invoke(&created).await);
    let (first_revision, _) = scenario.revision_and_head(&id).await;

    let newer = scenario.push(&scenario.head, "Fix the cart").await;
    let (revision, head) = scenario.revision_and_head(&id).await;
    assert_eq!(head, newer);
    assert_ne!(revision, first_revision);
    let updated = scenario
        .pull_request_event(&id, "pullRequestSourceBranchUpdated")
        .await;
    let response = scenario.invoke(&updated).await;
    assert_eq!(response["outcome"], "buildStarted", "{response}");
    assert_eq!(response["stopped"], json!([first]));
    let second = build_id(&response);
    assert_ne!(second, first);
    assert_eq!(build_status(&scenario, &first).await, "STOPPED");
    assert_eq!(build_status(&scenario, &second).await, "IN_PROGRESS");

    // The creation event arrives late: the pull request has moved on, nothing is built.
    let late = scenario.invoke(&created).await;
    assert_eq!(late["reason"]["kind"], "stale", "{late}");
    assert_eq!(scenario.build_count().await, 2);

    // The stopped build's event: superseded, no approval.
    let stopped = scenario.build_event(&first).await;
    let response = scenario.invoke(&stopped).await;
    assert_eq!(response["outcome"], "superseded", "{response}");
    assert!(approval_states(&scenario, &id).await.is_empty());
    // Delivered again: the same comment is not posted twice (counted below).
    let again = scenario.invoke(&stopped).await;
    assert_eq!(again["outcome"], "superseded", "{again}");

    scenario.finish(&second, "SUCCEEDED").await;
    let passed = scenario.build_event(&second).await;
    let response = scenario.invoke(&passed).await;
    assert_eq!(response["approval"], "APPROVE", "{response}");
    assert_eq!(
        approval_states(&scenario, &id).await,
        [ApprovalState::Approve]
    );

    let comments = scenario.comments(&id).await;
    let (old, new) = (&scenario.head[..7], &newer[..7]);
    assert_eq!(comments.len(), 4, "{comments:?}");
    assert!(comments[0].starts_with(&format!("Build started for `{old}`")));
    assert!(comments[1].starts_with(&format!("Build started for `{new}`")));
    assert!(
        comments[2].contains(&format!(
            "of `{old}` was stopped, but it is superseded by `{new}`: its result changes no approval."
        )),
        "{}",
        comments[2]
    );
    assert!(
        comments[3].starts_with(
            "![build passing](https://img.shields.io/badge/build-passing-brightgreen)"
        ),
        "{}",
        comments[3]
    );
    assert!(comments[3].contains(&format!("of `{new}` passed** in 3 min 10 s.")));
    assert!(comments[3].contains("This revision is approved."));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_destinations_closed_and_merged_pull_requests_get_nothing_and_reopening_builds_again()
{
    let scenario = pull_requests_into_main_and_releases().await;
    let develop = scenario.open("develop").await;
    let response = scenario
        .invoke(
            &scenario
                .pull_request_event(&develop, "pullRequestCreated")
                .await,
        )
        .await;
    assert_eq!(response["reason"]["kind"], "otherDestination", "{response}");
    assert!(scenario.comments(&develop).await.is_empty());

    let id = scenario.open("main").await;
    let first = build_id(
        &scenario
            .invoke(&scenario.pull_request_event(&id, "pullRequestCreated").await)
            .await,
    );
    aws_sdk_codecommit::Client::new(&scenario.author)
        .update_pull_request_status()
        .pull_request_id(&id)
        .pull_request_status(aws_sdk_codecommit::types::PullRequestStatusEnum::Closed)
        .send()
        .await
        .unwrap();
    let closed = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestStatusChanged")
                .await,
        )
        .await;
    assert_eq!(closed["reason"]["kind"], "closed", "{closed}");

    // The build finishes after the pull request closed: nothing is said or approved.
    scenario.finish(&first, "SUCCEEDED").await;
    let late = scenario.invoke(&scenario.build_event(&first).await).await;
    assert_eq!(late["reason"]["kind"], "closed", "{late}");
    assert_eq!(scenario.comments(&id).await.len(), 1);

    // Reopened (the console's Reopen): validated again, with a new build of the same head.
    let (code, reopened) = http::json(
        "POST",
        &format!(
            "{}/codecommit/reopen-pull-request",
            scenario.emulators.admin
        ),
        Some(&json!({"pullRequestId": id})),
    )
    .await;
    assert_eq!(code, 200, "{reopened}");
    let response = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestStatusChanged")
                .await,
        )
        .await;
    assert_eq!(response["outcome"], "buildStarted", "{response}");
    let second = build_id(&response);
    assert_ne!(second, first);
    assert_eq!(scenario.comments(&id).await.len(), 2);

    // Merged while its build runs: the merge event and the build's end change nothing.
    aws_sdk_codecommit::Client::new(&scenario.author)
        .merge_pull_request_by_fast_forward()
        .pull_request_id(&id)
        .repository_name(&scenario.repository)
        .send()
        .await
        .unwrap();
    let merged = scenario
        .invoke(
            &scenario
                .pull_request_event(&id, "pullRequestMergeStatusUpdated")
                .await,
        )
        .await;
    assert_eq!(merged["reason"]["kind"], "merged", "{merged}");
    scenario.finish(&second, "FAILED").await;
    let late = scenario.invoke(&scenario.build_event(&second).await).await;
    assert_eq!(late["reason"]["kind"], "merged", "{late}");
    assert_eq!(scenario.comments(&id).await.len(), 2);
    assert!(approval_states(&scenario, &id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_events_are_invalid_event_errors_and_bad_settings_stop_the_cold_start() {
    let scenario = pull_requests_into_main_and_releases().await;
    for name in [
        "invalid-missing-source-commit.json",
        "invalid-foreign-push.json",
        "invalid-build-without-commit.json",
    ] {
        let mut event = integration_tests::sample_event("pr-validator", name);
        if event["source"] == "aws.codebuild" {
            event["detail"]["project-name"] = json!(scenario.project);
        }
        let result = scenario.function.invoke(&event).await;
        assert_eq!(result.error_type(), "InvalidEvent", "{name}");
    }

    let mut env = scenario.emulators.function_env();
    env.push(("PR_VALIDATION_PROJECT".into(), "shop-pr".into()));
    env.push(("PR_REPOSITORIES".into(), "shop".into()));
    let broken = Function::start("pr-validator", &env).await;
    let (error, _) = broken.init_failure().await;
    assert_eq!(error.error_type, "Config");
    assert!(
        error.error_message.contains("PR_DESTINATIONS"),
        "{}",
        error.error_message
    );
}
