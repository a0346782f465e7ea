//! CodePipeline's state change events, delivered as EventBridge would: the emulator records every
//! event CodePipeline emits (`GET /_emulator/codepipeline/events`); a [`PipelineEventBus`] reads
//! the new ones and hands a function those its rule in `template.yaml` routes. Nothing is
//! hand-written: the events are the emulator's, the routing is the template's.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use crate::runtime_api::InvocationResult;
use crate::{Emulators, Function, http, templates};

/// One rule's event pattern, as far as its literal lists go: `source`, `detail-type` and each
/// `detail` member given as a list of strings (a member built from a parameter, such as the
/// routed pipelines, is not checked: the tests' pipelines have names of their own).
#[derive(Debug, Clone)]
pub struct RulePattern {
    sources: Vec<String>,
    detail_types: Vec<String>,
    detail: Vec<(String, Vec<String>)>,
}

fn strings(value: &Yaml) -> Option<Vec<String>> {
    match value {
        Yaml::Sequence(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

impl RulePattern {
    /// The pattern of rule `event` of function `function` (a logical id) in `template.yaml`.
    pub fn of(function: &str, event: &str) -> Self {
        let template = templates::load("template.yaml");
        let pattern = &template["Resources"][function]["Properties"]["Events"][event]["Properties"]
            ["Pattern"];
        assert!(
            !pattern.is_null(),
            "template.yaml has no rule {function}.{event}"
        );
        let detail = pattern["detail"]
            .as_mapping()
            .map(|members| {
                members
                    .iter()
                    .filter_map(|(name, values)| {
                        Some((name.as_str()?.to_owned(), strings(values)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            sources: strings(&pattern["source"]).unwrap_or_default(),
            detail_types: strings(&pattern["detail-type"]).unwrap_or_default(),
            detail,
        }
    }

    /// Whether the rule routes `event`.
    pub fn matches(&self, event: &Value) -> bool {
        let member = |value: &Value, list: &[String]| {
            value.as_str().is_some_and(|v| list.iter().any(|l| l == v))
        };
        member(&event["source"], &self.sources)
            && member(&event["detail-type"], &self.detail_types)
            && self
                .detail
                .iter()
                .all(|(name, list)| member(&event["detail"][name.as_str()], list))
    }
}

/// The events of one pipeline, read in order, each once.
#[derive(Debug)]
pub struct PipelineEventBus {
    admin: String,
    pipeline: String,
    cursor: AtomicU64,
    rule: RulePattern,
}

impl PipelineEventBus {
    /// The events of `pipeline` from now on, routed by delivery-events' rule.
    pub async fn new(emulators: &Emulators, pipeline: &str) -> Self {
        let bus = Self {
            admin: emulators.admin.clone(),
            pipeline: pipeline.to_owned(),
            cursor: AtomicU64::new(0),
            rule: RulePattern::of("DeliveryEventsFunction", "ExecutionEnded"),
        };
        let (_, last) = bus.fetch(0).await;
        bus.cursor.store(last, Ordering::SeqCst);
        bus
    }

    async fn fetch(&self, after: u64) -> (Vec<Value>, u64) {
        let url = format!(
            "{}/codepipeline/events?pipeline={}&after={after}",
            self.admin, self.pipeline
        );
        let (code, answer) = http::json("GET", &url, None).await;
        assert_eq!(code, 200, "{answer}");
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        let last = events
            .last()
            .and_then(|e| e["sequence"].as_u64())
            .unwrap_or(after);
        (
            events.into_iter().map(|e| e["event"].clone()).collect(),
            last,
        )
    }

    /// Every event emitted since the last call, routed or not.
    pub async fn new_events(&self) -> Vec<Value> {
        let (events, last) = self.fetch(self.cursor.load(Ordering::SeqCst)).await;
        self.cursor.store(last, Ordering::SeqCst);
        events
    }

    /// Whether the rule routes `event`.
    pub fn routes(&self, event: &Value) -> bool {
        self.rule.matches(event)
    }

    /// Delivers to `function` every new event the rule routes, in order; returns each with its
    /// result.
    pub async fn deliver(&self, function: &Function) -> Vec<(Value, InvocationResult)> {
        let mut delivered = Vec::new();
        for event in self.new_events().await {
            if self.routes(&event) {
                let result = function.invoke(&event).await;
                delivered.push((event, result));
            }
        }
        delivered
    }
}
