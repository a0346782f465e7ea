//! What an approval promotes, read from the pipeline's own records: the image the earlier
//! environment runs, when it went there and how its deploy went.
//!
//! The pipeline (infra/environments.py) names its stages `Deploy<Environment>` and
//! `Approve<Environment>`; the approval before `DeployProduction` is `ApproveProduction`. What
//! it promotes is what the execution's latest deploy before it did: eks-deploy's output
//! variables (`shared::deploy_contract`: the digest it ran) and its summary (the rollout, the
//! bake and its alarms, in its own words). Nothing here is inferred beyond those records.

use chrono::{DateTime, Utc};
use shared::deploy_contract::{IMAGE, IMAGE_DIGEST};
use shared::ports::ActionRun;

/// The stage prefix of the generated deploy stages.
const DEPLOY: &str = "Deploy";
/// The stage prefix of the generated approval stages.
const APPROVE: &str = "Approve";

/// The earlier environment's deploy of this execution, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The environment (`staging`), from its stage's name.
    pub environment: String,
    /// The deploy action's status: `Succeeded`, `InProgress`, `Failed`…
    pub status: String,
    /// When the deploy ended (its last update), when recorded.
    pub deployed_at: Option<DateTime<Utc>>,
    /// What the deploy reported.
    pub summary: Option<String>,
    /// The image it set (digest-pinned), when it said.
    pub image: Option<String>,
}

/// The facts of an approval at stage `approval_stage`, from the execution's action runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promoted {
    /// The image digest promoted: the earlier deploy's, else the build's.
    pub digest: Option<String>,
    /// The earlier environment's deploy, when there was one.
    pub from: Option<Promotion>,
}

/// Reads the facts of the approval at `approval_stage` from `runs` (one execution's action
/// runs, in any order).
pub fn promoted(runs: &[ActionRun], approval_stage: &str) -> Promoted {
    // The deploy this approval gates is not the one it promotes from.
    let gated = approval_stage
        .strip_prefix(APPROVE)
        .map(|environment| format!("{DEPLOY}{environment}"));
    let approval_started = runs
        .iter()
        .filter(|run| run.stage == approval_stage)
        .filter_map(|run| run.started_at)
        .max();
    let before_approval = |run: &ActionRun| match (run.started_at, approval_started) {
        (_, None) => true,
        (Some(started), Some(approval)) => started <= approval,
        (None, Some(_)) => false,
    };
    let deploy = runs
        .iter()
        .filter(|run| {
            run.stage.len() > DEPLOY.len()
                && run.stage.starts_with(DEPLOY)
                && Some(&run.stage) != gated.as_ref()
                && before_approval(run)
        })
        .max_by_key(|run| run.updated_at.or(run.started_at));
    let build_digest = runs
        .iter()
        .filter(|run| run.category == "Build")
        .max_by_key(|run| run.updated_at.or(run.started_at))
        .and_then(|run| non_empty(run.output_variables.get(IMAGE_DIGEST)));
    Promoted {
        digest: deploy
            .and_then(|run| non_empty(run.output_variables.get(IMAGE_DIGEST)))
            .or(build_digest),
        from: deploy.map(|run| Promotion {
            environment: environment_of(&run.stage[DEPLOY.len()..]),
            status: run.status.clone(),
            deployed_at: run.updated_at,
            summary: run.summary.clone(),
            image: non_empty(run.output_variables.get(IMAGE)),
        }),
    }
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.is_empty()).cloned()
}

/// `PreProd` -> `pre-prod`: the environment's name as infra/environments.yml gives it (the
/// generator made the stage name from it: parts split at `-`, each capitalized).
fn environment_of(title: &str) -> String {
    let mut name = String::new();
    for (i, c) in title.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// How long from `since` to `now`: `2 h 10 min`, `45 min`, `3 d 4 h`, `under a minute`.
pub fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = (now - since).num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "under a minute".to_owned(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// The line telling how the earlier environment has done: `in staging since 14:02 UTC (2 h
/// 10 min), rollout succeeded: <its summary>`.
pub fn standing(promotion: &Promotion, now: DateTime<Utc>) -> String {
    let outcome = match promotion.status.as_str() {
        "Succeeded" => "rollout succeeded".to_owned(),
        "InProgress" => "rollout still in progress".to_owned(),
        "Failed" => "rollout failed".to_owned(),
        other => format!("deploy {}", other.to_ascii_lowercase()),
    };
    let since = match promotion.deployed_at {
        Some(at) => {
            let clock = if at.date_naive() == now.date_naive() {
                at.format("%H:%M UTC").to_string()
            } else {
                at.format("%Y-%m-%d %H:%M UTC").to_string()
            };
            format!(" since {clock} ({})", elapsed(at, now))
        }
        None => String::new(),
    };
    let summary = promotion
        .summary
        .as_deref()
        .and_then(|summary| summary.lines().next())
        .map(|line| {
            format!(
                ": {}",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default();
    format!("in {}{since}, {outcome}{summary}", promotion.environment)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    const DIGEST: &str = "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";
    const BUILT: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, hour, minute, 0).unwrap()
    }

    fn run(stage: &str, category: &str, started: DateTime<Utc>, ended: DateTime<Utc>) -> ActionRun {
        ActionRun {
            stage: stage.into(),
            action: "Deploy".into(),
            category: category.into(),
            provider: "Lambda".into(),
            status: "Succeeded".into(),
            started_at: Some(started),
            updated_at: Some(ended),
            ..ActionRun::default()
        }
    }

    fn variables(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn execution() -> Vec<ActionRun> {
        let mut build = run("Build", "Build", at(13, 50), at(13, 58));
        build.output_variables = variables(&[("IMAGE_DIGEST", BUILT)]);
        let mut staging = run("DeployStaging", "Invoke", at(13, 58), at(14, 2));
        staging.summary = Some(
            "shop/web: container web runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas (rolled out in 41 s)\nmore"
                .into(),
        );
        staging.output_variables = variables(&[
            (
                "IMAGE",
                &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/shop@{DIGEST}"),
            ),
            ("IMAGE_DIGEST", DIGEST),
        ]);
        let mut approval = run("ApproveProduction", "Approval", at(14, 2), at(14, 2));
        approval.status = "InProgress".into();
        vec![approval, staging, build]
    }

    #[test]
    fn the_approval_promotes_what_the_earlier_deploy_ran() {
        let promoted = promoted(&execution(), "ApproveProduction");
        assert_eq!(promoted.digest.as_deref(), Some(DIGEST));
        let from = promoted.from.unwrap();
        assert_eq!(from.environment, "staging");
        assert_eq!(from.status, "Succeeded");
        assert_eq!(from.deployed_at, Some(at(14, 2)));
        assert_eq!(
            standing(&from, at(16, 12)),
            "in staging since 14:02 UTC (2 h 10 min), rollout succeeded: shop/web: container web runs sha256:ab12cd34ef56… (tag 0ccf1ae) on 3 of 3 replicas (rolled out in 41 s)"
        );
    }

    #[test]
    fn the_deploy_the_approval_gates_and_later_runs_are_not_what_it_promotes() {
        let mut runs = execution();
        // A production deploy of an earlier approval round (a retried stage) is not the source.
        let mut production = run("DeployProduction", "Invoke", at(15, 0), at(15, 5));
        production.output_variables = variables(&[("IMAGE_DIGEST", "sha256:ffff")]);
        runs.push(production);
        let promoted = promoted(&runs, "ApproveProduction");
        assert_eq!(promoted.from.unwrap().environment, "staging");
        assert_eq!(promoted.digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn without_an_earlier_deploy_the_builds_digest_is_named_and_nothing_else() {
        let runs: Vec<ActionRun> = execution()
            .into_iter()
            .filter(|run| run.stage != "DeployStaging")
            .collect();
        let promoted = promoted(&runs, "ApproveProduction");
        assert_eq!(promoted.digest.as_deref(), Some(BUILT));
        assert_eq!(promoted.from, None);
        assert_eq!(super::promoted(&[], "Approval"), Promoted::default());
    }

    #[test]
    fn environment_names_come_back_from_stage_names() {
        assert_eq!(environment_of("PreProd"), "pre-prod");
        assert_eq!(environment_of("Eu1"), "eu1");
    }

    #[test]
    fn elapsed_times_read_as_a_person_says_them() {
        assert_eq!(elapsed(at(14, 2), at(14, 2)), "under a minute");
        assert_eq!(elapsed(at(14, 2), at(14, 47)), "45 min");
        assert_eq!(elapsed(at(14, 2), at(16, 2)), "2 h");
        assert_eq!(elapsed(at(14, 2), at(16, 12)), "2 h 10 min");
        let later = at(14, 2) + chrono::Duration::hours(76);
        assert_eq!(elapsed(at(14, 2), later), "3 d 4 h");
        assert_eq!(
            elapsed(at(16, 0), at(14, 0)),
            "under a minute",
            "a clock gone back"
        );
    }

    #[test]
    fn a_failed_or_older_deploy_says_so_with_its_date() {
        let promotion = Promotion {
            environment: "staging".into(),
            status: "Failed".into(),
            deployed_at: Some(at(14, 2)),
            summary: None,
            image: None,
        };
        let next_day = at(14, 2) + chrono::Duration::hours(25);
        assert_eq!(
            standing(&promotion, next_day),
            "in staging since 2026-12-07 14:02 UTC (1 d 1 h), rollout failed"
        );
    }
}
