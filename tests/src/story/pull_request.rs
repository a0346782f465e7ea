//! A pull request validated by pr-validator: the comments and approval states its author sees.

use serde_json::json;

use super::Names;
use crate::timeline::Timeline;
use crate::{Emulators, Function, fixtures};

/// The pull request once its build passed: ready to merge.
pub(super) struct Reviewed {
    author: aws_config::SdkConfig,
    repository: String,
    id: String,
    head: String,
    validator: Function,
}

impl Reviewed {
    /// The author merges it (fast-forward); CodeCommit tells pr-validator, which records the
    /// merge commit. Returns the commit now at `main`'s tip.
    pub(super) async fn merge(
        &self,
        emulators: &Emulators,
        timeline: &mut Timeline,
    ) -> Option<String> {
        let merged = aws_sdk_codecommit::Client::new(&self.author)
            .merge_pull_request_by_fast_forward()
            .pull_request_id(&self.id)
            .repository_name(&self.repository)
            .source_commit_id(&self.head)
            .send()
            .await;
        timeline.step(
            "developer",
            &format!(
                "merges pull request {} into main ({})",
                self.id,
                &self.head[..7]
            ),
        );
        if let Err(error) = merged {
            timeline.expect(false, &format!("the pull request merges: {error:?}"));
            return None;
        }
        let url = format!(
            "{}/codecommit/pull-request-event?pullRequestId={}&event=pullRequestMergeStatusUpdated",
            emulators.admin, self.id
        );
        let (_, event) = crate::http::json("GET", &url, None).await;
        let recorded = match self.validator.invoke(&event).await {
            crate::runtime_api::InvocationResult::Response(value) => value,
            other => serde_json::json!({"failed": format!("{other:?}")}),
        };
        timeline.step("pr-validator", &recorded.to_string());
        timeline.expect(
            recorded["outcome"] == "mergeRecorded" && recorded["mergeCommit"] == self.head.as_str(),
            "pr-validator recorded the merge commit for delivery-events",
        );
        Some(self.head.clone())
    }

    /// Every comment on the pull request, oldest first.
    pub(super) async fn comments(&self) -> Vec<String> {
        crate::scenarios::pull_requests::comments(&self.author, &self.id).await
    }
}

pub(super) async fn tell(
    emulators: &Emulators,
    sdk: &aws_config::SdkConfig,
    names: &Names,
    main: &str,
    ledger: &str,
    timeline: &mut Timeline,
) -> Option<Reviewed> {
    let project = names.pull_request_project.as_str();
    let repository = names.repository.as_str();
    timeline.chapter("A developer opens a pull request");
    let author = fixtures::user(emulators, sdk, &crate::unique("mary")).await;
    let codecommit = aws_sdk_codecommit::Client::new(sdk);
    codecommit
        .create_branch()
        .repository_name(repository)
        .branch_name("feature/cart")
        .commit_id(main)
        .send()
        .await
        .unwrap();
    let first = fixtures::commit(
        &author,
        repository,
        "feature/cart",
        Some(main),
        "feat: cart",
    )
    .await;
    fixtures::validation_project(sdk, project, repository, &emulators.region).await;
    let mut env = emulators.function_env();
    env.extend([
        ("PR_VALIDATION_PROJECT".to_owned(), project.to_owned()),
        ("PR_REPOSITORIES".to_owned(), repository.to_owned()),
        ("PR_DESTINATIONS".to_owned(), "main".to_owned()),
        ("REPORT_GROUPS".to_owned(), format!("{project}-tests")),
        ("LEDGER_TABLE".to_owned(), ledger.to_owned()),
    ]);
    let validator = Function::start("pr-validator", &env).await;
    let id =
        fixtures::pull_request(&author, repository, "feature/cart", "main", "Add the cart").await;
    timeline.step(
        "developer",
        &format!(
            "opens pull request {id}: feature/cart → main ({})",
            &first[..7]
        ),
    );
    let first_build = validate(emulators, &validator, &id, "pullRequestCreated", timeline).await;
    let mut seen = show_comments(&author, &id, 0, timeline).await;
    timeline.expect(
        first_build.is_some(),
        "pr-validator started a build of the head",
    );

    timeline.chapter("The developer pushes again before the build ends");
    let second = fixtures::commit(
        &author,
        repository,
        "feature/cart",
        Some(&first),
        "fix: cart totals",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin feature/cart  ({})", &second[..7]),
    );
    let second_build = validate(
        emulators,
        &validator,
        &id,
        "pullRequestSourceBranchUpdated",
        timeline,
    )
    .await;
    if let Some(old) = &first_build {
        report(emulators, &validator, old, timeline).await;
    }
    seen = show_comments(&author, &id, seen, timeline).await;
    timeline.expect(seen == 3, "the old build was stopped and marked superseded");

    timeline.chapter("The build of the new head fails: two tests break");
    if let Some(build) = &second_build {
        finish(emulators, build, "FAILED").await;
        report(emulators, &validator, build, timeline).await;
    }
    let comments = crate::scenarios::pull_requests::comments(&author, &id).await;
    let result = comments.last().cloned().unwrap_or_default();
    seen = show_comments(&author, &id, seen, timeline).await;
    timeline.expect(
        FAILING_TESTS
            .iter()
            .all(|(_, name, _)| result.contains(name))
            && result.contains("40 passed, 2 failed, 1 skipped"),
        "the comment names the failing tests, with the counts",
    );
    let states = approvals(&author, &id).await;
    timeline.step("CodeCommit", &format!("approval states: {states:?}"));
    timeline.expect(states == ["REVOKE"], "no approval for a failing revision");

    timeline.chapter("A fix, and the build passes");
    let third = fixtures::commit(
        &author,
        repository,
        "feature/cart",
        Some(&second),
        "fix: the test",
    )
    .await;
    timeline.step(
        "developer",
        &format!("git push origin feature/cart  ({})", &third[..7]),
    );
    let third_build = validate(
        emulators,
        &validator,
        &id,
        "pullRequestSourceBranchUpdated",
        timeline,
    )
    .await;
    if let Some(build) = &third_build {
        finish(emulators, build, "SUCCEEDED").await;
        report(emulators, &validator, build, timeline).await;
    }
    show_comments(&author, &id, seen, timeline).await;
    let states = approvals(&author, &id).await;
    timeline.step("CodeCommit", &format!("approval states: {states:?}"));
    timeline.expect(states == ["APPROVE"], "the passing revision is approved");
    Some(Reviewed {
        author,
        repository: repository.to_owned(),
        id,
        head: third,
        validator,
    })
}

/// Gives pr-validator the pull-request event CodeCommit emits now; returns the build started.
async fn validate(
    emulators: &Emulators,
    validator: &Function,
    id: &str,
    kind: &str,
    timeline: &Timeline,
) -> Option<String> {
    let url = format!(
        "{}/codecommit/pull-request-event?pullRequestId={id}&event={kind}",
        emulators.admin
    );
    let (_, event) = crate::http::json("GET", &url, None).await;
    match validator.invoke(&event).await {
        crate::runtime_api::InvocationResult::Response(value) => {
            timeline.step("pr-validator", &format!("{kind}: {value}"));
            value["buildId"].as_str().map(str::to_owned)
        }
        other => {
            timeline.step("pr-validator", &format!("failed: {other:?}"));
            None
        }
    }
}

/// Gives pr-validator the event CodeBuild emits for `build` now.
async fn report(emulators: &Emulators, validator: &Function, build: &str, timeline: &Timeline) {
    let encoded: String = build.bytes().map(|b| format!("%{b:02X}")).collect();
    let url = format!("{}/codebuild/event?buildId={encoded}", emulators.admin);
    let (_, event) = crate::http::json("GET", &url, None).await;
    let status = event["detail"]["build-status"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    timeline.step("CodeBuild", &format!("{build}: {status}"));
    match validator.invoke(&event).await {
        crate::runtime_api::InvocationResult::Response(value) => {
            timeline.step("pr-validator", &value.to_string());
        }
        other => timeline.step("pr-validator", &format!("failed: {other:?}")),
    }
}

/// The tests that break in the failing build: prefix, name and message, as nextest's JUnit
/// file gives them to CodeBuild.
const FAILING_TESTS: [(&str, &str, &str); 2] = [
    (
        "shop",
        "cart::tests::total_includes_tax",
        "assertion `left == right` failed\n  left: 1190\n right: 1200",
    ),
    (
        "shop",
        "cart::tests::empty_cart_costs_nothing",
        "called `Option::unwrap()` on a `None` value",
    ),
];

/// Finishes `build` as CodeBuild would; the build files its test report (`reports: tests` in
/// infra/buildspec-pr.yml): 40 passing tests, one skipped, and for a failure [`FAILING_TESTS`].
async fn finish(emulators: &Emulators, build: &str, status: &str) {
    let mut cases = crate::codebuild::test_cases("SUCCEEDED", 40, "shop");
    cases.extend(crate::codebuild::test_cases("SKIPPED", 1, "shop"));
    if status == "FAILED" {
        cases.extend(FAILING_TESTS.iter().map(|(prefix, name, message)| {
            json!({"prefix": prefix, "name": name, "status": "FAILED", "message": message,
                   "durationInNanoSeconds": 30_000_000})
        }));
    }
    let mut body = json!({"buildId": build, "status": status, "durationSeconds": 190,
                          "reports": [{"group": "tests", "testCases": cases}]});
    if status == "FAILED" {
        body["context"] = json!(
            "COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101"
        );
    }
    let url = format!("{}/codebuild/complete", emulators.admin);
    crate::http::json("POST", &url, Some(&body)).await;
}

/// Prints the comments after the first `seen`, as the author reads them; returns how many there are.
async fn show_comments(
    author: &aws_config::SdkConfig,
    id: &str,
    seen: usize,
    timeline: &Timeline,
) -> usize {
    let comments = crate::scenarios::pull_requests::comments(author, id).await;
    for comment in comments.iter().skip(seen) {
        timeline.step("author sees", comment);
    }
    comments.len()
}

async fn approvals(author: &aws_config::SdkConfig, id: &str) -> Vec<String> {
    let codecommit = aws_sdk_codecommit::Client::new(author);
    let revision = codecommit
        .get_pull_request()
        .pull_request_id(id)
        .send()
        .await
        .unwrap()
        .pull_request
        .and_then(|p| p.revision_id)
        .unwrap_or_default();
    codecommit
        .get_pull_request_approval_states()
        .pull_request_id(id)
        .revision_id(revision)
        .send()
        .await
        .unwrap()
        .approvals()
        .iter()
        .filter_map(|a| a.approval_state().map(|s| s.as_str().to_owned()))
        .collect()
}
