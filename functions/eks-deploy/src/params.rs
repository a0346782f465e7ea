//! What to deploy where: the action's `UserParameters`, or a direct invocation's payload.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::InvalidEvent;
use shared::events::codepipeline::{JOB_KEY, Job, JobEvent};
use shared::events::quoted;

use crate::plan::ReleasePlan;

/// How an invocation came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// A CodePipeline Lambda invoke action.
    Job(Job),
    /// A person or a script, with the parameters as the payload.
    Direct(Value),
}

/// Tells a CodePipeline job from a direct invocation.
pub fn parse(payload: Value) -> Result<Invocation, InvalidEvent> {
    match &payload {
        Value::Object(fields) if fields.contains_key(JOB_KEY) => {
            let event: JobEvent = shared::events::from_value(payload)?;
            Ok(Invocation::Job(event.job))
        }
        Value::Object(_) => Ok(Invocation::Direct(payload)),
        other => Err(InvalidEvent::new(format!(
            "expected a CodePipeline job or the deployment parameters as a JSON object, got {}",
            shared::events::kind_of(other)
        ))),
    }
}

/// A deployment request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployParameters {
    /// The EKS cluster's name.
    pub cluster: String,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The container whose image changes.
    pub container: String,
    /// The image to run.
    pub image: String,
    /// Roll back to the previous image when the rollout fails; the function's setting when
    /// absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_on_failure: Option<bool>,
    /// How the release goes out: strategy, alarms, bake after, scan gate.
    #[serde(skip)]
    pub plan: ReleasePlan,
    /// The environment's name (`production`), as infra/environments.yml gives it: names the
    /// role session and the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// For a cluster of another account: the role assumed there.
    #[serde(skip)]
    pub cross_account: Option<CrossAccount>,
    /// The pipeline execution the deploy belongs to (`#{codepipeline.PipelineExecutionId}`):
    /// the role session is named after it. A Lambda invoke action's event does not carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_execution_id: Option<String>,
}

/// The role of another account a deploy goes through, and the ExternalId its trust policy
/// requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossAccount {
    /// `arn:aws:iam::210987654321:role/eks-deploy-target`.
    pub role_arn: String,
    /// Tells this pipeline's deploys from other callers of the same role; not a secret.
    pub external_id: String,
}

/// A parameter that is missing or wrong, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ParameterError {
    /// The field at fault (`image`), or `UserParameters` for the whole.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ParameterError {
    pub(crate) fn new(field: &str, problem: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Raw {
    cluster: Option<Value>,
    namespace: Option<Value>,
    deployment: Option<Value>,
    container: Option<Value>,
    image: Option<Value>,
    rollback_on_failure: Option<Value>,
    // The release plan's keys (crate::plan::KEYS), read by ReleasePlan::from_fields.
    #[serde(rename = "strategy")]
    _strategy: Option<Value>,
    #[serde(rename = "alarms")]
    _alarms: Option<Value>,
    #[serde(rename = "bakeAfter")]
    _bake_after: Option<Value>,
    #[serde(rename = "scanGate")]
    _scan_gate: Option<Value>,
    role_arn: Option<Value>,
    external_id: Option<Value>,
    environment: Option<Value>,
    pipeline_execution_id: Option<Value>,
}

impl DeployParameters {
    /// Parses the action's `UserParameters` string.
    pub fn from_user_parameters(text: Option<&str>) -> Result<Self, ParameterError> {
        let text = text
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ParameterError::new("UserParameters", "missing: give a JSON object with cluster, namespace, deployment, container and image"))?;
        let value: Value = serde_json::from_str(text)
            .map_err(|error| ParameterError::new("UserParameters", format!("not JSON: {error}")))?;
        Self::from_value(value)
    }

    /// Parses a JSON object holding the parameters.
    pub fn from_value(value: Value) -> Result<Self, ParameterError> {
        if !value.is_object() {
            return Err(ParameterError::new(
                "UserParameters",
                format!(
                    "expected a JSON object, got {}",
                    shared::events::kind_of(&value)
                ),
            ));
        }
        let fields = value.as_object().cloned().unwrap_or_default();
        let raw: Raw = serde_json::from_value(value).map_err(|error| {
            let message = error.to_string();
            // serde names the unknown field: surface it as the field at fault, unless the name
            // is too odd to print as a field (it is then quoted, cut short).
            match message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once("`, expected"))
            {
                Some((name, _))
                    if !name.is_empty()
                        && name.len() <= 64
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    ParameterError::new(name, format!("unknown field `{name}`"))
                }
                Some((name, _)) => {
                    ParameterError::new("UserParameters", format!("unknown field {}", quoted(name)))
                }
                None => ParameterError::new(
                    "UserParameters",
                    message
                        .split(", expected")
                        .next()
                        .unwrap_or(&message)
                        .to_owned(),
                ),
            }
        })?;
        let cluster = text("cluster", raw.cluster)?;
        check_cluster(&cluster)?;
        let namespace = text("namespace", raw.namespace)?;
        check_label("namespace", &namespace)?;
        let deployment = text("deployment", raw.deployment)?;
        check_subdomain("deployment", &deployment)?;
        let container = text("container", raw.container)?;
        check_label("container", &container)?;
        let image = text("image", raw.image)?;
        check_image(&image)?;
        let rollback_on_failure = match raw.rollback_on_failure {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(other) => {
                return Err(ParameterError::new(
                    "rollbackOnFailure",
                    format!(
                        "expected true or false, got {}",
                        shared::events::kind_of(&other)
                    ),
                ));
            }
        };
        let plan = ReleasePlan::from_fields(&fields)?;
        let environment = optional_text("environment", raw.environment)?;
        if let Some(name) = &environment {
            check_environment(name)?;
        }
        let cross_account = match (
            optional_text("roleArn", raw.role_arn)?,
            optional_text("externalId", raw.external_id)?,
        ) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ParameterError::new(
                    "roleArn",
                    "missing (externalId is given; it goes with a role)",
                ));
            }
            (Some(_), None) => {
                return Err(ParameterError::new(
                    "externalId",
                    "missing (the role's trust policy requires one: infra/target-account.yaml)",
                ));
            }
            (Some(role_arn), Some(external_id)) => {
                check_role_arn(&role_arn)?;
                check_external_id(&external_id)?;
                Some(CrossAccount {
                    role_arn,
                    external_id,
                })
            }
        };
        let pipeline_execution_id =
            optional_text("pipelineExecutionId", raw.pipeline_execution_id)?;
        if let Some(id) = &pipeline_execution_id {
            check_execution_id(id)?;
        }
        Ok(Self {
            cluster,
            namespace,
            deployment,
            container,
            image,
            rollback_on_failure,
            plan,
            environment,
            cross_account,
            pipeline_execution_id,
        })
    }
}

fn text(field: &str, value: Option<Value>) -> Result<String, ParameterError> {
    match value {
        None | Some(Value::Null) => Err(ParameterError::new(field, "missing")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ParameterError::new(field, "empty")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ParameterError::new(
            field,
            format!("expected a string, got {}", shared::events::kind_of(&other)),
        )),
    }
}

fn optional_text(field: &str, value: Option<Value>) -> Result<Option<String>, ParameterError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        value => text(field, value).map(Some),
    }
}

/// Environment names, as infra/environments.py takes them: a lower-case letter, then letters,
/// digits and `-`, at most 30.
fn check_environment(name: &str) -> Result<(), ParameterError> {
    let valid = name.len() <= 30
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ParameterError::new(
            "environment",
            format!(
                "{} is not an environment name (a lower-case letter, then letters, digits and '-', at most 30)",
                quoted(name)
            ),
        ))
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12 digits>:role/<path and name>`.
fn check_role_arn(arn: &str) -> Result<(), ParameterError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            partition.starts_with("aws")
                && partition
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| {
                    (1..=512).contains(&name.len())
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@/-".contains(&b))
                })
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ParameterError::new(
            "roleArn",
            format!("{} is not an IAM role ARN", quoted(arn)),
        ))
    }
}

/// STS AssumeRole's ExternalId: 2 to 1224 of letters, digits and `_+=,.@:/-`.
fn check_external_id(id: &str) -> Result<(), ParameterError> {
    let valid = (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ParameterError::new(
            "externalId",
            "is not an ExternalId (2 to 1224 of letters, digits and _+=,.@:/-)",
        ))
    }
}

/// A pipeline execution id (a UUID in CodePipeline): letters, digits and `-`, at most 100. An
/// unresolved `#{codepipeline.PipelineExecutionId}` is refused here, not sent to STS.
fn check_execution_id(id: &str) -> Result<(), ParameterError> {
    if id.len() <= 100 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(ParameterError::new(
            "pipelineExecutionId",
            format!(
                "{} is not a pipeline execution id (pass #{{codepipeline.PipelineExecutionId}})",
                quoted(id)
            ),
        ))
    }
}

/// EKS cluster names: 1–100 characters, a letter or digit first, then letters, digits, `-`, `_`.
fn check_cluster(name: &str) -> Result<(), ParameterError> {
    let valid = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ParameterError::new(
            "cluster",
            format!("{} is not an EKS cluster name", quoted(name)),
        ))
    }
}

/// Kubernetes DNS-1123 labels: namespaces and container names.
fn check_label(field: &str, name: &str) -> Result<(), ParameterError> {
    if is_label(name) {
        Ok(())
    } else {
        Err(ParameterError::new(
            field,
            format!(
                "{} is not a valid name (lowercase letters, digits and '-', at most 63, starting and ending alphanumeric)",
                quoted(name)
            ),
        ))
    }
}

fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Kubernetes DNS-1123 subdomains: Deployment names.
fn check_subdomain(field: &str, name: &str) -> Result<(), ParameterError> {
    if name.len() <= 253 && name.split('.').all(is_label) {
        Ok(())
    } else {
        Err(ParameterError::new(
            field,
            format!("{} is not a valid Deployment name", quoted(name)),
        ))
    }
}

/// An image reference: no whitespace or control characters, a sane length, a name before any
/// tag or digest.
fn check_image(image: &str) -> Result<(), ParameterError> {
    let bad = |problem: &str| {
        Err(ParameterError::new(
            "image",
            format!("{} {problem}", quoted(image)),
        ))
    };
    if image.len() > 4096 {
        return bad("is too long");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    if image.starts_with([':', '@', '/']) || image.ends_with([':', '@', '/']) {
        return bad("is not an image reference");
    }
    if let Some((_, digest)) = image.split_once('@')
        && !(digest.starts_with("sha256:")
            && digest.len() == 71
            && digest[7..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return bad("has a malformed digest (expected @sha256:<64 hex>)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({
            "cluster": "shop-prod",
            "namespace": "shop",
            "deployment": "web",
            "container": "web",
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:0ccf1ae"
        })
    }

    #[test]
    fn valid_parameters_parse_from_the_user_parameters_string() {
        let parsed = DeployParameters::from_user_parameters(Some(&valid().to_string())).unwrap();
        assert_eq!(parsed.cluster, "shop-prod");
        assert_eq!(
            parsed.image,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:0ccf1ae"
        );
        assert_eq!(parsed.rollback_on_failure, None);
        let mut with_rollback = valid();
        with_rollback["rollbackOnFailure"] = json!(false);
        assert_eq!(
            DeployParameters::from_value(with_rollback)
                .unwrap()
                .rollback_on_failure,
            Some(false)
        );
        let mut digest = valid();
        digest["image"] = json!(format!("shop@sha256:{}", "a".repeat(64)));
        assert!(DeployParameters::from_value(digest).is_ok());
    }

    #[test]
    fn the_release_plan_is_read_from_the_same_object() {
        let mut canary = valid();
        canary["strategy"] = json!({"type": "canary", "steps": [{"weight": 10, "bake": "5m"}, {"weight": 50, "bake": "10m"}]});
        canary["alarms"] = json!(["shop-5xx"]);
        canary["bakeAfter"] = json!("15m");
        canary["scanGate"] = json!({"maxSeverity": "HIGH"});
        let parsed = DeployParameters::from_value(canary).unwrap();
        assert!(matches!(
            parsed.plan.strategy,
            crate::plan::Strategy::Canary { ref steps } if steps.len() == 2
        ));
        assert_eq!(parsed.plan.alarms, ["shop-5xx"]);
        assert_eq!(
            parsed.plan.bake_after,
            Some(std::time::Duration::from_secs(900))
        );
        let mut bad = valid();
        bad["strategy"] = json!({"type": "canary", "steps": [{"weight": 50, "bake": "5m"}, {"weight": 10, "bake": "5m"}]});
        let error = DeployParameters::from_value(bad).unwrap_err();
        assert_eq!(error.field, "strategy.steps[1].weight");
        let mut unknown = valid();
        unknown["strategyy"] = json!({});
        assert_eq!(
            DeployParameters::from_value(unknown).unwrap_err().field,
            "strategyy"
        );
    }

    #[test]
    fn each_wrong_field_is_named() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "cluster", "missing"),
            (
                json!({"cluster": 7}),
                "cluster",
                "expected a string, got a number",
            ),
            (
                json!({"cluster": "shop prod"}),
                "cluster",
                "is not an EKS cluster name",
            ),
            (json!({"cluster": "c"}), "namespace", "missing"),
            (
                json!({"cluster": "c", "namespace": "Shop"}),
                "namespace",
                "is not a valid name",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web_1"}),
                "deployment",
                "is not a valid Deployment name",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": ""}),
                "container",
                "empty",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": "web"}),
                "image",
                "missing",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": "web", "image": "shop: v2"}),
                "image",
                "contains whitespace",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": "web", "image": "shop@sha256:abc"}),
                "image",
                "malformed digest",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": "web", "image": "shop:1", "rollbackOnFailure": "yes"}),
                "rollbackOnFailure",
                "expected true or false",
            ),
            (
                json!({"cluster": "c", "namespace": "shop", "deployment": "web", "container": "web", "image": "shop:1", "imag": "x"}),
                "imag",
                "unknown field `imag`",
            ),
            (
                json!([1]),
                "UserParameters",
                "expected a JSON object, got an array",
            ),
        ];
        for (value, field, problem) in cases {
            let error = DeployParameters::from_value(value.clone()).unwrap_err();
            assert_eq!(error.field, field, "{value}: {error}");
            assert!(error.problem.contains(problem), "{value}: {error}");
        }
    }

    fn cross_account() -> Value {
        let mut value = valid();
        value["roleArn"] = json!("arn:aws:iam::210987654321:role/eks-deploy-target");
        value["externalId"] = json!("shop-main-production");
        value["environment"] = json!("production");
        value["pipelineExecutionId"] = json!("3f2c9a1e-7b4d-4c8e-9f10-2a3b4c5d6e7f");
        value
    }

    #[test]
    fn an_environment_of_another_account_names_its_role_external_id_and_execution() {
        let parsed = DeployParameters::from_value(cross_account()).unwrap();
        assert_eq!(
            parsed.cross_account,
            Some(CrossAccount {
                role_arn: "arn:aws:iam::210987654321:role/eks-deploy-target".into(),
                external_id: "shop-main-production".into(),
            })
        );
        assert_eq!(parsed.environment.as_deref(), Some("production"));
        assert_eq!(
            parsed.pipeline_execution_id.as_deref(),
            Some("3f2c9a1e-7b4d-4c8e-9f10-2a3b4c5d6e7f")
        );
        let mut china = cross_account();
        china["roleArn"] = json!("arn:aws-cn:iam::210987654321:role/teams/eks-deploy");
        assert!(DeployParameters::from_value(china).is_ok());
        let same_account = DeployParameters::from_value(valid()).unwrap();
        assert_eq!(same_account.cross_account, None);
        assert_eq!(same_account.environment, None);
    }

    #[test]
    fn each_wrong_cross_account_field_is_named() {
        let with = |field: &str, value: Value| {
            let mut params = cross_account();
            if value.is_null() {
                params.as_object_mut().unwrap().remove(field);
            } else {
                params[field] = value;
            }
            DeployParameters::from_value(params).unwrap_err()
        };
        let cases = [
            (with("externalId", Value::Null), "externalId", "missing"),
            (with("roleArn", Value::Null), "roleArn", "missing"),
            (
                with("roleArn", json!("arn:aws:iam::2109876543:role/x")),
                "roleArn",
                "not an IAM role ARN",
            ),
            (
                with("roleArn", json!("arn:aws:iam::210987654321:user/x")),
                "roleArn",
                "not an IAM role ARN",
            ),
            (with("roleArn", json!(7)), "roleArn", "expected a string"),
            (
                with("externalId", json!("a b")),
                "externalId",
                "is not an ExternalId",
            ),
            (
                with("externalId", json!("x")),
                "externalId",
                "is not an ExternalId",
            ),
            (
                with("environment", json!("Prod")),
                "environment",
                "is not an environment name",
            ),
            (
                with(
                    "pipelineExecutionId",
                    json!("#{codepipeline.PipelineExecutionId}"),
                ),
                "pipelineExecutionId",
                "is not a pipeline execution id",
            ),
        ];
        for (error, field, problem) in cases {
            assert_eq!(error.field, field, "{error}");
            assert!(error.problem.contains(problem), "{error}");
        }
    }

    #[test]
    fn missing_or_garbled_user_parameters_are_named_as_such() {
        let missing = DeployParameters::from_user_parameters(None).unwrap_err();
        assert_eq!(missing.field, "UserParameters");
        let blank = DeployParameters::from_user_parameters(Some("  ")).unwrap_err();
        assert_eq!(blank.field, "UserParameters");
        let garbled = DeployParameters::from_user_parameters(Some("{cluster: shop}")).unwrap_err();
        assert_eq!(garbled.field, "UserParameters");
        assert!(garbled.problem.starts_with("not JSON"));
    }
}
