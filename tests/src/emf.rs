//! The CloudWatch Embedded Metric Format specification ("Specification: Embedded metric format",
//! CloudWatch user guide), as a checker of log lines: what CloudWatch Logs needs to extract the
//! metrics, written from the specification rather than from the code that writes the lines.

use serde_json::Value;

/// The units a MetricDefinition may name (CloudWatch's `StandardUnit`).
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The log lines of `lines` that are EMF documents (JSON objects with an `_aws` member).
pub fn documents(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("_aws").is_some())
        .collect()
}

/// Checks one log line against the specification; the error says what is wrong.
pub fn check(line: &str) -> Result<Value, String> {
    // The root node: a JSON object, with nothing before or after it in the log event.
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not one JSON value: {e}"))?;
    let object = root.as_object().ok_or("the root is not an object")?;
    let metadata = object
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no `_aws` metadata object")?;
    // Timestamp: a number, milliseconds since the epoch; CloudWatch takes events up to two weeks
    // old and two hours ahead.
    let timestamp = metadata
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or("`_aws.Timestamp` is not an integer number of milliseconds")?;
    if !(1_000_000_000_000..=100_000_000_000_000).contains(&timestamp) {
        return Err(format!(
            "`_aws.Timestamp` {timestamp} is not in epoch milliseconds"
        ));
    }
    let directives = metadata
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("`_aws.CloudWatchMetrics` is not an array")?;
    if directives.is_empty() {
        return Err("`_aws.CloudWatchMetrics` is empty".into());
    }
    for (d, directive) in directives.iter().enumerate() {
        let at = format!("CloudWatchMetrics[{d}]");
        let directive = directive
            .as_object()
            .ok_or(format!("{at} is not an object"))?;
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or(format!("{at}.Namespace is not a string"))?;
        if namespace.is_empty() || namespace.len() > 1024 || namespace.starts_with(':') {
            return Err(format!("{at}.Namespace {namespace:?} is not a namespace"));
        }
        let dimension_sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or(format!("{at}.Dimensions is not an array"))?;
        for (s, set) in dimension_sets.iter().enumerate() {
            let names = set
                .as_array()
                .ok_or(format!("{at}.Dimensions[{s}] is not an array"))?;
            if names.len() > 30 {
                return Err(format!("{at}.Dimensions[{s}] has more than 30 dimensions"));
            }
            for name in names {
                let name = name
                    .as_str()
                    .ok_or(format!("{at}.Dimensions[{s}] holds a non-string"))?;
                // Each dimension is a member of the root, its value a string: 1 to 1024
                // printable ASCII characters, not blank.
                let value = object
                    .get(name)
                    .ok_or(format!("dimension {name:?} is not a member of the root"))?
                    .as_str()
                    .ok_or(format!("dimension {name:?} is not a string"))?;
                if value.trim().is_empty()
                    || value.len() > 1024
                    || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
                {
                    return Err(format!(
                        "dimension {name:?} has the value {value:?}, which CloudWatch refuses"
                    ));
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or(format!("{at}.Metrics is not an array"))?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err(format!(
                "{at}.Metrics has {} definitions (1 to 100)",
                metrics.len()
            ));
        }
        for (m, definition) in metrics.iter().enumerate() {
            let definition = definition
                .as_object()
                .ok_or(format!("{at}.Metrics[{m}] is not an object"))?;
            let name = definition
                .get("Name")
                .and_then(Value::as_str)
                .ok_or(format!("{at}.Metrics[{m}].Name is not a string"))?;
            if let Some(unit) = definition.get("Unit")
                && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                return Err(format!(
                    "{at}.Metrics[{m}].Unit {unit} is not a CloudWatch unit"
                ));
            }
            if let Some(resolution) = definition.get("StorageResolution")
                && !(resolution == 1 || resolution == 60)
            {
                return Err(format!(
                    "{at}.Metrics[{m}].StorageResolution must be 1 or 60"
                ));
            }
            // The target member: a number, or an array of at most 100 numbers.
            match object.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                Some(other) => {
                    return Err(format!(
                        "metric {name:?} has the value {other}, not a number"
                    ));
                }
                None => return Err(format!("metric {name:?} is not a member of the root")),
            }
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"_aws":{"Timestamp":1795000000000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Pipeline"]],"Metrics":[{"Name":"Deployments","Unit":"Count"}]}]},"Pipeline":"p","Deployments":1}"#;

    #[test]
    fn a_document_the_specification_describes_is_taken_and_each_fault_named() {
        assert!(check(GOOD).is_ok());
        for (change, expected) in [
            (
                GOOD.replace(r#","Pipeline":"p""#, ""),
                "dimension \"Pipeline\" is not a member",
            ),
            (
                GOOD.replace(r#","Deployments":1"#, ""),
                "metric \"Deployments\" is not a member",
            ),
            (
                GOOD.replace(r#""Deployments":1}"#, r#""Deployments":"1"}"#),
                "not a number",
            ),
            (
                GOOD.replace("1795000000000", "1795000000"),
                "epoch milliseconds",
            ),
            (
                GOOD.replace(r#""Unit":"Count""#, r#""Unit":"Deploys""#),
                "not a CloudWatch unit",
            ),
            (
                GOOD.replace(r#""Namespace":"N","#, ""),
                "Namespace is not a string",
            ),
            (format!("{GOOD} trailing"), "not one JSON value"),
        ] {
            let error = check(&change).unwrap_err();
            assert!(error.contains(expected), "{change}: {error}");
        }
    }
}
