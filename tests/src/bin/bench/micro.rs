//! Our own work on an event without any I/O: the raw bytes parsed into the typed event and, where
//! the decision is a pure function, the decision made (and for codebuild-status the message
//! composed), on each sample event, in this process.

use std::hint::black_box;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::measure::Stats;

/// The figures for one sample event.
#[derive(Debug, Clone, Serialize)]
pub struct Micro {
    /// The function.
    pub function: String,
    /// The sample file.
    pub event: String,
    /// What is timed.
    pub work: &'static str,
    /// Nanoseconds per event, over batches.
    pub ns: Stats,
}

/// Times `work` on every sample event of every function: `batches` batches of `per_batch` runs.
pub fn run(batches: usize, per_batch: usize) -> Vec<Micro> {
    let mut results = Vec::new();
    let routes = codecommit_push::config::Config::from_lookup(|name| {
        (name == "PIPELINE_ROUTES").then(|| {
            r#"[{"repository": "shop", "branch": "main", "pipeline": "shop-main"},
                {"repository": "shop", "branch": "release/*", "pipeline": "shop-main"}]"#
                .to_owned()
        })
    })
    .unwrap()
    .routes;
    let build_config = codebuild_status::config::Config::from_lookup(|name| match name {
        "TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:builds".to_owned()),
        "LEDGER_TABLE" => Some("ledger".to_owned()),
        "PR_VALIDATION_PROJECT" => Some("shop-pr".to_owned()),
        _ => None,
    })
    .unwrap();
    let delivery_config = delivery_events::config::Config::from_lookup(|name| match name {
        "TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:deliveries".to_owned()),
        "LEDGER_TABLE" => Some("ledger".to_owned()),
        _ => None,
    })
    .unwrap();

    for (function, file, bytes) in samples() {
        let (work, time): (&'static str, Box<dyn Fn() -> bool>) = match function.as_str() {
            "codecommit-push" => (
                "parse + decide",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    let Ok(event) = codecommit_push::handler::parse(payload) else {
                        return false;
                    };
                    codecommit_push::handler::decide(black_box(&event), &routes).is_ok()
                }),
            ),
            "codebuild-status" => (
                "parse + classify + compose",
                Box::new(|| {
                    use codebuild_status::handler::{Incoming, Interest, classify, parse};
                    use codebuild_status::message::{compose, deduplication_key};
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    let Ok(Incoming::Build(event)) = parse(payload) else {
                        return false;
                    };
                    match classify(&event.detail, &build_config) {
                        Interest::Notify(report) => {
                            black_box(compose(&event, &report, &shared::reports::BuildTests::None));
                            black_box(deduplication_key(&event.detail, &report));
                            true
                        }
                        other => {
                            black_box(other);
                            true
                        }
                    }
                }),
            ),
            "pr-validator" => (
                "parse",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    black_box(pr_validator::handler::parse(payload)).is_ok()
                }),
            ),
            "approval-notify" => (
                "parse",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    black_box(approval_notify::handler::parse(payload)).is_ok()
                }),
            ),
            "approval-callback" => (
                "parse",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    black_box(approval_callback::handler::parse(payload)).is_ok()
                }),
            ),
            "delivery-events" => (
                "parse + classify + report (no action runs)",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    let Ok(event) = delivery_events::handler::parse(payload) else {
                        return false;
                    };
                    if let Ok(end) = delivery_events::handler::classify(&event, &delivery_config) {
                        let report = delivery_events::report::Report::build(end, &[]);
                        black_box(report.notification());
                        black_box(delivery_events::dora::document(&report, None));
                    }
                    true
                }),
            ),
            "eks-deploy" => (
                "parse",
                Box::new(|| {
                    let payload: Value = serde_json::from_slice(&bytes).unwrap();
                    black_box(eks_deploy::handler::parse(payload)).is_ok()
                }),
            ),
            _ => continue,
        };
        if !time() {
            // An event the function refuses is not representative work.
            continue;
        }
        let mut per_event = Vec::with_capacity(batches);
        for _ in 0..batches {
            let started = Instant::now();
            for _ in 0..per_batch {
                black_box(time());
            }
            per_event.push(started.elapsed().as_nanos() as f64 / per_batch as f64);
        }
        results.push(Micro {
            function,
            event: file,
            work,
            ns: Stats::of(&per_event),
        });
    }
    results
}

/// Every valid sample event: (function, file, bytes).
fn samples() -> Vec<(String, String, Vec<u8>)> {
    let root = integration_tests::workspace_root().join("events");
    let mut samples = Vec::new();
    for function in crate::FUNCTIONS {
        let Ok(entries) = std::fs::read_dir(root.join(function)) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with("invalid") && n != "routes.json")
            })
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            samples.push(((*function).to_owned(), name, std::fs::read(&path).unwrap()));
        }
    }
    samples
}
