//! The canary Deployment: `<name>-canary`, the main Deployment's pod template with the new image,
//! the labels the main one's Service selects plus `track: canary`, and as many replicas as the
//! step's weight of the main one's.
//!
//! No CRD and no mesh: the Service selects the canary's pods as it selects the main ones (they
//! carry the same labels), so the canary's share of the traffic follows its share of the pods.
//! The canary's selector has `track: canary`, which the main Deployment's pods lack, so the
//! canary never adopts them; the canary's ReplicaSet is owned by the canary Deployment, so the
//! main Deployment never adopts it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use crate::cluster::ClusterError;

/// The label that tells the canary's pods from the main Deployment's.
pub const TRACK_LABEL: &str = "track";
/// Its value on the canary's pods.
pub const TRACK_CANARY: &str = "canary";
/// Who made the canary: the CodePipeline job that started the release (or `direct` for a direct
/// invocation). A canary of another owner is an abandoned one.
pub const OWNER_ANNOTATION: &str = "eks-deploy.cicd/canary-owner";
/// The Deployment the canary is a canary of.
pub const CANARY_OF_ANNOTATION: &str = "eks-deploy.cicd/canary-of";

/// The canary's name for Deployment `name`.
pub fn canary_name(name: &str) -> String {
    format!("{name}-canary")
}

/// `ceil(weight × replicas / 100)`, at least 1.
pub fn canary_replicas(weight: u8, replicas: i32) -> i32 {
    let replicas = i64::from(replicas.max(0));
    // Both are non-negative: rounding up is adding 99 first.
    let wanted = (i64::from(weight) * replicas + 99) / 100;
    i32::try_from(wanted.max(1)).unwrap_or(i32::MAX)
}

/// The owner recorded on `canary`.
pub fn owner_of(canary: &Deployment) -> Option<&str> {
    canary
        .metadata
        .annotations
        .as_ref()?
        .get(OWNER_ANNOTATION)
        .map(String::as_str)
}

/// The main Deployment's desired replicas (1 when unset, as the API server defaults it).
pub fn replicas_of(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1)
}

/// The canary of `main`: its pod template with `container` running `image`, `track: canary`
/// added to the selector and the pod labels, `replicas` replicas, owned by `owner`.
pub fn canary_of(
    main: &Deployment,
    container: &str,
    image: &str,
    replicas: i32,
    owner: &str,
) -> Result<Deployment, ClusterError> {
    let name = main.metadata.name.clone().unwrap_or_default();
    let spec = main.spec.clone().ok_or_else(|| ClusterError::Refused {
        operation: "build canary",
        code: 0,
        reason: "NoSpec".into(),
        message: format!("deployment {name} has no spec"),
    })?;
    let mut template = spec.template;
    let pod = template.spec.as_mut();
    let Some(found) = pod.and_then(|pod| pod.containers.iter_mut().find(|c| c.name == container))
    else {
        return Err(ClusterError::NoSuchContainer {
            deployment: name,
            container: container.to_owned(),
            known: String::new(),
        });
    };
    found.image = Some(image.to_owned());
    let mut metadata = template.metadata.unwrap_or_default();
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    template.metadata = Some(metadata);
    let mut selector = spec.selector;
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    let mut labels = main.metadata.labels.clone().unwrap_or_default();
    labels.insert(TRACK_LABEL.into(), TRACK_CANARY.into());
    let annotations = BTreeMap::from([
        (OWNER_ANNOTATION.to_owned(), owner.to_owned()),
        (CANARY_OF_ANNOTATION.to_owned(), name.clone()),
    ]);
    let value = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(&name),
            "namespace": main.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "minReadySeconds": spec.min_ready_seconds,
            "strategy": spec.strategy,
        }
    });
    serde_json::from_value(strip_nulls(value)).map_err(|error| ClusterError::Refused {
        operation: "build canary",
        code: 0,
        reason: "Invalid".into(),
        message: error.to_string(),
    })
}

/// The merge patch that brings an existing canary of ours to `replicas` and `image`, or `None`
/// when it is there already (a redelivered or resumed step changes nothing).
pub fn canary_patch(
    canary: &Deployment,
    container: &str,
    image: &str,
    replicas: i32,
) -> Option<Value> {
    let runs = crate::rollout::image_of(canary, container);
    let has = replicas_of(canary);
    if runs.as_deref() == Some(image) && has == replicas {
        return None;
    }
    let mut patch = json!({"spec": {"replicas": replicas}});
    if runs.as_deref() != Some(image) {
        // A merge patch replaces lists whole: the containers go in full, this one's image changed.
        let containers: Vec<Value> = canary
            .spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .map(|pod| {
                pod.containers
                    .iter()
                    .map(|c| {
                        let mut c = serde_json::to_value(c).unwrap_or_default();
                        if c["name"] == container {
                            c["image"] = json!(image);
                        }
                        c
                    })
                    .collect()
            })
            .unwrap_or_default();
        patch["spec"]["template"] = json!({"spec": {"containers": containers}});
    }
    patch["metadata"] = json!({"resourceVersion": canary.metadata.resource_version});
    Some(patch)
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{deployment, rolled_out};

    fn main() -> Deployment {
        serde_json::from_value(deployment("41", 3, "shop:v1", rolled_out(3))).unwrap()
    }

    #[test]
    fn the_canary_has_a_share_of_the_replicas_rounded_up_and_at_least_one() {
        assert_eq!(canary_replicas(10, 3), 1);
        assert_eq!(canary_replicas(50, 3), 2);
        assert_eq!(canary_replicas(100, 3), 3);
        assert_eq!(canary_replicas(25, 8), 2);
        assert_eq!(canary_replicas(1, 0), 1);
        assert_eq!(canary_replicas(34, 3), 2);
    }

    #[test]
    fn the_canary_copies_the_template_with_the_new_image_and_its_own_track() {
        let canary = canary_of(&main(), "web", "shop@sha256:ab", 1, "job-1").unwrap();
        let value = serde_json::to_value(&canary).unwrap();
        assert_eq!(value["metadata"]["name"], "web-canary");
        assert_eq!(value["metadata"]["namespace"], "shop");
        assert_eq!(value["metadata"]["annotations"][OWNER_ANNOTATION], "job-1");
        assert_eq!(
            value["metadata"]["annotations"][CANARY_OF_ANNOTATION],
            "web"
        );
        assert_eq!(value["metadata"].get("resourceVersion"), None);
        assert_eq!(value["spec"]["replicas"], 1);
        assert_eq!(
            value["spec"]["selector"]["matchLabels"],
            json!({"app": "web", "track": "canary"})
        );
        assert_eq!(
            value["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web", "track": "canary"})
        );
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "shop@sha256:ab"}, {"name": "proxy", "image": "envoy:1.30"}])
        );
        assert_eq!(value["spec"]["progressDeadlineSeconds"], 60);
        assert_eq!(owner_of(&canary), Some("job-1"));
        // The main Deployment's selector does not select the canary's pods' track.
        assert!(
            !main()
                .spec
                .unwrap()
                .selector
                .match_labels
                .unwrap()
                .contains_key(TRACK_LABEL)
        );
    }

    #[test]
    fn a_canary_already_as_wanted_is_not_patched() {
        let canary = canary_of(&main(), "web", "shop:v2", 2, "job-1").unwrap();
        assert_eq!(canary_patch(&canary, "web", "shop:v2", 2), None);
        let scale = canary_patch(&canary, "web", "shop:v2", 3).unwrap();
        assert_eq!(scale["spec"], json!({"replicas": 3}));
        let image = canary_patch(&canary, "web", "shop:v3", 2).unwrap();
        assert_eq!(
            image["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "web", "image": "shop:v3"})
        );
        assert_eq!(
            image["spec"]["template"]["spec"]["containers"][1]["name"],
            "proxy"
        );
    }

    #[test]
    fn a_missing_container_is_named() {
        assert!(matches!(
            canary_of(&main(), "api", "x", 1, "o"),
            Err(ClusterError::NoSuchContainer { .. })
        ));
    }
}
