//! The bad-input corpus (`tests/corpus/`): malformed, truncated, oversized, wrong-type and
//! foreign events for every function, each answered as its manifest says, never with a panic.
//!
//! Every file goes through the pure parsers in-process, then through the real binaries under the
//! Runtime API emulator, where the process must still be running after each event and must have
//! logged a line for it (the runtime's span carries the request id).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use approval_callback::handler::Deps as CallbackDeps;
use integration_tests::runtime_api::InvocationResult;
use integration_tests::{Emulators, Function, fixtures, unique, workspace_root};
use serde_json::Value;
use shared::approval_link::{Approval, Decision, SigningKey};
use shared::events::{MAX_EVENT_BYTES, MAX_REQUEST_BYTES, RawValue};
use shared::ports::{ApprovalApi, ApprovalState, Revision};
use shared::{InvalidEvent, UpstreamError};

const FUNCTIONS: [&str; 7] = [
    "approval-callback",
    "approval-notify",
    "codebuild-status",
    "codecommit-push",
    "delivery-events",
    "eks-deploy",
    "pr-validator",
];

/// What a corpus event must get.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// The typed `InvalidEvent` error, whose message holds this.
    InvalidEvent(String),
    /// A logged skip of this kind.
    Ignored(String),
    /// approval-callback's page with this status.
    Status(u16),
    /// Not JSON: the runtime's typed error, before the handler.
    Refused,
}

#[derive(Debug)]
struct Case {
    /// `function/file`.
    name: String,
    function: String,
    payload: Vec<u8>,
    expect: Expect,
}

fn corpus_dir() -> PathBuf {
    workspace_root().join("tests/corpus")
}

/// Makes the string at `pointer` at least `bytes` long by repeating `with`.
fn grow(document: &mut Value, spec: &Value) {
    let pointer = spec["pointer"].as_str().unwrap();
    let bytes = usize::try_from(spec["bytes"].as_u64().unwrap()).unwrap();
    let with = spec["with"].as_str().unwrap_or("x");
    let target = document
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"));
    let mut text = target.as_str().unwrap().to_owned();
    while text.len() < bytes {
        text.push_str(with);
    }
    *target = Value::String(text);
}

/// Makes the array at `pointer` `times` copies of its elements.
fn repeat(document: &mut Value, spec: &Value) {
    let pointer = spec["pointer"].as_str().unwrap();
    let times = usize::try_from(spec["times"].as_u64().unwrap()).unwrap();
    let target = document
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"));
    let items = target.as_array().unwrap().clone();
    *target = Value::Array(
        items
            .iter()
            .cycle()
            .take(items.len() * times)
            .cloned()
            .collect(),
    );
}

fn corpus() -> Vec<Case> {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(corpus_dir().join("manifest.json")).unwrap())
            .unwrap();
    let entries = manifest["cases"].as_object().unwrap();
    let mut files = BTreeSet::new();
    for function in FUNCTIONS {
        for entry in std::fs::read_dir(corpus_dir().join(function)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            files.insert(format!("{function}/{name}"));
        }
    }
    let listed: BTreeSet<String> = entries.keys().cloned().collect();
    assert_eq!(
        files, listed,
        "every corpus file has its expectation in manifest.json, and every entry its file"
    );
    entries
        .iter()
        .map(|(name, entry)| {
            let function = name.split('/').next().unwrap().to_owned();
            let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
            let expect = match &entry["expect"] {
                Value::Number(status) => {
                    Expect::Status(u16::try_from(status.as_u64().unwrap()).unwrap())
                }
                Value::String(kind) if kind == "InvalidEvent" => {
                    Expect::InvalidEvent(entry["mentions"].as_str().unwrap_or_default().to_owned())
                }
                Value::String(kind) if kind == "ignored" => {
                    Expect::Ignored(entry["reason"].as_str().unwrap().to_owned())
                }
                Value::String(kind) if kind == "refused" => Expect::Refused,
                other => panic!("{name}: unknown expectation {other}"),
            };
            assert!(
                entry["why"].as_str().is_some_and(|why| !why.is_empty()),
                "{name}: say why it is in the corpus"
            );
            let payload = if expect == Expect::Refused {
                assert!(
                    serde_json::from_slice::<Value>(&bytes).is_err(),
                    "{name}: a refused event is not JSON"
                );
                bytes
            } else if entry["grow"].is_null() && entry["repeat"].is_null() {
                // As it is: some are nested deeper than serde_json's `Value` parses.
                let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                RawValue::from_string(text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
                std::fs::read(corpus_dir().join(name)).unwrap()
            } else {
                let mut document: Value =
                    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                if !entry["grow"].is_null() {
                    grow(&mut document, &entry["grow"]);
                }
                if !entry["repeat"].is_null() {
                    repeat(&mut document, &entry["repeat"]);
                }
                serde_json::to_vec(&document).unwrap()
            };
            Case {
                name: name.clone(),
                function,
                payload,
                expect,
            }
        })
        .collect()
}

#[test]
fn the_corpus_has_fifty_events_and_more_covering_every_function_and_kind() {
    let cases = corpus();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut per_function: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        *per_function.entry(case.function.as_str()).or_default() += 1;
    }
    for function in FUNCTIONS {
        assert!(
            per_function.get(function).copied().unwrap_or_default() >= 8,
            "{function}: {per_function:?}"
        );
    }
    let oversized = cases
        .iter()
        .filter(|c| c.payload.len() > MAX_EVENT_BYTES)
        .count();
    let refused = cases.iter().filter(|c| c.expect == Expect::Refused).count();
    let ignored = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Ignored(_)))
        .count();
    assert!(
        oversized >= 3 && refused >= 6 && ignored >= 10,
        "{oversized} oversized, {refused} not JSON, {ignored} skips"
    );
}

/// The variables `events/env.json` gives template function `id`.
fn local_env(id: &str) -> Vec<(String, String)> {
    let env: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/env.json")).unwrap(),
    )
    .unwrap();
    env[id]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn lookup(id: &str) -> impl Fn(&str) -> Option<String> {
    let env = local_env(id);
    move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// An approval API that must not be called: every corpus request is answered before any call.
struct NoCalls;

impl ApprovalApi for NoCalls {
    async fn approval_state(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<ApprovalState, UpstreamError> {
        panic!("a corpus request reached GetPipelineState")
    }

    async fn execution_revision(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<Revision>, UpstreamError> {
        panic!("a corpus request reached GetPipelineExecution")
    }

    async fn decide(
        &self,
        _: &Approval,
        _: Decision,
        _: &str,
    ) -> Result<Option<String>, UpstreamError> {
        panic!("a corpus request reached PutApprovalResult")
    }
}

/// What the pure side answers: `Err` for an invalid event, `Ok(kind)` for a skip (or the page's
/// status, for approval-callback).
async fn take(function: &str, payload: Value) -> Result<String, InvalidEvent> {
    match function {
        "codecommit-push" => {
            let config =
                codecommit_push::config::Config::from_lookup(lookup("CodeCommitPushFunction"))
                    .unwrap();
            let event = codecommit_push::handler::parse(payload)?;
            match codecommit_push::handler::decide(&event, &config.routes)? {
                codecommit_push::handler::Decision::Ignore(reason) => Ok(kind(&reason)),
                codecommit_push::handler::Decision::Build(_) => Ok("build".into()),
            }
        }
        "codebuild-status" => {
            let config =
                codebuild_status::config::Config::from_lookup(lookup("CodeBuildStatusFunction"))
                    .unwrap();
            match codebuild_status::handler::parse(payload)? {
                codebuild_status::handler::Incoming::Build(event) => {
                    match codebuild_status::handler::classify(&event.detail, &config) {
                        codebuild_status::handler::Interest::Ignore(reason) => Ok(kind(&reason)),
                        _ => Ok("notify".into()),
                    }
                }
                codebuild_status::handler::Incoming::Sweep(event) => {
                    shared::events::schedule::scheduled_at(&event)?;
                    Ok("sweep".into())
                }
            }
        }
        "delivery-events" => {
            let config =
                delivery_events::config::Config::from_lookup(lookup("DeliveryEventsFunction"))
                    .unwrap();
            let event = delivery_events::handler::parse(payload)?;
            match delivery_events::handler::classify(&event, &config) {
                Err(reason) => Ok(kind(&reason)),
                Ok(_) => Ok("notify".into()),
            }
        }
        "pr-validator" => {
            let config =
                pr_validator::config::Config::from_lookup(lookup("PullRequestValidatorFunction"))
                    .unwrap();
            match pr_validator::handler::parse(payload)? {
                pr_validator::handler::Incoming::PullRequest(event) => {
                    match pr_validator::pull_request::decide(&event, &config)? {
                        pr_validator::pull_request::Decision::Ignore(reason) => Ok(kind(&reason)),
                        pr_validator::pull_request::Decision::Validate(_) => Ok("build".into()),
                    }
                }
                pr_validator::handler::Incoming::Build(event) => {
                    match pr_validator::build::classify(&event.detail, &config)? {
                        pr_validator::build::Interest::Ignore(reason) => Ok(kind(&reason)),
                        pr_validator::build::Interest::Report(_) => Ok("report".into()),
                    }
                }
                pr_validator::handler::Incoming::Sweep(event) => {
                    shared::events::schedule::scheduled_at(&event)?;
                    Ok("sweep".into())
                }
            }
        }
        "approval-notify" => {
            let notification = approval_notify::handler::parse(payload)?;
            let now = now();
            Ok(if notification.expires_at().is_some_and(|at| at <= now) {
                "expired".into()
            } else {
                "notify".into()
            })
        }
        "approval-callback" => {
            let request = approval_callback::handler::parse(payload)?;
            let key = SigningKey::new(b"the corpus test's key, not the samples' key").unwrap();
            let deps = CallbackDeps::new(NoCalls, key);
            let now = now();
            let page = approval_callback::handler::handle(&deps, request, now, [7; 16]).await;
            Ok(page.status().as_u16().to_string())
        }
        "eks-deploy" => match eks_deploy::params::parse(payload)? {
            eks_deploy::params::Invocation::Job(_) => Ok("job".into()),
            eks_deploy::params::Invocation::Direct(payload) => {
                eks_deploy::params::DeployParameters::from_value(payload)
                    .map(|_| "deploy".into())
                    .map_err(|e| InvalidEvent::new(e.to_string()))
            }
        },
        other => panic!("no parser for {other}"),
    }
}

/// The `kind` a skip's reason serializes with.
fn kind<T: serde::Serialize>(reason: &T) -> String {
    serde_json::to_value(reason).unwrap()["kind"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

#[tokio::test]
async fn every_corpus_event_is_refused_or_skipped_by_the_parsers() {
    for case in corpus() {
        let name = &case.name;
        if case.expect == Expect::Refused {
            assert!(
                serde_json::from_slice::<Value>(&case.payload).is_err(),
                "{name}"
            );
            continue;
        }
        let text = String::from_utf8(case.payload.clone()).unwrap();
        let raw = RawValue::from_string(text).unwrap();
        let max = if case.function == "approval-callback" {
            MAX_REQUEST_BYTES
        } else {
            MAX_EVENT_BYTES
        };
        let result = match shared::events::payload(&raw, max) {
            Ok(payload) => take(&case.function, payload).await,
            Err(invalid) => Err(invalid),
        };
        match (&case.expect, result) {
            (Expect::InvalidEvent(mentions), Err(error)) => {
                assert!(
                    error.message().contains(mentions.as_str()),
                    "{name}: {error} should mention {mentions:?}"
                );
                assert!(
                    error.message().len() < 400,
                    "{name}: a short message: {error}"
                );
            }
            (Expect::Ignored(kind), Ok(got)) => assert_eq!(&got, kind, "{name}"),
            (Expect::Status(status), Ok(got)) => assert_eq!(got, status.to_string(), "{name}"),
            (expect, got) => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
    }
}

/// The real binary of `function`, started with its local variables; the approval functions'
/// signing key is a secret made in the emulator.
async fn start(function: &str, emulators: &Emulators) -> Function {
    let id = match function {
        "codecommit-push" => "CodeCommitPushFunction",
        "codebuild-status" => "CodeBuildStatusFunction",
        "pr-validator" => "PullRequestValidatorFunction",
        "delivery-events" => "DeliveryEventsFunction",
        "approval-notify" => "ApprovalNotifyFunction",
        "approval-callback" => "ApprovalCallbackFunction",
        "eks-deploy" => "EksDeployFunction",
        other => panic!("{other}"),
    };
    let mut env = emulators.function_env();
    env.extend(local_env(id));
    if function.starts_with("approval-") {
        let sdk = integration_tests::aws::sdk_config(emulators).await;
        let secret = unique("corpus-key");
        fixtures::secret(
            &sdk,
            &secret,
            "a signing key for the corpus test, 32 bytes or more",
        )
        .await;
        env.retain(|(k, _)| k != "SIGNING_KEY");
        env.push(("SIGNING_KEY".into(), format!("secretsmanager:{secret}")));
    }
    Function::start(function, &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_corpus_event_gets_its_answer_from_the_real_binaries_which_survive_and_log_it() {
    let emulators = Emulators::load();
    let cases = corpus();
    for function in FUNCTIONS {
        let mut binary = start(function, &emulators).await;
        for case in cases.iter().filter(|c| c.function == function) {
            let name = &case.name;
            let (request_id, result) = binary.invoke_raw(&case.payload).await;
            if let InvocationResult::Error { error_message, .. } = &result {
                assert!(
                    !error_message.contains("panicked"),
                    "{name}: the handler panicked: {error_message}"
                );
            }
            match (&case.expect, &result) {
                (
                    Expect::InvalidEvent(mentions),
                    InvocationResult::Error {
                        error_type,
                        error_message,
                    },
                ) => {
                    assert_eq!(error_type, "InvalidEvent", "{name}: {error_message}");
                    assert!(
                        error_message.contains(mentions.as_str()),
                        "{name}: {error_message}"
                    );
                }
                (Expect::Refused, InvocationResult::Error { error_type, .. }) => {
                    // The runtime's own typed error: the handler never saw the bytes.
                    assert!(
                        error_type.ends_with("DeserializeError"),
                        "{name}: {error_type}"
                    );
                }
                (Expect::Ignored(kind), InvocationResult::Response(response)) => {
                    assert_eq!(response["outcome"], "ignored", "{name}: {response}");
                    let reason = match &response["reason"] {
                        Value::String(text) => text.clone(),
                        reason => reason["kind"].as_str().unwrap_or_default().to_owned(),
                    };
                    assert!(reason.contains(kind.as_str()), "{name}: {response}");
                }
                (Expect::Status(status), InvocationResult::Response(response)) => {
                    assert_eq!(response["statusCode"], *status, "{name}: {response}");
                }
                (expect, got) => panic!("{name}: expected {expect:?}, got {got:?}"),
            }
            assert!(binary.is_running(), "{name}: the process died");
            let lines = binary.logs_of(&request_id).await;
            assert!(
                !lines.is_empty(),
                "{name}: no log line for the invocation: {:?}",
                binary.logs().iter().rev().take(3).collect::<Vec<_>>()
            );
        }
        let logs = binary.logs();
        assert!(
            logs.iter().all(|line| !line.contains("panicked")),
            "{function}: a panic was logged"
        );
        // A genuine event still works after all of that (the process is in good shape).
        assert!(binary.is_running(), "{function}");
    }
}
