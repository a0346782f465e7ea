//! What every fuzz target shares: the path a payload takes before a handler sees it, the sample
//! configuration, and the checks every `InvalidEvent` must pass.
//!
//! The targets live in `fuzz_targets/`; `tests/scripts/fuzz` builds and runs them.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;
use serde_json::value::RawValue;
use shared::InvalidEvent;

/// The sample configuration the local flow runs the functions with (`events/env.json`), by
/// function logical id and variable: the targets decide with the settings the samples assume.
static SAMPLE_ENV: LazyLock<BTreeMap<String, BTreeMap<String, String>>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../../events/env.json")).unwrap_or_default()
});

/// A lookup of `function`'s sample settings, as its `Config::from_lookup` takes it.
pub fn sample_setting(function: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| SAMPLE_ENV.get(function)?.get(name).cloned()
}

/// The payload a function's handler gets for `data`, or `None` where the function never sees
/// one: what the runtime does (`Box<RawValue>`: JSON at any depth) and then what every `main`
/// does (`shared::events::payload`, with the function's size limit).
pub fn payload(data: &[u8], max_bytes: usize) -> Option<Value> {
    // Not JSON: the runtime refuses it before the handler runs.
    let raw: Box<RawValue> = serde_json::from_slice(data).ok()?;
    match shared::events::payload(&raw, max_bytes) {
        Ok(value) => {
            assert!(
                raw.get().len() <= max_bytes,
                "a payload over the limit was taken"
            );
            Some(value)
        }
        Err(error) => {
            check_invalid(&error);
            None
        }
    }
}

/// What every refusal must be: a message that says something, for the log and `errorMessage`,
/// on one line of bounded length whatever the event held.
pub fn check_invalid(error: &InvalidEvent) {
    let message = error.message();
    assert!(!message.is_empty(), "an InvalidEvent without a message");
    assert!(
        message.len() <= 1_024,
        "an InvalidEvent message of {} bytes",
        message.len()
    );
    assert!(
        !message.contains(['\n', '\r']),
        "an InvalidEvent message over several lines: {message:?}"
    );
}

/// What eks-deploy's parameters must be when taken: names Kubernetes and EKS accept, an image
/// reference without whitespace; and when refused, an error naming a field.
pub fn check_parameters(
    parameters: Result<eks_deploy::params::DeployParameters, eks_deploy::params::ParameterError>,
) {
    let parameters = match parameters {
        Ok(parameters) => parameters,
        Err(error) => {
            assert!(!error.field.is_empty(), "{error}");
            assert!(!error.problem.is_empty(), "{error}");
            return;
        }
    };
    let is_label = |name: &str| {
        (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    };
    let cluster = &parameters.cluster;
    assert!(
        (1..=100).contains(&cluster.len())
            && cluster.starts_with(|c: char| c.is_ascii_alphanumeric())
            && cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{parameters:?}"
    );
    assert!(is_label(&parameters.namespace), "{parameters:?}");
    assert!(is_label(&parameters.container), "{parameters:?}");
    assert!(
        parameters.deployment.len() <= 253 && parameters.deployment.split('.').all(is_label),
        "{parameters:?}"
    );
    let image = &parameters.image;
    assert!(
        !image.is_empty()
            && image.len() <= 4096
            && !image.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{parameters:?}"
    );
}
