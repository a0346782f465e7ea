"""codecommit-push as a Python user would write it: the benchmark's baseline.

The same decisions as functions/codecommit-push (routes with branch patterns, tags and deletions
ignored, `[skip ci]`, one execution per routed pipeline pinned to the pushed commit with the
event id as idempotency token, the source action looked up once per cold start) and the same
AWS calls (GetPipeline once, GetCommit, StartPipelineExecution), with boto3 clients built once
at import, as the Lambda Python guides recommend. Run under the Lambda runtime interface client:
`python -m awslambdaric codecommit_push.handler`.
"""

import json
import logging
import os
import re

import boto3

logger = logging.getLogger()
logger.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO"))

SOURCE = "aws.codecommit"
DETAIL_TYPE = "CodeCommit Repository State Change"
SKIP_MARKERS = ("[skip ci]", "[ci skip]")
NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
COMMIT_ID = re.compile(r"^[0-9a-fA-F]{40}$")
TOKEN = re.compile(r"^[A-Za-z0-9-]{1,128}$")


class InvalidEvent(Exception):
    """A malformed or foreign event (Lambda shows the class name as errorType)."""


class Config(Exception):
    """A setting that cannot work."""


def branch_pattern(pattern):
    """`*` within a segment, `**` across segments, `?` one character other than `/`."""
    if not pattern.strip():
        raise Config("PIPELINE_ROUTES: the branch pattern is empty")
    if "***" in pattern:
        raise Config("PIPELINE_ROUTES: `***` is not a pattern")
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(f"^{regex}$")


def load_routes(text):
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as error:
        raise Config(f"PIPELINE_ROUTES: not JSON: {error}") from None
    if not isinstance(raw, list) or not raw:
        raise Config("PIPELINE_ROUTES: no routes")
    routes = []
    for index, route in enumerate(raw):
        for field in ("repository", "pipeline"):
            if not isinstance(route.get(field), str) or not NAME.match(route[field]):
                raise Config(f"PIPELINE_ROUTES: route [{index}]: bad {field}")
        routes.append(
            {
                "repository": route["repository"],
                "branch": branch_pattern(route["branch"]),
                "pipeline": route["pipeline"],
                "sourceAction": route.get("sourceAction"),
            }
        )
    return routes


ROUTES = load_routes(os.environ.get("PIPELINE_ROUTES"))
codepipeline = boto3.client("codepipeline")
codecommit = boto3.client("codecommit")
# Pipeline definitions rarely change: look the source action up once per cold start.
source_actions = {}


def ignored(repository, reason):
    logger.info(json.dumps({"message": "push ignored", "repository": repository, "reason": reason}))
    return {"outcome": "ignored", "reason": reason}


def handler(event, context):
    if not isinstance(event, dict):
        raise InvalidEvent("expected an EventBridge event object")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise InvalidEvent("not a CodeCommit repository state change")
    detail = event.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("repositoryName"), str):
        raise InvalidEvent("detail.repositoryName is missing")
    repository = detail["repositoryName"]
    reference = detail.get("referenceFullName") or detail.get("referenceName") or ""
    kind = detail.get("event")
    if kind == "referenceDeleted":
        return ignored(repository, {"kind": "referenceDeleted", "reference": reference})
    if kind not in ("referenceCreated", "referenceUpdated"):
        return ignored(repository, {"kind": "notAPush"})
    reference_type = detail.get("referenceType")
    if reference_type == "tag":
        return ignored(repository, {"kind": "tag", "tag": detail.get("referenceName") or reference})
    if reference_type is None:
        raise InvalidEvent("detail.referenceType is missing")
    if reference_type != "branch":
        return ignored(repository, {"kind": "notABranch"})
    branch = detail.get("referenceName") or reference.removeprefix("refs/heads/")
    if not branch:
        raise InvalidEvent("detail.referenceName is missing")
    commit_id = detail.get("commitId")
    if not isinstance(commit_id, str) or not COMMIT_ID.match(commit_id):
        raise InvalidEvent("detail.commitId: not a commit id")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not TOKEN.match(event_id):
        raise InvalidEvent("id: not an EventBridge event id")
    routes, seen = [], set()
    for route in ROUTES:
        if route["repository"] == repository and route["branch"].match(branch) and route["pipeline"] not in seen:
            seen.add(route["pipeline"])
            routes.append(route)
    if not routes:
        return ignored(repository, {"kind": "unrouted", "repository": repository, "branch": branch})

    # An older push delivered after a newer one must not start a pipeline that deploys it last.
    tip = codecommit.get_branch(repositoryName=repository, branchName=branch)["branch"].get("commitId")
    if tip is None or tip.lower() != commit_id.lower():
        return ignored(repository, {"kind": "superseded", "commitId": commit_id, "tip": tip})

    message = codecommit.get_commit(repositoryName=repository, commitId=commit_id)["commit"].get("message", "")
    lowered = message.lower()
    for marker in SKIP_MARKERS:
        if marker in lowered:
            return ignored(repository, {"kind": "skipCi", "marker": marker, "commitId": commit_id})

    executions, first_failure = [], None
    for route in routes:
        try:
            action = route["sourceAction"] or source_action(route["pipeline"], repository, branch)
            started = codepipeline.start_pipeline_execution(
                name=route["pipeline"],
                clientRequestToken=event_id,
                sourceRevisions=[
                    {"actionName": action, "revisionType": "COMMIT_ID", "revisionValue": commit_id}
                ],
            )
        except Exception as error:  # every pipeline is attempted; the first failure fails the event
            source_actions.pop((route["pipeline"], repository), None)
            logger.warning(json.dumps({"message": "pipeline not started", "pipeline": route["pipeline"], "error": str(error)}))
            first_failure = first_failure or error
            continue
        execution = {"pipeline": route["pipeline"], "executionId": started["pipelineExecutionId"]}
        logger.info(json.dumps({"message": "pipeline started", "repository": repository, "branch": branch,
                                "commit": commit_id, **execution}))
        executions.append(execution)
    if first_failure is not None:
        raise first_failure
    return {"outcome": "started", "repository": repository, "branch": branch, "commitId": commit_id,
            "executions": executions}


def source_action(pipeline, repository, branch):
    key = (pipeline, repository)
    if key in source_actions:
        return source_actions[key]
    stages = codepipeline.get_pipeline(name=pipeline)["pipeline"]["stages"]
    actions = [
        action
        for stage in stages
        for action in stage["actions"]
        if action["actionTypeId"]["category"] == "Source"
        and action["actionTypeId"]["provider"] == "CodeCommit"
        and action.get("configuration", {}).get("RepositoryName") == repository
    ]
    if not actions:
        raise Config(f"pipeline {pipeline}: no CodeCommit source action reads repository {repository}")
    if len(actions) > 1:
        following = [a for a in actions if a.get("configuration", {}).get("BranchName") == branch]
        if len(following) != 1:
            raise Config(f"pipeline {pipeline}: several source actions read {repository}")
        actions = following
    source_actions[key] = actions[0]["name"]
    return actions[0]["name"]
