use mockall::Sequence;
use mockall::predicate::eq;
use serde_json::json;
use shared::UpstreamError;
use shared::events::codebuild::BuildStatus;
use shared::events::codecommit::PullRequestEventKind;
use shared::ports::{
    BuildRecord, MockBuildApi, MockPullRequestApi, MockTestReports, PullRequestApproval,
    StartBuild, StartedBuild, reply,
};
use shared::reports::{BuildTests, FailedCase, TestReport};

use super::*;
use crate::build::{classify, judge};
use crate::message::{build_token, comment_token};
use crate::pull_request::{Candidate, Plan, check_current, decide, plan, start_request};

// The story the sample events tell: pull request 17 of `shop`, feature/cart into main, first at
// commit A (revision R1, build #11), then at commit B (revision R2, build #12).
const A: &str = "4b7615dce52c4c05ce4e1d374e9c61a13717ac7c";
const B: &str = "9b1de4f7a2c3e5b6d7f8091a2b3c4d5e6f708192";
const MAIN: &str = "14091a9f2461267ee7e02525b4f1f2923f1c9849";
const R1: &str = "7d3c1b9e4f2a6d8c0b5e3a1f9d7c5b3a1e9f7d5c3b1a9e7f5d3c1b9a7e5f3d1c";
const R2: &str = "2e4c6a8b0d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e3c";
const BUILD_11: &str = "shop-pr:6d9a2c5f-8b1e-4a4d-b7c0-3e6f9b2d5a18";
const BUILD_12: &str = "shop-pr:2b5e8c1f-4a7d-4e0b-93c6-9d2f5a8c1e47";
// EventBridge's ids of the sample pull-request events.
const CREATED_ID: &str = "3f6b2c1d-8e4a-4b7c-9d2e-1a5f8c3b7e90";
const UPDATED_ID: &str = "8a1d4e7b-2c5f-4a9e-b3d6-0f7c2e5a8b14";
const REOPENED_ID: &str = "c2e5a8b1-4d7f-4e0a-9c3b-6f1d4a7e2b58";
const CONSOLE: &str = "https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/shop-pr/build";

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/pr-validator/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn pull_request_event(name: &str) -> EventBridgeEvent<PullRequestStateChange> {
    match parse(event(name)).unwrap() {
        Incoming::PullRequest(event) => event,
        other => panic!("{name} is not a pull request event: {other:?}"),
    }
}

fn build_event(name: &str) -> EventBridgeEvent<BuildStateChange> {
    match parse(event(name)).unwrap() {
        Incoming::Build(event) => event,
        other => panic!("{name} is not a build event: {other:?}"),
    }
}

/// The settings the sample events are written for: `events/env.json`.
fn config() -> Config {
    let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
    let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = env["PullRequestValidatorFunction"].clone();
    Config::from_lookup(move |name| variables[name].as_str().map(str::to_owned)).unwrap()
}

/// Pull request 17 as GetPullRequest answers it with `head` on revision `revision`.
fn pull_request(head: &str, revision: &str) -> PullRequest {
    PullRequest {
        id: "17".into(),
        title: "Add the cart".into(),
        open: true,
        merged: false,
        merge_commit: None,
        revision_id: revision.into(),
        author_arn: Some("arn:aws:iam::123456789012:user/mary".into()),
        repository: "shop".into(),
        source_reference: "refs/heads/feature/cart".into(),
        destination_reference: "refs/heads/main".into(),
        source_commit: head.into(),
        destination_commit: MAIN.into(),
    }
}

fn closed(mut pull_request: PullRequest, merged: bool) -> PullRequest {
    pull_request.open = false;
    pull_request.merged = merged;
    pull_request
}

/// A validation build as ListBuildsForProject + BatchGetBuilds report it.
fn record(
    id: &str,
    number: u64,
    pull_request: &str,
    commit: &str,
    status: BuildStatus,
) -> BuildRecord {
    BuildRecord {
        id: id.into(),
        number: Some(number),
        status,
        complete: status.is_final(),
        source_version: Some(commit.into()),
        variables: vec![
            ("PULL_REQUEST_ID".into(), pull_request.into()),
            ("PULL_REQUEST_SOURCE_COMMIT".into(), commit.into()),
        ],
        ..BuildRecord::default()
    }
}

fn started_comment(build: &str, number: u64, commit: &str) -> PullRequestComment {
    PullRequestComment {
        pull_request_id: "17".into(),
        repository: "shop".into(),
        before_commit_id: MAIN.into(),
        after_commit_id: commit.into(),
        content: format!(
            "Build started for `{}`: [shop-pr #{number}]({CONSOLE}/{}/?region=us-east-1).",
            &commit[..7],
            build.replace(':', "%3A")
        ),
        client_request_token: comment_token(CommentKind::Started, "17", build),
    }
}

fn upstream(operation: &'static str, code: &str) -> UpstreamError {
    UpstreamError::new("CodeCommit", operation, Some(code.into()), "refused")
}

// --- pull-request events: decisions -------------------------------------------------------

#[test]
fn created_updated_and_reopened_pull_requests_into_main_are_validated() {
    let config = config();
    let cases = [
        (
            "pull-request-created.json",
            A,
            PullRequestEventKind::PullRequestCreated,
            CREATED_ID,
        ),
        (
            "source-branch-updated.json",
            B,
            PullRequestEventKind::PullRequestSourceBranchUpdated,
            UPDATED_ID,
        ),
        (
            "pull-request-reopened.json",
            B,
            PullRequestEventKind::PullRequestStatusChanged,
            REOPENED_ID,
        ),
    ];
    for (name, commit, kind, id) in cases {
        assert_eq!(
            decide(&pull_request_event(name), &config).unwrap(),
            Decision::Validate(Candidate {
                pull_request_id: "17".into(),
                repository: "shop".into(),
                source_commit: commit.into(),
                event: kind,
                event_id: id.into(),
            }),
            "{name}"
        );
    }
}

#[test]
fn closed_merged_foreign_and_approval_events_build_nothing() {
    let config = config();
    let cases = [
        ("pull-request-closed.json", IgnoreReason::Closed),
        ("pull-request-merged.json", IgnoreReason::Merged),
        (
            "other-destination.json",
            IgnoreReason::OtherDestination {
                destination: "develop".into(),
            },
        ),
        (
            "approval-state-changed.json",
            IgnoreReason::NotABuildTrigger,
        ),
    ];
    for (name, reason) in cases {
        assert_eq!(
            decide(&pull_request_event(name), &config).unwrap(),
            Decision::Ignore(reason),
            "{name}"
        );
    }
    let mut elsewhere = event("pull-request-created.json");
    elsewhere["detail"]["repositoryNames"] = json!(["payments"]);
    let Incoming::PullRequest(elsewhere) = parse(elsewhere).unwrap() else {
        unreachable!()
    };
    assert_eq!(
        decide(&elsewhere, &config).unwrap(),
        Decision::Ignore(IgnoreReason::OtherRepository {
            repository: "payments".into()
        })
    );
}

#[test]
fn malformed_pull_request_events_name_the_field_at_fault() {
    let config = config();
    let error = decide(
        &pull_request_event("invalid-missing-source-commit.json"),
        &config,
    )
    .unwrap_err();
    assert_eq!(error.message(), "missing field `detail.sourceCommit`");

    let mut bad_id = event("pull-request-created.json");
    bad_id["detail"]["pullRequestId"] = json!("17; DROP");
    let Incoming::PullRequest(bad_id) = parse(bad_id).unwrap() else {
        unreachable!()
    };
    assert!(
        decide(&bad_id, &config)
            .unwrap_err()
            .message()
            .starts_with("detail.pullRequestId")
    );

    let foreign = parse(event("invalid-foreign-push.json")).unwrap_err();
    assert!(
        foreign
            .message()
            .contains("\"CodeCommit Repository State Change\" is not handled here"),
        "{foreign}"
    );
    let mut sqs = event("pull-request-created.json");
    sqs["source"] = json!("aws.sqs");
    assert!(
        parse(sqs)
            .unwrap_err()
            .message()
            .contains("\"aws.sqs\" is not handled here")
    );
    assert_eq!(
        parse(json!({"detail": {}})).unwrap_err().message(),
        "missing field `source`"
    );
}

fn candidate(commit: &str) -> Candidate {
    Candidate {
        pull_request_id: "17".into(),
        repository: "shop".into(),
        source_commit: commit.into(),
        event: PullRequestEventKind::PullRequestSourceBranchUpdated,
        event_id: UPDATED_ID.into(),
    }
}

#[test]
fn an_event_for_a_commit_the_pull_request_moved_on_from_is_stale() {
    assert_eq!(check_current(&candidate(B), &pull_request(B, R2)), Ok(()));
    assert_eq!(
        check_current(&candidate(A), &pull_request(B, R2)),
        Err(IgnoreReason::Stale {
            event_commit: A.into(),
            head_commit: B.into()
        })
    );
    assert_eq!(
        check_current(&candidate(B), &closed(pull_request(B, R2), false)),
        Err(IgnoreReason::Closed)
    );
    assert_eq!(
        check_current(&candidate(B), &closed(pull_request(B, R2), true)),
        Err(IgnoreReason::Merged)
    );
}

#[test]
fn the_head_is_built_exactly_with_the_pull_request_in_its_environment() {
    let request = start_request(&pull_request(B, R2), UPDATED_ID, &config());
    assert_eq!(
        request,
        StartBuild {
            project: "shop-pr".into(),
            source_version: B.into(),
            variables: vec![
                ("PULL_REQUEST_ID".into(), "17".into()),
                ("PULL_REQUEST_REPOSITORY".into(), "shop".into()),
                ("PULL_REQUEST_SOURCE_COMMIT".into(), B.into()),
                ("PULL_REQUEST_DESTINATION_COMMIT".into(), MAIN.into()),
                ("PULL_REQUEST_REVISION_ID".into(), R2.into()),
            ],
            idempotency_token: build_token(UPDATED_ID, "17", "shop", B, MAIN, R2),
        }
    );
}

#[test]
fn running_builds_of_older_commits_are_stopped_and_one_of_the_head_is_reused() {
    let config = config();
    let recent = [
        record("shop-pr:other-pr", 14, "18", A, BuildStatus::InProgress),
        record(BUILD_11, 11, "17", A, BuildStatus::InProgress),
        record("shop-pr:finished", 10, "17", MAIN, BuildStatus::Failed),
    ];
    assert_eq!(
        plan(&candidate(B), &pull_request(B, R2), &recent, &config),
        Plan {
            build: BuildChoice::Start(start_request(&pull_request(B, R2), UPDATED_ID, &config)),
            stop: vec![BUILD_11.into()],
        }
    );

    let with_head = [
        record(BUILD_12, 12, "17", B, BuildStatus::InProgress),
        record(BUILD_11, 11, "17", A, BuildStatus::InProgress),
    ];
    assert_eq!(
        plan(&candidate(B), &pull_request(B, R2), &with_head, &config),
        Plan {
            build: BuildChoice::Running {
                id: BUILD_12.into(),
                number: Some(12)
            },
            stop: vec![BUILD_11.into()],
        }
    );
}

// --- build events: decisions ----------------------------------------------------------------

#[test]
fn finished_validation_builds_are_reported_on_their_pull_request() {
    let config = config();
    let cases = [
        ("build-succeeded.json", B, BuildStatus::Succeeded),
        ("build-failed.json", B, BuildStatus::Failed),
        ("build-timed-out.json", B, BuildStatus::TimedOut),
        ("build-stopped.json", A, BuildStatus::Stopped),
        ("build-superseded.json", A, BuildStatus::Succeeded),
    ];
    for (name, commit, status) in cases {
        assert_eq!(
            classify(&build_event(name).detail, &config).unwrap(),
            Interest::Report(Finished {
                pull_request_id: "17".into(),
                source_commit: commit.into(),
                status,
            }),
            "{name}"
        );
    }
}

#[test]
fn running_foreign_and_hand_started_builds_are_left_alone() {
    let config = config();
    assert_eq!(
        classify(&build_event("build-in-progress.json").detail, &config).unwrap(),
        Interest::Ignore(IgnoreReason::NotFinished)
    );
    assert_eq!(
        classify(&build_event("build-started-by-hand.json").detail, &config).unwrap(),
        Interest::Ignore(IgnoreReason::NotAPullRequestBuild)
    );
    let mut other = build_event("build-failed.json");
    other.detail.project_name = "shop-image".into();
    assert_eq!(
        classify(&other.detail, &config).unwrap(),
        Interest::Ignore(IgnoreReason::OtherProject {
            project: "shop-image".into()
        })
    );
    let error = classify(
        &build_event("invalid-build-without-commit.json").detail,
        &config,
    )
    .unwrap_err();
    assert!(
        error.message().contains("names the commit built"),
        "{error}"
    );
}

#[test]
fn a_build_of_the_head_approves_on_success_and_revokes_otherwise() {
    let finished = |status| Finished {
        pull_request_id: "17".into(),
        source_commit: B.into(),
        status,
    };
    let head = pull_request(B, R2);
    assert_eq!(
        judge(&finished(BuildStatus::Succeeded), &head),
        Verdict::Result(PullRequestApproval::Approve)
    );
    for status in [
        BuildStatus::Failed,
        BuildStatus::Fault,
        BuildStatus::TimedOut,
        BuildStatus::Stopped,
    ] {
        assert_eq!(
            judge(&finished(status), &head),
            Verdict::Result(PullRequestApproval::Revoke),
            "{status:?}"
        );
    }
    let older = Finished {
        source_commit: A.into(),
        ..finished(BuildStatus::Succeeded)
    };
    assert_eq!(judge(&older, &head), Verdict::Superseded { head: B.into() });
    assert_eq!(
        judge(
            &finished(BuildStatus::Succeeded),
            &closed(head.clone(), true)
        ),
        Verdict::Ignore(IgnoreReason::Merged)
    );
    assert_eq!(
        judge(&finished(BuildStatus::Failed), &closed(head, false)),
        Verdict::Ignore(IgnoreReason::Closed)
    );
}

// --- what the author reads -------------------------------------------------------------------

const FAILED_COMMENT: &str = "![build failing](https://img.shields.io/badge/build-failing-red)\n\
\n\
**Build [shop-pr #12](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/shop-pr/build/shop-pr%3A2b5e8c1f-4a7d-4e0b-93c6-9d2f5a8c1e47/?region=us-east-1) of `9b1de4f` failed** after 3 min 10 s.\n\
\n\
The BUILD phase ended FAILED:\n\
\n\
```text\n\
COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101\n\
```\n\
\n\
This revision is not approved until a build passes. [Logs](https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/shop-pr;stream=2b5e8c1f-4a7d-4e0b-93c6-9d2f5a8c1e47)\n";

#[test]
fn the_failure_comment_shows_badge_duration_reason_and_links() {
    let text = message::result(
        &build_event("build-failed.json"),
        B,
        PullRequestApproval::Revoke,
        "https://img.shields.io/badge",
        &BuildTests::None,
    );
    assert_eq!(text, FAILED_COMMENT);
}

#[test]
fn success_timeout_and_superseded_comments_say_so() {
    let badge = "https://img.shields.io/badge";
    let passed = message::result(
        &build_event("build-succeeded.json"),
        B,
        PullRequestApproval::Approve,
        badge,
        &BuildTests::None,
    );
    assert!(
        passed.starts_with("![build passing](https://img.shields.io/badge/build-passing-brightgreen)\n\n**Build [shop-pr #12]("),
        "{passed}"
    );
    assert!(
        passed.contains(" of `9b1de4f` passed** in 3 min 10 s.\n"),
        "{passed}"
    );
    assert!(!passed.contains("phase ended"));
    assert!(passed.contains("\nThis revision is approved. [Logs](https://"));

    let timed_out = message::result(
        &build_event("build-timed-out.json"),
        B,
        PullRequestApproval::Revoke,
        badge,
        &BuildTests::None,
    );
    assert!(
        timed_out
            .starts_with("![build timed out](https://img.shields.io/badge/build-timed%20out-red)")
    );
    assert!(timed_out.contains("timed out** after 3 min 10 s."));
    assert!(timed_out.contains(
        "The BUILD phase ended TIMED_OUT:\n\n```text\nBUILD_TIMED_OUT: Build has timed out.\n```"
    ));

    let superseded = message::superseded(&build_event("build-stopped.json"), A, B);
    assert_eq!(
        superseded,
        format!(
            "Build [shop-pr #11]({CONSOLE}/shop-pr%3A6d9a2c5f-8b1e-4a4d-b7c0-3e6f9b2d5a18/?region=us-east-1) of `4b7615d` was stopped, but it is superseded by `9b1de4f`: its result changes no approval."
        )
    );
}

#[test]
fn a_message_cannot_break_out_of_its_code_block() {
    let mut failed = event("build-failed.json");
    failed["detail"]["additional-information"]["phases"][6]["phase-context"] =
        json!(["COMMAND_EXECUTION_ERROR: ```\n[click](https://evil.example)"]);
    let Incoming::Build(failed) = parse(failed).unwrap() else {
        unreachable!()
    };
    let text = message::result(
        &failed,
        B,
        PullRequestApproval::Revoke,
        "https://b",
        &BuildTests::None,
    );
    assert_eq!(text.matches("```").count(), 2, "{text}");
}

// --- pull-request events: effects ------------------------------------------------------------

fn expect_pull_request(mock: &mut MockPullRequestApi, order: &mut Sequence, answer: PullRequest) {
    mock.expect_pull_request()
        .with(eq("17"))
        .times(1)
        .in_sequence(order)
        .returning(move |_| reply(Ok(answer.clone())));
}

fn expect_recent(mock: &mut MockBuildApi, order: &mut Sequence, answer: Vec<BuildRecord>) {
    mock.expect_recent_builds()
        .with(eq("shop-pr"), eq(25_usize))
        .times(1)
        .in_sequence(order)
        .returning(move |_, _| reply(Ok(answer.clone())));
}

/// BatchGetBuilds of `id`, answering a build that filed `report_arns`.
fn expect_build_read(
    mock: &mut MockBuildApi,
    order: &mut Sequence,
    id: &'static str,
    report_arns: &[&str],
) {
    let record = BuildRecord {
        report_arns: report_arns.iter().map(|a| (*a).to_owned()).collect(),
        ..record(id, 12, "17", B, BuildStatus::Failed)
    };
    mock.expect_build()
        .with(eq(id))
        .times(1)
        .in_sequence(order)
        .returning(move |_| reply(Ok(Some(record.clone()))));
}

const TESTS_REPORT: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-pr-tests:5c1d";
const LINT_REPORT: &str = "arn:aws:codebuild:us-east-1:123456789012:report/shop-pr-lint:8e2f";

/// The test report of build #12: 25 cases of 437 failed.
fn failing_report() -> TestReport {
    TestReport {
        arn: TESTS_REPORT.into(),
        status: "FAILED".into(),
        total: 437,
        passed: 410,
        failed: 25,
        skipped: 2,
        duration_nanos: Some(95_000_000_000),
        failures: (0..10)
            .map(|i| FailedCase {
                prefix: Some("shop::cart".into()),
                name: format!("total_{i}"),
                message: Some(format!("assertion `left == right` failed\n  left: {i}")),
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_new_pull_request_gets_a_build_of_its_head_and_a_comment_linking_to_it() {
    let mut order = Sequence::new();
    let (mut pulls, mut builds) = (MockPullRequestApi::new(), MockBuildApi::new());
    expect_pull_request(&mut pulls, &mut order, pull_request(A, R1));
    expect_recent(&mut builds, &mut order, vec![]);
    let request = start_request(&pull_request(A, R1), CREATED_ID, &config());
    builds
        .expect_start_build()
        .with(eq(request))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(StartedBuild {
                id: BUILD_11.into(),
                arn: format!("arn:aws:codebuild:us-east-1:123456789012:build/{BUILD_11}"),
                number: Some(11),
            }))
        });
    pulls
        .expect_post_comment()
        .with(eq(started_comment(BUILD_11, 11, A)))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-1".into(),
            }))
        });
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let outcome = handle(&deps, event("pull-request-created.json"))
        .await
        .unwrap();

    assert_eq!(
        outcome,
        Outcome::BuildStarted {
            pull_request_id: "17".into(),
            commit_id: A.into(),
            build_id: BUILD_11.into(),
            already_running: false,
            stopped: vec![],
            comment_id: Some("c-1".into()),
        }
    );
}

#[tokio::test]
async fn a_push_to_the_source_branch_builds_the_new_head_and_stops_the_old_build() {
    let mut order = Sequence::new();
    let (mut pulls, mut builds) = (MockPullRequestApi::new(), MockBuildApi::new());
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    expect_recent(
        &mut builds,
        &mut order,
        vec![record(BUILD_11, 11, "17", A, BuildStatus::InProgress)],
    );
    builds
        .expect_start_build()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(StartedBuild {
                id: BUILD_12.into(),
                arn: format!("arn:aws:codebuild:us-east-1:123456789012:build/{BUILD_12}"),
                number: Some(12),
            }))
        });
    pulls
        .expect_post_comment()
        .with(eq(started_comment(BUILD_12, 12, B)))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-2".into(),
            }))
        });
    builds
        .expect_stop_build()
        .with(eq(BUILD_11))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(())));
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let outcome = handle(&deps, event("source-branch-updated.json"))
        .await
        .unwrap();

    assert!(
        matches!(&outcome, Outcome::BuildStarted { build_id, stopped, .. } if build_id == BUILD_12 && *stopped == [BUILD_11]),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_redelivered_event_finds_its_build_running_and_comments_nothing_new() {
    let mut order = Sequence::new();
    let (mut pulls, mut builds) = (MockPullRequestApi::new(), MockBuildApi::new());
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    expect_recent(
        &mut builds,
        &mut order,
        vec![record(BUILD_12, 12, "17", B, BuildStatus::InProgress)],
    );
    // The same token as the first delivery's comment: CodeCommit answers that one.
    pulls
        .expect_post_comment()
        .with(eq(started_comment(BUILD_12, 12, B)))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(PostedComment::AlreadyPosted)));
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let outcome = handle(&deps, event("source-branch-updated.json"))
        .await
        .unwrap();

    assert_eq!(
        outcome,
        Outcome::BuildStarted {
            pull_request_id: "17".into(),
            commit_id: B.into(),
            build_id: BUILD_12.into(),
            already_running: true,
            stopped: vec![],
            comment_id: None,
        }
    );
}

#[tokio::test]
async fn a_late_event_for_an_older_commit_builds_nothing() {
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_pull_request()
        .times(1)
        .returning(|_| reply(Ok(pull_request(B, R2))));
    let deps = Deps::new(pulls, MockBuildApi::new(), MockTestReports::new(), config());

    let outcome = handle(&deps, event("pull-request-created.json"))
        .await
        .unwrap();

    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: IgnoreReason::Stale {
                event_commit: A.into(),
                head_commit: B.into()
            }
        }
    );
}

#[tokio::test]
async fn a_failed_start_fails_the_invocation_before_any_comment() {
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_pull_request()
        .times(1)
        .returning(|_| reply(Ok(pull_request(A, R1))));
    let mut builds = MockBuildApi::new();
    builds
        .expect_recent_builds()
        .times(1)
        .returning(|_, _| reply(Ok(vec![])));
    builds.expect_start_build().times(1).returning(|_| {
        reply(Err(UpstreamError::new(
            "CodeBuild",
            "StartBuild",
            Some("AccountLimitExceededException".into()),
            "too many builds",
        )))
    });
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let error = handle(&deps, event("pull-request-created.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn every_old_build_is_stopped_even_when_one_refuses_then_the_invocation_fails() {
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_pull_request()
        .times(1)
        .returning(|_| reply(Ok(pull_request(B, R2))));
    pulls.expect_post_comment().times(1).returning(|_| {
        reply(Ok(PostedComment::Posted {
            comment_id: "c".into(),
        }))
    });
    let mut builds = MockBuildApi::new();
    builds.expect_recent_builds().times(1).returning(|_, _| {
        reply(Ok(vec![
            record(BUILD_12, 12, "17", B, BuildStatus::InProgress),
            record("shop-pr:older-1", 10, "17", MAIN, BuildStatus::InProgress),
            record(BUILD_11, 11, "17", A, BuildStatus::InProgress),
        ]))
    });
    builds
        .expect_stop_build()
        .with(eq("shop-pr:older-1"))
        .times(1)
        .returning(|_| {
            reply(Err(UpstreamError::new(
                "CodeBuild",
                "StopBuild",
                None,
                "timeout",
            )))
        });
    builds
        .expect_stop_build()
        .with(eq(BUILD_11))
        .times(1)
        .returning(|_| reply(Ok(())));
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let error = handle(&deps, event("source-branch-updated.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

// --- build events: effects -------------------------------------------------------------------

#[tokio::test]
async fn a_failed_head_build_revokes_then_comments_its_failure() {
    let mut order = Sequence::new();
    let mut pulls = MockPullRequestApi::new();
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    pulls
        .expect_update_approval()
        .with(eq("17"), eq(R2), eq(PullRequestApproval::Revoke))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| reply(Ok(())));
    // The event does not name the build's reports: BatchGetBuilds does (none here).
    let mut builds = MockBuildApi::new();
    expect_build_read(&mut builds, &mut order, BUILD_12, &[]);
    pulls
        .expect_post_comment()
        .with(eq(PullRequestComment {
            pull_request_id: "17".into(),
            repository: "shop".into(),
            before_commit_id: MAIN.into(),
            after_commit_id: B.into(),
            content: FAILED_COMMENT.into(),
            client_request_token: comment_token(CommentKind::Result, "17", BUILD_12),
        }))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-3".into(),
            }))
        });
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Reported {
            pull_request_id: "17".into(),
            build_id: format!("arn:aws:codebuild:us-east-1:123456789012:build/{BUILD_12}"),
            status: "FAILED".into(),
            approval: "REVOKE".into(),
            comment_id: Some("c-3".into()),
        }
    );
}

#[tokio::test]
async fn a_failed_head_build_with_test_reports_comments_its_failing_cases() {
    let mut order = Sequence::new();
    let mut pulls = MockPullRequestApi::new();
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    pulls
        .expect_update_approval()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| reply(Ok(())));
    let mut builds = MockBuildApi::new();
    // Two groups filed; the function reads the one REPORT_GROUPS names.
    expect_build_read(
        &mut builds,
        &mut order,
        BUILD_12,
        &[TESTS_REPORT, LINT_REPORT],
    );
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .withf(|arns| arns == [TESTS_REPORT])
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(vec![failing_report()])));
    pulls
        .expect_post_comment()
        .withf(|comment| {
            let text = &comment.content;
            text.starts_with(FAILED_COMMENT.split("\nThis revision").next().unwrap())
                && text.contains("**Tests** [shop\\-pr\\-tests](https://us-east-1.console.aws.amazon.com/codesuite/codebuild/123456789012/testReports/reports/shop-pr-tests%3A5c1d?region=us-east-1): 410 passed, 25 failed, 2 skipped (93.8 %) in 1 min 35 s.")
                && text.contains("```text\nshop::cart.total_0: assertion 'left == right' failed\n")
                && text.contains("shop::cart.total_9: ")
                && text.contains("```\nand 15 more.\n")
                && text.ends_with("This revision is not approved until a build passes. [Logs](https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/shop-pr;stream=2b5e8c1f-4a7d-4e0b-93c6-9d2f5a8c1e47)\n")
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-5".into(),
            }))
        });
    let mut config = config();
    config.report_groups = vec!["shop-pr-tests".into()];
    let deps = Deps::new(pulls, builds, reports, config);

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Reported { comment_id: Some(id), .. } if id == "c-5"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn reports_that_cannot_be_read_leave_the_comment_without_them_not_unsaid() {
    let mut order = Sequence::new();
    let mut pulls = MockPullRequestApi::new();
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    pulls
        .expect_update_approval()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| reply(Ok(())));
    let mut builds = MockBuildApi::new();
    expect_build_read(&mut builds, &mut order, BUILD_12, &[TESTS_REPORT]);
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Err(UpstreamError::new(
                "CodeBuild",
                "BatchGetReports",
                Some("AccessDeniedException".into()),
                "not authorized to perform codebuild:BatchGetReports",
            )))
        });
    pulls
        .expect_post_comment()
        .withf(|comment| {
            let text = &comment.content;
            text.starts_with("![build failing]")
                && text.contains("Reason: exit status 101")
                && text.contains("**Tests**: the build's test reports could not be read")
                && !text.contains("AccessDenied")
                && text.contains("This revision is not approved until a build passes.")
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-6".into(),
            }))
        });
    let deps = Deps::new(pulls, builds, reports, config());

    let outcome = handle(&deps, event("build-failed.json")).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Reported { approval, .. } if approval == "REVOKE"),
        "{outcome:?}"
    );
}

#[test]
fn reports_too_long_for_a_comment_are_cut_and_the_approval_and_logs_still_show() {
    let mut huge = failing_report();
    for case in &mut huge.failures {
        case.name = "n".repeat(100_000);
        case.message = Some("[x](https://evil.example) ".repeat(4_000));
    }
    let many: Vec<TestReport> = (0..20)
        .map(|i| TestReport {
            arn: format!("arn:aws:codebuild:us-east-1:123456789012:report/group-{i}:1"),
            ..huge.clone()
        })
        .collect();
    let text = message::result(
        &build_event("build-failed.json"),
        B,
        PullRequestApproval::Revoke,
        "https://img.shields.io/badge",
        &BuildTests::Read(many),
    );
    assert!(
        text.chars().count() <= shared::ports::MAX_COMMENT_CHARS,
        "{}",
        text.chars().count()
    );
    assert!(
        text.ends_with("stream=2b5e8c1f-4a7d-4e0b-93c6-9d2f5a8c1e47)\n"),
        "{text}"
    );
    assert_eq!(text.matches("```").count() % 2, 0, "every fence closed");
    assert!(
        text.contains("more test reports on the build's page."),
        "{text}"
    );
}

#[tokio::test]
async fn a_passing_head_build_approves_the_current_revision() {
    let mut order = Sequence::new();
    let mut pulls = MockPullRequestApi::new();
    // The destination moved since the build started: the approval goes to the revision now.
    let mut now = pull_request(
        B,
        "3f5d7b9a1c3e5f7d9b1a3c5e7f9d1b3a5c7e9f1d3b5a7c9e1f3d5b7a9c1e3f5d",
    );
    now.destination_commit = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e".into();
    let revision = now.revision_id.clone();
    expect_pull_request(&mut pulls, &mut order, now);
    pulls
        .expect_update_approval()
        .with(eq("17"), eq(revision), eq(PullRequestApproval::Approve))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| reply(Ok(())));
    // CodeBuild no longer has the build: the comment says what the event tells.
    let mut builds = MockBuildApi::new();
    builds
        .expect_build()
        .with(eq(BUILD_12))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(None)));
    pulls
        .expect_post_comment()
        .withf(|comment| {
            comment.content.starts_with("![build passing]")
                && comment.before_commit_id == "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"
                && comment.client_request_token
                    == comment_token(CommentKind::Result, "17", BUILD_12)
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(PostedComment::AlreadyPosted)));
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let outcome = handle(&deps, event("build-succeeded.json")).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Reported { approval, comment_id: None, .. } if approval == "APPROVE"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_build_of_an_older_commit_is_marked_superseded_and_approves_nothing() {
    let mut pulls = MockPullRequestApi::new();
    let mut order = Sequence::new();
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    pulls
        .expect_post_comment()
        .withf(|comment| {
            comment
                .content
                .contains("of `4b7615d` passed, but it is superseded by `9b1de4f`")
                && comment.after_commit_id == B
                && comment.client_request_token
                    == comment_token(CommentKind::Superseded, "17", BUILD_11)
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-4".into(),
            }))
        });
    let deps = Deps::new(pulls, MockBuildApi::new(), MockTestReports::new(), config());

    let outcome = handle(&deps, event("build-superseded.json")).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Superseded {
            pull_request_id: "17".into(),
            build_id: format!("arn:aws:codebuild:us-east-1:123456789012:build/{BUILD_11}"),
            commit_id: A.into(),
            head_commit: B.into(),
            comment_id: Some("c-4".into()),
        }
    );
}

#[tokio::test]
async fn a_build_finishing_after_the_pull_request_closed_changes_nothing() {
    for merged in [false, true] {
        let mut pulls = MockPullRequestApi::new();
        pulls
            .expect_pull_request()
            .times(1)
            .returning(move |_| reply(Ok(closed(pull_request(B, R2), merged))));
        let deps = Deps::new(pulls, MockBuildApi::new(), MockTestReports::new(), config());
        let outcome = handle(&deps, event("build-succeeded.json")).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");
    }
}

#[tokio::test]
async fn a_refused_approval_fails_the_invocation_before_the_comment() {
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_pull_request()
        .times(1)
        .returning(|_| reply(Ok(pull_request(B, R2))));
    pulls
        .expect_update_approval()
        .times(1)
        .returning(|_, _, _| {
            reply(Err(upstream(
                "UpdatePullRequestApprovalState",
                "RevisionNotCurrentException",
            )))
        });
    let deps = Deps::new(pulls, MockBuildApi::new(), MockTestReports::new(), config());

    let error = handle(&deps, event("build-succeeded.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn a_failed_comment_fails_the_invocation_for_a_retry() {
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_pull_request()
        .times(1)
        .returning(|_| reply(Ok(pull_request(B, R2))));
    pulls
        .expect_update_approval()
        .times(1)
        .returning(|_, _, _| reply(Ok(())));
    pulls.expect_post_comment().times(1).returning(|_| {
        reply(Err(upstream(
            "PostCommentForPullRequest",
            "EncryptionKeyUnavailableException",
        )))
    });
    let mut builds = MockBuildApi::new();
    builds
        .expect_build()
        .times(1)
        .returning(|_| reply(Ok(None)));
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let error = handle(&deps, event("build-failed.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn ignored_and_invalid_events_call_nothing() {
    for name in [
        "pull-request-closed.json",
        "pull-request-merged.json",
        "other-destination.json",
        "approval-state-changed.json",
        "build-in-progress.json",
        "build-started-by-hand.json",
    ] {
        let deps = Deps::new(
            MockPullRequestApi::new(),
            MockBuildApi::new(),
            MockTestReports::new(),
            config(),
        );
        let outcome = handle(&deps, event(name)).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{name}");
    }
    for name in [
        "invalid-missing-source-commit.json",
        "invalid-foreign-push.json",
        "invalid-build-without-commit.json",
    ] {
        let deps = Deps::new(
            MockPullRequestApi::new(),
            MockBuildApi::new(),
            MockTestReports::new(),
            config(),
        );
        let error = handle(&deps, event(name)).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent", "{name}");
    }
}

#[test]
fn outcomes_serialize_as_the_function_response() {
    let outcome = Outcome::Ignored {
        reason: IgnoreReason::Stale {
            event_commit: A.into(),
            head_commit: B.into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        json!({"outcome": "ignored", "reason": {"kind": "stale", "eventCommit": A, "headCommit": B}})
    );
    assert_eq!(
        IgnoreReason::Stale {
            event_commit: A.into(),
            head_commit: B.into()
        }
        .to_string(),
        "the event names 4b7615d but the pull request's head is 9b1de4f"
    );
}

// --- the sweep -------------------------------------------------------------------------------

/// When `events/pr-validator/scheduled-sweep.json` fired.
fn swept_at() -> chrono::DateTime<chrono::Utc> {
    "2026-11-23T10:05:00Z".parse().unwrap()
}

/// A validation build of pull request 17 at `commit` that ended `minutes` before the sweep.
fn ended(id: &str, number: u64, commit: &str, status: BuildStatus, minutes: i64) -> BuildRecord {
    let end = swept_at() - chrono::Duration::minutes(minutes);
    BuildRecord {
        arn: Some(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/{id}"
        )),
        start_time: Some(end - chrono::Duration::seconds(190)),
        end_time: Some(end),
        ..record(id, number, "17", commit, status)
    }
}

#[test]
fn a_scheduled_event_is_the_sweep() {
    assert!(matches!(
        parse(event("scheduled-sweep.json")).unwrap(),
        Incoming::Sweep(_)
    ));
}

#[tokio::test]
async fn a_sweep_reports_the_builds_of_its_window_that_have_no_report_comment() {
    let mut lost = ended(BUILD_12, 12, B, BuildStatus::Failed, 10);
    lost.report_arns = vec![TESTS_REPORT.into()];
    let reported = ended(BUILD_11, 11, A, BuildStatus::Succeeded, 20);
    let mut by_hand = ended("shop-pr:by-hand", 10, A, BuildStatus::Succeeded, 30);
    by_hand.variables.clear();
    let history = vec![
        ended("shop-pr:running", 13, B, BuildStatus::InProgress, 0),
        lost.clone(),
        reported,
        by_hand,
    ];
    let mut order = Sequence::new();
    let mut builds = MockBuildApi::new();
    expect_recent(&mut builds, &mut order, history);
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_comment_tokens()
        .with(eq("17"))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(vec![
                comment_token(CommentKind::Started, "17", BUILD_12),
                comment_token(CommentKind::Result, "17", BUILD_11),
            ]))
        });
    expect_pull_request(&mut pulls, &mut order, pull_request(B, R2));
    pulls
        .expect_update_approval()
        .with(eq("17"), eq(R2), eq(PullRequestApproval::Revoke))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| reply(Ok(())));
    // The sweep has read the build: its reports are asked for without reading it again.
    let mut reports = MockTestReports::new();
    reports
        .expect_reports()
        .withf(|arns| arns == [TESTS_REPORT])
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| reply(Ok(vec![failing_report()])));
    pulls
        .expect_post_comment()
        .withf(|comment| {
            comment.content.starts_with("![build failing]")
                && comment.content.contains("410 passed, 25 failed, 2 skipped")
                && comment.client_request_token
                    == comment_token(CommentKind::Result, "17", BUILD_12)
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Ok(PostedComment::Posted {
                comment_id: "c-9".into(),
            }))
        });
    let deps = Deps::new(pulls, builds, reports, config());

    let outcome = handle(&deps, event("scheduled-sweep.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Swept {
            checked: 2,
            reported: vec![lost.arn.unwrap()],
        }
    );
}

#[tokio::test]
async fn a_sweep_that_cannot_read_a_pull_requests_comments_fails_for_the_next_one() {
    let history = vec![ended(BUILD_12, 12, B, BuildStatus::Failed, 10)];
    let mut order = Sequence::new();
    let mut builds = MockBuildApi::new();
    expect_recent(&mut builds, &mut order, history);
    let mut pulls = MockPullRequestApi::new();
    pulls
        .expect_comment_tokens()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| {
            reply(Err(UpstreamError::new(
                "CodeCommit",
                "GetCommentsForPullRequest",
                Some("ThrottlingException".into()),
                "slow down",
            )))
        });
    let deps = Deps::new(pulls, builds, MockTestReports::new(), config());

    let error = handle(&deps, event("scheduled-sweep.json"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}
