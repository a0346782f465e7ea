//! Least privilege, checked against the code: every permission `template.yaml` and
//! `infra/pipeline.yaml` grant is one the code needs, on the stack's own resources.
//!
//! - No Allow statement names a wildcard action (`*`, `sns:*`, `codecommit:Get*`) or uses
//!   `NotAction` / `NotResource`.
//! - Every Resource is built from the stack's own resources or parameters (`!Ref`, `!GetAtt`,
//!   `!Sub` naming one); a `*` in it only as a whole segment under such a name
//!   (`${ArtifactBucket.Arn}/*`); `*` alone only for the actions of [`NO_RESOURCE_LEVEL`], which
//!   IAM accepts on no other resource.
//! - Each function is granted exactly the actions [`NEEDS`] lists for it, each on exactly the
//!   resource or parameter the table names; [`OPERATIONS`] and [`ADAPTERS`] tie the table to the
//!   SDK calls the code makes.
//!
//! What SAM adds to every function role by itself is not in the template and not checked here:
//! the `AWSLambdaBasicExecutionRole` managed policy (CloudWatch Logs writes), and
//! `sqs:SendMessage` on the function's `DeadLetterQueue` (checked to be the stack's own queue).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use integration_tests::templates::{functions, load};
use integration_tests::workspace_root;
use serde_yaml_ng::{Mapping, Value};

/// What each function (by binary) may do, and on what: each action with the one template
/// parameter or resource its Resource must be built from (`*`: see [`NO_RESOURCE_LEVEL`]).
///
/// Read off the code: the port methods each `functions/<name>/src/handler.rs` calls, and the SDK
/// calls their adapters in `shared/src/aws/` make ([`OPERATIONS`]). When the code calls
/// something new, or stops calling something, change this table and the template's policy
/// together; this test fails until both agree.
const NEEDS: &[(&str, &[(&str, &str)])] = &[
    (
        "codecommit-push",
        &[
            // branch_tip: a push the branch has moved on from starts nothing.
            ("codecommit:GetBranch", "RoutedRepositories"),
            // commit: the pushed commit's message ([skip ci]).
            ("codecommit:GetCommit", "RoutedRepositories"),
            // codecommit_source_actions: the route's source action, when not configured.
            ("codepipeline:GetPipeline", "RoutedPipelines"),
            // start_execution.
            ("codepipeline:StartPipelineExecution", "RoutedPipelines"),
        ],
    ),
    (
        "codebuild-status",
        &[
            // recent_builds: the branch's previous build, to tell FIXED; build: its reportArns.
            ("codebuild:ListBuildsForProject", "PipelineBuildProjects"),
            ("codebuild:BatchGetBuilds", "PipelineBuildProjects"),
            // build_tests: the build's test reports and their first failing cases.
            ("codebuild:BatchGetReports", "PipelineTestReportGroups"),
            ("codebuild:DescribeTestCases", "PipelineTestReportGroups"),
            ("sns:Publish", "BuildNotificationsTopic"),
            // The ledger: claim, complete, release.
            ("dynamodb:PutItem", "NotificationLedgerTable"),
            ("dynamodb:UpdateItem", "NotificationLedgerTable"),
            ("dynamodb:DeleteItem", "NotificationLedgerTable"),
        ],
    ),
    (
        "delivery-events",
        &[
            // action_runs: the failed action, the approval, the commit and the deploy's image.
            ("codepipeline:ListActionExecutions", "RoutedPipelines"),
            ("sns:Publish", "DeliveryNotificationsTopic"),
            // post_comment: the deploy told on the pull request the commit came from.
            (
                "codecommit:PostCommentForPullRequest",
                "PullRequestRepositories",
            ),
            // The ledger: claim, complete, release; merged_as (pr-validator's records) and the
            // restore clock (deploy_failed, deployed).
            ("dynamodb:PutItem", "NotificationLedgerTable"),
            ("dynamodb:UpdateItem", "NotificationLedgerTable"),
            ("dynamodb:DeleteItem", "NotificationLedgerTable"),
            ("dynamodb:GetItem", "NotificationLedgerTable"),
        ],
    ),
    (
        "eks-deploy",
        &[
            // clusters.client: endpoint and CA. The bearer token is presigned locally (no call);
            // the STS GetCallerIdentity EKS makes with it needs no permission.
            ("eks:DescribeCluster", "ClusterNames"),
            // clusters.client for an environment of another account: its role's session
            // (granted only when DeployRoleArns lists roles, and only on those).
            ("sts:AssumeRole", "DeployRoleArns"),
            // jobs.succeed / jobs.fail.
            ("codepipeline:PutJobSuccessResult", "*"),
            ("codepipeline:PutJobFailureResult", "*"),
            // images.image: a tag pinned to its digest; images.scan: the scan gate. Granted only
            // when DeployImageRepositories names some (a conditional policy).
            ("ecr:DescribeImages", "DeployImageRepositories"),
            ("ecr:DescribeImageScanFindings", "DeployImageRepositories"),
            // alarms.states: the alarm-gated bakes, only when DeployAlarmNames names some.
            ("cloudwatch:DescribeAlarms", "DeployAlarmNames"),
        ],
    ),
    (
        "approval-notify",
        &[
            // approval_state: is the approval still waiting for this token? The pipeline's
            // execution mode (once per cold start) says where the token shows: GetPipelineState,
            // or for a PARALLEL pipeline ListActionExecutions. history.action_runs
            // (ListActionExecutions too): what the approval promotes, for the email.
            ("codepipeline:GetPipeline", "ApprovalPipelines"),
            ("codepipeline:GetPipelineState", "ApprovalPipelines"),
            ("codepipeline:ListActionExecutions", "ApprovalPipelines"),
            // execution_revision: the commit the email names.
            ("codepipeline:GetPipelineExecution", "ApprovalPipelines"),
            // publish_all: PublishBatch, which sns:Publish authorizes.
            ("sns:Publish", "ApproversTopic"),
            // load_signing_key, from the Secrets Manager secret (see the SIGNING_KEY check).
            ("secretsmanager:GetSecretValue", "ApprovalSigningKey"),
            // The ledger: claim_all (TransactWriteItems of puts), complete_all (BatchWriteItem),
            // release.
            ("dynamodb:PutItem", "NotificationLedgerTable"),
            ("dynamodb:BatchWriteItem", "NotificationLedgerTable"),
            ("dynamodb:DeleteItem", "NotificationLedgerTable"),
        ],
    ),
    (
        "approval-callback",
        &[
            ("codepipeline:GetPipeline", "ApprovalPipelines"),
            ("codepipeline:GetPipelineState", "ApprovalPipelines"),
            ("codepipeline:ListActionExecutions", "ApprovalPipelines"),
            ("codepipeline:GetPipelineExecution", "ApprovalPipelines"),
            // decide.
            ("codepipeline:PutApprovalResult", "ApprovalPipelines"),
            ("secretsmanager:GetSecretValue", "ApprovalSigningKey"),
        ],
    ),
    (
        "pr-validator",
        &[
            // pull_request: the head and revision, before building and before approving.
            ("codecommit:GetPullRequest", "PullRequestRepositories"),
            // comment_tokens: the sweep tells a build already reported by its comment.
            (
                "codecommit:GetCommentsForPullRequest",
                "PullRequestRepositories",
            ),
            (
                "codecommit:PostCommentForPullRequest",
                "PullRequestRepositories",
            ),
            (
                "codecommit:UpdatePullRequestApprovalState",
                "PullRequestRepositories",
            ),
            // recent_builds (the older builds to stop), build (its reportArns), start_build,
            // stop_build.
            ("codebuild:ListBuildsForProject", "PullRequestBuildProject"),
            ("codebuild:BatchGetBuilds", "PullRequestBuildProject"),
            ("codebuild:StartBuild", "PullRequestBuildProject"),
            ("codebuild:StopBuild", "PullRequestBuildProject"),
            // build_tests: the result comment's test counts and failing cases.
            ("codebuild:BatchGetReports", "PullRequestTestReportGroups"),
            ("codebuild:DescribeTestCases", "PullRequestTestReportGroups"),
            // record_merge: the merge commit, for delivery-events.
            ("dynamodb:PutItem", "NotificationLedgerTable"),
        ],
    ),
];

/// Every AWS call the code makes: the adapter in `shared/src/aws/` that makes it, the SDK
/// method, and the IAM action that authorizes it. The functions make no SDK call of their own
/// (checked below): they reach AWS only through these adapters.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("approvals.rs", "get_pipeline", "codepipeline:GetPipeline"),
    (
        "approvals.rs",
        "get_pipeline_state",
        "codepipeline:GetPipelineState",
    ),
    (
        "approvals.rs",
        "list_action_executions",
        "codepipeline:ListActionExecutions",
    ),
    (
        "approvals.rs",
        "get_pipeline_execution",
        "codepipeline:GetPipelineExecution",
    ),
    (
        "approvals.rs",
        "put_approval_result",
        "codepipeline:PutApprovalResult",
    ),
    (
        "codebuild.rs",
        "list_builds_for_project",
        "codebuild:ListBuildsForProject",
    ),
    (
        "codebuild.rs",
        "batch_get_builds",
        "codebuild:BatchGetBuilds",
    ),
    ("codebuild.rs", "start_build", "codebuild:StartBuild"),
    // TestReports: a build's test reports and their first failing cases.
    (
        "codebuild.rs",
        "batch_get_reports",
        "codebuild:BatchGetReports",
    ),
    (
        "codebuild.rs",
        "describe_test_cases",
        "codebuild:DescribeTestCases",
    ),
    ("codebuild.rs", "stop_build", "codebuild:StopBuild"),
    ("codecommit.rs", "get_commit", "codecommit:GetCommit"),
    ("codecommit.rs", "get_branch", "codecommit:GetBranch"),
    (
        "codecommit.rs",
        "get_pull_request",
        "codecommit:GetPullRequest",
    ),
    (
        "codecommit.rs",
        "get_comments_for_pull_request",
        "codecommit:GetCommentsForPullRequest",
    ),
    (
        "codecommit.rs",
        "post_comment_for_pull_request",
        "codecommit:PostCommentForPullRequest",
    ),
    (
        "codecommit.rs",
        "update_pull_request_approval_state",
        "codecommit:UpdatePullRequestApprovalState",
    ),
    (
        "codepipeline.rs",
        "start_pipeline_execution",
        "codepipeline:StartPipelineExecution",
    ),
    (
        "codepipeline.rs",
        "get_pipeline",
        "codepipeline:GetPipeline",
    ),
    (
        "codepipeline.rs",
        "list_action_executions",
        "codepipeline:ListActionExecutions",
    ),
    (
        "codepipeline.rs",
        "put_job_success_result",
        "codepipeline:PutJobSuccessResult",
    ),
    (
        "codepipeline.rs",
        "put_job_failure_result",
        "codepipeline:PutJobFailureResult",
    ),
    ("dynamodb.rs", "put_item", "dynamodb:PutItem"),
    ("dynamodb.rs", "update_item", "dynamodb:UpdateItem"),
    ("dynamodb.rs", "delete_item", "dynamodb:DeleteItem"),
    ("dynamodb.rs", "get_item", "dynamodb:GetItem"),
    // IAM has no action of its own for transactions: each item is authorized as the single-item
    // call it does ("Permissions for Put, Update, Delete, and Get actions are governed by the
    // permissions used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem
    // operations", Using IAM with DynamoDB transactions); the ledger's transactions only put.
    ("dynamodb.rs", "transact_write_items", "dynamodb:PutItem"),
    ("dynamodb.rs", "batch_write_item", "dynamodb:BatchWriteItem"),
    ("eks.rs", "describe_cluster", "eks:DescribeCluster"),
    ("ecr.rs", "describe_images", "ecr:DescribeImages"),
    (
        "ecr.rs",
        "describe_image_scan_findings",
        "ecr:DescribeImageScanFindings",
    ),
    (
        "cloudwatch.rs",
        "describe_alarms",
        "cloudwatch:DescribeAlarms",
    ),
    (
        "signing_key.rs",
        "get_secret_value",
        "secretsmanager:GetSecretValue",
    ),
    // Only for a key kept in SSM Parameter Store; the template keeps it in Secrets Manager.
    ("signing_key.rs", "get_parameter", "ssm:GetParameter"),
    ("sns.rs", "publish", "sns:Publish"),
    ("sts.rs", "assume_role", "sts:AssumeRole"),
    // "sns:Publish: Grants permission to both publish and publish batch" (SNS API permissions).
    ("sns.rs", "publish_batch", "sns:Publish"),
];

/// How a function's `main.rs` (wiring only) builds each adapter of `shared/src/aws/`.
const ADAPTERS: &[(&str, &str)] = &[
    ("CodePipelineApprovals::new(", "approvals.rs"),
    ("CodeBuild::new(", "codebuild.rs"),
    ("CodeCommit::new(", "codecommit.rs"),
    ("CodePipeline::new(", "codepipeline.rs"),
    ("DynamoLedger::new(", "dynamodb.rs"),
    ("EksClusters::new(", "eks.rs"),
    ("EcrRegistry::new(", "ecr.rs"),
    ("CloudWatchAlarms::new(", "cloudwatch.rs"),
    ("load_signing_key(", "signing_key.rs"),
    ("SnsTopic::new(", "sns.rs"),
    ("StsRoleSessions::new(", "sts.rs"),
];

/// Adapters a function is granted the calls of before its `main.rs` builds them: the grant, the
/// adapter and its tests land first, the wiring after (each entry says where). The test fails
/// once `main.rs` builds the adapter, so the entry goes with the wiring.
/// None now: eks-deploy builds StsRoleSessions (deploys into other accounts).
const AWAITING_WIRING: &[(&str, &str)] = &[];

/// The actions IAM authorizes on no resource but `*`: the Service Authorization Reference lists
/// no resource type for them. Only these may have `Resource: "*"`, each for the reason given.
const NO_RESOURCE_LEVEL: &[(&str, &str)] = &[
    (
        "codepipeline:PutJobSuccessResult",
        "no resource type (Service Authorization Reference, AWS CodePipeline): the job id \
         CodePipeline hands the invoked function is the capability",
    ),
    (
        "codepipeline:PutJobFailureResult",
        "no resource type (Service Authorization Reference, AWS CodePipeline), as above",
    ),
    (
        "ecr:GetAuthorizationToken",
        "no resource type (Service Authorization Reference, Amazon ECR): the token is for the \
         registry; the image build's pushes are scoped to its one repository",
    ),
];

// --- The checker ----------------------------------------------------------------------------

/// An intrinsic function, short (`!Sub x`) or long (`{"Fn::Sub": x}`), as its name and argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let key = key.as_str()?;
            if key == "Ref" {
                Some(("Ref".to_owned(), argument))
            } else {
                key.strip_prefix("Fn::")
                    .map(|name| (name.to_owned(), argument))
            }
        }
        _ => None,
    }
}

/// The names in a `!Sub` text's `${...}` placeholders (`${Topic.Arn}` names `Topic`), each with
/// the byte offset just past it; `${!Literal}` is not a placeholder.
fn placeholders(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("${") {
        let open = rest + start + 2;
        let Some(length) = text[open..].find('}') else {
            break;
        };
        let inner = &text[open..open + length];
        if !inner.starts_with('!') {
            let name = inner.split('.').next().unwrap_or(inner).trim();
            found.push((name.to_owned(), open + length + 1));
        }
        rest = open + length + 1;
    }
    found
}

fn is_pseudo(name: &str) -> bool {
    name.starts_with("AWS::")
}

/// The template parameters and resources `value` is built from (pseudo parameters left out;
/// `!Sub` variables resolved to what they are built from).
fn references(value: &Value) -> BTreeSet<String> {
    fn collect(value: &Value, names: &mut BTreeSet<String>) {
        match intrinsic(value) {
            Some((name, argument)) if name == "Ref" => {
                if let Some(target) = argument.as_str() {
                    names.insert(target.to_owned());
                }
            }
            Some((name, argument)) if name == "GetAtt" => {
                let target = match argument {
                    Value::String(text) => text.split('.').next(),
                    Value::Sequence(parts) => parts.first().and_then(Value::as_str),
                    _ => None,
                };
                if let Some(target) = target {
                    names.insert(target.to_owned());
                }
            }
            Some((name, argument)) if name == "Sub" => {
                let (text, variables) = match argument {
                    Value::Sequence(parts) => (
                        parts.first().and_then(Value::as_str).unwrap_or_default(),
                        parts.get(1).and_then(Value::as_mapping),
                    ),
                    other => (other.as_str().unwrap_or_default(), None),
                };
                for (name, _) in placeholders(text) {
                    match variables.and_then(|v| v.get(name.as_str())) {
                        Some(variable) => collect(variable, names),
                        None => {
                            names.insert(name);
                        }
                    }
                }
            }
            Some((_, argument)) => collect(argument, names),
            None => match value {
                Value::Sequence(items) => items.iter().for_each(|item| collect(item, names)),
                Value::Mapping(mapping) => mapping.values().for_each(|item| collect(item, names)),
                _ => {}
            },
        }
    }
    let mut names = BTreeSet::new();
    collect(value, &mut names);
    names.retain(|name| !is_pseudo(name));
    names
}

/// Every literal text of `value` with a `*` in it that is not a whole ARN segment under a named
/// resource or parameter: in a `!Sub` text the `*` must follow `/` or `:` after a placeholder
/// naming one; elsewhere (a `!Join` separator) it must follow `/` or `:`.
fn loose_wildcards(value: &Value) -> Vec<String> {
    fn scoped(text: &str, sub: bool) -> bool {
        let named_ends: Vec<usize> = if sub {
            placeholders(text)
                .into_iter()
                .filter(|(name, _)| !is_pseudo(name))
                .map(|(_, end)| end)
                .collect()
        } else {
            Vec::new()
        };
        text.match_indices('*').all(|(at, _)| {
            let after_separator = text[..at].ends_with('/') || text[..at].ends_with(':');
            after_separator && (!sub || named_ends.iter().any(|end| *end <= at))
        })
    }
    fn collect(value: &Value, loose: &mut Vec<String>) {
        match intrinsic(value) {
            Some((name, _)) if name == "Ref" || name == "GetAtt" => {}
            Some((name, argument)) if name == "Sub" => {
                let (text, variables) = match argument {
                    Value::Sequence(parts) => (
                        parts.first().and_then(Value::as_str).unwrap_or_default(),
                        parts.get(1),
                    ),
                    other => (other.as_str().unwrap_or_default(), None),
                };
                if !scoped(text, true) {
                    loose.push(text.to_owned());
                }
                if let Some(variables) = variables {
                    collect(variables, loose);
                }
            }
            Some((_, argument)) => collect(argument, loose),
            None => match value {
                Value::String(text) if !scoped(text, false) => loose.push(text.clone()),
                Value::Sequence(items) => items.iter().for_each(|item| collect(item, loose)),
                Value::Mapping(mapping) => mapping.values().for_each(|item| collect(item, loose)),
                _ => {}
            },
        }
    }
    let mut loose = Vec::new();
    collect(value, &mut loose);
    loose
}

/// The names a template defines: its parameters and resources.
fn defined_names(document: &Value) -> BTreeSet<String> {
    ["Parameters", "Resources"]
        .iter()
        .filter_map(|section| document[*section].as_mapping())
        .flat_map(|mapping| mapping.keys())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// `Action` as a list of literal actions; `None` if it is not one.
fn actions(statement: &Value) -> Option<Vec<String>> {
    match &statement["Action"] {
        Value::String(action) => Some(vec![action.clone()]),
        Value::Sequence(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `value` if it is a plain string (`as_str` would also see through a tag such as `!Ref`).
fn literal(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// The items of a Resource (a `!Split` stays one item: its parts are built alike).
fn resource_items(resource: &Value) -> Vec<&Value> {
    match resource {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// What is wrong with one Allow statement, found at `place` in a template defining `names`.
fn statement_violations(place: &str, statement: &Value, names: &BTreeSet<String>) -> Vec<String> {
    let mut violations = Vec::new();
    for key in ["NotAction", "NotResource"] {
        if !statement[key].is_null() {
            violations.push(format!(
                "{place}: {key} in an Allow statement grants everything it does not list"
            ));
        }
    }
    let Some(actions) = actions(statement) else {
        violations.push(format!("{place}: Action is not a literal action or list"));
        return violations;
    };
    for action in &actions {
        let well_formed = action
            .split_once(':')
            .is_some_and(|(service, name)| !service.is_empty() && !name.is_empty());
        if action.contains(['*', '?']) || !well_formed {
            violations.push(format!(
                "{place}: wildcard or malformed action {action:?}: name each action the code calls"
            ));
        }
    }
    let resource = &statement["Resource"];
    if resource.is_null() {
        violations.push(format!("{place}: no Resource"));
        return violations;
    }
    for item in resource_items(resource) {
        if literal(item) == Some("*") {
            let unjustified: Vec<&String> = actions
                .iter()
                .filter(|action| !NO_RESOURCE_LEVEL.iter().any(|(a, _)| a == action))
                .collect();
            if !unjustified.is_empty() {
                violations.push(format!(
                    "{place}: Resource \"*\" for {unjustified:?}, which IAM can scope: name the stack's resource"
                ));
            }
            continue;
        }
        if let Some(text) = literal(item) {
            violations.push(format!(
                "{place}: Resource {text:?} is a literal: build it from the stack's resources or parameters"
            ));
            continue;
        }
        let named = references(item);
        if named.is_empty() {
            violations.push(format!(
                "{place}: Resource {} names none of the stack's resources or parameters, so it spans the account",
                serde_yaml_ng::to_string(item).unwrap_or_default().trim()
            ));
        }
        for unknown in named.difference(names) {
            violations.push(format!(
                "{place}: Resource names {unknown}, which the template does not define"
            ));
        }
        for text in loose_wildcards(item) {
            violations.push(format!(
                "{place}: Resource text {text:?} has a wildcard that is not a whole segment under a named resource"
            ));
        }
    }
    violations
}

/// Every statement (a mapping with `Effect`) under `value`, with where it is.
fn collect_statements(value: &Value, place: &str, found: &mut Vec<(String, Value)>) {
    match value {
        Value::Mapping(mapping) if mapping.contains_key("Effect") => {
            let place = match mapping.get("Sid").and_then(Value::as_str) {
                Some(sid) => format!("{place} ({sid})"),
                None => place.to_owned(),
            };
            found.push((place, value.clone()));
        }
        Value::Mapping(mapping) => {
            for (key, item) in mapping {
                let key = key.as_str().unwrap_or("?");
                collect_statements(item, &format!("{place}.{key}"), found);
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                collect_statements(item, &format!("{place}[{index}]"), found);
            }
        }
        Value::Tagged(tagged) => collect_statements(&tagged.value, place, found),
        _ => {}
    }
}

/// Everything wrong with the Allow statements anywhere in `document` (identity policies of
/// roles and functions, and resource policies alike), and with managed policies attached to
/// its roles. Deny statements are not checked: a wide Deny only takes away.
fn document_violations(document: &Value) -> Vec<String> {
    let names = defined_names(document);
    let mut found = Vec::new();
    collect_statements(&document["Resources"], "Resources", &mut found);
    let mut violations = Vec::new();
    for (place, statement) in found.iter().filter(|(_, s)| s["Effect"] == "Allow") {
        if place.contains(".AssumeRolePolicyDocument.") {
            // A trust policy: who may take the role, not what it may do. Only AWS services.
            let only_services = statement["Principal"]
                .as_mapping()
                .is_some_and(|p| p.len() == 1 && p.contains_key("Service"));
            if !only_services || statement["Action"] != "sts:AssumeRole" {
                violations.push(format!(
                    "{place}: a role may be assumed only by an AWS service (sts:AssumeRole)"
                ));
            }
        } else {
            violations.extend(statement_violations(place, statement, &names));
        }
    }
    for (id, resource) in document["Resources"].as_mapping().into_iter().flatten() {
        if !resource["Properties"]["ManagedPolicyArns"].is_null() {
            violations.push(format!(
                "{}: ManagedPolicyArns grant what no statement here shows: write the statements inline",
                id.as_str().unwrap_or("?")
            ));
        }
    }
    violations
}

/// The statements a SAM policy template stands for, as samtranslator's
/// `policy_templates_data/policy_templates.json` defines them (the Resource reduced to the
/// parameter it is built from). Only narrow templates are known here; the broad ones grant more
/// than the code calls (DynamoDBCrudPolicy: Scan, Query, BatchWriteItem… on the table and its
/// indexes; EKSDescribePolicy: eks:ListClusters on "*"; SQSSendMessagePolicy: sqs:SendMessage*).
fn expand_policy_template(name: &str, parameters: &Value) -> Result<Vec<Value>, String> {
    let statement = |actions: &[&str], resource: Value| {
        let mut mapping = Mapping::new();
        mapping.insert("Effect".into(), "Allow".into());
        mapping.insert(
            "Action".into(),
            Value::Sequence(actions.iter().map(|a| Value::from(*a)).collect()),
        );
        mapping.insert("Resource".into(), resource);
        Value::Mapping(mapping)
    };
    match name {
        "SNSPublishMessagePolicy" => Ok(vec![statement(
            &["sns:Publish"],
            parameters["TopicName"].clone(),
        )]),
        "AWSSecretsManagerGetSecretValuePolicy" => Ok(vec![statement(
            &["secretsmanager:GetSecretValue"],
            parameters["SecretArn"].clone(),
        )]),
        "CodePipelineLambdaExecutionPolicy" => Ok(vec![statement(
            &[
                "codepipeline:PutJobSuccessResult",
                "codepipeline:PutJobFailureResult",
            ],
            "*".into(),
        )]),
        other => Err(format!(
            "SAM policy template {other} grants more than the code calls, or is not expanded by \
             this test: write the statement inline"
        )),
    }
}

/// The policies a `Policies` item stands for: itself, or for a policy given under a condition
/// (`!If [Condition, policy, !Ref AWS::NoValue]`) the policies of its branches (what it grants
/// when the condition holds is checked as if it always did), with the condition's name.
fn conditional_policies(policy: &Value) -> (Option<String>, Vec<&Value>) {
    let no_value = |value: &Value| {
        intrinsic(value)
            .is_some_and(|(name, argument)| name == "Ref" && *argument == "AWS::NoValue")
    };
    match intrinsic(policy) {
        Some((name, Value::Sequence(parts))) if name == "If" && parts.len() == 3 => (
            parts[0].as_str().map(str::to_owned),
            parts[1..]
                .iter()
                .filter(|branch| !no_value(branch))
                .collect(),
        ),
        _ => (None, vec![policy]),
    }
}

/// The statements an item of a `Statement` list may be: itself, or for `!If [condition, a, b]`
/// each of `a` and `b` that is a statement (not `!Ref AWS::NoValue`). A grant under a condition
/// counts as granted: the stack may be deployed with the condition true.
fn branches(item: &Value) -> Vec<&Value> {
    match intrinsic(item) {
        Some((name, Value::Sequence(arguments))) if name == "If" && arguments.len() == 3 => {
            arguments[1..]
                .iter()
                .filter(|branch| !branch["Effect"].is_null())
                .collect()
        }
        _ => vec![item],
    }
}

/// Where each granted action of a function may be used: the names its Resources are built
/// from, `*` for `Resource: "*"`.
type Grants = BTreeMap<String, BTreeSet<String>>;

fn grant(grants: &mut Grants, statement: &Value) {
    if statement["Effect"] != "Allow" {
        return;
    }
    let mut scope = BTreeSet::new();
    for item in resource_items(&statement["Resource"]) {
        if literal(item) == Some("*") {
            scope.insert("*".to_owned());
        } else {
            scope.extend(references(item));
        }
    }
    for action in actions(statement).unwrap_or_default() {
        grants
            .entry(action)
            .or_default()
            .extend(scope.iter().cloned());
    }
}

/// Everything in which `template`'s functions are granted more, less, or elsewhere than
/// [`NEEDS`] says their code calls.
fn function_violations(template: &Value) -> Vec<String> {
    let names = defined_names(template);
    let resources = template["Resources"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for (id, function) in functions(template) {
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some((_, needs)) = NEEDS.iter().find(|(name, _)| *name == binary) else {
            violations.push(format!(
                "{id}: no NEEDS entry for binary {binary:?}: read its code and add one"
            ));
            continue;
        };
        seen.insert(binary.clone());
        let properties = &function["Properties"];
        if !properties["Role"].is_null() {
            violations.push(format!(
                "{id}: Role is given, so its permissions are not in Policies where this test reads them"
            ));
        }
        let queue = &properties["DeadLetterQueue"]["TargetArn"];
        if !queue.is_null() {
            let named = references(queue);
            if named.is_empty() || !named.iter().all(|n| resources.contains_key(n.as_str())) {
                violations.push(format!(
                    "{id}: DeadLetterQueue.TargetArn (SAM grants sqs:SendMessage on it) is not the stack's own queue"
                ));
            }
        }

        let mut grants = Grants::new();
        let policies = properties["Policies"].as_sequence().into_iter().flatten();
        for (index, item) in policies.enumerate() {
            let place = format!("{id}.Policies[{index}]");
            let (condition, policies) = conditional_policies(item);
            if let Some(condition) = condition
                && template["Conditions"][condition.as_str()].is_null()
            {
                violations.push(format!(
                    "{place}: condition {condition} is not defined in Conditions"
                ));
            }
            for policy in policies {
                match policy {
                Value::String(name) => violations.push(format!(
                    "{place}: managed policy {name} grants what no statement here shows: write the statements inline"
                )),
                Value::Mapping(document) if document.contains_key("Statement") => {
                    // Checked statement by statement by document_violations.
                    let statements = match &document["Statement"] {
                        Value::Sequence(items) => items.clone(),
                        single => vec![single.clone()],
                    };
                    statements
                        .iter()
                        .flat_map(branches)
                        .for_each(|s| grant(&mut grants, s));
                }
                Value::Mapping(template_use) if template_use.len() == 1 => {
                    let (name, parameters) = template_use.iter().next().unwrap();
                    match expand_policy_template(name.as_str().unwrap_or("?"), parameters) {
                        Ok(statements) => {
                            for statement in &statements {
                                violations.extend(statement_violations(&place, statement, &names));
                                grant(&mut grants, statement);
                            }
                        }
                        Err(why) => violations.push(format!("{place}: {why}")),
                    }
                }
                _ => violations.push(format!("{place}: not a policy document or template")),
            }
            }
        }

        for (action, scope) in needs.iter() {
            let expected = BTreeSet::from([(*scope).to_owned()]);
            match grants.get(*action) {
                None => violations.push(format!(
                    "{id}: lacks {action} on {scope}, which its code calls"
                )),
                Some(granted) if *granted != expected => violations.push(format!(
                    "{id}: grants {action} on {granted:?}; its code needs it on {scope} only"
                )),
                Some(_) => {}
            }
        }
        for action in grants.keys() {
            if !needs.iter().any(|(needed, _)| needed == action) {
                violations.push(format!(
                    "{id}: grants {action}, which its code never calls (if it does now, add it to NEEDS)"
                ));
            }
        }
    }
    for (binary, _) in NEEDS {
        if !seen.contains(*binary) {
            violations.push(format!(
                "NEEDS names {binary}, which the template does not deploy"
            ));
        }
    }
    violations
}

fn assert_none(violations: &[String]) {
    assert!(
        violations.is_empty(),
        "least privilege violated:\n  {}",
        violations.join("\n  ")
    );
}

// --- The templates --------------------------------------------------------------------------

#[test]
fn the_templates_grant_no_wildcard_action_and_no_resource_beyond_the_stack() {
    assert_none(&document_violations(&load("template.yaml")));
    assert_none(&document_violations(&load("infra/pipeline.yaml")));
}

/// The parameters a policy's resources are built from, each without a pattern that keeps a
/// deployer from widening the grant (`*`, or an ARN fragment, as a name).
fn unconstrained_policy_parameters(template: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_statements(&template["Resources"], "Resources", &mut found);
    let mut names: BTreeSet<String> = found
        .iter()
        .filter(|(_, statement)| statement["Effect"] == "Allow")
        .flat_map(|(_, statement)| references(&statement["Resource"]))
        .collect();
    // SAM policy templates name their resources through their own parameters.
    for (_, resource) in template["Resources"].as_mapping().into_iter().flatten() {
        names.extend(references(&resource["Properties"]["Policies"]));
    }
    let parameters = &template["Parameters"];
    names
        .into_iter()
        .filter(|name| !parameters[name.as_str()].is_null())
        .filter(|name| {
            let parameter = &parameters[name.as_str()];
            let pattern = parameter["AllowedPattern"].as_str().unwrap_or_default();
            let anchored = pattern.starts_with('^') && pattern.ends_with('$');
            parameter["AllowedValues"].is_null() && (!anchored || pattern.contains('*'))
        })
        .collect()
}

#[test]
fn the_parameters_policies_are_built_from_take_only_names() {
    let template = load("template.yaml");
    let unconstrained = unconstrained_policy_parameters(&template);
    assert!(
        unconstrained.is_empty(),
        "parameters naming policy resources without an anchored AllowedPattern free of `*`: {unconstrained:?}"
    );

    let mut widened = template.clone();
    widened["Parameters"]["RoutedPipelines"]["AllowedPattern"] = Value::from("^.*$");
    widened["Parameters"]["ClusterNames"]
        .as_mapping_mut()
        .unwrap()
        .remove("AllowedPattern");
    widened["Parameters"]["DeployRoleArns"]["AllowedPattern"] = Value::from("^arn:.*$");
    assert_eq!(
        unconstrained_policy_parameters(&widened),
        ["ClusterNames", "DeployRoleArns", "RoutedPipelines"]
    );
}

#[test]
fn each_function_is_granted_exactly_what_its_code_calls_on_exactly_its_resources() {
    assert_none(&function_violations(&load("template.yaml")));
}

// --- The table against the code -------------------------------------------------------------

/// The Rust files under `folder`, test modules' own files (`tests.rs`) left out.
fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A source file without its `#[cfg(test)] mod tests`, and without whitespace, so a call chain
/// split over lines reads `.client.put_item().table_name(…)`.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text.as_str(), |at| &text[..at]);
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn the_table_is_read_off_the_sdk_calls_the_code_makes() {
    let root = workspace_root();
    // Every SDK call is `.send()`: each adapter file sends exactly the operations listed for it.
    for path in rust_files(&root.join("shared/src")) {
        let code = code_of(&path);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let listed: Vec<_> = if path.parent() == Some(&root.join("shared/src/aws")) {
            OPERATIONS.iter().filter(|(f, _, _)| *f == file).collect()
        } else {
            Vec::new()
        };
        assert_eq!(
            code.matches(".send()").count(),
            listed.len(),
            "{}: the SDK calls made there are not the ones OPERATIONS lists: add the new one to \
             OPERATIONS, to NEEDS for the functions that make it, and to their policies",
            path.display()
        );
        for (_, method, _) in listed {
            assert!(
                code.contains(&format!(".{method}()")),
                "{file} no longer calls {method}"
            );
        }
    }
    let function_folders: Vec<PathBuf> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    for folder in &function_folders {
        for path in rust_files(&folder.join("src")) {
            assert!(
                !code_of(&path).contains(".send()"),
                "{}: an SDK call outside shared/src/aws/, where this test does not see it",
                path.display()
            );
        }
    }

    // Each function's table holds only actions of the adapters its main.rs builds, and at least
    // one of each.
    for (binary, needs) in NEEDS {
        let main = code_of(&root.join("functions").join(binary).join("src/main.rs"));
        let mut built: Vec<&str> = ADAPTERS
            .iter()
            .filter(|(construction, _)| main.contains(construction))
            .map(|(_, file)| *file)
            .collect();
        for (_, file) in AWAITING_WIRING.iter().filter(|(b, _)| b == binary) {
            assert!(
                !built.contains(file),
                "{binary}: main.rs builds the adapter of {file} now: remove it from AWAITING_WIRING"
            );
            built.push(*file);
        }
        let reachable: BTreeSet<&str> = OPERATIONS
            .iter()
            .filter(|(file, _, _)| built.contains(file))
            .map(|(_, _, action)| *action)
            .collect();
        for (action, _) in needs.iter() {
            assert!(
                reachable.contains(action),
                "{binary}: NEEDS lists {action}, which no adapter its main.rs builds calls"
            );
        }
        for file in &built {
            assert!(
                needs
                    .iter()
                    .any(|(action, _)| OPERATIONS.iter().any(|(f, _, a)| f == file && a == action)),
                "{binary}: main.rs builds the adapter of {file}, but NEEDS lists none of its calls"
            );
        }
    }

    // The signing key is a Secrets Manager secret of the stack, so GetSecretValue is the one
    // call load_signing_key makes (ssm:GetParameter is for keys kept in Parameter Store).
    let template = load("template.yaml");
    for (id, function) in functions(&template) {
        let setting = &function["Properties"]["Environment"]["Variables"]["SIGNING_KEY"];
        if setting.is_null() {
            continue;
        }
        let secret = references(setting);
        assert_eq!(secret.len(), 1, "{id}: SIGNING_KEY");
        let secret = secret.into_iter().next().unwrap();
        assert_eq!(
            template["Resources"][secret.as_str()]["Type"],
            "AWS::SecretsManager::Secret",
            "{id}: SIGNING_KEY is not the stack's Secrets Manager secret: NEEDS would need ssm:GetParameter"
        );
    }
}

// --- The checker can fail -------------------------------------------------------------------

/// A small template whose one role has `statement`, with a parameter `PipelineName` and
/// resources `Topic` and `Bucket` to build Resources from.
fn role_with(statement: &str) -> Value {
    let mut document: Value = serde_yaml_ng::from_str(
        "Parameters:\n  PipelineName: {Type: String}\n\
         Resources:\n  Topic: {Type: AWS::SNS::Topic}\n  Bucket: {Type: AWS::S3::Bucket}\n  \
         Role:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n        \
         - PolicyName: test\n          PolicyDocument:\n            Statement: []\n",
    )
    .unwrap();
    let statement: Value = serde_yaml_ng::from_str(statement).unwrap();
    document["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] =
        Value::Sequence(vec![statement]);
    document
}

fn refused(document: &Value, expected: &str) {
    let violations = document_violations(document);
    assert!(
        violations.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {violations:?}"
    );
}

#[test]
fn wildcard_actions_are_refused() {
    for action in ["'*'", "codepipeline:*", "codecommit:Get*", "sns:Publis?"] {
        let document = role_with(&format!(
            "{{Effect: Allow, Action: [{action}], Resource: !Ref Topic}}"
        ));
        refused(&document, "wildcard or malformed action");
    }
    refused(
        &role_with("{Effect: Allow, NotAction: iam:PassRole, Resource: !Ref Topic}"),
        "NotAction in an Allow statement",
    );
    // A trust policy names who may take the role: an AWS service, never anyone.
    let mut trusting_anyone =
        role_with("{Effect: Allow, Action: sns:Publish, Resource: !Ref Topic}");
    trusting_anyone["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"] =
        serde_yaml_ng::from_str(
            "Statement: [{Effect: Allow, Principal: {AWS: '*'}, Action: 'sts:AssumeRole'}]",
        )
        .unwrap();
    refused(&trusting_anyone, "may be assumed only by an AWS service");
    // A Deny may be as wide as it likes.
    assert_none(&document_violations(&role_with(
        "{Effect: Deny, Action: 's3:*', Resource: !GetAtt Bucket.Arn}",
    )));
}

#[test]
fn a_resource_of_star_is_refused_unless_iam_takes_no_other() {
    refused(
        &role_with("{Effect: Allow, Action: sns:Publish, Resource: '*'}"),
        "Resource \"*\" for [\"sns:Publish\"]",
    );
    refused(
        &role_with(
            "{Effect: Allow, Action: [codepipeline:PutJobSuccessResult, codepipeline:StartPipelineExecution], Resource: '*'}",
        ),
        "Resource \"*\" for [\"codepipeline:StartPipelineExecution\"]",
    );
    assert_none(&document_violations(&role_with(
        "{Effect: Allow, Action: codepipeline:PutJobSuccessResult, Resource: '*'}",
    )));
}

#[test]
fn resources_not_scoped_to_the_stack_are_refused() {
    let cases = [
        ("arn:aws:sns:us-east-1:123456789012:topic", "is a literal"),
        (
            "!Sub 'arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:*'",
            "names none of the stack's resources",
        ),
        (
            "!Sub 'arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${PipelineName}*'",
            "has a wildcard that is not a whole segment",
        ),
        (
            "!Sub 'arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:*/${PipelineName}'",
            "has a wildcard that is not a whole segment",
        ),
        ("!Ref Elsewhere", "which the template does not define"),
    ];
    for (resource, expected) in cases {
        refused(
            &role_with(&format!(
                "{{Effect: Allow, Action: codepipeline:GetPipeline, Resource: {resource}}}"
            )),
            expected,
        );
    }
    for resource in [
        "!Sub '${Bucket.Arn}/*'",
        "!Sub 'arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:${PipelineName}'",
        "[!GetAtt Bucket.Arn, !Ref Topic]",
    ] {
        assert_none(&document_violations(&role_with(&format!(
            "{{Effect: Allow, Action: s3:GetObject, Resource: {resource}}}"
        ))));
    }
}

/// The function `binary`'s policy statements in `template`, to change in place.
fn statements_of<'a>(template: &'a mut Value, binary: &str) -> &'a mut Vec<Value> {
    let id = functions(template)
        .into_iter()
        .find(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap()
        .0;
    match &mut template["Resources"][id.as_str()]["Properties"]["Policies"][0]["Statement"] {
        Value::Sequence(statements) => statements,
        other => panic!("{binary}: statements are {other:?}"),
    }
}

fn statement_with_sid<'a>(statements: &'a mut [Value], sid: &str) -> &'a mut Value {
    statements.iter_mut().find(|s| s["Sid"] == sid).unwrap()
}

#[test]
fn a_function_granted_more_less_or_elsewhere_than_its_code_calls_is_refused() {
    let template = load("template.yaml");
    assert_none(&function_violations(&template));

    let mut changed = template.clone();
    // One action more than the code calls.
    let start = statement_with_sid(
        statements_of(&mut changed, "codecommit-push"),
        "StartRoutedPipelines",
    );
    if let Value::Sequence(actions) = &mut start["Action"] {
        actions.push("codepipeline:StopPipelineExecution".into());
    }
    // One action less.
    statements_of(&mut changed, "codebuild-status")
        .retain(|s| s["Sid"] != "PublishBuildNotifications");
    // The right action on the wrong resource.
    statement_with_sid(
        statements_of(&mut changed, "approval-notify"),
        "MailApprovers",
    )["Resource"] = serde_yaml_ng::from_str("!Ref BuildNotificationsTopic").unwrap();
    // A broad SAM policy template instead of the three ledger actions.
    let id = "ApprovalCallbackFunction";
    if let Value::Sequence(policies) = &mut changed["Resources"][id]["Properties"]["Policies"] {
        policies.push(
            serde_yaml_ng::from_str(
                "DynamoDBCrudPolicy: {TableName: !Ref NotificationLedgerTable}",
            )
            .unwrap(),
        );
        policies.push("AmazonSNSFullAccess".into());
    }

    let violations = function_violations(&changed);
    for expected in [
        "CodeCommitPushFunction: grants codepipeline:StopPipelineExecution, which its code never calls",
        "CodeBuildStatusFunction: lacks sns:Publish on BuildNotificationsTopic",
        "ApprovalNotifyFunction: grants sns:Publish on {\"BuildNotificationsTopic\"}; its code needs it on ApproversTopic only",
        "ApprovalCallbackFunction.Policies[1]: SAM policy template DynamoDBCrudPolicy grants more",
        "ApprovalCallbackFunction.Policies[2]: managed policy AmazonSNSFullAccess",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "expected {expected:?} among {violations:#?}"
        );
    }
    assert_eq!(violations.len(), 5, "{violations:#?}");
}

#[test]
fn narrow_sam_policy_templates_are_expanded_and_checked_like_statements() {
    let mut template = load("template.yaml");
    let id = "CodeBuildStatusFunction";
    statements_of(&mut template, "codebuild-status")
        .retain(|s| s["Sid"] != "PublishBuildNotifications");
    if let Value::Sequence(policies) = &mut template["Resources"][id]["Properties"]["Policies"] {
        policies.push(
            serde_yaml_ng::from_str(
                "SNSPublishMessagePolicy: {TopicName: !GetAtt BuildNotificationsTopic.TopicName}",
            )
            .unwrap(),
        );
    }
    assert_none(&function_violations(&template));

    if let Value::Sequence(policies) = &mut template["Resources"][id]["Properties"]["Policies"] {
        *policies.last_mut().unwrap() =
            serde_yaml_ng::from_str("SNSPublishMessagePolicy: {TopicName: '*'}").unwrap();
    }
    let violations = function_violations(&template);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("Resource \"*\" for [\"sns:Publish\"]")),
        "{violations:#?}"
    );
}

#[test]
fn a_policy_given_under_a_condition_is_checked_like_the_others() {
    let mut template = load("template.yaml");
    let id = "EksDeployFunction";
    // The ECR and CloudWatch grants are conditional: none when no repository or alarm is named.
    let conditional: Vec<String> = template["Resources"][id]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|policy| conditional_policies(policy).0)
        .collect();
    assert_eq!(conditional, ["DeploysEcrImages", "GatesOnAlarms"]);
    for (condition, parameter) in [
        ("DeploysEcrImages", "DeployImageRepositories"),
        ("GatesOnAlarms", "DeployAlarmNames"),
    ] {
        let text = serde_yaml_ng::to_string(&template["Conditions"][condition]).unwrap();
        assert!(
            text.contains("!Not") && text.contains("!Join") && text.contains(parameter),
            "{condition} must hold exactly when {parameter} names something: {text}"
        );
    }

    // An action too many inside the conditional policy is seen.
    if let Value::Sequence(items) = &mut template["Resources"][id]["Properties"]["Policies"] {
        let branch = match &mut items[1] {
            Value::Tagged(tagged) => &mut tagged.value[1],
            other => panic!("{other:?}"),
        };
        if let Value::Sequence(actions) = &mut branch["Statement"][0]["Action"] {
            actions.push("ecr:PutImage".into());
        }
        // And a condition the template does not define.
        if let Value::Tagged(tagged) = &mut items[2] {
            tagged.value[0] = Value::from("Nowhere");
        }
    }
    let violations = function_violations(&template);
    for expected in [
        "EksDeployFunction: grants ecr:PutImage, which its code never calls",
        "EksDeployFunction.Policies[2]: condition Nowhere is not defined in Conditions",
    ] {
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "expected {expected:?} among {violations:#?}"
        );
    }
    assert_eq!(violations.len(), 2, "{violations:#?}");
}

// --- Other accounts -------------------------------------------------------------------------

#[test]
fn eks_deploy_may_assume_the_listed_roles_only_and_none_when_none_are_listed() {
    let template = load("template.yaml");
    let parameter = &template["Parameters"]["DeployRoleArns"];
    assert_eq!(parameter["Type"], "CommaDelimitedList");
    assert_eq!(parameter["Default"], "");
    // The condition is false for the default (an empty list joins to ""), and the statement is
    // under it, with nothing in its place otherwise.
    let condition: Value =
        serde_yaml_ng::from_str("!Not [!Equals [!Join [\"\", !Ref DeployRoleArns], \"\"]]")
            .unwrap();
    assert_eq!(template["Conditions"]["AssumesDeployRoles"], condition);
    let mut template = template;
    let statements = statements_of(&mut template, "eks-deploy").clone();
    let conditional: Vec<&Value> = statements
        .iter()
        .filter(|s| branches(s).iter().any(|b| b["Action"] == "sts:AssumeRole"))
        .collect();
    assert_eq!(conditional.len(), 1, "{statements:#?}");
    let Some((name, Value::Sequence(arguments))) = intrinsic(conditional[0]) else {
        panic!("sts:AssumeRole is granted without a condition: {conditional:?}");
    };
    assert_eq!(name, "If");
    assert_eq!(arguments[0], "AssumesDeployRoles");
    assert_eq!(
        arguments[2],
        serde_yaml_ng::from_str::<Value>("!Ref AWS::NoValue").unwrap()
    );
    assert_eq!(
        references(&arguments[1]["Resource"]),
        BTreeSet::from(["DeployRoleArns".to_owned()])
    );

    // Granted on anything else, it is refused like any other grant.
    let mut widened = template.clone();
    for statement in statements_of(&mut widened, "eks-deploy").iter_mut() {
        if let Value::Tagged(tagged) = statement
            && let Value::Sequence(arguments) = &mut tagged.value
        {
            arguments[1]["Resource"] = serde_yaml_ng::from_str("!Ref ClusterNames").unwrap();
        }
    }
    let violations = function_violations(&widened);
    assert!(
        violations.iter().any(|v| v.contains(
            "EksDeployFunction: grants sts:AssumeRole on {\"ClusterNames\"}; its code needs it on DeployRoleArns only"
        )),
        "{violations:#?}"
    );
}

#[test]
fn the_target_account_role_trusts_only_eks_deploys_role_with_the_external_id() {
    let mut stack = load("infra/target-account.yaml");
    let role = stack["Resources"]["DeployRole"]["Properties"].clone();
    let trust = role["AssumeRolePolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(trust.len(), 1, "{trust:?}");
    let statement = &trust[0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "sts:AssumeRole");
    let principal = statement["Principal"].as_mapping().unwrap();
    assert_eq!(principal.len(), 1);
    assert_eq!(
        references(&statement["Principal"]["AWS"]),
        BTreeSet::from(["DeployFunctionRoleArn".to_owned()])
    );
    assert_eq!(
        references(&statement["Condition"]["StringEquals"]["sts:ExternalId"]),
        BTreeSet::from(["ExternalId".to_owned()])
    );
    for parameter in ["DeployFunctionRoleArn", "ExternalId", "ClusterName"] {
        let pattern = stack["Parameters"][parameter]["AllowedPattern"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$') && !pattern.contains(".*"),
            "{parameter}: {pattern:?}"
        );
    }
    // The rest of the stack is held to the rules of the others: the role may describe its one
    // cluster, nothing else.
    stack["Resources"]["DeployRole"]["Properties"]
        .as_mapping_mut()
        .unwrap()
        .remove("AssumeRolePolicyDocument");
    assert_none(&document_violations(&stack));
    let mut grants = Grants::new();
    let mut found = Vec::new();
    collect_statements(&stack["Resources"], "Resources", &mut found);
    found.iter().for_each(|(_, s)| grant(&mut grants, s));
    assert_eq!(
        grants,
        Grants::from([(
            "eks:DescribeCluster".to_owned(),
            BTreeSet::from(["ClusterName".to_owned()])
        )])
    );
    // The cluster's access entry is the role's, in the group the RBAC binds.
    let entry = &stack["Resources"]["DeployAccessEntry"]["Properties"];
    assert_eq!(
        references(&entry["PrincipalArn"]),
        BTreeSet::from(["DeployRole".to_owned()])
    );
    assert_eq!(
        entry["KubernetesGroups"],
        serde_yaml_ng::from_str::<Value>("[eks-deploy]").unwrap()
    );
    assert!(entry["AccessPolicies"].is_null());
}
