//! The whole story, against the emulators with the real function binaries: what each person
//! sees from a push to a deployment, a failing build, an approval by email link, a rollout, a bad
//! image rolled back, a canary release stopped by an alarm, a pull request validated, and a
//! promotion from staging to production. The local flow (`tests/scripts/flow`) tells it; the
//! end-to-end test (`tests/tests/end_to_end.rs`) runs it and fails on any step that did not happen.

mod canary;
mod promotion;
mod pull_request;

use crate::codebuild::variable;
use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::approvals::{self, APPROVERS};
use crate::aws::sdk_config;
use crate::pipeline_events::PipelineEventBus;
use crate::runtime_api::InvocationResult;
use crate::scenarios::deployments::{ecr_repository, push_tag};
use crate::timeline::Timeline;
use crate::{
    Emulators, Function, FunctionUrl, event_id, fixtures, http, kubernetes, sample_event, unique,
};

/// The names of everything the story sets up.
#[derive(Debug, Clone)]
pub struct Names {
    /// The application's repository.
    pub repository: String,
    /// The pipeline delivering its `main`.
    pub pipeline: String,
    /// The pipeline's image build project.
    pub image_project: String,
    /// The pull-request validation project.
    pub pull_request_project: String,
    /// The EKS cluster.
    pub cluster: String,
    /// The application's namespace.
    pub namespace: String,
}

impl Names {
    /// The names `infra/pipeline.yaml` uses by default: for the local flow, on fresh emulators.
    pub fn as_deployed() -> Self {
        Self {
            repository: "shop".into(),
            pipeline: "shop-main".into(),
            image_project: "shop-image".into(),
            pull_request_project: "shop-pr".into(),
            cluster: "shop-prod".into(),
            namespace: "shop".into(),
        }
    }

    /// Names of this run only, for a test sharing the emulators with others.
    pub fn unique() -> Self {
        Self {
            repository: unique("shop"),
            pipeline: unique("shop-main"),
            image_project: unique("shop-image"),
            pull_request_project: unique("shop-pr"),
            cluster: unique("shop-prod"),
            namespace: unique("shop"),
        }
    }
}

/// The image repository the build pushes to.
const REGISTRY_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop";
/// The application's progress deadline in the story (infra/k8s/app.yaml has 300 s).
const PROGRESS_DEADLINE_SECONDS: i32 = 5;
/// The address subscribed to build notifications of main (the template's example filter).
const TEAM: &str = "team@example.com";

/// Everything running: the emulators' clients, the functions, and where mail lands.
struct World {
    emulators: Emulators,
    sdk: SdkConfig,
    names: Names,
    kube: kube::Client,
    approval_requests: String,
    approvers_topic: String,
    builds_topic: String,
    push: Function,
    build_status: Function,
    notify: Function,
    callback: FunctionUrl,
    deploy: Function,
    deliveries_topic: String,
    delivery: Function,
    pipeline_events: PipelineEventBus,
    ledger: String,
}

/// Tells the whole story on `timeline`.
pub async fn tell(names: Names, timeline: &mut Timeline) {
    let world = set_up(names, timeline).await;

    timeline.chapter("A developer pushes a change to main");
    let initial = fixtures::commit(
        &world.sdk,
        &world.names.repository,
        "main",
        None,
        "chore: initial import",
    )
    .await;
    let (checkout, push) = world
        .push_commit(&initial, "feat: one-click checkout", timeline)
        .await;
    let Some(first_run) = world.pipeline_started(&checkout, timeline).await else {
        return;
    };
    world.redeliver(&push, timeline).await;

    timeline.chapter("The build fails, and the team is told");
    world
        .build(&first_run, &checkout, Outcome::Fails, timeline)
        .await;
    let status = world.execution_status(&first_run).await;
    timeline.step(
        "CodePipeline",
        &format!("{}: execution {status}", world.names.pipeline),
    );
    timeline.expect(status == "Failed", "a failed build stops the pipeline");
    world
        .tell_deliveries(
            timeline,
            "FAILED",
            "the release's end is told: failed at the build",
        )
        .await;

    timeline.chapter("A fix is pushed: the build passes, the team is told it is fixed");
    let (fix, _) = world
        .push_commit(&checkout, "fix: checkout totals", timeline)
        .await;
    let Some(second_run) = world.pipeline_started(&fix, timeline).await else {
        return;
    };
    let good_image = world
        .build(&second_run, &fix, Outcome::Passes, timeline)
        .await;

    timeline.chapter("The pipeline waits for approval: an approver decides by email link");
    world.approve(timeline).await;

    timeline.chapter("eks-deploy puts the new image into the cluster");
    world
        .deploy(&second_run, &good_image, Rollout::Completes, timeline)
        .await;
    world
        .tell_deliveries(
            timeline,
            "DEPLOYED",
            "the release's end is told: deployed, counted in the DORA metrics",
        )
        .await;

    timeline.chapter("A change whose image never starts: rolled back, the pipeline fails");
    let (broken, _) = world
        .push_commit(&fix, "feat: new image base", timeline)
        .await;
    let Some(third_run) = world.pipeline_started(&broken, timeline).await else {
        return;
    };
    let bad_image = world
        .build(&third_run, &broken, Outcome::PassesWithBadImage, timeline)
        .await;
    world.approve(timeline).await;
    world
        .deploy(
            &third_run,
            &bad_image,
            Rollout::FailsThenRollsBackTo(good_image.clone()),
            timeline,
        )
        .await;
    world
        .tell_deliveries(
            timeline,
            "ROLLED_BACK",
            "the release's end is told: rolled back, and why",
        )
        .await;

    canary::tell(
        &world.emulators,
        &world.sdk,
        &world.names,
        &world.kube,
        &world.deploy,
        timeline,
    )
    .await;

    let reviewed = pull_request::tell(
        &world.emulators,
        &world.sdk,
        &world.names,
        &broken,
        &world.ledger,
        timeline,
    )
    .await;
    if let Some(reviewed) = reviewed {
        world.merge_and_deliver(reviewed, &broken, timeline).await;
    }

    promotion::tell(&world, timeline).await;
}

async fn set_up(names: Names, timeline: &mut Timeline) -> World {
    timeline.chapter("Set-up: what `sam deploy` and infra/pipeline.yaml create");
    let emulators = Emulators::load();
    let sdk = sdk_config(&emulators).await;
    fixtures::repository(&sdk, &names.repository).await;
    fixtures::image_project(&sdk, &names.image_project).await;
    let approval_requests = fixtures::topic(&sdk, &unique("approval-requests")).await;
    let approvers_topic = fixtures::topic(&sdk, &unique("approvers")).await;
    for approver in APPROVERS {
        fixtures::approver_subscription(&sdk, &approvers_topic, approver).await;
    }
    let builds_topic = fixtures::topic(&sdk, &unique("build-notifications")).await;
    subscribe_team(&sdk, &builds_topic).await;
    let ledger = unique("ledger");
    fixtures::ledger_table(&sdk, &ledger).await;
    let deliveries_topic = fixtures::topic(&sdk, &unique("delivery-notifications")).await;
    subscribe_team_to_deliveries(&sdk, &deliveries_topic).await;
    let secret = unique("approval-signing-key");
    fixtures::secret(
        &sdk,
        &secret,
        &format!("{}-0123456789abcdefghijklmnopqrstuvwxyz", unique("key")),
    )
    .await;
    kubernetes::eks_cluster(&sdk, &names.cluster).await;
    let kube = kubernetes::client(&emulators);
    let version = kube
        .apiserver_version()
        .await
        .map(|info| info.git_version)
        .unwrap_or_default();
    // The manifests as shipped, in the story's namespace; only the progress deadline is
    // shortened, so that the image that cannot be pulled fails in seconds, not in 5 minutes.
    let namespace = names.namespace.clone();
    let manifests = [
        kubernetes::manifest("infra/k8s/app.yaml"),
        kubernetes::manifest("infra/k8s/rbac.yaml"),
    ]
    .concat();
    kubernetes::apply(&kube, manifests, |object| {
        if object["kind"] == "Namespace" {
            object["metadata"]["name"] = json!(namespace);
        } else {
            object["metadata"]["namespace"] = json!(namespace);
        }
        if object["kind"] == "Deployment" {
            object["spec"]["progressDeadlineSeconds"] = json!(PROGRESS_DEADLINE_SECONDS);
        }
    })
    .await;
    let first = kubernetes::settled(
        &kube,
        &names.namespace,
        "web",
        std::time::Duration::from_secs(60),
    )
    .await;
    timeline.step(
        "kubectl",
        &format!(
            "Kubernetes {version} (kube-apiserver /version, kwok's nodes): apply -f infra/k8s/app.yaml \
             -f infra/k8s/rbac.yaml in {} (progressDeadlineSeconds {PROGRESS_DEADLINE_SECONDS}): web {}",
            names.namespace,
            match eks_deploy::rollout::status_of(&first) {
                eks_deploy::rollout::RolloutStatus::Complete { replicas } =>
                    format!("rolled out, {replicas} replicas"),
                other => format!("{other:?}"),
            }
        ),
    );
    timeline.expect(
        version.starts_with("v1."),
        "the cluster is a real Kubernetes API server that says its version",
    );
    let user_parameters = json!({"cluster": names.cluster, "namespace": names.namespace, "deployment": "web",
                                 "container": "web", "image": "#{BuildVariables.IMAGE_URI}"});
    fixtures::PipelineSpec::new(&names.pipeline, &names.repository, "main")
        .build(&names.image_project)
        .approval(&approval_requests)
        .deploy("eks-deploy", &user_parameters.to_string())
        .create(&sdk)
        .await;
    timeline.step(
        "platform team",
        &format!(
            "repository {}, pipeline {} (Source → Build → Approval → Deploy), cluster {} running {}/web",
            names.repository, names.pipeline, names.cluster, names.namespace
        ),
    );

    let env = |extra: &[(&str, String)]| {
        let mut env = emulators.function_env();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        env
    };
    let routes =
        json!([{"repository": names.repository, "branch": "main", "pipeline": names.pipeline}])
            .to_string();
    let key = format!("secretsmanager:{secret}");
    let push = Function::start("codecommit-push", &env(&[("PIPELINE_ROUTES", routes)])).await;
    let build_status = Function::start(
        "codebuild-status",
        &env(&[
            ("TOPIC_ARN", builds_topic.clone()),
            ("LEDGER_TABLE", ledger.clone()),
            ("PR_VALIDATION_PROJECT", names.pull_request_project.clone()),
            ("REPORT_GROUPS", format!("{}-tests", names.image_project)),
        ]),
    )
    .await;
    let callback =
        FunctionUrl::start("approval-callback", &env(&[("SIGNING_KEY", key.clone())])).await;
    let notify = Function::start(
        "approval-notify",
        &env(&[
            ("APPROVERS_TOPIC_ARN", approvers_topic.clone()),
            ("APPROVERS", APPROVERS.join(",")),
            ("CALLBACK_URL", callback.url()),
            ("SIGNING_KEY", key),
            ("LEDGER_TABLE", ledger.clone()),
        ]),
    )
    .await;
    let deploy = Function::start("eks-deploy", &env(&[])).await;
    let delivery = Function::start(
        "delivery-events",
        &env(&[
            ("TOPIC_ARN", deliveries_topic.clone()),
            ("LEDGER_TABLE", ledger.clone()),
            (
                "PIPELINE_ENVIRONMENTS",
                json!({ names.pipeline.clone(): "production" }).to_string(),
            ),
        ]),
    )
    .await;
    let pipeline_events = PipelineEventBus::new(&emulators, &names.pipeline).await;
    timeline.step(
        "sam deploy",
        "codecommit-push, codebuild-status, approval-notify, approval-callback (Function URL), eks-deploy, delivery-events",
    );
    World {
        emulators,
        sdk,
        names,
        kube,
        approval_requests,
        approvers_topic,
        builds_topic,
        push,
        build_status,
        notify,
        callback,
        deploy,
        deliveries_topic,
        delivery,
        pipeline_events,
        ledger,
    }
}

/// How a build goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fails,
    Passes,
    PassesWithBadImage,
    /// Passes after a passing build: nobody is told.
    PassesAgain,
}

/// How a rollout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rollout {
    Completes,
    FailsThenRollsBackTo(String),
}

impl World {
    /// A developer pushes a commit on main; CodeCommit tells codecommit-push. Returns the
    /// commit and the event.
    async fn push_commit(
        &self,
        parent: &str,
        message: &str,
        timeline: &mut Timeline,
    ) -> (String, Value) {
        let commit = fixtures::commit(
            &self.sdk,
            &self.names.repository,
            "main",
            Some(parent),
            message,
        )
        .await;
        timeline.step(
            "developer",
            &format!("git push origin main  ({} \"{message}\")", &commit[..7]),
        );
        let event = self.push_event(parent, &commit);
        let response = self.push.invoke(&event).await;
        match &response {
            InvocationResult::Response(value) => {
                timeline.step("codecommit-push", &format!("{}", value["outcome"]))
            }
            other => timeline.step("codecommit-push", &format!("failed: {other:?}")),
        }
        (commit, event)
    }

    fn push_event(&self, parent: &str, commit: &str) -> Value {
        let mut event = sample_event("codecommit-push", "push-main.json");
        event["id"] = json!(event_id());
        event["resources"] = json!([format!(
            "arn:aws:codecommit:us-east-1:123456789012:{}",
            self.names.repository
        )]);
        event["detail"]["repositoryName"] = json!(self.names.repository);
        event["detail"]["commitId"] = json!(commit);
        event["detail"]["oldCommitId"] = json!(parent);
        event
    }

    /// The execution started on `commit`, if there is exactly one.
    async fn pipeline_started(&self, commit: &str, timeline: &mut Timeline) -> Option<String> {
        let summaries = aws_sdk_codepipeline::Client::new(&self.sdk)
            .list_pipeline_executions()
            .pipeline_name(&self.names.pipeline)
            .send()
            .await
            .unwrap()
            .pipeline_execution_summaries()
            .to_vec();
        let on_commit: Vec<_> = summaries
            .iter()
            .filter(|s| {
                s.source_revisions()
                    .iter()
                    .any(|r| r.revision_id() == Some(commit))
            })
            .collect();
        let execution = on_commit
            .first()
            .and_then(|s| s.pipeline_execution_id())
            .map(str::to_owned);
        timeline.step(
            "CodePipeline",
            &format!(
                "{}: execution {} on commit {}",
                self.names.pipeline,
                execution.as_deref().unwrap_or("-"),
                &commit[..7]
            ),
        );
        timeline.expect(
            on_commit.len() == 1,
            "the pipeline started once, on exactly the pushed commit",
        );
        execution
    }

    /// EventBridge delivers `push` again (the same event id).
    async fn redeliver(&self, push: &Value, timeline: &mut Timeline) {
        let before = self.executions().await;
        let again = self.push.invoke(push).await;
        timeline.step("EventBridge", "delivers the same push event again");
        if let InvocationResult::Response(value) = &again {
            timeline.step("codecommit-push", &format!("{}", value["outcome"]));
        }
        timeline.expect(
            self.executions().await == before,
            "the redelivery started nothing more",
        );
    }

    async fn executions(&self) -> usize {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .list_pipeline_executions()
            .pipeline_name(&self.names.pipeline)
            .send()
            .await
            .unwrap()
            .pipeline_execution_summaries()
            .len()
    }

    async fn execution_status(&self, execution: &str) -> String {
        aws_sdk_codepipeline::Client::new(&self.sdk)
            .get_pipeline_execution()
            .pipeline_name(&self.names.pipeline)
            .pipeline_execution_id(execution)
            .send()
            .await
            .unwrap()
            .pipeline_execution()
            .and_then(|e| e.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    }

    /// The pipeline's Build action runs the image build of `commit`: CodeBuild reports it,
    /// codebuild-status tells the team when there is news, and the action ends. Returns the
    /// image built.
    async fn build(
        &self,
        execution: &str,
        commit: &str,
        outcome: Outcome,
        timeline: &mut Timeline,
    ) -> String {
        // What infra/buildspec-image.yml does: push the commit's tag to ECR and export the image
        // pinned to its digest. The local cluster's convention: an image whose reference says
        // "unpullable" never pulls (pinned, only the repository's name is left to say it).
        let image = match outcome {
            Outcome::Fails => format!("{REGISTRY}:{}", &commit[..12]),
            _ => {
                let repository = if outcome == Outcome::PassesWithBadImage {
                    "shop-unpullable"
                } else {
                    "shop"
                };
                ecr_repository(&self.emulators, repository).await;
                let digest = push_tag(&self.emulators, repository, &commit[..12]).await;
                format!("{REGISTRY_HOST}/{repository}@{digest}")
            }
        };
        let build = aws_sdk_codebuild::Client::new(&self.sdk)
            .start_build()
            .project_name(&self.names.image_project)
            .environment_variables_override(variable("SOURCE_BRANCH", "main"))
            .environment_variables_override(variable("SOURCE_COMMIT", commit))
            .send()
            .await
            .unwrap()
            .build_value()
            .and_then(|b| b.id())
            .unwrap()
            .to_owned();
        let status = if outcome == Outcome::Fails {
            "FAILED"
        } else {
            "SUCCEEDED"
        };
        // The image's own tests (the Dockerfile's `test` stage) file their JUnit report under
        // `reports: tests` (infra/buildspec-image.yml); when the build fails, one of them broke.
        let mut cases = crate::codebuild::test_cases("SUCCEEDED", 57, "checkout");
        if outcome == Outcome::Fails {
            cases.push(json!({"prefix": "checkout", "name": "pays with a card", "status": "FAILED",
                              "message": "Expected: 200\nReceived: 502", "durationInNanoSeconds": 90_000_000}));
        }
        let mut body = json!({"buildId": build, "status": status, "durationSeconds": 214,
                              "reports": [{"group": "tests", "testCases": cases}]});
        if outcome == Outcome::Fails {
            body["failedPhase"] = json!("BUILD");
            body["context"] = json!(
                "COMMAND_EXECUTION_ERROR: Error while executing command: docker build --pull --target test --output type=local,dest=reports .. Reason: exit status 1"
            );
        }
        http::json(
            "POST",
            &format!("{}/codebuild/complete", self.emulators.admin),
            Some(&body),
        )
        .await;
        timeline.step("CodeBuild", &format!("{build}: {status}"));
        let encoded: String = build.bytes().map(|b| format!("%{b:02X}")).collect();
        let (_, event) = http::json(
            "GET",
            &format!("{}/codebuild/event?buildId={encoded}", self.emulators.admin),
            None,
        )
        .await;
        let before = self.team_inbox().await.len();
        let response = self.build_status.invoke(&event).await;
        if let InvocationResult::Response(value) = &response {
            timeline.step("codebuild-status", &format!("{}", value["outcome"]));
        }
        let inbox = self.team_inbox().await;
        let news: Vec<&Value> = inbox.iter().skip(before).collect();
        for mail in &news {
            timeline.step(
                "team (email)",
                &format!(
                    "{}\n{}",
                    mail["subject"].as_str().unwrap_or_default(),
                    mail["message"].as_str().unwrap_or_default()
                ),
            );
        }
        let subject = news
            .first()
            .and_then(|m| m["subject"].as_str())
            .unwrap_or_default();
        match outcome {
            Outcome::Fails => {
                let message = news
                    .first()
                    .and_then(|m| m["message"].as_str())
                    .unwrap_or_default();
                timeline.expect(
                    news.len() == 1
                        && subject.starts_with("FAILED:")
                        && subject.contains(&commit[..7]),
                    "the team got one email saying the build failed, and why",
                );
                timeline.expect(
                    message.contains("57 passed, 1 failed")
                        && message.contains("checkout.pays with a card: Expected: 200"),
                    "the email names the failing test, with the counts",
                );
                fixtures::complete_action(
                    &self.emulators,
                    execution,
                    "Build",
                    "Build",
                    "Failed",
                    json!({}),
                )
                .await;
            }
            Outcome::Passes | Outcome::PassesWithBadImage | Outcome::PassesAgain => {
                if outcome == Outcome::Passes {
                    timeline.expect(
                        news.len() == 1 && subject.starts_with("FIXED:"),
                        "the team got one email saying main is fixed",
                    );
                } else {
                    timeline.expect(
                        news.is_empty(),
                        "a passing build after a passing one tells nobody",
                    );
                }
                fixtures::complete_action(
                    &self.emulators,
                    execution,
                    "Build",
                    "Build",
                    "Succeeded",
                    json!({"IMAGE_URI": image}),
                )
                .await;
                timeline.step("CodeBuild", &format!("pushed {image}"));
            }
        }
        image
    }

    async fn team_inbox(&self) -> Vec<Value> {
        let url = format!("{}/sns/inbox?endpoint={TEAM}", self.emulators.admin);
        let (_, body) = http::json("GET", &url, None).await;
        body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["topicArn"] == self.builds_topic.as_str())
            .collect()
    }

    /// The approval waits; approval-notify mails the approvers; alice opens her link and approves.
    async fn approve(&self, timeline: &mut Timeline) {
        let url = format!(
            "{}/sns/published?topicArn={}",
            self.emulators.admin, self.approval_requests
        );
        let (_, published) = http::json("GET", &url, None).await;
        let Some(message) = published["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
        else {
            timeline.expect(false, "CodePipeline asked for an approval");
            return;
        };
        timeline.step(
            "CodePipeline",
            "stage Approval waits; the approval request is published to SNS",
        );
        let Some(email) = self.mail_approvers(&message, timeline).await else {
            return;
        };
        let text = email["message"].as_str().unwrap_or_default();
        let shown = without_links(text, 12);
        timeline.step(
            "alice (email)",
            &format!(
                "{}\n{}",
                email["subject"].as_str().unwrap_or_default(),
                shown.join("\n")
            ),
        );
        let Some(approve) = approvals::link_after(text, "Approve:") else {
            timeline.expect(false, "the email holds alice's Approve link");
            return;
        };
        let decided =
            approvals::decide_by_link(&approve, &self.callback.origin(), "Looks good on staging")
                .await;
        timeline.step(
            "alice (browser)",
            &format!(
                "opens the link: HTTP {}, \"{}\"",
                decided.page.status, decided.page_heading
            ),
        );
        timeline.step(
            "alice (browser)",
            &format!(
                "presses Approve: HTTP {}, \"{}\"",
                decided.result.status, decided.result_heading
            ),
        );
        timeline.expect(
            decided.page.status == 200 && decided.result.status == 200,
            "the page showed, and the approval was recorded",
        );
        let replay = http::send("GET", &approve, &[], "").await;
        timeline.expect(
            replay.status == 409,
            "the link is useless once the approval is decided",
        );
    }

    /// approval-notify handles the approval request `message` (as SNS delivered it); alice's
    /// email, or `None` (told on the timeline) when she got none.
    async fn mail_approvers(&self, message: &Value, timeline: &mut Timeline) -> Option<Value> {
        let mut event = sample_event("approval-notify", "approval-needed.json");
        let record = &mut event["Records"][0]["Sns"];
        record["TopicArn"] = json!(self.approval_requests);
        record["MessageId"] = message["messageId"].clone();
        record["Subject"] = message["subject"].clone();
        record["Message"] = message["message"].clone();
        let before = self.approver_inbox("alice@example.com").await.len();
        let sent = match self.notify.invoke(&event).await {
            InvocationResult::Response(value) => value["sent"].clone(),
            other => json!(format!("{other:?}")),
        };
        timeline.step("approval-notify", &format!("mailed {sent}"));
        let email = self
            .approver_inbox("alice@example.com")
            .await
            .get(before)
            .cloned();
        if email.is_none() {
            timeline.expect(false, "alice got an email with her links");
        }
        email
    }

    async fn approver_inbox(&self, address: &str) -> Vec<Value> {
        let url = format!("{}/sns/inbox?endpoint={address}", self.emulators.admin);
        let (_, body) = http::json("GET", &url, None).await;
        body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["topicArn"] == self.approvers_topic.as_str())
            .collect()
    }

    /// The Deploy action's job goes to eks-deploy, which patches the image and follows the
    /// rollout; the pipeline learns the result.
    async fn deploy(
        &self,
        execution: &str,
        image: &str,
        rollout: Rollout,
        timeline: &mut Timeline,
    ) {
        let jobs = fixtures::waiting_jobs(&self.emulators, &self.names.pipeline).await;
        let Some(job) = jobs.first() else {
            timeline.expect(false, "the pipeline reached its Deploy action");
            return;
        };
        timeline.step(
            "CodePipeline",
            &format!(
                "Deploy: invokes eks-deploy (job {})",
                job["jobId"].as_str().unwrap_or("-")
            ),
        );
        let response = self.deploy.invoke(&job["event"]).await;
        let outcome = match &response {
            InvocationResult::Response(value) => value.clone(),
            other => json!({"outcome": format!("{other:?}")}),
        };
        timeline.step(
            "eks-deploy",
            outcome["summary"]
                .as_str()
                .or(outcome["message"].as_str())
                .unwrap_or_default(),
        );
        let deployment = kubernetes::settled(
            &self.kube,
            &self.names.namespace,
            "web",
            std::time::Duration::from_secs(30),
        )
        .await;
        let images: Vec<String> = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| {
                p.containers
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.image.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        timeline.step(
            "kubectl",
            &format!("{}/web: {}", self.names.namespace, images.join(", ")),
        );
        let status = self.execution_status(execution).await;
        timeline.step(
            "CodePipeline",
            &format!("{}: execution {status}", self.names.pipeline),
        );
        match rollout {
            Rollout::Completes => {
                timeline.expect(
                    outcome["outcome"] == "succeeded"
                        && images.first().is_some_and(|i| i.ends_with(image)),
                    "the new image runs on every replica, the other container kept",
                );
                timeline.expect(
                    status == "Succeeded",
                    "the job succeeded: the pipeline is done",
                );
            }
            Rollout::FailsThenRollsBackTo(previous) => {
                let message = outcome["message"].as_str().unwrap_or_default();
                timeline.expect(
                    message.contains("ImagePullBackOff"),
                    "the failure says why: the image cannot be pulled",
                );
                timeline.expect(
                    images.first().is_some_and(|i| i.ends_with(&previous)),
                    "the Deployment was rolled back to the previous image",
                );
                timeline.expect(
                    status == "Failed",
                    "the job failed with the reason: the pipeline stops",
                );
            }
        }
    }
}

impl World {
    /// EventBridge hands delivery-events the pipeline's events its rule routes; the team reads
    /// the delivery notification, and CloudWatch gets the metric lines.
    async fn tell_deliveries(&self, timeline: &mut Timeline, status: &str, what: &str) {
        let logged = self.delivery.logs().len();
        let before = self.delivery_inbox().await.len();
        let delivered = self.pipeline_events.deliver(&self.delivery).await;
        for (event, result) in &delivered {
            let state = event["detail"]["state"].as_str().unwrap_or("?");
            match result {
                InvocationResult::Response(value) => timeline.step(
                    "delivery-events",
                    &format!("{state}: {} {}", value["outcome"], value["status"]),
                ),
                other => timeline.step("delivery-events", &format!("{state}: failed: {other:?}")),
            }
        }
        let inbox = self.delivery_inbox().await;
        let news: Vec<&Value> = inbox.iter().skip(before).collect();
        for mail in &news {
            timeline.step(
                "team (email)",
                &format!(
                    "{}\n{}",
                    mail["subject"].as_str().unwrap_or_default(),
                    mail["message"].as_str().unwrap_or_default()
                ),
            );
        }
        let lines: Vec<String> = self.delivery.logs()[logged..]
            .iter()
            .filter(|line| line.contains("\"_aws\""))
            .cloned()
            .collect();
        for line in &lines {
            timeline.step("CloudWatch (EMF)", line);
        }
        let well_formed = lines.iter().all(|line| crate::emf::check(line).is_ok());
        timeline.expect(
            delivered.len() == 1
                && news.len() == 1
                && news[0]["attributes"]["status"] == status
                && well_formed,
            what,
        );
    }

    async fn delivery_inbox(&self) -> Vec<Value> {
        let url = format!("{}/sns/inbox?endpoint={TEAM}", self.emulators.admin);
        let (_, body) = http::json("GET", &url, None).await;
        body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["topicArn"] == self.deliveries_topic.as_str())
            .collect()
    }

    /// The reviewed pull request is merged; its commit goes through the pipeline to the cluster,
    /// and its author reads on the pull request that it is deployed.
    async fn merge_and_deliver(
        &self,
        reviewed: pull_request::Reviewed,
        main: &str,
        timeline: &mut Timeline,
    ) {
        timeline.chapter(
            "The pull request is merged and goes out: its author hears it on the pull request",
        );
        let merged = reviewed.merge(&self.emulators, timeline).await;
        let Some(merged) = merged else {
            return;
        };
        let event = self.push_event(main, &merged);
        if let InvocationResult::Response(value) = self.push.invoke(&event).await {
            timeline.step("codecommit-push", &format!("{}", value["outcome"]));
        }
        let Some(run) = self.pipeline_started(&merged, timeline).await else {
            return;
        };
        let image = self
            .build(&run, &merged, Outcome::PassesAgain, timeline)
            .await;
        self.approve(timeline).await;
        self.deploy(&run, &image, Rollout::Completes, timeline)
            .await;
        self.tell_deliveries(
            timeline,
            "DEPLOYED",
            "the fix's deploy is told, with how long production took to be restored",
        )
        .await;
        let restored = self
            .delivery
            .logs()
            .iter()
            .any(|line| line.contains("\"TimeToRestoreSeconds\""));
        timeline.expect(
            restored,
            "the deploy after the rollback counts its time to restore",
        );
        let comments = reviewed.comments().await;
        if let Some(last) = comments.last() {
            timeline.step("author sees", last);
        }
        timeline.expect(
            comments.last().is_some_and(|c| {
                c.starts_with("Deployed to production at ")
                    && c.contains("approved by alice@example.com")
            }),
            "the pull request says it is deployed, when, and who approved it",
        );
    }
}

/// The team, subscribed to production's delivery news (a filter on the environment attribute).
async fn subscribe_team_to_deliveries(sdk: &SdkConfig, topic: &str) {
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(topic)
        .protocol("email")
        .endpoint(TEAM)
        .attributes("FilterPolicy", r#"{"environment": ["production"]}"#)
        .send()
        .await
        .unwrap();
}

/// The team's address, subscribed to build news of main only (the template's example policy).
async fn subscribe_team(sdk: &SdkConfig, topic: &str) {
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(topic)
        .protocol("email")
        .endpoint(TEAM)
        .attributes(
            "FilterPolicy",
            r#"{"branch": ["main"], "status": ["FAILED", "TIMED_OUT", "FIXED"]}"#,
        )
        .send()
        .await
        .unwrap();
}

/// The first `max` lines of an approval email without its links: they carry the approval token,
/// which the story never shows.
fn without_links(text: &str, max: usize) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.contains("?link=") && !l.contains("/approve/"))
        .take(max)
        .collect()
}
