"""codebuild-status as a Python user would write it: the benchmark's baseline.

The same decisions as functions/codebuild-status (pull-request builds and running builds
ignored, a per-project notify policy, FIXED when the previous completed build of the branch
failed, the same subject, body and message attributes, a DynamoDB ledger so a status is
notified once) and the same AWS calls (ListBuildsForProject + BatchGetBuilds for a success,
PutItem with a condition, Publish, UpdateItem), with boto3 clients built once at import. Run
under the Lambda runtime interface client: `python -m awslambdaric codebuild_status.handler`.
"""

import json
import logging
import os
import time
from datetime import datetime, timezone
from urllib.parse import quote

import boto3

logger = logging.getLogger()
logger.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO"))

SOURCE = "aws.codebuild"
DETAIL_TYPE = "CodeBuild Build State Change"
STATUSES = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT", "FIXED", "SUCCEEDED")
DEFAULT_NOTIFY_ON = ["FAILED", "FAULT", "STOPPED", "TIMED_OUT", "FIXED"]
FINAL = ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT")
FAILURES = ("FAILED", "FAULT", "TIMED_OUT")
LEASE_SECONDS = 120
RETENTION_SECONDS = 7 * 24 * 3600


class InvalidEvent(Exception):
    """A malformed or foreign event."""


class Config(Exception):
    """A setting that cannot work."""


def load_config(environ):
    topic = environ.get("TOPIC_ARN", "")
    if not topic.startswith("arn:") or topic.count(":") != 5:
        raise Config(f"TOPIC_ARN: {topic!r} is not an SNS topic ARN")
    table = environ.get("LEDGER_TABLE") or ""
    if not table:
        raise Config("LEDGER_TABLE is not set")
    policy = json.loads(environ["NOTIFY_ON"]) if environ.get("NOTIFY_ON") else {}
    if not all(s in STATUSES for statuses in policy.values() for s in statuses):
        raise Config("NOTIFY_ON: unknown status")
    depth = int(environ.get("HISTORY_DEPTH") or 25)
    if not 1 <= depth <= 500:
        raise Config("HISTORY_DEPTH must be between 1 and 500")
    return {
        "topic": topic,
        "table": table,
        "default": policy.pop("*", DEFAULT_NOTIFY_ON),
        "projects": policy,
        "pr_project": environ.get("PR_VALIDATION_PROJECT") or None,
        "depth": depth,
    }


CONFIG = load_config(os.environ)
codebuild = boto3.client("codebuild")
sns = boto3.client("sns")
dynamodb = boto3.client("dynamodb")


def variable(info, name):
    for v in (info.get("environment") or {}).get("environment-variables", []):
        if v.get("name") == name and v.get("type", "PLAINTEXT") == "PLAINTEXT" and v.get("value"):
            return v["value"]
    return None


def is_commit(text):
    return isinstance(text, str) and len(text) == 40 and all(c in "0123456789abcdefABCDEF" for c in text)


def source_of(info):
    version = info.get("source-version") or None
    branch = variable(info, "SOURCE_BRANCH")
    commit = variable(info, "SOURCE_COMMIT")
    if version and is_commit(version):
        commit = commit if is_commit(commit) else version
    elif version and version.startswith("refs/heads/"):
        branch = branch or version[len("refs/heads/"):]
    if not is_commit(commit):
        commit = None
    return {"branch": branch, "commit": commit, "version": version}


def build_number(info):
    n = info.get("build-number")
    return int(n) if isinstance(n, (int, float)) and n >= 0 and float(n).is_integer() else None


def short_id(build_id):
    return build_id.rsplit(":build/", 1)[-1]


def ignored(detail, reason):
    logger.info(json.dumps({"message": "build not notified", "project": detail["project-name"],
                            "build_id": detail["build-id"], "reason": reason}))
    return {"outcome": "ignored", "reason": reason}


def handler(event, context):
    if not isinstance(event, dict) or event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise InvalidEvent("not a CodeBuild build state change")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEvent("detail is missing")
    for field in ("build-status", "project-name", "build-id"):
        if not isinstance(detail.get(field), str):
            raise InvalidEvent(f"detail.{field} is missing")
    info = detail.get("additional-information") or {}
    status, project = detail["build-status"], detail["project-name"]

    if CONFIG["pr_project"] == project or variable(info, "PULL_REQUEST_ID"):
        return ignored(detail, {"kind": "pullRequestBuild"})
    if status not in FINAL:
        return ignored(detail, {"kind": "notFinished"})
    policy = CONFIG["projects"].get(project, CONFIG["default"])
    previous = None
    if status != "SUCCEEDED":
        if status not in policy:
            return ignored(detail, {"kind": "notNotified", "status": status})
        kind = status
    elif "SUCCEEDED" in policy:
        kind = "SUCCEEDED"
    elif "FIXED" in policy:
        found, previous = fix_of(detail, info)
        if not found:
            return ignored(detail, {"kind": "notAFix"})
        kind = "FIXED"
    else:
        return ignored(detail, {"kind": "notNotified", "status": "SUCCEEDED"})

    subject, body, attributes = compose(event, detail, info, kind, previous)
    key = f"codebuild-status/{detail['build-id']}/{kind}"
    now = int(time.time())
    try:
        dynamodb.put_item(
            TableName=CONFIG["table"],
            Item={"pk": {"S": key}, "state": {"S": "pending"}, "claimedAt": {"N": str(now)},
                  "expiresAt": {"N": str(now + RETENTION_SECONDS)}},
            ConditionExpression="attribute_not_exists(pk) OR (#state = :pending AND claimedAt < :stale)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":pending": {"S": "pending"}, ":stale": {"N": str(now - LEASE_SECONDS)}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return ignored(detail, {"kind": "alreadyNotified"})
    try:
        message_id = sns.publish(
            TopicArn=CONFIG["topic"], Subject=subject, Message=body,
            MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes},
        )["MessageId"]
    except Exception:
        try:  # give the claim back so Lambda's retry can send the message
            dynamodb.delete_item(
                TableName=CONFIG["table"], Key={"pk": {"S": key}}, ConditionExpression="#state = :pending",
                ExpressionAttributeNames={"#state": "state"}, ExpressionAttributeValues={":pending": {"S": "pending"}},
            )
        except Exception as error:
            logger.warning(json.dumps({"message": "claim not released", "error": str(error)}))
        raise
    logger.info(json.dumps({"message": "build notified", "project": project, "build_id": detail["build-id"],
                            "status": kind, "message_id": message_id}))
    try:
        dynamodb.update_item(
            TableName=CONFIG["table"], Key={"pk": {"S": key}}, UpdateExpression="SET #state = :done",
            ExpressionAttributeNames={"#state": "state"}, ExpressionAttributeValues={":done": {"S": "done"}},
        )
    except Exception as error:
        logger.warning(json.dumps({"message": "notification not recorded", "error": str(error)}))
    return {"outcome": "notified", "subject": subject, "status": kind, "messageId": message_id}


def fix_of(detail, info):
    """(True, previous number) when the previous completed build of the branch failed."""
    ids, token = [], None
    while len(ids) < CONFIG["depth"]:
        args = {"projectName": detail["project-name"]}
        args.update({"nextToken": token} if token else {"sortOrder": "DESCENDING"})
        page = codebuild.list_builds_for_project(**args)
        ids.extend(page.get("ids", []))
        token = page.get("nextToken")
        if not token:
            break
    ids = ids[: CONFIG["depth"]]
    history = []
    for start in range(0, len(ids), 100):
        history.extend(codebuild.batch_get_builds(ids=ids[start:start + 100]).get("builds", []))
    current, number = short_id(detail["build-id"]), build_number(info)
    positions = [i for i, b in enumerate(history) if b.get("id") == current]
    if positions:
        older = history[positions[0] + 1:]
    else:
        older = [b for b in history if b.get("id") != current
                 and (number is None or b.get("buildNumber") is None or b["buildNumber"] < number)]
    source = source_of(info)
    for record in older:
        if not record.get("buildComplete") or record.get("buildStatus") not in FINAL:
            continue
        variables = {v["name"]: v.get("value", "") for v in (record.get("environment") or {}).get("environmentVariables", [])
                     if v.get("type", "PLAINTEXT") == "PLAINTEXT"}
        branch = variables.get("SOURCE_BRANCH") or (
            record.get("sourceVersion", "")[len("refs/heads/"):] if (record.get("sourceVersion") or "").startswith("refs/heads/") else None)
        same = (source["branch"] == branch) if (source["branch"] and branch) else (
            source["branch"] is None and branch is None and source["version"] == record.get("sourceVersion"))
        if same:
            return (record["buildStatus"] in FAILURES, record.get("buildNumber"))
    return (False, None)


def codebuild_time(text):
    try:
        return datetime.strptime(text.strip(), "%b %d, %Y %I:%M:%S %p").replace(tzinfo=timezone.utc)
    except (AttributeError, ValueError):
        return None


def human_duration(s):
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def compose(event, detail, info, kind, previous):
    project, number, source = detail["project-name"], build_number(info), source_of(info)
    region, account = event.get("region") or "us-east-1", event.get("account") or ""
    label = source["branch"] or source["version"]
    subject = f"{'TIMED OUT' if kind == 'TIMED_OUT' else kind}: {project}"
    if number is not None:
        subject += f" #{number}"
    if label:
        subject += f" on {label if len(label) <= 40 else label[:39] + '…'}"
    if source["commit"]:
        subject += f" ({source['commit'][:7]})"
    name = f"{project} #{number}" if number is not None else project
    on = f" on {label}" if label else ""
    if kind == "FIXED":
        after = f" after build #{previous} had failed: fixed." if previous is not None else \
            " after the previous build had failed: fixed."
        body = f"Build {name}{on} succeeded{after}\n"
    elif kind == "SUCCEEDED":
        body = f"Build {name}{on} succeeded.\n"
    elif kind == "STOPPED":
        body = f"Build {name}{on} was stopped before it finished.\n"
    elif kind == "TIMED_OUT":
        body = f"Build {name}{on} ran out of time and was stopped.\n"
    else:
        body = f"Build {name}{on} failed.\n"
    for phase in info.get("phases", []):
        if phase.get("phase-status") in ("FAILED", "FAULT", "TIMED_OUT", "STOPPED"):
            body += f"\nWhat went wrong: the {phase['phase-type'].replace('_', ' ')} phase ended {phase['phase-status']}.\n"
            for context in phase.get("phase-context") or []:
                context = context.strip().lstrip(":").strip()
                if context:
                    body += f"  {context}\n"
            break
    facts = [("Project", project)]
    if number is not None:
        facts.append(("Build", f"#{number}"))
    if source["branch"]:
        facts.append(("Branch", source["branch"]))
    if source["commit"]:
        facts.append(("Commit", source["commit"]))
    elif source["version"] and not source["branch"]:
        facts.append(("Source", source["version"]))
    if info.get("initiator"):
        facts.append(("Started by", info["initiator"]))
    start, end = codebuild_time(info.get("build-start-time")), event.get("time")
    seconds = None
    if start and end:
        seconds = int((datetime.fromisoformat(end.replace("Z", "+00:00")) - start).total_seconds())
    if seconds is None or seconds < 0:
        total = sum(p.get("duration-in-seconds") or 0 for p in info.get("phases", []))
        seconds = round(total) if total > 0 else None
    if seconds is not None:
        facts.append(("Duration", human_duration(seconds)))
    body += "\n" + "".join(f"{label:<11} {value}\n" for label, value in facts)
    console = (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/{account}/projects/"
               f"{quote(project, safe='-_.~')}/build/{quote(short_id(detail['build-id']), safe='-_.~')}/?region={region}")
    body += f"\nBuild details: {console}\n"
    link = (info.get("logs") or {}).get("deep-link")
    body += f"Logs:          {link}\n" if link else \
        "Logs:          not available (the build may not have started its log stream)\n"
    attributes = [("project", project), ("status", kind)]
    if source["branch"]:
        attributes.append(("branch", source["branch"]))
    return subject, body, attributes
