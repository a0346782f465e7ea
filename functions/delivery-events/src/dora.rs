//! DORA's four keys as EMF metric documents, per pipeline and environment.
//!
//! Each deploy that ends writes one document: a success counts in `Deployments` with its
//! `LeadTimeSeconds` (the commit's committer date to the deploy's success) and, when it ends an
//! outage, its `TimeToRestoreSeconds` (the first failed deploy since the last success, to this
//! success); a failed or rolled-back deploy counts in `DeploymentFailures`. Every deploy carries
//! `DeploymentFailed` (1 or 0), whose average over a week is the change failure rate. Builds that
//! fail, rejected approvals and stops write nothing: they never reached the environment.
//! CodePipeline's own rollback is no new change: it counts in no deploy figure, but it ends an
//! outage (`TimeToRestoreSeconds`).

use serde_json::json;
use shared::emf::{Metric, MetricDocument, Unit};

use crate::report::{Ending, Report};

/// The CloudWatch namespace of the delivery metrics (the template's dashboard reads it).
pub const NAMESPACE: &str = "EksCicd/Delivery";
/// Successful deploys (Count).
pub const DEPLOYMENTS: &str = "Deployments";
/// Failed or rolled-back deploys (Count).
pub const DEPLOYMENT_FAILURES: &str = "DeploymentFailures";
/// 1 for a failed deploy, 0 for a successful one: its average is the change failure rate.
pub const DEPLOYMENT_FAILED: &str = "DeploymentFailed";
/// From the commit to its deploy (Seconds).
pub const LEAD_TIME: &str = "LeadTimeSeconds";
/// From the first failed deploy to the next successful one (Seconds).
pub const TIME_TO_RESTORE: &str = "TimeToRestoreSeconds";

/// The restore clock's name for the report's pipeline and environment.
pub fn service(report: &Report) -> String {
    format!("{}#{}", report.end.pipeline, report.end.environment)
}

/// Whether the report's end is a deploy DORA counts (or a rollback that may end an outage).
pub fn counts(report: &Report) -> bool {
    matches!(report.ending, Ending::Deployed | Ending::PipelineRolledBack)
        || report.is_failed_deploy()
}

/// The document for a deploy's end; `restored` is how long the service had been failed when a
/// success ended an outage. `None` for an end that is not a deploy.
pub fn document(report: &Report, restored: Option<std::time::Duration>) -> Option<MetricDocument> {
    let metric = |name: &str, unit, value: f64| Metric {
        name: name.into(),
        unit,
        value,
    };
    let metrics = if report.ending == Ending::Deployed {
        let mut metrics = vec![
            metric(DEPLOYMENTS, Unit::Count, 1.0),
            metric(DEPLOYMENT_FAILED, Unit::None, 0.0),
        ];
        if let Some(lead) = report.lead_time() {
            metrics.push(metric(LEAD_TIME, Unit::Seconds, lead.as_secs() as f64));
        }
        if let Some(restored) = restored {
            metrics.push(metric(
                TIME_TO_RESTORE,
                Unit::Seconds,
                restored.as_secs() as f64,
            ));
        }
        metrics
    } else if report.ending == Ending::PipelineRolledBack {
        match restored {
            Some(restored) => vec![metric(
                TIME_TO_RESTORE,
                Unit::Seconds,
                restored.as_secs() as f64,
            )],
            None => return None,
        }
    } else if report.is_failed_deploy() {
        vec![
            metric(DEPLOYMENT_FAILURES, Unit::Count, 1.0),
            metric(DEPLOYMENT_FAILED, Unit::None, 1.0),
        ]
    } else {
        return None;
    };
    let mut properties = vec![
        ("executionId".to_owned(), json!(report.end.execution_id)),
        ("status".to_owned(), json!(report.ending.as_str())),
    ];
    if let Some(source) = &report.source {
        properties.push(("commitId".to_owned(), json!(source.commit_id)));
    }
    Some(MetricDocument {
        namespace: NAMESPACE.into(),
        dimensions: vec![
            ("Pipeline".into(), report.end.pipeline.clone()),
            ("Environment".into(), report.end.environment.clone()),
        ],
        metrics,
        timestamp_ms: report.end.at.timestamp_millis(),
        properties,
    })
}
