//! Where a Deployment's rollout stands, judged exactly as `kubectl rollout status` judges it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

/// A rollout's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Still going; what it waits for.
    Progressing(String),
    /// Every replica runs the new template and is available.
    Complete {
        /// Replicas running it.
        replicas: i32,
    },
    /// The Deployment controller gave up (`ProgressDeadlineExceeded`).
    Failed(String),
}

/// A `ProgressDeadlineExceeded` verdict of the Deployment controller, known by when its
/// condition was last updated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadlineVerdict {
    /// The condition's `lastUpdateTime`, as the API server wrote it.
    pub updated: String,
}

/// The `ProgressDeadlineExceeded` verdict `deployment` carries now, if any.
pub fn deadline_verdict(deployment: &Deployment) -> Option<DeadlineVerdict> {
    let condition = progressing_condition(deployment)?;
    (condition.reason.as_deref() == Some("ProgressDeadlineExceeded")).then(|| DeadlineVerdict {
        updated: condition
            .last_update_time
            .as_ref()
            .map(|time| time.0.to_string())
            .unwrap_or_default(),
    })
}

fn progressing_condition(
    deployment: &Deployment,
) -> Option<&k8s_openapi::api::apps::v1::DeploymentCondition> {
    deployment
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|condition| condition.type_ == "Progressing")
}

/// Judges `deployment` as kubectl's `DeploymentStatusViewer` does: nothing is known until the
/// controller has observed the current generation; then the deadline condition, then updated,
/// old and available replica counts.
pub fn status_of(deployment: &Deployment) -> RolloutStatus {
    status_since(deployment, None)
}

/// As [`status_of`], for a rollout that began while the Deployment carried the verdict
/// `earlier`: that verdict is an earlier rollout's, not this one's. The Deployment controller
/// keeps it until it sees progress: when the template goes back to a ReplicaSet that exists (a
/// rollback), `getNewReplicaSet` sets no new Progressing condition (it does only when there is
/// none), so with 1 replica, or 2 with maxSurge 1 / maxUnavailable 1, the first status after the
/// rollback still says ProgressDeadlineExceeded while the rollback succeeds. Only a verdict
/// written since counts; the replica counts say where the rollout is.
pub fn status_since(deployment: &Deployment, earlier: Option<&DeadlineVerdict>) -> RolloutStatus {
    let generation = deployment.metadata.generation.unwrap_or_default();
    let Some(status) = deployment.status.as_ref() else {
        return RolloutStatus::Progressing(
            "waiting for the deployment controller to report status".into(),
        );
    };
    if status.observed_generation.unwrap_or_default() < generation {
        return RolloutStatus::Progressing(
            "waiting for the deployment spec update to be observed".into(),
        );
    }
    let verdict = deadline_verdict(deployment);
    if verdict.is_some()
        && verdict.as_ref() != earlier
        && let Some(condition) = progressing_condition(deployment)
    {
        return RolloutStatus::Failed(format!(
            "the rollout exceeded its progress deadline{}",
            condition
                .message
                .as_deref()
                .map(|m| format!(" ({})", m.trim_end_matches('.')))
                .unwrap_or_default()
        ));
    }
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or_default();
    let total = status.replicas.unwrap_or_default();
    let available = status.available_replicas.unwrap_or_default();
    if updated < desired {
        return RolloutStatus::Progressing(format!("{updated} of {desired} new replicas updated"));
    }
    if total > updated {
        return RolloutStatus::Progressing(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Progressing(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    RolloutStatus::Complete { replicas: updated }
}

/// Where a rollout began: the deadline verdict the Deployment carried when its template was
/// changed (an earlier rollout's, if any), and when that was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RolloutStart {
    /// The verdict that was there before; `None` when there was none, or when this invocation
    /// did not change the template and so cannot know.
    pub earlier_verdict: Option<DeadlineVerdict>,
    /// When the template was changed, in seconds since the epoch.
    pub at: u64,
}

/// How long the Deployment controller waits for progress before it gives up
/// (`progressDeadlineSeconds`, 600 when unset).
pub fn progress_deadline(deployment: &Deployment) -> std::time::Duration {
    let seconds = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.progress_deadline_seconds)
        .unwrap_or(600);
    std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(600))
}

/// The image `container` runs in `deployment`'s pod template.
pub fn image_of(deployment: &Deployment, container: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .clone()
}

/// Why the pods running `image` in `container` are not ready, one line per distinct reason
/// (`ImagePullBackOff: Back-off pulling image "shop:bad" (pods web-5d9f-abcde, web-5d9f-fghij)`).
pub fn pod_problems(pods: &[Pod], container: &str, image: &str) -> Vec<String> {
    let mut problems: Vec<(String, Vec<String>)> = Vec::new();
    for pod in pods {
        // Only the pods made from the new template: their spec asks for the new image.
        let runs_image = pod.spec.as_ref().is_some_and(|spec| {
            spec.containers
                .iter()
                .any(|c| c.name == container && c.image.as_deref() == Some(image))
        });
        let Some(status) = pod.status.as_ref().filter(|_| runs_image) else {
            continue;
        };
        for container_status in status.container_statuses.iter().flatten() {
            if container_status.name != container {
                continue;
            }
            let problem = container_status.state.as_ref().and_then(|state| {
                if let Some(waiting) = &state.waiting {
                    let reason = waiting.reason.clone().unwrap_or_else(|| "Waiting".into());
                    return Some(match &waiting.message {
                        Some(message) => format!("{reason}: {message}"),
                        None => reason,
                    });
                }
                state.terminated.as_ref().map(|terminated| {
                    format!(
                        "{} (exit code {})",
                        terminated
                            .reason
                            .clone()
                            .unwrap_or_else(|| "Terminated".into()),
                        terminated.exit_code
                    )
                })
            });
            let Some(problem) = problem else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            match problems.iter_mut().find(|(p, _)| *p == problem) {
                Some((_, names)) => names.push(name),
                None => problems.push((problem, vec![name])),
            }
        }
    }
    problems
        .into_iter()
        .map(|(problem, mut names)| {
            names.sort();
            let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            let more = names.len().saturating_sub(3);
            let suffix = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{problem} (pods {}{suffix})", shown.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "generation": generation},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": "shop:v2"}, {"name": "proxy", "image": "envoy:1.30"}
                ]}}
            },
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn an_unobserved_generation_is_still_progressing() {
        let d = deployment(
            4,
            json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            status_of(&d),
            RolloutStatus::Progressing(
                "waiting for the deployment spec update to be observed".into()
            )
        );
    }

    #[test]
    fn the_counts_are_checked_in_kubectls_order() {
        let cases = [
            (
                json!({"observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}),
                "1 of 3 new replicas updated",
            ),
            (
                json!({"observedGeneration": 4, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
                "1 old replicas pending termination",
            ),
            (
                json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                "2 of 3 updated replicas available",
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(
                status_of(&deployment(4, status)),
                RolloutStatus::Progressing(expected.into())
            );
        }
    }

    #[test]
    fn all_replicas_updated_and_available_is_complete() {
        let d = deployment(
            4,
            json!({"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(status_of(&d), RolloutStatus::Complete { replicas: 3 });
    }

    #[test]
    fn an_exceeded_progress_deadline_is_a_failure() {
        let d = deployment(
            4,
            json!({
                "observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                     "message": "ReplicaSet \"web-6f7c\" has timed out progressing."}
                ]
            }),
        );
        assert_eq!(
            status_of(&d),
            RolloutStatus::Failed(
                "the rollout exceeded its progress deadline (ReplicaSet \"web-6f7c\" has timed out progressing)".into()
            )
        );
    }

    #[test]
    fn a_verdict_that_stood_before_the_rollout_does_not_judge_it() {
        let verdict = |updated: &str| {
            json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                   "lastUpdateTime": updated, "message": "ReplicaSet \"web-6f7c\" has timed out progressing."})
        };
        // A rollback of 1 replica to the ReplicaSet that ran before: the controller has
        // observed it, the counts are those of a finished rollout, the verdict is the old one.
        let rolled_back = |updated: &str| {
            deployment(
                5,
                json!({"observedGeneration": 5, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                       "conditions": [verdict(updated)]}),
            )
        };
        let earlier = DeadlineVerdict {
            updated: "2026-12-02T10:00:00Z".into(),
        };
        let d = rolled_back("2026-12-02T10:00:00Z");
        assert_eq!(deadline_verdict(&d), Some(earlier.clone()));
        assert!(
            matches!(status_of(&d), RolloutStatus::Failed(_)),
            "kubectl's rule alone"
        );
        assert_eq!(
            status_since(&d, Some(&earlier)),
            RolloutStatus::Complete { replicas: 3 }
        );
        assert!(matches!(
            status_since(&rolled_back("2026-12-02T10:04:00Z"), Some(&earlier)),
            RolloutStatus::Failed(_)
        ));
    }

    #[test]
    fn the_progress_deadline_is_the_spec_s_or_the_default() {
        let mut d = deployment(1, json!({}));
        assert_eq!(progress_deadline(&d), std::time::Duration::from_secs(600));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(45);
        assert_eq!(progress_deadline(&d), std::time::Duration::from_secs(45));
    }

    #[test]
    fn the_image_of_one_container_is_found_among_several() {
        let d = deployment(1, json!({}));
        assert_eq!(image_of(&d, "proxy").as_deref(), Some("envoy:1.30"));
        assert_eq!(image_of(&d, "missing"), None);
    }

    #[test]
    fn pod_problems_group_pods_by_reason() {
        let pod = |name: &str, waiting: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "web", "image": "shop:bad"}, {"name": "proxy", "image": "envoy:1.30"}]},
                "status": {"containerStatuses": [
                    {"name": "web", "image": "shop:bad", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": waiting}},
                    {"name": "proxy", "image": "envoy:1.30", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}
                ]}
            }))
            .unwrap()
        };
        let pulling =
            json!({"reason": "ImagePullBackOff", "message": "Back-off pulling image \"shop:bad\""});
        let pods = vec![
            pod("web-b", pulling.clone()),
            pod("web-a", pulling),
            pod("web-c", json!({"reason": "CrashLoopBackOff"})),
        ];
        assert_eq!(
            pod_problems(&pods, "web", "shop:bad"),
            vec![
                "ImagePullBackOff: Back-off pulling image \"shop:bad\" (pods web-a, web-b)"
                    .to_owned(),
                "CrashLoopBackOff (pods web-c)".to_owned(),
            ]
        );
        assert!(pod_problems(&pods, "proxy", "envoy:1.30").is_empty());
    }
}
