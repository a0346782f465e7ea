use std::collections::BTreeMap;

use super::*;

pub(crate) const EXECUTION: &str = "3137f7cb-7cf7-4f7a-9b3e-1234567890ab";
pub(crate) const COMMIT: &str = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e";
pub(crate) const DIGEST: &str =
    "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

pub(crate) fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) fn end(state: EndState) -> ExecutionEnd {
    ExecutionEnd {
        pipeline: "shop-main".into(),
        execution_id: EXECUTION.into(),
        attempt: 1,
        state,
        at: time("2026-11-23T14:02:00Z"),
        environment: "production".into(),
        console_link: Some("https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/shop-main/executions/x/timeline?region=us-east-1".into()),
        rollback: false,
    }
}

/// A run, in the words of a sentence: `run("Deploy", "EksDeploy", "Invoke").failed("…")`.
pub(crate) fn run(stage: &str, action: &str, category: &str) -> ActionRun {
    ActionRun {
        stage: stage.into(),
        action: action.into(),
        category: category.into(),
        provider: match category {
            "Source" => "CodeCommit",
            "Build" => "CodeBuild",
            "Approval" => "Manual",
            _ => "Lambda",
        }
        .into(),
        status: "Succeeded".into(),
        ..ActionRun::default()
    }
}

pub(crate) trait RunBuilder {
    fn between(self, start: &str, end: &str) -> Self;
    fn failed(self, message: &str) -> Self;
    fn summary(self, summary: &str) -> Self;
    fn variable(self, name: &str, value: &str) -> Self;
    fn by(self, arn: &str) -> Self;
}

impl RunBuilder for ActionRun {
    fn between(mut self, start: &str, end: &str) -> Self {
        self.started_at = Some(time(start));
        self.updated_at = Some(time(end));
        self
    }
    fn failed(mut self, message: &str) -> Self {
        self.status = "Failed".into();
        self.error_code = Some("JobFailed".into());
        self.error_message = Some(message.into());
        self
    }
    fn summary(mut self, summary: &str) -> Self {
        self.summary = Some(summary.into());
        self
    }
    fn variable(mut self, name: &str, value: &str) -> Self {
        self.output_variables.insert(name.into(), value.into());
        self
    }
    fn by(mut self, arn: &str) -> Self {
        self.updated_by = Some(arn.into());
        self
    }
}

pub(crate) fn source() -> ActionRun {
    let mut source = run("Source", "Source", "Source")
        .between("2026-11-23T13:40:00Z", "2026-11-23T13:40:01Z")
        .variable("CommitId", COMMIT)
        .variable("CommitMessage", "feat: one-click checkout\n\nDetails.")
        .variable("CommitterDate", "2026-11-23T13:20:00Z")
        .variable("RepositoryName", "shop")
        .variable("BranchName", "main");
    source.configuration = BTreeMap::from([("RepositoryName".into(), "shop".into())]);
    source
}

pub(crate) fn approved() -> ActionRun {
    run("Approval", "ProductionGate", "Approval")
        .between("2026-11-23T13:45:00Z", "2026-11-23T13:58:00Z")
        .summary("Approved by alice@example.com via the email link: Looks good on staging")
        .by("arn:aws:sts::123456789012:assumed-role/eks-cicd-ApprovalCallback/approval-callback")
}

/// Source → Build → Approval → Deploy, all succeeded; the deploy reports eks-deploy's variables.
pub(crate) fn deployed_runs() -> Vec<ActionRun> {
    vec![
        run("Deploy", "EksDeploy", "Invoke")
            .between("2026-11-23T13:58:05Z", "2026-11-23T14:01:50Z")
            .summary("deployed")
            .variable(
                "IMAGE",
                &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@{DIGEST}"),
            )
            .variable("IMAGE_DIGEST", DIGEST)
            .variable("IMAGE_TAG", "0ccf1ae1bf4c")
            .variable(
                "PREVIOUS_IMAGE",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:5d1e",
            ),
        approved(),
        run("Build", "Build", "Build").between("2026-11-23T13:40:02Z", "2026-11-23T13:44:50Z"),
        source(),
    ]
}

#[test]
fn a_deploy_tells_environment_digest_commit_approver_and_push_to_running() {
    let report = Report::build(end(EndState::Succeeded), &deployed_runs());
    assert_eq!(report.ending, Ending::Deployed);
    let notification = report.notification();
    assert_eq!(
        notification.subject,
        "DEPLOYED: shop-main to production (0ccf1ae feat: one-click checkout)"
    );
    let body = &notification.body;
    for expected in [
        "runs in production since 2026-11-23 14:02 UTC",
        "Commit: 0ccf1ae feat: one-click checkout",
        "Approved by: alice@example.com: Looks good on staging",
        &format!("Digest: {DIGEST}"),
        "Image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:",
        // 13:40:00 (the execution starts on the push) to 14:01:50 (the deploy finished).
        "Push to running: 21 min 50 s",
        &format!("Execution: {EXECUTION}"),
        "Details: https://us-east-1.console.aws.amazon.com/codesuite/codepipeline/",
    ] {
        assert!(
            body.contains(expected),
            "{expected:?} missing from:\n{body}"
        );
    }
    assert_eq!(
        notification.attributes[2],
        ("status".into(), "DEPLOYED".into())
    );
    assert_eq!(
        report.lead_time(),
        Some(std::time::Duration::from_secs(42 * 60))
    );
    assert!(!report.is_failed_deploy());
}

#[test]
fn a_deploy_tells_its_pull_request_in_one_line() {
    let report = Report::build(end(EndState::Succeeded), &deployed_runs());
    let comment = report.pull_request_comment().unwrap();
    assert!(
        comment.starts_with(
            "Deployed to production at 14:02 UTC (sha256:ab12cd34ef56…, approved by alice@example.com)\n"
        ),
        "{comment}"
    );
    assert!(comment.contains(EXECUTION), "{comment}");
}

#[test]
fn a_deploy_action_that_reports_no_digest_leaves_it_unknown_rather_than_inventing_one() {
    let mut runs = deployed_runs();
    runs[0].output_variables.clear();
    let report = Report::build(end(EndState::Succeeded), &runs);
    assert!(
        report
            .notification()
            .body
            .contains("Digest: unknown (the deploy action reported none)")
    );
    assert!(report.pull_request_comment().unwrap().starts_with(
        "Deployed to production at 14:02 UTC (image digest unknown, approved by alice@example.com)"
    ));
    // A tag-only image reference says no digest either.
    runs[0] = runs[0]
        .clone()
        .variable("IMAGE", "shop:v2")
        .variable("IMAGE_DIGEST", "");
    let report = Report::build(end(EndState::Succeeded), &runs);
    assert_eq!(report.deploy.unwrap().digest, None);
}

#[test]
fn an_image_digest_variable_that_is_more_than_a_digest_is_not_taken_for_one() {
    // Found by the delivery_report fuzz target: a whole reference in IMAGE_DIGEST was
    // reported as the digest. The pinned IMAGE still gives the right one.
    let pinned = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@{DIGEST}");
    let mut runs = deployed_runs();
    runs[0] = runs[0].clone().variable("IMAGE", &pinned).variable(
        "IMAGE_DIGEST",
        &format!("dkr.ecr.us-east-1.amazonaws.com/shop@{DIGEST}"),
    );
    let report = Report::build(end(EndState::Succeeded), &runs);
    assert_eq!(report.deploy.unwrap().digest.as_deref(), Some(DIGEST));
    // With no pinned image beside it, there is no digest at all.
    runs[0] = runs[0].clone().variable("IMAGE", "shop:v2");
    let report = Report::build(end(EndState::Succeeded), &runs);
    assert_eq!(report.deploy.unwrap().digest, None);
}

#[test]
fn a_console_approval_names_the_identity_that_decided_and_keeps_the_comment() {
    let mut runs = deployed_runs();
    runs[1] = run("Approval", "ProductionGate", "Approval")
        .between("2026-11-23T13:45:00Z", "2026-11-23T13:58:00Z")
        .summary("ship it")
        .by("arn:aws:iam::123456789012:user/bob");
    let report = Report::build(end(EndState::Succeeded), &runs);
    assert_eq!(
        report.decision.clone().unwrap(),
        Decision {
            by: Some("bob".into()),
            comment: Some("ship it".into()),
            at: Some(time("2026-11-23T13:58:00Z")),
        }
    );
}

#[test]
fn a_failed_build_says_where_what_and_where_to_look_and_is_no_failed_deploy() {
    let mut build = run("Build", "Build", "Build")
        .between("2026-11-23T13:40:02Z", "2026-11-23T13:44:50Z")
        .failed("Build terminated with state: FAILED");
    build.url = Some(
        "https://us-east-1.console.aws.amazon.com/codesuite/codebuild/projects/shop-image/build/x"
            .into(),
    );
    let report = Report::build(end(EndState::Failed), &[build, source()]);
    assert_eq!(report.ending, Ending::Failed);
    let notification = report.notification();
    assert_eq!(
        notification.subject,
        "FAILED: shop-main to production at Build / Build"
    );
    let body = &notification.body;
    assert!(body.contains("Error: JobFailed"), "{body}");
    assert!(
        body.contains("Reported: Build terminated with state: FAILED"),
        "{body}"
    );
    assert!(
        body.contains("Logs: https://us-east-1.console.aws.amazon.com/codesuite/codebuild/"),
        "{body}"
    );
    assert!(!report.is_failed_deploy());
    assert_eq!(report.pull_request_comment(), None);
}

#[test]
fn a_failed_action_without_a_link_points_at_its_log_stream() {
    let mut deploy = run("Deploy", "EksDeploy", "Invoke").failed("timed out");
    deploy.log_stream_arn = Some(
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/eks-deploy:log-stream:2026/11/23/[$LATEST]abc".into(),
    );
    let report = Report::build(end(EndState::Failed), &[deploy]);
    assert_eq!(
        report.failed.unwrap().link.as_deref(),
        Some(
            "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/$252Faws$252Flambda$252Feks-deploy/log-events/2026$252F11$252F23$252F$255B$2524LATEST$255Dabc"
        )
    );
}

#[test]
fn a_rolled_back_deploy_says_what_runs_again_and_why() {
    let runs = vec![
        run("Deploy", "EksDeploy", "Invoke")
            .between("2026-11-23T13:58:05Z", "2026-11-23T14:01:50Z")
            .failed("rollout of shop/web did not finish: ImagePullBackOff. Rolled back to shop:5d1e (rollout complete)."),
        approved(),
        source(),
    ];
    let report = Report::build(end(EndState::Failed), &runs);
    assert_eq!(
        report.ending,
        Ending::RolledBack {
            to: "shop:5d1e".into()
        }
    );
    assert!(report.is_failed_deploy());
    let notification = report.notification();
    assert_eq!(notification.subject, "ROLLED BACK: shop-main in production");
    assert!(
        notification
            .body
            .contains("production runs shop:5d1e again"),
        "{}",
        notification.body
    );
    assert_eq!(notification.attributes[2].1, "ROLLED_BACK");
    let comment = report.pull_request_comment().unwrap();
    assert!(
        comment.starts_with("Rolled back in production at 14:02 UTC: the deploy failed (rollout of shop/web did not finish: ImagePullBackOff); production runs `shop:5d1e` again"),
        "{comment}"
    );
}

#[test]
fn an_aborted_canary_is_a_rollback_to_the_previous_image() {
    let runs = vec![
        run("Deploy", "EksDeploy", "Invoke")
            .failed("aborted at 25%: alarm checkout-5xx is in ALARM")
            .variable("PREVIOUS_IMAGE", "shop:5d1e"),
    ];
    let report = Report::build(end(EndState::Failed), &runs);
    assert_eq!(
        report.ending,
        Ending::RolledBack {
            to: "shop:5d1e".into()
        }
    );
    assert!(
        report
            .pull_request_comment()
            .unwrap()
            .contains("(alarm checkout-5xx is in ALARM)")
    );
}

#[test]
fn a_failed_deploy_that_was_not_rolled_back_is_a_failure_on_the_pull_request_too() {
    let runs = vec![
        run("Deploy", "EksDeploy", "Invoke")
            .failed("rollout failed. Not rolled back (rollback is off)."),
        source(),
    ];
    let report = Report::build(end(EndState::Failed), &runs);
    assert_eq!(report.ending, Ending::Failed);
    assert!(report.is_failed_deploy());
    assert!(
        report
            .pull_request_comment()
            .unwrap()
            .starts_with("Deploy to production failed at 14:02 UTC: rollout failed. Not rolled back (rollback is off).")
    );
}

#[test]
fn a_rejected_approval_names_who_rejected_and_their_comment() {
    let rejected = run("Approval", "ProductionGate", "Approval")
        .between("2026-11-23T13:45:00Z", "2026-11-23T14:01:58Z")
        .summary("Rejected by alice@example.com via the email link: staging shows checkout errors")
        .failed("Rejected by alice@example.com via the email link: staging shows checkout errors");
    let report = Report::build(end(EndState::Failed), &[rejected, source()]);
    assert_eq!(report.ending, Ending::Rejected);
    let notification = report.notification();
    assert_eq!(
        notification.subject,
        "REJECTED: shop-main to production at Approval / ProductionGate"
    );
    assert!(
        notification
            .body
            .contains("Rejected by: alice@example.com: staging shows checkout errors"),
        "{}",
        notification.body
    );
    assert_eq!(notification.attributes[2].1, "REJECTED");
    assert_eq!(report.pull_request_comment(), None);
    assert!(!report.is_failed_deploy());
}

#[test]
fn an_approval_nobody_answered_expired() {
    let expired = run("Approval", "ProductionGate", "Approval")
        .failed("The approval request expired before anyone approved or rejected it.");
    let report = Report::build(end(EndState::Failed), &[expired]);
    assert_eq!(report.ending, Ending::Expired);
    let notification = report.notification();
    assert!(
        notification
            .subject
            .starts_with("EXPIRED: shop-main to production"),
        "{}",
        notification.subject
    );
    assert!(
        notification.body.contains("expired unanswered"),
        "{}",
        notification.body
    );
    assert_eq!(report.decision, None);
}

#[test]
fn the_latest_failure_of_a_retried_stage_is_the_one_told() {
    let runs = vec![
        run("Build", "Build", "Build")
            .between("2026-11-23T14:05:00Z", "2026-11-23T14:09:00Z")
            .failed("second try"),
        run("Build", "Build", "Build")
            .between("2026-11-23T13:40:00Z", "2026-11-23T13:44:00Z")
            .failed("first try"),
    ];
    let report = Report::build(end(EndState::Failed), &runs);
    assert_eq!(
        report.failed.unwrap().message.as_deref(),
        Some("second try")
    );
}

#[test]
fn a_failed_execution_without_a_failed_action_still_says_it_failed() {
    let report = Report::build(end(EndState::Failed), &[]);
    assert_eq!(report.ending, Ending::Failed);
    assert_eq!(
        report.notification().subject,
        "FAILED: shop-main to production"
    );
}

#[test]
fn stops_supersessions_and_cancellations_say_so() {
    for (state, subject) in [
        (
            EndState::Stopped,
            "STOPPED: shop-main to production was stopped",
        ),
        (
            EndState::Superseded,
            "SUPERSEDED: shop-main to production, a newer execution took over",
        ),
        (
            EndState::Canceled,
            "CANCELED: shop-main to production, the pipeline changed",
        ),
    ] {
        let report = Report::build(end(state), &deployed_runs()[1..]);
        assert_eq!(report.notification().subject, subject);
        assert_eq!(report.pull_request_comment(), None);
        assert!(!report.is_failed_deploy());
    }
}

#[test]
fn each_effect_has_its_own_key_per_execution_attempt_and_end() {
    let first = end(EndState::Failed);
    let mut second = first.clone();
    second.attempt = 2;
    assert_eq!(
        first.key("notification"),
        format!("delivery#shop-main#{EXECUTION}#1#FAILED#notification")
    );
    assert_ne!(first.key("notification"), second.key("notification"));
    assert_ne!(first.key("notification"), first.key("metrics"));
}

#[test]
fn codepipelines_own_rollback_is_told_as_a_rollback_not_a_deploy_and_tells_no_pull_request() {
    let mut rollback = end(EndState::Succeeded);
    rollback.rollback = true;
    let report = Report::build(rollback, &deployed_runs());
    assert_eq!(report.ending, Ending::PipelineRolledBack);
    let notification = report.notification();
    assert_eq!(
        notification.subject,
        "ROLLED BACK: shop-main in production to 0ccf1ae feat: one-click checkout"
    );
    assert!(
        notification
            .body
            .contains("the revisions of an earlier successful execution run again"),
        "{}",
        notification.body
    );
    assert_eq!(notification.attributes[2].1, "ROLLED_BACK");
    assert_eq!(report.pull_request_comment(), None);
    assert!(!report.is_failed_deploy());
    // No new change: no deploy counted; an outage it ends is restored.
    assert!(crate::dora::counts(&report));
    assert_eq!(crate::dora::document(&report, None), None);
    let document =
        crate::dora::document(&report, Some(std::time::Duration::from_secs(900))).unwrap();
    let names: Vec<&str> = document.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["TimeToRestoreSeconds"]);
}
