//! The emulated CodeBuild from the tests' side: builds started as the pipeline's build action
//! starts them, finished as CodeBuild would finish them, and the events CodeBuild emits.

use aws_config::SdkConfig;
use aws_sdk_codebuild::types::EnvironmentVariable;
use serde_json::Value;

use crate::{Emulators, http};

/// The reason CodeBuild gives for a build whose tests failed.
pub const FAILED_TESTS: &str = "COMMAND_EXECUTION_ERROR: Error while executing command: cargo test --locked. Reason: exit status 101";

/// A plain-text environment variable of a build.
pub fn variable(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .build()
        .unwrap()
}

/// Starts a build of `project` for `commit` of `branch`, with the variables the pipeline's build
/// action sets; returns the build id.
pub async fn start_pipeline_build(
    sdk: &SdkConfig,
    project: &str,
    branch: &str,
    commit: &str,
) -> String {
    aws_sdk_codebuild::Client::new(sdk)
        .start_build()
        .project_name(project)
        .environment_variables_override(variable("SOURCE_BRANCH", branch))
        .environment_variables_override(variable("SOURCE_COMMIT", commit))
        .send()
        .await
        .unwrap()
        .build_value()
        .unwrap()
        .id()
        .unwrap()
        .to_owned()
}

/// Finishes a build as CodeBuild would; `end` is what the emulator's `/codebuild/complete` takes
/// (`buildId`, `status`, `durationSeconds`, and a `failedPhase` and `context` for a failure).
pub async fn complete(emulators: &Emulators, end: &Value) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/codebuild/complete", emulators.admin),
        Some(end),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}

/// The EventBridge event CodeBuild emits for `build` now (each call under a new event id).
pub async fn event(emulators: &Emulators, build: &str) -> Value {
    let url = format!(
        "{}/codebuild/event?buildId={}",
        emulators.admin,
        percent_encoded(build)
    );
    let (code, event) = http::json("GET", &url, None).await;
    assert_eq!(code, 200, "{event}");
    event
}

/// EventBridge loses the event of `build` now, as it may ("Delivery type: Best effort"): the
/// emulator is told to lose it, and nothing is delivered. CodeBuild's next event of the build
/// (a late one, say) is delivered again.
pub async fn lose_event(emulators: &Emulators, build: &str) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/codebuild/lose-events", emulators.admin),
        Some(&serde_json::json!({"buildId": build})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        delivered_event(emulators, build).await,
        None,
        "the event was lost"
    );
}

/// The event CodeBuild emits for `build` now, or `None` when EventBridge lost it.
pub async fn delivered_event(emulators: &Emulators, build: &str) -> Option<Value> {
    let url = format!(
        "{}/codebuild/event?buildId={}",
        emulators.admin,
        percent_encoded(build)
    );
    let (code, event) = http::json("GET", &url, None).await;
    match code {
        200 => Some(event),
        410 => None,
        _ => panic!("{code}: {event}"),
    }
}

/// The scheduled event a sweep's schedule rule sends `function` (`codebuild-status`,
/// `pr-validator`) at `time`.
pub fn scheduled_event(function: &str, time: chrono::DateTime<chrono::Utc>) -> Value {
    let mut event = crate::sample_event(function, "scheduled-sweep.json");
    event["id"] = serde_json::json!(crate::event_id());
    event["time"] = serde_json::json!(time.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    event
}

/// `text` with every byte but the URL-safe ones percent-encoded (a build id has a `:`).
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `count` test cases of `status` (`SUCCEEDED`, `FAILED`, `SKIPPED`…) under `prefix`, as a JUnit
/// file gives them to CodeBuild, for [`file_report`] or a `reports` entry of [`complete`]. A
/// failing case's message has a first line and a second.
pub fn test_cases(status: &str, count: usize, prefix: &str) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let mut case = serde_json::json!({
                "prefix": prefix,
                "name": format!("{}_{i}", status.to_ascii_lowercase()),
                "status": status,
                "durationInNanoSeconds": 250_000_000,
            });
            if matches!(status, "FAILED" | "ERROR") {
                case["message"] = serde_json::json!(format!(
                    "assertion `left == right` failed\n  left: {i}\n right: 0"
                ));
            }
            case
        })
        .collect()
}

/// Files a test report of `build` as CodeBuild files its buildspec's `reports: <group>` (in
/// group `<project>-<group>`); `extra` adds `status` (`GENERATING`…) or `pageLimit`. Returns the
/// report's ARN.
pub async fn file_report(
    emulators: &Emulators,
    build: &str,
    group: &str,
    cases: &[Value],
    extra: Value,
) -> String {
    let mut body = serde_json::json!({"buildId": build, "group": group, "testCases": cases});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (code, answer) = http::json(
        "POST",
        &format!("{}/codebuild/report", emulators.admin),
        Some(&body),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    answer["reportArn"].as_str().unwrap().to_owned()
}

/// Sets the status of test report `report` (`GENERATING`, `INCOMPLETE`, `SUCCEEDED`…).
pub async fn set_report_status(emulators: &Emulators, report: &str, status: &str) {
    let (code, answer) = http::json(
        "POST",
        &format!("{}/codebuild/report-status", emulators.admin),
        Some(&serde_json::json!({"reportArn": report, "status": status})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
}
