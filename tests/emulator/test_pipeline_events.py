"""Tests of the CodePipeline state change events the emulator emits (aws_ext/pipeline_events.py).

One in-process server (random port on 127.0.0.1); every test starts from a reset.  The pipeline
is the project's: CodeCommit source, a build, a manual approval, the eks-deploy Lambda action.
The events are read from the admin API, as the harness that delivers them does, and checked
against the shapes of the CodePipeline user guide's emitted events and of the public fixtures
(aws-lambda-rust-runtime ``lambda-events/src/fixtures/example-codepipeline-*.json``).
"""

from __future__ import annotations

import json
import re
import sys
import unittest
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402

ACCOUNT = "123456789012"
PIPELINE = "shop-main"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""

# The members each event has, as the fixtures and the user guide show them (the fixtures' stage
# event lacks `stage`, which the user guide's has; both are taken by the function).
ENVELOPE = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
DETAIL = {"pipeline", "execution-id", "state", "version", "pipeline-execution-attempt"}


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def client(service: str) -> Any:
    return model_checks.client(ENDPOINT, service, lambda **kwargs: None)


def http(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body)


def events(after: int = 0) -> list[dict[str, Any]]:
    status, body = http("GET", "/_emulator/codepipeline/events?" + urllib.parse.urlencode({"pipeline": PIPELINE, "after": after}))
    assert status == 200, body
    return [item["event"] for item in body["events"]]


def told(found: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Each event as (kind, name, state): ("pipeline", "STARTED"), ("stage", "Build", "STARTED")…"""
    out: list[tuple[str, ...]] = []
    for event in found:
        detail = event["detail"]
        kind = event["detail-type"].split()[1].lower()
        if kind == "pipeline":
            out.append(("pipeline", detail["state"]))
        elif kind == "stage":
            out.append(("stage", detail["stage"], detail["state"]))
        else:
            out.append(("action", detail["action"], detail["state"]))
    return out


def action(name: str, category: str, provider: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"}, **extra}


class PipelineEventTests(unittest.TestCase):
    def setUp(self) -> None:
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)
        self.codepipeline = client("codepipeline")
        iam = client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName="shop-pipeline", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        codecommit = client("codecommit")
        codecommit.create_repository(repositoryName="shop")
        self.commit = codecommit.create_commit(
            repositoryName="shop", branchName="main", authorName="Dev", email="dev@example.com",
            commitMessage="feat: one-click checkout", putFiles=[{"filePath": "Dockerfile", "fileContent": b"FROM scratch\n"}],
        )["commitId"]
        self.codepipeline.create_pipeline(pipeline={
            "name": PIPELINE, "roleArn": role, "pipelineType": "V2",
            "artifactStore": {"type": "S3", "location": "artifacts"},
            "stages": [
                {"name": "Source", "actions": [action("Source", "Source", "CodeCommit",
                    configuration={"RepositoryName": "shop", "BranchName": "main", "PollForSourceChanges": "false"},
                    outputArtifacts=[{"name": "SourceArtifact"}], namespace="SourceVariables")]},
                {"name": "Build", "actions": [action("Build", "Build", "CodeBuild", configuration={"ProjectName": "shop-image"},
                    inputArtifacts=[{"name": "SourceArtifact"}], outputArtifacts=[{"name": "BuildOutput"}])]},
                {"name": "Approval", "actions": [action("ProductionGate", "Approval", "Manual")]},
                {"name": "Deploy", "actions": [action("EksDeploy", "Invoke", "Lambda",
                    configuration={"FunctionName": "eks-deploy", "UserParameters": "{}"}, inputArtifacts=[{"name": "BuildOutput"}])]},
            ],
        })

    def complete(self, execution: str, stage: str, name: str, status: str, **extra: Any) -> None:
        code, body = http("POST", "/_emulator/codepipeline/complete-action",
                          {"executionId": execution, "stage": stage, "action": name, "status": status, **extra})
        self.assertEqual(code, 200, body)

    def approval_token(self) -> str:
        state = self.codepipeline.get_pipeline_state(name=PIPELINE)
        gate = next(s for s in state["stageStates"] if s["stageName"] == "Approval")
        return gate["actionStates"][0]["latestExecution"]["token"]

    def test_a_successful_execution_emits_every_start_and_end_in_order(self) -> None:
        execution = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        self.complete(execution, "Build", "Build", "Succeeded")
        self.codepipeline.put_approval_result(
            pipelineName=PIPELINE, stageName="Approval", actionName="ProductionGate",
            result={"summary": "Approved by alice@example.com via the email link", "status": "Approved"},
            token=self.approval_token(),
        )
        job = http("GET", f"/_emulator/codepipeline/jobs?pipeline={PIPELINE}")[1]["jobs"][0]
        self.codepipeline.put_job_success_result(jobId=job["jobId"], outputVariables={"IMAGE_DIGEST": "sha256:" + "a" * 64})
        self.assertEqual(told(events()), [
            ("pipeline", "STARTED"),
            ("stage", "Source", "STARTED"), ("action", "Source", "STARTED"), ("action", "Source", "SUCCEEDED"),
            ("stage", "Source", "SUCCEEDED"),
            ("stage", "Build", "STARTED"), ("action", "Build", "STARTED"), ("action", "Build", "SUCCEEDED"),
            ("stage", "Build", "SUCCEEDED"),
            ("stage", "Approval", "STARTED"), ("action", "ProductionGate", "STARTED"),
            ("action", "ProductionGate", "SUCCEEDED"), ("stage", "Approval", "SUCCEEDED"),
            ("stage", "Deploy", "STARTED"), ("action", "EksDeploy", "STARTED"), ("action", "EksDeploy", "SUCCEEDED"),
            ("stage", "Deploy", "SUCCEEDED"),
            ("pipeline", "SUCCEEDED"),
        ])
        # ListActionExecutions tells who decided the approval.
        runs = self.codepipeline.list_action_executions(pipelineName=PIPELINE, filter={"pipelineExecutionId": execution})
        gate = next(r for r in runs["actionExecutionDetails"] if r["actionName"] == "ProductionGate")
        self.assertIn("updatedBy", gate)

    def test_the_events_have_the_documented_shapes(self) -> None:
        execution = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        self.complete(execution, "Build", "Build", "Failed", errorMessage="docker build failed")
        found = events()
        ids = set()
        for event in found:
            self.assertEqual(list(event), ENVELOPE)
            self.assertEqual((event["version"], event["source"], event["account"], event["region"]),
                             ("0", "aws.codepipeline", ACCOUNT, "us-east-1"))
            self.assertRegex(event["id"], UUID)
            ids.add(event["id"])
            self.assertRegex(event["time"], TIME)
            self.assertEqual(event["resources"], [f"arn:aws:codepipeline:us-east-1:{ACCOUNT}:{PIPELINE}"])
            detail = event["detail"]
            self.assertTrue(DETAIL <= set(detail), detail)
            self.assertEqual((detail["pipeline"], detail["execution-id"]), (PIPELINE, execution))
            self.assertIsInstance(detail["version"], int)
            self.assertEqual(detail["pipeline-execution-attempt"], 1.0)
            kind = event["detail-type"]
            if kind == "CodePipeline Pipeline Execution State Change":
                self.assertEqual(set(detail) - DETAIL, {"execution-trigger"})
                self.assertEqual(detail["execution-trigger"]["trigger-type"], "StartPipelineExecution")
            elif kind == "CodePipeline Stage Execution State Change":
                self.assertEqual(set(detail) - DETAIL, {"stage"})
            else:
                self.assertEqual(kind, "CodePipeline Action Execution State Change")
                self.assertTrue({"stage", "action", "region", "type"} <= set(detail), detail)
                self.assertEqual(set(detail["type"]), {"owner", "provider", "category", "version"})
        self.assertEqual(len(ids), len(found), "every event has an id of its own")
        failed = [e for e in found if e["detail"]["state"] == "FAILED"]
        self.assertEqual(told(failed), [("action", "Build", "FAILED"), ("stage", "Build", "FAILED"), ("pipeline", "FAILED")])
        self.assertEqual(failed[0]["detail"]["execution-result"]["error-code"], "JobFailed")
        source = next(e for e in found if e["detail"].get("action") == "Source" and e["detail"]["state"] == "SUCCEEDED")
        self.assertEqual(source["detail"]["execution-result"]["external-execution-id"], self.commit)
        self.assertEqual(source["detail"]["execution-result"]["external-execution-summary"], "feat: one-click checkout")

    def test_a_rejection_and_a_stop_are_told_and_reading_again_tells_only_what_is_new(self) -> None:
        first = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        self.complete(first, "Build", "Build", "Succeeded")
        seen = len(events())
        self.codepipeline.put_approval_result(
            pipelineName=PIPELINE, stageName="Approval", actionName="ProductionGate",
            result={"summary": "Rejected by bob@example.com via the email link: not today", "status": "Rejected"},
            token=self.approval_token(),
        )
        new = events(after=seen)
        self.assertEqual(told(new), [("action", "ProductionGate", "FAILED"), ("stage", "Approval", "FAILED"), ("pipeline", "FAILED")])
        self.assertEqual(new[0]["detail"]["execution-result"]["external-execution-summary"],
                         "Rejected by bob@example.com via the email link: not today")

        second = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        seen = len(events())
        self.codepipeline.stop_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=second, abandon=True, reason="hotfix first")
        self.assertEqual(told(events(after=seen)), [("action", "Build", "ABANDONED"), ("stage", "Build", "STOPPED"), ("pipeline", "STOPPED")])

    def test_a_stop_that_waits_is_stopping_first(self) -> None:
        execution = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        seen = len(events())
        self.codepipeline.stop_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=execution, reason="hotfix first")
        stopping = events(after=seen)
        self.assertEqual(told(stopping), [("stage", "Build", "STOPPING"), ("pipeline", "STOPPING")])
        self.assertEqual(stopping[-1]["detail"]["stop-execution-comments"], "hotfix first")
        self.complete(execution, "Build", "Build", "Succeeded")
        self.assertEqual(told(events(after=seen + 2)), [("action", "Build", "SUCCEEDED"), ("stage", "Build", "STOPPED"), ("pipeline", "STOPPED")])

    def test_a_reset_forgets_the_events_and_a_bad_cursor_is_refused(self) -> None:
        self.codepipeline.start_pipeline_execution(name=PIPELINE)
        self.assertNotEqual(events(), [])
        http("POST", "/_emulator/reset")
        self.assertEqual(events(), [])
        status, body = http("GET", "/_emulator/codepipeline/events?after=x")
        self.assertEqual(status, 400, body)


if __name__ == "__main__":
    unittest.main()
