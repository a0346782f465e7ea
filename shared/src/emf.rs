//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: no PutMetricData call, no
//! permission, no latency; CloudWatch Logs extracts the metrics from the function's log.
//!
//! A [`MetricDocument`] is one log event: `_aws.Timestamp` (epoch milliseconds),
//! `_aws.CloudWatchMetrics[]` with one directive (`Namespace`, one dimension set, the metric
//! definitions), and the dimension and metric values as members of the root object, as the EMF
//! specification ("Specification: Embedded metric format", CloudWatch user guide) requires.

use serde_json::{Map, Value, json};

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A duration in seconds.
    Seconds,
    /// A number without a unit (a 0/1 flag whose average is a rate).
    None,
}

impl Unit {
    /// The unit's name in a metric definition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
            Self::None => "None",
        }
    }
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Its name (a member of the document's root).
    pub name: String,
    /// Its unit.
    pub unit: Unit,
    /// Its value.
    pub value: f64,
}

/// One EMF log event: metrics sharing a namespace, dimensions and a timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDocument {
    /// The CloudWatch namespace.
    pub namespace: String,
    /// The dimensions, name and value, in order: together one dimension set.
    pub dimensions: Vec<(String, String)>,
    /// The metrics.
    pub metrics: Vec<Metric>,
    /// When, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Other members, for Logs Insights (not metrics, not dimensions).
    pub properties: Vec<(String, Value)>,
}

impl MetricDocument {
    /// The document as the JSON object logged.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        for (name, value) in &self.properties {
            root.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for metric in &self.metrics {
            root.insert(metric.name.clone(), json!(metric.value));
        }
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
            .collect();
        let dimension_set: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_set],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// The document as one log line.
    pub fn to_line(&self) -> String {
        self.to_json().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_holds_its_dimensions_and_metrics_as_root_members() {
        let document = MetricDocument {
            namespace: "EksCicd/Delivery".into(),
            dimensions: vec![
                ("Pipeline".into(), "shop-main".into()),
                ("Environment".into(), "production".into()),
            ],
            metrics: vec![
                Metric {
                    name: "Deployments".into(),
                    unit: Unit::Count,
                    value: 1.0,
                },
                Metric {
                    name: "LeadTimeSeconds".into(),
                    unit: Unit::Seconds,
                    value: 1320.0,
                },
            ],
            timestamp_ms: 1_795_000_000_000,
            properties: vec![("executionId".into(), json!("e-1"))],
        };
        let json = document.to_json();
        assert_eq!(json["Pipeline"], "shop-main");
        assert_eq!(json["Deployments"], 1.0);
        assert_eq!(json["LeadTimeSeconds"], 1320.0);
        assert_eq!(json["executionId"], "e-1");
        assert_eq!(json["_aws"]["Timestamp"], 1_795_000_000_000_i64);
        let directive = &json["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EksCicd/Delivery");
        assert_eq!(
            directive["Dimensions"],
            json!([["Pipeline", "Environment"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Deployments", "Unit": "Count"}, {"Name": "LeadTimeSeconds", "Unit": "Seconds"}])
        );
        assert!(!document.to_line().contains('\n'));
    }
}
