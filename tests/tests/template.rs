//! `template.yaml` checked against the code: what SAM builds and deploys must be what the
//! workspace holds, and every sample event must be one its function takes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::path::Path;

use integration_tests::scenarios::deployments::container_images;
use integration_tests::templates::{functions, load as yaml};
use integration_tests::workspace_root;
use serde::Deserialize as _;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// A pipeline execution id, as CodePipeline resolves `#{codepipeline.PipelineExecutionId}`.
const EXECUTION: &str = "3f2c9a1e-7b4d-4c8e-9f10-2a3b4c5d6e7f";

/// The functions DESIGN.md fixes, by binary name.
const FUNCTIONS: &[&str] = &[
    "approval-callback",
    "approval-notify",
    "codebuild-status",
    "codecommit-push",
    "delivery-events",
    "eks-deploy",
    "pr-validator",
];

fn template() -> Value {
    yaml("template.yaml")
}

fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{}: no package name", manifest.display()))
        .to_owned()
}

#[test]
fn every_function_is_built_by_cargo_lambda_from_its_own_binary() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    let mut binaries = BTreeSet::new();
    for (id, function) in functions(&template) {
        let metadata = &function["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{id}");
        let binary = metadata["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no BuildProperties.Binary"));
        let manifest = workspace_root()
            .join("functions")
            .join(binary)
            .join("Cargo.toml");
        assert!(
            manifest.exists(),
            "{id}: {} does not exist",
            manifest.display()
        );
        assert_eq!(
            package_name(&manifest),
            binary,
            "{id}: package and binary names differ"
        );
        assert!(
            binaries.insert(binary.to_owned()),
            "{id}: binary {binary} is built twice"
        );

        let setting = |key: &str| {
            let own = &function["Properties"][key];
            if own.is_null() {
                globals[key].clone()
            } else {
                own.clone()
            }
        };
        assert_eq!(setting("Runtime"), "provided.al2023", "{id}");
        assert_eq!(
            setting("Architectures"),
            serde_yaml_ng::from_str::<Value>("[arm64]").unwrap(),
            "{id}"
        );
        assert_eq!(setting("CodeUri"), "./", "{id}");
        assert_eq!(setting("Handler"), "bootstrap", "{id}");
    }
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        binaries, expected,
        "the template deploys exactly the workspace's functions"
    );
}

#[test]
fn every_workspace_function_is_a_workspace_member() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    for function in FUNCTIONS {
        assert!(
            manifest.contains(&format!("\"functions/{function}\"")),
            "functions/{function} is not a workspace member"
        );
    }
}

/// The variables `events/env.json` gives function `id` (the file `sam local invoke --env-vars`
/// reads), as a settings lookup.
fn local_settings(id: &str) -> impl Fn(&str) -> Option<String> {
    let env: Json = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/env.json")).unwrap(),
    )
    .unwrap();
    let variables = env[id].clone();
    move |name| variables[name].as_str().map(str::to_owned)
}

/// Takes `event` the way function `function` does before any I/O: parsed, then decided.
fn take(function: &str, event: Json) -> Result<(), shared::InvalidEvent> {
    match function {
        "codecommit-push" => {
            let config = codecommit_push::config::Config::from_lookup(local_settings(
                "CodeCommitPushFunction",
            ))
            .unwrap();
            let event = codecommit_push::handler::parse(event)?;
            codecommit_push::handler::decide(&event, &config.routes).map(drop)
        }
        "codebuild-status" => {
            let config = codebuild_status::config::Config::from_lookup(local_settings(
                "CodeBuildStatusFunction",
            ))
            .unwrap();
            match codebuild_status::handler::parse(event)? {
                codebuild_status::handler::Incoming::Build(event) => {
                    codebuild_status::handler::classify(&event.detail, &config);
                    Ok(())
                }
                codebuild_status::handler::Incoming::Sweep(event) => {
                    shared::events::schedule::scheduled_at(&event).map(drop)
                }
            }
        }
        "eks-deploy" => match eks_deploy::handler::parse(event)? {
            // A job's parameters are checked too, but a bad one is reported to the pipeline as a
            // configuration error, not refused as an event.
            eks_deploy::handler::Invocation::Job(_) => Ok(()),
            eks_deploy::handler::Invocation::Direct(payload) => {
                eks_deploy::params::DeployParameters::from_value(payload)
                    .map(drop)
                    .map_err(|e| shared::InvalidEvent::new(e.to_string()))
            }
        },
        "delivery-events" => {
            let config = delivery_events::config::Config::from_lookup(local_settings(
                "DeliveryEventsFunction",
            ))
            .unwrap();
            let event = delivery_events::handler::parse(event)?;
            // Not an end is a skip, which the sample events hold too.
            let _ = delivery_events::handler::classify(&event, &config);
            Ok(())
        }
        "approval-notify" => approval_notify::handler::parse(event).map(drop),
        "approval-callback" => approval_callback::handler::parse(event).map(drop),
        "pr-validator" => {
            let config = pr_validator::config::Config::from_lookup(local_settings(
                "PullRequestValidatorFunction",
            ))
            .unwrap();
            match pr_validator::handler::parse(event)? {
                pr_validator::handler::Incoming::PullRequest(event) => {
                    pr_validator::pull_request::decide(&event, &config).map(drop)
                }
                pr_validator::handler::Incoming::Build(event) => {
                    pr_validator::build::classify(&event.detail, &config).map(drop)
                }
                pr_validator::handler::Incoming::Sweep(event) => {
                    shared::events::schedule::scheduled_at(&event).map(drop)
                }
            }
        }
        other => panic!("no parser known for events/{other}/: add it to this test"),
    }
}

#[test]
fn every_sample_event_is_taken_by_its_function_and_every_invalid_one_refused() {
    let events = workspace_root().join("events");
    let mut checked = 0;
    for function in FUNCTIONS {
        let folder = events.join(function);
        let mut entries: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "no sample events for {function}");
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let event: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let result = take(function, event);
            if name.starts_with("invalid-") {
                assert!(result.is_err(), "{function}/{name} should be refused");
            } else {
                result.unwrap_or_else(|e| panic!("{function}/{name}: {e}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= FUNCTIONS.len());
}

#[test]
fn the_local_variables_file_names_only_template_functions() {
    let template = template();
    let ids: BTreeSet<String> = functions(&template).into_iter().map(|(id, _)| id).collect();
    let env: Json = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/env.json")).unwrap(),
    )
    .unwrap();
    for (id, variables) in env.as_object().unwrap() {
        assert!(
            ids.contains(id),
            "events/env.json names {id}, which the template does not define"
        );
        let declared = &functions(&template)
            .into_iter()
            .find(|(i, _)| i == id)
            .unwrap()
            .1["Properties"]["Environment"]["Variables"];
        for name in variables.as_object().unwrap().keys() {
            assert!(
                !declared[name.as_str()].is_null(),
                "{id}: {name} is not set by the template"
            );
        }
    }
}

/// The environments of `infra/environments.yml`, in order.
fn environments() -> Vec<Value> {
    yaml("infra/environments.yml")["environments"]
        .as_sequence()
        .unwrap()
        .clone()
}

/// What infra/environments.py makes of an environment's name in stage names (`Staging`).
fn title(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn the_pipeline_gives_the_functions_what_they_read() {
    let pipeline = yaml("infra/pipeline.yaml");
    let stages = pipeline["Resources"]["Pipeline"]["Properties"]["Stages"]
        .as_sequence()
        .unwrap();
    let action =
        |stage: &str| stages.iter().find(|s| s["Name"] == stage).unwrap()["Actions"][0].clone();

    // Source, Build, then each environment in order, behind its approval where it asks for one
    // (the generated part: infra/environments.py; tests/emulator/test_environments.py checks
    // the committed file is what it writes).
    let mut expected = vec!["Source".to_owned(), "Build".to_owned()];
    for environment in environments() {
        let title = title(environment["name"].as_str().unwrap());
        if environment["approval"] == true {
            expected.push(format!("Approve{title}"));
        }
        expected.push(format!("Deploy{title}"));
    }
    let names: Vec<_> = stages.iter().map(|s| s["Name"].as_str().unwrap()).collect();
    assert_eq!(names, expected);
    assert!(names.len() >= 4, "staging, then production: {names:?}");

    // codecommit-push starts the pipeline: it must not also start itself.
    assert_eq!(
        action("Source")["Configuration"]["PollForSourceChanges"],
        "false"
    );
    assert!(pipeline["Resources"]["Pipeline"]["Properties"]["Triggers"].is_null());

    // codebuild-status words its emails from the build's branch and commit variables.
    let build = action("Build");
    let variables: Json = serde_json::from_str(
        build["Configuration"]["EnvironmentVariables"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let names: Vec<_> = variables
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&codebuild_status::message::BRANCH_VARIABLE),
        "{names:?}"
    );
    assert!(
        names.contains(&codebuild_status::message::COMMIT_VARIABLE),
        "{names:?}"
    );

    // The build exports the image pinned by digest; every Deploy action hands that one image to
    // eks-deploy, with parameters eks-deploy takes.
    let buildspec = yaml("infra/buildspec-image.yml");
    for variable in ["IMAGE_URI", "IMAGE_DIGEST", "IMAGE_TAG"] {
        assert!(
            buildspec["env"]["exported-variables"]
                .as_sequence()
                .unwrap()
                .contains(&Value::from(variable)),
            "{variable}"
        );
    }
    assert_eq!(build["Namespace"], "BuildVariables");
    let clusters = template()["Parameters"]["ClusterNames"]["Default"]
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect::<BTreeSet<_>>();
    let image = format!(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@sha256:{}",
        "0c".repeat(32)
    );
    for environment in environments() {
        let title = title(environment["name"].as_str().unwrap());
        let deploy = action(&format!("Deploy{title}"));
        assert_eq!(deploy["ActionTypeId"]["Provider"], "Lambda");
        let text = deploy["Configuration"]["UserParameters"].as_str().unwrap();
        assert!(
            text.contains("\"image\":\"#{BuildVariables.IMAGE_URI}\""),
            "{text}"
        );
        let resolved = text
            .replace("#{BuildVariables.IMAGE_URI}", &image)
            .replace("#{codepipeline.PipelineExecutionId}", EXECUTION);
        let fields: Json = serde_json::from_str(&resolved).unwrap();
        let fields = fields.as_object().unwrap();
        // The release plan's keys go to its own parser; the rest is the target.
        eks_deploy::plan::ReleasePlan::from_fields(fields).unwrap();
        let mut target = fields.clone();
        target.retain(|key, _| !eks_deploy::plan::KEYS.contains(&key.as_str()));
        let parsed = eks_deploy::params::DeployParameters::from_value(Json::Object(target))
            .unwrap_or_else(|e| panic!("Deploy{title}: {e}"));
        for (field, value) in [
            ("cluster", &parsed.cluster),
            ("namespace", &parsed.namespace),
            ("deployment", &parsed.deployment),
            ("container", &parsed.container),
        ] {
            assert_eq!(environment[field].as_str(), Some(value.as_str()), "{field}");
        }
        assert_eq!(parsed.image, image);
        if environment["roleArn"].is_null() {
            // This account's cluster: reached as eks-deploy's own role, no role keys.
            assert_eq!(parsed.cross_account, None, "{text}");
            assert!(
                clusters.contains(&parsed.cluster),
                "eks-deploy may not describe {}: add it to template.yaml's ClusterNames",
                parsed.cluster
            );
        } else {
            let cross = parsed.cross_account.as_ref().unwrap();
            assert_eq!(cross.role_arn, environment["roleArn"].as_str().unwrap());
            assert_eq!(
                cross.external_id,
                environment["externalId"].as_str().unwrap()
            );
            // The session names the execution: the pipeline passes it.
            assert_eq!(parsed.pipeline_execution_id.as_deref(), Some(EXECUTION));
            assert_eq!(parsed.environment.as_deref(), environment["name"].as_str());
        }
    }

    // Each approval notifies the topic approval-notify listens to.
    let topic = serde_yaml_ng::from_str::<Value>("!Ref ApprovalRequestsTopicArn").unwrap();
    for stage in stages.iter().filter(|s| {
        s["Name"]
            .as_str()
            .is_some_and(|name| name.starts_with("Approve"))
    }) {
        let gate = &stage["Actions"][0];
        assert_eq!(gate["ActionTypeId"]["Category"], "Approval");
        assert_eq!(gate["Configuration"]["NotificationArn"], topic);
    }
}

#[test]
fn the_sample_application_and_its_rbac_fit_what_eks_deploy_does() {
    let text = std::fs::read_to_string(workspace_root().join("infra/k8s/app.yaml")).unwrap();
    let deployment = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|document| document["kind"] == "Deployment")
        .unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(serde_json::to_value(&deployment).unwrap()).unwrap();
    for environment in environments() {
        let container = environment["container"].as_str().unwrap();
        assert!(
            eks_deploy::rollout::image_of(&deployment, container).is_some(),
            "no container {container}"
        );
    }
    assert!(container_images(&deployment).len() > 1);

    let rbac = std::fs::read_to_string(workspace_root().join("infra/k8s/rbac.yaml")).unwrap();
    let role = serde_yaml_ng::Deserializer::from_str(&rbac)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|document| document["kind"] == "Role")
        .unwrap();
    // Whether the Role lets eks-deploy `verb` the `resource` called `name` (None: a request that
    // names no object, as create and list are), resourceNames applied as RBAC applies them.
    let allowed = |resource: &str, verb: &str, name: Option<&str>| {
        role["rules"].as_sequence().unwrap().iter().any(|rule| {
            let names = rule["resourceNames"].as_sequence();
            rule["resources"]
                .as_sequence()
                .unwrap()
                .contains(&Value::from(resource))
                && rule["verbs"]
                    .as_sequence()
                    .unwrap()
                    .contains(&Value::from(verb))
                && names
                    .is_none_or(|names| name.is_some_and(|name| names.contains(&Value::from(name))))
        })
    };
    let canary = eks_deploy_canary_name("web");
    for (resource, verb, name) in [
        ("deployments", "get", Some("web")),
        ("deployments", "patch", Some("web")),
        ("deployments", "watch", Some("web")),
        // The canary: created (RBAC cannot name what a create makes), then read, scaled,
        // followed and removed by its name.
        ("deployments", "create", None),
        ("deployments", "get", Some(canary.as_str())),
        ("deployments", "patch", Some(canary.as_str())),
        ("deployments", "watch", Some(canary.as_str())),
        ("deployments", "delete", Some(canary.as_str())),
        ("pods", "list", None),
    ] {
        assert!(
            allowed(resource, verb, name),
            "the Role must allow {verb} {resource} {name:?}"
        );
    }
    for (resource, verb, name) in [
        // The application's own Deployment is never removed, nor any other one changed.
        ("deployments", "delete", Some("web")),
        ("deployments", "patch", Some("api")),
        ("deployments", "delete", Some("api-canary")),
        ("deployments", "list", None),
        ("pods", "delete", Some("web-5d4f8c7b9-x2x7q")),
        ("secrets", "get", Some("web-tls")),
    ] {
        assert!(
            !allowed(resource, verb, name),
            "the Role must not allow {verb} {resource} {name:?}"
        );
    }
}

/// The canary's name for a Deployment, as eks-deploy makes it (`<name>-canary`, issue 14).
fn eks_deploy_canary_name(deployment: &str) -> String {
    format!("{deployment}-canary")
}

#[test]
fn the_delivery_dashboard_reads_the_metrics_delivery_events_writes_per_week() {
    let template = template();
    let dashboard = &template["Resources"]["DeliveryDashboard"];
    assert_eq!(dashboard["Type"], "AWS::CloudWatch::Dashboard");
    let Value::Tagged(sub) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is not a !Sub");
    };
    let text = sub.value[0].as_str().unwrap();
    let namespace = sub.value[1]["Namespace"].as_str().unwrap();
    assert_eq!(namespace, delivery_events::dora::NAMESPACE);
    let body: Json = serde_json::from_str(
        &text
            .replace("${AWS::Region}", "us-east-1")
            .replace("${Namespace}", namespace),
    )
    .unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}"));
    let expressions: Vec<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            w["properties"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m[0]["expression"].as_str().map(str::to_owned))
        .collect();
    // The four keys, each over a week, the math written out.
    for (metric, statistic) in [
        (delivery_events::dora::DEPLOYMENTS, "Sum"),
        (delivery_events::dora::LEAD_TIME, "Average"),
        (delivery_events::dora::DEPLOYMENT_FAILED, "Average"),
        (delivery_events::dora::TIME_TO_RESTORE, "Average"),
    ] {
        let search = format!(
            "SEARCH('{{{namespace},Pipeline,Environment}} MetricName=\"{metric}\"', '{statistic}', 604800)"
        );
        assert!(
            expressions.iter().any(|e| e == &search),
            "no widget searches {search}: {expressions:#?}"
        );
    }
    for math in [
        "leadSeconds / 3600",
        "100 * failedShare",
        "restoreSeconds / 3600",
    ] {
        assert!(
            expressions.iter().any(|e| e == math),
            "{math}: {expressions:#?}"
        );
    }
}
