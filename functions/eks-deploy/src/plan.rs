//! How a release goes out: the strategy (`rolling`, the default, or `canary` steps), the
//! alarms that gate its bakes, a bake after the final rollout and the scan gate, read from the
//! same `UserParameters` object as the deployment's target.
//!
//! Parsed by hand rather than by derived serde so every refusal names the field at fault by its
//! path (`strategy.steps[1].weight`): a pipeline author fixes the JSON from the job's message.

use std::time::Duration;

use serde_json::{Map, Value};
use shared::events::{kind_of, quoted};

use crate::params::ParameterError;

/// The keys of `UserParameters` this module reads; the rest belong to [`crate::params`].
pub const KEYS: [&str; 4] = ["strategy", "alarms", "bakeAfter", "scanGate"];

/// At most this many alarms: DescribeAlarms takes 100 names per call, but a bake gated by more
/// than a handful is a dashboard, not a gate.
pub const MAX_ALARMS: usize = 20;

/// At most this many canary steps: each is a scale and a bake, and 10 covers a linear 10 % shift.
pub const MAX_STEPS: usize = 10;

/// The longest a whole release may bake: a CodePipeline Lambda invoke action runs at most 24 h,
/// and an hour stays for the rollouts themselves and the invocations in between.
pub const MAX_TOTAL_BAKE: Duration = Duration::from_secs(23 * 3600);

/// A release plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReleasePlan {
    /// Rolling (today's single rolling update) or canary steps first.
    pub strategy: Strategy,
    /// CloudWatch alarm names read while baking; an alarm in `ALARM` aborts.
    pub alarms: Vec<String>,
    /// A bake after the final rollout; an alarm then rolls the Deployment back.
    pub bake_after: Option<Duration>,
    /// Findings allowed in the image's ECR scan, when gated.
    pub scan_gate: Option<ScanGate>,
}

/// The strategy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    /// One rolling update of the main Deployment.
    #[default]
    Rolling,
    /// A canary Deployment scaled through the steps, then the rolling update.
    Canary {
        /// Strictly increasing weights, each with its bake.
        steps: Vec<Step>,
    },
}

/// One canary step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The canary's share of the pods, in percent (1–100).
    pub weight: u8,
    /// How long the step bakes once the canary's pods are available.
    pub bake: Duration,
}

/// The scan gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanGate {
    /// The highest severity allowed: a finding above it fails the job.
    pub max_severity: Severity,
    /// Whether an image without a scan fails (the default) or passes.
    pub require_scan: bool,
}

/// ECR's finding severities, lowest first (the order the gate compares them in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `UNDEFINED`: the scanner could not rate it.
    Undefined,
    /// `INFORMATIONAL`.
    Informational,
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 6] = [
        Self::Undefined,
        Self::Informational,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// ECR's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undefined => "UNDEFINED",
            Self::Informational => "INFORMATIONAL",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    /// The severity ECR names `name` (case-insensitive, as Inspector also spells them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl ReleasePlan {
    /// The plan held by the `UserParameters` object `fields`; keys other than [`KEYS`] are left
    /// to the deployment parameters' parser.
    pub fn from_fields(fields: &Map<String, Value>) -> Result<Self, ParameterError> {
        let strategy = match fields.get("strategy") {
            None | Some(Value::Null) => Strategy::Rolling,
            Some(value) => strategy(value)?,
        };
        let alarms = match fields.get("alarms") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => alarms(value)?,
        };
        let bake_after = match fields.get("bakeAfter") {
            None | Some(Value::Null) => None,
            Some(value) => Some(duration("bakeAfter", value)?),
        };
        let scan_gate = match fields.get("scanGate") {
            None | Some(Value::Null) => None,
            Some(value) => Some(scan_gate(value)?),
        };
        let plan = Self {
            strategy,
            alarms,
            bake_after,
            scan_gate,
        };
        let total = plan.total_bake();
        if total > MAX_TOTAL_BAKE {
            return Err(ParameterError::new(
                if plan.bake_after.is_some() {
                    "bakeAfter"
                } else {
                    "strategy.steps"
                },
                format!(
                    "the bakes add up to {}, more than the {} a CodePipeline action can run them in",
                    human(total),
                    human(MAX_TOTAL_BAKE)
                ),
            ));
        }
        Ok(plan)
    }

    /// Every bake of the plan, added up: the least time the release takes.
    pub fn total_bake(&self) -> Duration {
        let steps = match &self.strategy {
            Strategy::Rolling => Duration::ZERO,
            Strategy::Canary { steps } => steps.iter().map(|s| s.bake).sum(),
        };
        steps + self.bake_after.unwrap_or_default()
    }
}

fn object<'a>(
    field: &str,
    value: &'a Value,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, ParameterError> {
    let Value::Object(fields) = value else {
        return Err(ParameterError::new(
            field,
            format!("expected a JSON object, got {}", kind_of(value)),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ParameterError::new(
            &format!("{field}.{}", printable_key(unknown)),
            format!(
                "unknown field {} (expected one of {})",
                quoted(unknown),
                allowed.join(", ")
            ),
        ));
    }
    Ok(fields)
}

/// A key fit to print as part of a field path; anything odder is shown quoted in the message.
fn printable_key(key: &str) -> &str {
    if !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        key
    } else {
        "?"
    }
}

fn strategy(value: &Value) -> Result<Strategy, ParameterError> {
    let fields = object("strategy", value, &["type", "steps"])?;
    let kind = match fields.get("type") {
        None | Some(Value::Null) => "rolling",
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(ParameterError::new(
                "strategy.type",
                format!("expected \"rolling\" or \"canary\", got {}", kind_of(other)),
            ));
        }
    };
    match kind {
        "rolling" => match fields.get("steps") {
            None | Some(Value::Null) => Ok(Strategy::Rolling),
            Some(_) => Err(ParameterError::new(
                "strategy.steps",
                "a rolling strategy has no steps (give \"type\": \"canary\")",
            )),
        },
        "canary" => Ok(Strategy::Canary {
            steps: steps(fields.get("steps"))?,
        }),
        other => Err(ParameterError::new(
            "strategy.type",
            format!("{} is not \"rolling\" or \"canary\"", quoted(other)),
        )),
    }
}

fn steps(value: Option<&Value>) -> Result<Vec<Step>, ParameterError> {
    let items = match value {
        None | Some(Value::Null) => {
            return Err(ParameterError::new(
                "strategy.steps",
                "missing: a canary needs at least one {\"weight\", \"bake\"} step",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ParameterError::new(
                "strategy.steps",
                format!("expected an array, got {}", kind_of(other)),
            ));
        }
    };
    if items.is_empty() {
        return Err(ParameterError::new(
            "strategy.steps",
            "empty: a canary needs at least one step",
        ));
    }
    if items.len() > MAX_STEPS {
        return Err(ParameterError::new(
            "strategy.steps",
            format!("{} steps, at most {MAX_STEPS}", items.len()),
        ));
    }
    let mut steps: Vec<Step> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("strategy.steps[{i}]");
        let fields = object(&path, item, &["weight", "bake"])?;
        let weight_path = format!("{path}.weight");
        let weight = match fields.get("weight") {
            None | Some(Value::Null) => {
                return Err(ParameterError::new(&weight_path, "missing"));
            }
            Some(Value::Number(n)) => match n.as_u64() {
                Some(w @ 1..=100) => u8::try_from(w).unwrap_or(100),
                _ => {
                    return Err(ParameterError::new(
                        &weight_path,
                        format!("{n} is not a whole percentage from 1 to 100"),
                    ));
                }
            },
            Some(other) => {
                return Err(ParameterError::new(
                    &weight_path,
                    format!("expected a number from 1 to 100, got {}", kind_of(other)),
                ));
            }
        };
        if let Some(previous) = steps.last()
            && weight <= previous.weight
        {
            return Err(ParameterError::new(
                &weight_path,
                format!(
                    "{weight} does not increase on the step before ({}): weights must be strictly increasing",
                    previous.weight
                ),
            ));
        }
        let bake_path = format!("{path}.bake");
        let bake = match fields.get("bake") {
            None | Some(Value::Null) => return Err(ParameterError::new(&bake_path, "missing")),
            Some(value) => duration(&bake_path, value)?,
        };
        steps.push(Step { weight, bake });
    }
    Ok(steps)
}

/// CloudWatch alarm names: 1–255 characters, no control characters.
fn alarms(value: &Value) -> Result<Vec<String>, ParameterError> {
    let Value::Array(items) = value else {
        return Err(ParameterError::new(
            "alarms",
            format!("expected an array of alarm names, got {}", kind_of(value)),
        ));
    };
    if items.len() > MAX_ALARMS {
        return Err(ParameterError::new(
            "alarms",
            format!("{} alarms, at most {MAX_ALARMS}", items.len()),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("alarms[{i}]");
        let name = match item {
            Value::String(name) => name,
            other => {
                return Err(ParameterError::new(
                    &path,
                    format!("expected an alarm name, got {}", kind_of(other)),
                ));
            }
        };
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(ParameterError::new(
                &path,
                format!(
                    "{} is not a CloudWatch alarm name (1 to 255 characters, no control characters)",
                    quoted(name)
                ),
            ));
        }
        if names.contains(name) {
            return Err(ParameterError::new(
                &path,
                format!("{} is named twice", quoted(name)),
            ));
        }
        names.push(name.clone());
    }
    Ok(names)
}

fn scan_gate(value: &Value) -> Result<ScanGate, ParameterError> {
    let fields = object("scanGate", value, &["maxSeverity", "requireScan"])?;
    let max_severity = match fields.get("maxSeverity") {
        None | Some(Value::Null) => {
            return Err(ParameterError::new(
                "scanGate.maxSeverity",
                "missing: the highest severity allowed (INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL)",
            ));
        }
        Some(Value::String(name)) => Severity::from_name(name)
            .filter(|s| *s != Severity::Undefined)
            .ok_or_else(|| {
                ParameterError::new(
                    "scanGate.maxSeverity",
                    format!(
                        "{} is not INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL",
                        quoted(name)
                    ),
                )
            })?,
        Some(other) => {
            return Err(ParameterError::new(
                "scanGate.maxSeverity",
                format!("expected a severity name, got {}", kind_of(other)),
            ));
        }
    };
    let require_scan = match fields.get("requireScan") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ParameterError::new(
                "scanGate.requireScan",
                format!("expected true or false, got {}", kind_of(other)),
            ));
        }
    };
    Ok(ScanGate {
        max_severity,
        require_scan,
    })
}

/// A bake: `90s`, `5m`, `1h`, or units together (`1h30m`); at most 24 h.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration (a whole number of s, m or h: \"90s\", \"5m\", \"1h30m\")",
            quoted(text)
        )
    };
    if text.is_empty() || text.len() > 32 {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = u64::MAX;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        // Units largest first, each once: `5m1h` or `5m5m` is a typo, not a sum.
        if digits.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
        last_unit = unit;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    if total > 24 * 3600 {
        return Err(format!("{} is longer than 24h", quoted(text)));
    }
    Ok(Duration::from_secs(total))
}

fn duration(field: &str, value: &Value) -> Result<Duration, ParameterError> {
    match value {
        Value::String(text) => {
            parse_duration(text).map_err(|problem| ParameterError::new(field, problem))
        }
        other => Err(ParameterError::new(
            field,
            format!("expected a duration such as \"5m\", got {}", kind_of(other)),
        )),
    }
}

/// `1h30m`, `5m`, `90s` → `1m30s`: how a summary line shows a duration.
pub fn human(duration: Duration) -> String {
    let total = duration.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn plan(value: Value) -> Result<ReleasePlan, ParameterError> {
        match value {
            Value::Object(fields) => ReleasePlan::from_fields(&fields),
            _ => unreachable!("tests give objects"),
        }
    }

    #[test]
    fn no_plan_is_todays_rolling_update() {
        assert_eq!(
            plan(json!({"image": "shop:1"})).unwrap(),
            ReleasePlan::default()
        );
        assert_eq!(
            plan(json!({"strategy": {"type": "rolling"}}))
                .unwrap()
                .strategy,
            Strategy::Rolling
        );
    }

    #[test]
    fn a_canary_with_alarms_a_bake_after_and_a_scan_gate_parses() {
        let parsed = plan(json!({
            "strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "5m"}, {"weight": 50, "bake": "1h30m"}]},
            "alarms": ["shop-5xx", "shop-p99-latency"],
            "bakeAfter": "15m",
            "scanGate": {"maxSeverity": "high", "requireScan": false}
        }))
        .unwrap();
        assert_eq!(
            parsed.strategy,
            Strategy::Canary {
                steps: vec![
                    Step {
                        weight: 10,
                        bake: Duration::from_secs(300)
                    },
                    Step {
                        weight: 50,
                        bake: Duration::from_secs(5400)
                    },
                ]
            }
        );
        assert_eq!(parsed.alarms, ["shop-5xx", "shop-p99-latency"]);
        assert_eq!(parsed.bake_after, Some(Duration::from_secs(900)));
        assert_eq!(
            parsed.scan_gate,
            Some(ScanGate {
                max_severity: Severity::High,
                require_scan: false
            })
        );
        assert_eq!(parsed.total_bake(), Duration::from_secs(300 + 5400 + 900));
        let gate = plan(json!({"scanGate": {"maxSeverity": "MEDIUM"}})).unwrap();
        assert_eq!(gate.scan_gate.map(|g| g.require_scan), Some(true));
    }

    #[test]
    fn bad_strategies_are_refused_with_the_field_named() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"strategy": "canary"}),
                "strategy",
                "expected a JSON object",
            ),
            (
                json!({"strategy": {"type": "blue-green"}}),
                "strategy.type",
                "is not \"rolling\" or \"canary\"",
            ),
            (
                json!({"strategy": {"type": "canary"}}),
                "strategy.steps",
                "missing",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": []}}),
                "strategy.steps",
                "empty",
            ),
            (
                json!({"strategy": {"type": "rolling", "steps": []}}),
                "strategy.steps",
                "no steps",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 50, "bake": "5m"}, {"weight": 50, "bake": "5m"}]}}),
                "strategy.steps[1].weight",
                "strictly increasing",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 50, "bake": "5m"}, {"weight": 20, "bake": "5m"}]}}),
                "strategy.steps[1].weight",
                "strictly increasing",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 101, "bake": "5m"}]}}),
                "strategy.steps[0].weight",
                "from 1 to 100",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 0, "bake": "5m"}]}}),
                "strategy.steps[0].weight",
                "from 1 to 100",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 12.5, "bake": "5m"}]}}),
                "strategy.steps[0].weight",
                "from 1 to 100",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": "10", "bake": "5m"}]}}),
                "strategy.steps[0].weight",
                "got a string",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "5 minutes"}]}}),
                "strategy.steps[0].bake",
                "is not a duration",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10}]}}),
                "strategy.steps[0].bake",
                "missing",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "5m", "pause": true}]}}),
                "strategy.steps[0].pause",
                "unknown field",
            ),
            (
                json!({"strategy": {"type": "canary", "stpes": []}}),
                "strategy.stpes",
                "unknown field",
            ),
            (json!({"alarms": "shop-5xx"}), "alarms", "expected an array"),
            (
                json!({"alarms": ["shop-5xx", ""]}),
                "alarms[1]",
                "not a CloudWatch alarm name",
            ),
            (json!({"alarms": ["a", "a"]}), "alarms[1]", "named twice"),
            (
                json!({"alarms": (0..21).map(|i| format!("a{i}")).collect::<Vec<_>>()}),
                "alarms",
                "at most 20",
            ),
            (
                json!({"bakeAfter": 900}),
                "bakeAfter",
                "expected a duration",
            ),
            (json!({"bakeAfter": "25h"}), "bakeAfter", "longer than 24h"),
            (json!({"scanGate": {}}), "scanGate.maxSeverity", "missing"),
            (
                json!({"scanGate": {"maxSeverity": "SEVERE"}}),
                "scanGate.maxSeverity",
                "is not INFORMATIONAL",
            ),
            (
                json!({"scanGate": {"maxSeverity": "HIGH", "requireScan": "no"}}),
                "scanGate.requireScan",
                "expected true or false",
            ),
            (
                json!({"scanGate": {"maxSeverity": "HIGH", "ignore": []}}),
                "scanGate.ignore",
                "unknown field",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "12h"}, {"weight": 50, "bake": "12h"}]}}),
                "strategy.steps",
                "more than the 23h",
            ),
            (
                json!({"strategy": {"type": "canary", "steps": [{"weight": 10, "bake": "20h"}]}, "bakeAfter": "4h"}),
                "bakeAfter",
                "add up to 24h",
            ),
        ];
        for (value, field, problem) in cases {
            let error = plan(value.clone()).unwrap_err();
            assert_eq!(error.field, field, "{value}: {error}");
            assert!(error.problem.contains(problem), "{value}: {error}");
        }
    }

    #[test]
    fn durations_take_whole_units_largest_first() {
        for (text, secs) in [
            ("90s", 90),
            ("5m", 300),
            ("1h", 3600),
            ("1h30m", 5400),
            ("0s", 0),
            ("24h", 86_400),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for text in [
            "",
            "5",
            "m",
            "5M",
            "1.5h",
            "5m1h",
            "5m5m",
            "-5m",
            "99999999999999999999h",
            "5 m",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_print_as_they_are_written() {
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::ZERO), "0s");
    }

    #[test]
    fn severities_compare_lowest_first() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Informational > Severity::Undefined);
        assert_eq!(Severity::from_name("critical"), Some(Severity::Critical));
        assert_eq!(Severity::from_name("SEVERE"), None);
    }
}
