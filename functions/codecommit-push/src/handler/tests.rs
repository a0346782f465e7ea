use mockall::predicate::eq;
use serde_json::json;
use shared::UpstreamError;
use shared::ports::{
    Commit, MockPipelineApi, MockRepositoryApi, SourceAction, StartedExecution, reply,
};

use super::*;
use crate::config::Config;

const PUSH_MAIN_COMMIT: &str = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e";

fn event(name: &str) -> Value {
    let path = format!(
        "{}/../../events/codecommit-push/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The routes the sample events are written for: `events/env.json`, the variables file
/// `sam local invoke --env-vars` reads.
fn routes() -> Routes {
    let path = format!("{}/../../events/env.json", env!("CARGO_MANIFEST_DIR"));
    let env: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variables = env["CodeCommitPushFunction"].clone();
    Config::from_lookup(|name| variables[name].as_str().map(str::to_owned))
        .unwrap()
        .routes
}

fn commit_of(name: &str) -> String {
    event(name)["detail"]["commitId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn id_of(name: &str) -> String {
    event(name)["id"].as_str().unwrap().to_owned()
}

fn decision(name: &str, routes: &Routes) -> Result<Decision<'static>, InvalidEvent> {
    // Leaked so the decision can borrow the routes past this helper; tests only.
    let routes: &'static Routes = Box::leak(Box::new(routes.clone()));
    decide(&parse(event(name))?, routes)
}

fn commit(id: &str, message: &str) -> Commit {
    Commit {
        id: id.to_owned(),
        message: message.to_owned(),
        author: Some("Mary Major".to_owned()),
    }
}

fn repository_with(
    repository: &'static str,
    id: String,
    message: &'static str,
) -> MockRepositoryApi {
    let mut repositories = MockRepositoryApi::new();
    let tip = id.clone();
    repositories
        .expect_branch_tip()
        .returning(move |_, _| reply(Ok(Some(tip.clone()))));
    let returned = commit(&id, message);
    repositories
        .expect_commit()
        .with(eq(repository), eq(id))
        .times(1)
        .returning(move |_, _| reply(Ok(returned.clone())));
    repositories
}

fn started(pipeline: &str, execution_id: &str) -> StartedExecution {
    StartedExecution {
        pipeline: pipeline.to_owned(),
        execution_id: execution_id.to_owned(),
    }
}

#[test]
fn the_sample_commit_ids_are_the_ones_these_tests_expect() {
    assert_eq!(commit_of("push-main.json"), PUSH_MAIN_COMMIT);
}

#[test]
fn a_push_to_a_routed_branch_builds_exactly_that_commit() {
    let routes = routes();
    let Decision::Build(push) = decision("push-main.json", &routes).unwrap() else {
        panic!("push-main.json should build");
    };
    assert_eq!(push.repository, "shop");
    assert_eq!(push.branch, "main");
    assert_eq!(push.commit_id, PUSH_MAIN_COMMIT);
    assert_eq!(push.event_id, id_of("push-main.json"));
    let pipelines: Vec<_> = push.routes.iter().map(|r| r.pipeline.as_str()).collect();
    assert_eq!(pipelines, ["shop-main"]);
}

#[test]
fn a_new_branch_matching_a_pattern_builds() {
    let routes = routes();
    let Decision::Build(push) = decision("branch-created-release.json", &routes).unwrap() else {
        panic!("a new release branch should build");
    };
    assert_eq!(push.branch, "release/2.4");
    assert_eq!(push.routes[0].pipeline, "shop-release");
    assert_eq!(push.routes[0].source_action.as_deref(), Some("Source"));
}

#[test]
fn a_merge_into_a_routed_branch_builds_the_merge_commit() {
    let routes = routes();
    let Decision::Build(push) = decision("merge-into-main.json", &routes).unwrap() else {
        panic!("a merge into main should build");
    };
    assert_eq!(push.commit_id, commit_of("merge-into-main.json"));
}

#[test]
fn changes_that_are_not_pushes_to_routed_branches_are_ignored() {
    let routes = routes();
    let cases = [
        (
            "push-unrouted-branch.json",
            IgnoreReason::Unrouted {
                repository: "shop".into(),
                branch: "experiment/cache".into(),
            },
        ),
        (
            "branch-deleted.json",
            IgnoreReason::ReferenceDeleted {
                reference: "refs/heads/release/2.3".into(),
            },
        ),
        (
            "tag-created.json",
            IgnoreReason::Tag {
                tag: "v2.4.0".into(),
            },
        ),
        ("unreferenced-merge-commit.json", IgnoreReason::NotAPush),
    ];
    for (name, expected) in cases {
        assert_eq!(
            decision(name, &routes).unwrap(),
            Decision::Ignore(expected),
            "{name}"
        );
    }
}

#[test]
fn malformed_and_foreign_events_are_invalid_and_name_the_field() {
    let routes = routes();
    let missing = decision("invalid-missing-commit-id.json", &routes).unwrap_err();
    assert_eq!(missing.message(), "missing field `detail.commitId`");

    let foreign = decision("invalid-foreign-pull-request.json", &routes).unwrap_err();
    assert!(
        foreign
            .message()
            .contains("\"CodeCommit Pull Request State Change\" is not handled here"),
        "{foreign}"
    );

    let mut no_repository = event("push-main.json");
    no_repository["detail"]
        .as_object_mut()
        .unwrap()
        .remove("repositoryName");
    let error = parse(no_repository).unwrap_err();
    assert_eq!(error.message(), "detail: missing field `repositoryName`");

    let mut no_type = event("push-main.json");
    no_type["detail"]
        .as_object_mut()
        .unwrap()
        .remove("referenceType");
    assert_eq!(
        decide(&parse(no_type).unwrap(), &routes)
            .unwrap_err()
            .message(),
        "missing field `detail.referenceType`"
    );

    let mut bad_commit = event("push-main.json");
    bad_commit["detail"]["commitId"] = json!("HEAD; rm -rf /");
    assert!(
        decide(&parse(bad_commit).unwrap(), &routes)
            .unwrap_err()
            .message()
            .starts_with("detail.commitId: not a commit id")
    );

    let mut bad_id = event("push-main.json");
    bad_id["id"] = json!("not a token!");
    assert!(
        decide(&parse(bad_id).unwrap(), &routes)
            .unwrap_err()
            .message()
            .starts_with("id:")
    );
}

#[test]
fn skip_markers_are_found_in_any_case_anywhere_in_the_message() {
    assert_eq!(skip_marker("docs: typo [skip ci]"), Some("[skip ci]"));
    assert_eq!(
        skip_marker("Docs\n\n[CI SKIP] nothing to build"),
        Some("[ci skip]")
    );
    assert_eq!(skip_marker("fix: skip ci flakiness"), None);
    assert_eq!(skip_marker("feat: checkout"), None);
}

#[tokio::test]
async fn a_routed_push_starts_the_pipeline_on_the_commit_with_the_event_id_as_token() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_codecommit_source_actions()
        .with(eq("shop-main"), eq("shop"))
        .times(1)
        .returning(|_, _| {
            reply({
                Ok(vec![SourceAction {
                    name: "Checkout".into(),
                    branch: Some("main".into()),
                }])
            })
        });
    let expected = StartExecution {
        pipeline: "shop-main".into(),
        source_action: "Checkout".into(),
        commit_id: PUSH_MAIN_COMMIT.into(),
        client_request_token: id_of("push-main.json"),
    };
    pipelines
        .expect_start_execution()
        .with(eq(expected))
        .times(1)
        .returning(|_| reply(Ok(started("shop-main", "e-1"))));
    let repositories = repository_with("shop", PUSH_MAIN_COMMIT.into(), "feat: one-click checkout");
    let deps = Deps::new(pipelines, repositories, routes());

    let outcome = handle(&deps, event("push-main.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Started {
            repository: "shop".into(),
            branch: "main".into(),
            commit_id: PUSH_MAIN_COMMIT.into(),
            executions: vec![Execution {
                pipeline: "shop-main".into(),
                execution_id: "e-1".into()
            }],
        }
    );
}

#[tokio::test]
async fn the_source_action_is_looked_up_once_per_cold_start() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_codecommit_source_actions()
        .times(1)
        .returning(|_, _| {
            reply(Ok(vec![SourceAction {
                name: "Source".into(),
                branch: None,
            }]))
        });
    pipelines
        .expect_start_execution()
        .times(2)
        .returning(|request| reply(Ok(started(&request.pipeline, "e"))));
    let mut repositories = MockRepositoryApi::new();
    // Each push is the branch's tip when its event is handled.
    let tips = std::sync::Mutex::new(vec![
        commit_of("merge-into-main.json"),
        commit_of("push-main.json"),
    ]);
    repositories
        .expect_branch_tip()
        .times(2)
        .returning(move |_, _| reply(Ok(tips.lock().unwrap().pop())));
    repositories
        .expect_commit()
        .times(2)
        .returning(|_, id| reply(Ok(commit(id, "feat"))));
    let deps = Deps::new(pipelines, repositories, routes());

    handle(&deps, event("push-main.json")).await.unwrap();
    handle(&deps, event("merge-into-main.json")).await.unwrap();
}

#[tokio::test]
async fn a_route_naming_its_source_action_needs_no_lookup() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_start_execution()
        .withf(|request| request.pipeline == "shop-release" && request.source_action == "Source")
        .times(1)
        .returning(|request| reply(Ok(started(&request.pipeline, "e-2"))));
    let repositories = repository_with(
        "shop",
        commit_of("branch-created-release.json"),
        "chore: release 2.4",
    );
    let deps = Deps::new(pipelines, repositories, routes());

    let outcome = handle(&deps, event("branch-created-release.json"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Started { .. }));
}

#[tokio::test]
async fn a_commit_asking_to_skip_ci_starts_nothing() {
    let pipelines = MockPipelineApi::new();
    let repositories = repository_with(
        "shop",
        commit_of("push-skip-ci.json"),
        "docs: fix the README typo\n\n[skip ci]",
    );
    let deps = Deps::new(pipelines, repositories, routes());

    let outcome = handle(&deps, event("push-skip-ci.json")).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Ignored {
            reason: IgnoreReason::SkipCi {
                marker: "[skip ci]".into(),
                commit_id: commit_of("push-skip-ci.json"),
            }
        }
    );
}

#[tokio::test]
async fn ignored_changes_call_nothing() {
    for name in [
        "push-unrouted-branch.json",
        "branch-deleted.json",
        "tag-created.json",
        "unreferenced-merge-commit.json",
    ] {
        let deps = Deps::new(MockPipelineApi::new(), MockRepositoryApi::new(), routes());
        let outcome = handle(&deps, event(name)).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{name}");
    }
}

#[tokio::test]
async fn invalid_events_are_typed_errors_and_call_nothing() {
    for name in [
        "invalid-missing-commit-id.json",
        "invalid-foreign-pull-request.json",
    ] {
        let deps = Deps::new(MockPipelineApi::new(), MockRepositoryApi::new(), routes());
        let error = handle(&deps, event(name)).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent", "{name}");
    }
    for payload in [json!(null), json!("push"), json!({"detail-type": 7})] {
        let deps = Deps::new(MockPipelineApi::new(), MockRepositoryApi::new(), routes());
        let error = handle(&deps, payload).await.unwrap_err();
        assert_eq!(error.error_type(), "InvalidEvent");
    }
}

#[tokio::test]
async fn a_failed_start_fails_the_invocation_and_forgets_the_cached_source_action() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_codecommit_source_actions()
        .times(2)
        .returning(|_, _| {
            reply(Ok(vec![SourceAction {
                name: "Source".into(),
                branch: None,
            }]))
        });
    let mut attempts = 0;
    pipelines
        .expect_start_execution()
        .times(2)
        .returning(move |request| {
            reply({
                attempts += 1;
                if attempts == 1 {
                    Err(UpstreamError::new(
                        "CodePipeline",
                        "StartPipelineExecution",
                        Some("ValidationException".into()),
                        "action Source does not exist",
                    ))
                } else {
                    Ok(started(&request.pipeline, "e-3"))
                }
            })
        });
    let mut repositories = MockRepositoryApi::new();
    repositories
        .expect_branch_tip()
        .times(2)
        .returning(|_, _| reply(Ok(Some(PUSH_MAIN_COMMIT.into()))));
    repositories
        .expect_commit()
        .times(2)
        .returning(|_, id| reply(Ok(commit(id, "feat"))));
    let deps = Deps::new(pipelines, repositories, routes());

    let error = handle(&deps, event("push-main.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
    assert!(error.to_string().contains("action Source does not exist"));

    // Lambda's retry delivers the same event again: the lookup is redone, and it starts.
    let outcome = handle(&deps, event("push-main.json")).await.unwrap();
    assert!(matches!(outcome, Outcome::Started { .. }));
}

#[tokio::test]
async fn one_failing_pipeline_does_not_hold_back_the_others() {
    let routes = Config::from_lookup(|_| {
        Some(
            r#"[{"repository":"shop","branch":"main","pipeline":"shop-broken","sourceAction":"Source"},
                {"repository":"shop","branch":"**","pipeline":"shop-scan","sourceAction":"Source"}]"#
                .to_owned(),
        )
    })
    .unwrap()
    .routes;
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_start_execution()
        .withf(|request| request.pipeline == "shop-broken")
        .times(1)
        .returning(|_| {
            reply({
                Err(UpstreamError::new(
                    "CodePipeline",
                    "StartPipelineExecution",
                    Some("PipelineNotFoundException".into()),
                    "no pipeline shop-broken",
                ))
            })
        });
    pipelines
        .expect_start_execution()
        .withf(|request| request.pipeline == "shop-scan")
        .times(1)
        .returning(|_| reply(Ok(started("shop-scan", "e-4"))));
    let repositories = repository_with("shop", PUSH_MAIN_COMMIT.into(), "feat");
    let deps = Deps::new(pipelines, repositories, routes);

    let error = handle(&deps, event("push-main.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn a_pipeline_without_a_matching_source_action_is_a_config_error() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_codecommit_source_actions()
        .times(1)
        .returning(|_, _| {
            reply({
                Ok(vec![
                    SourceAction {
                        name: "App".into(),
                        branch: Some("develop".into()),
                    },
                    SourceAction {
                        name: "Infra".into(),
                        branch: Some("develop".into()),
                    },
                ])
            })
        });
    let repositories = repository_with("shop", PUSH_MAIN_COMMIT.into(), "feat");
    let deps = Deps::new(pipelines, repositories, routes());

    let error = handle(&deps, event("push-main.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Config");
    assert!(
        error
            .to_string()
            .contains("(App, Infra); name one with \"sourceAction\""),
        "{error}"
    );
}

#[tokio::test]
async fn of_several_source_actions_the_one_following_the_pushed_branch_is_used() {
    let mut pipelines = MockPipelineApi::new();
    pipelines
        .expect_codecommit_source_actions()
        .times(1)
        .returning(|_, _| {
            reply({
                Ok(vec![
                    SourceAction {
                        name: "Develop".into(),
                        branch: Some("develop".into()),
                    },
                    SourceAction {
                        name: "Main".into(),
                        branch: Some("main".into()),
                    },
                ])
            })
        });
    pipelines
        .expect_start_execution()
        .withf(|request| request.source_action == "Main")
        .times(1)
        .returning(|request| reply(Ok(started(&request.pipeline, "e-5"))));
    let repositories = repository_with("shop", PUSH_MAIN_COMMIT.into(), "feat");
    let deps = Deps::new(pipelines, repositories, routes());

    handle(&deps, event("push-main.json")).await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_lookup_fails_the_invocation_before_starting_anything() {
    let mut repositories = MockRepositoryApi::new();
    repositories
        .expect_branch_tip()
        .returning(|_, _| reply(Ok(Some(PUSH_MAIN_COMMIT.into()))));
    repositories.expect_commit().times(1).returning(|_, _| {
        reply({
            Err(UpstreamError::new(
                "CodeCommit",
                "GetCommit",
                Some("ThrottlingException".into()),
                "Rate exceeded",
            ))
        })
    });
    let deps = Deps::new(MockPipelineApi::new(), repositories, routes());

    let error = handle(&deps, event("push-main.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}

#[tokio::test]
async fn a_push_the_branch_has_moved_on_from_starts_nothing() {
    let newer = "4b7615d6a1e26f8d0cb3f1ac2f0e8a5c9d3b7e21";
    let mut repositories = MockRepositoryApi::new();
    repositories
        .expect_branch_tip()
        .with(eq("shop"), eq("main"))
        .times(1)
        .returning(move |_, _| reply(Ok(Some(newer.into()))));
    // No GetCommit, no start: MockPipelineApi fails the test on any call.
    let deps = Deps::new(MockPipelineApi::new(), repositories, routes());

    let outcome = handle(&deps, event("push-main.json")).await.unwrap();

    let reason = IgnoreReason::Superseded {
        commit_id: PUSH_MAIN_COMMIT.into(),
        tip: Some(newer.into()),
    };
    assert_eq!(
        reason.to_string(),
        "commit 0ccf1ae is no longer the branch's tip (now 4b7615d)"
    );
    assert_eq!(outcome, Outcome::Ignored { reason });
}

#[tokio::test]
async fn a_push_to_a_branch_deleted_since_starts_nothing() {
    let mut repositories = MockRepositoryApi::new();
    repositories
        .expect_branch_tip()
        .times(1)
        .returning(|_, _| reply(Ok(None)));
    let deps = Deps::new(MockPipelineApi::new(), repositories, routes());

    let outcome = handle(&deps, event("push-main.json")).await.unwrap();

    assert!(
        matches!(
            outcome,
            Outcome::Ignored {
                reason: IgnoreReason::Superseded { tip: None, .. }
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_branch_lookup_fails_the_invocation_so_it_is_retried() {
    let mut repositories = MockRepositoryApi::new();
    repositories.expect_branch_tip().times(1).returning(|_, _| {
        reply(Err(UpstreamError::new(
            "CodeCommit",
            "GetBranch",
            Some("ThrottlingException".into()),
            "Rate exceeded",
        )))
    });
    let deps = Deps::new(MockPipelineApi::new(), repositories, routes());

    let error = handle(&deps, event("push-main.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Upstream");
}
