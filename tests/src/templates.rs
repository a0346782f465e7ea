//! The deployment templates (`template.yaml`, `infra/pipeline.yaml`) as YAML values, for the
//! tests that check them against the code. CloudFormation's short-form intrinsics (`!Ref`,
//! `!Sub`…) come through as [`Value::Tagged`].

use serde_yaml_ng::Value;

use crate::workspace_root;

/// The YAML document at `path`, relative to the workspace root.
pub fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `AWS::Serverless::Function` resources of `template`, by logical id.
pub fn functions(template: &Value) -> Vec<(String, Value)> {
    template["Resources"]
        .as_mapping()
        .expect("the template has Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .map(|(id, resource)| (id.as_str().unwrap_or_default().to_owned(), resource.clone()))
        .collect()
}
