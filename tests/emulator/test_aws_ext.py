"""Tests of the AWS emulator extensions (aws_ext) through boto3 and raw HTTP.

One in-process server (random port on 127.0.0.1) with a Kubernetes stand-in;
every test starts from POST /_emulator/reset.  Every boto3 response of the
extended services is also checked against the output shape's required
members (``model_checks.check_required``), so each test doubles as a round-trip check.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import unittest
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from werkzeug.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import codecommit as codecommit_module  # noqa: E402
from aws_ext import known_cluster_names, make_app, model  # noqa: E402

COMMIT_DATE = re.compile(r"^\d{10} \+0000$")


class FakeKube:
    """Stands in for local_cluster.LocalCluster: records what the admin API asks of it."""

    server_url = "https://127.0.0.1:6443"
    ca_pem = b"-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name not in {"reset", "inject_faults", "drop_watches_after", "clear_request_log", "request_log", "faults"}:
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return [{"method": "GET", "path": "/version", "status": 200}] if name == "request_log" else None

        return record


KUBE = FakeKube()
APP = make_app(KUBE)
SERVER: Any = None
ENDPOINT = ""
CHECKED_OPERATIONS: set[tuple[str, str]] = set()


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)
        CHECKED_OPERATIONS.add((model.service_model.service_name, model.name))


def client(service: str) -> Any:
    return model_checks.client(ENDPOINT, service, _after_call)


def http(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, headers)


def aws_json(target: str, body: Any) -> tuple[int, Any]:
    """A raw JSON-protocol call, signed-looking enough for moto to route it."""
    service = {"CodePipeline_20150709": "codepipeline", "CodeCommit_20150413": "codecommit"}[target.split(".")[0]]
    return model_checks.raw_json_call(ENDPOINT, service, target, body)


def error_code(raised: ClientError) -> str:
    return raised.response["Error"]["Code"]


class EmulatorTestCase(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = http("POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        KUBE.calls.clear()
        APP.codepipeline.on_action_started.clear()
        self.codecommit = client("codecommit")
        self.codepipeline = client("codepipeline")

    def assertClientError(self, code: str, call: Any, *args: Any, **kwargs: Any) -> ClientError:
        with self.assertRaises(ClientError) as raised:
            call(*args, **kwargs)
        self.assertEqual(error_code(raised.exception), code, raised.exception.response["Error"].get("Message"))
        return raised.exception

    def commit(self, repository: str, branch: str, parent: str | None, files: dict[str, bytes], message: str) -> str:
        params: dict[str, Any] = dict(
            repositoryName=repository,
            branchName=branch,
            authorName="Dev",
            email="dev@example.com",
            commitMessage=message,
            putFiles=[{"filePath": path, "fileContent": content} for path, content in files.items()],
        )
        if parent:
            params["parentCommitId"] = parent
        return self.codecommit.create_commit(**params)["commitId"]


# --- model.py ----------------------------------------------------------------------------


class ModelTests(unittest.TestCase):
    def test_every_pattern_of_the_served_models_compiles(self) -> None:
        session = botocore.session.get_session()
        count = 0
        for service in ("codepipeline", "codecommit", "eks"):
            service_model = session.get_service_model(service)
            for name in service_model.shape_names:
                pattern = service_model.shape_for(name).metadata.get("pattern")
                if pattern is not None:
                    model.java_pattern(pattern)
                    count += 1
        self.assertGreater(count, 30)

    def test_patterns_follow_java_semantics(self) -> None:
        self.assertIsNone(model.java_pattern("[\\w\\.-]+").fullmatch("répo"), "\\w is ASCII in Java")
        self.assertIsNone(model.java_pattern(".*").fullmatch("a\rb"), "Java's . excludes \\r")
        self.assertIsNotNone(model.java_pattern("[.]+").fullmatch(".."), "a dot in a class stays literal")
        self.assertIsNone(model.java_pattern("^[a-z]+$").fullmatch("abc\n"))
        with self.assertRaises(ValueError):
            model.java_pattern("\\p{Alpha}+")

    def test_serializer_refuses_what_the_shape_does_not_define(self) -> None:
        operation = model.operation_model("codecommit", "GetBranch")
        with self.assertRaisesRegex(model.ShapeMismatch, "no member"):
            model.serialize_output(operation, {"branch": {"branchName": "main", "sha": "x"}})
        operation = model.operation_model("codecommit", "GetCommit")
        with self.assertRaisesRegex(model.ShapeMismatch, "required member commit"):
            model.serialize_output(operation, {})
        operation = model.operation_model("codepipeline", "GetPipelineExecution")
        with self.assertRaisesRegex(model.ShapeMismatch, "not one of"):
            model.serialize_output(operation, {"pipelineExecution": {"status": "Done"}})

    def test_serializer_writes_json_protocol_types(self) -> None:
        import datetime

        operation = model.operation_model("codepipeline", "ListPipelineExecutions")
        moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        body = json.loads(
            model.serialize_output(
                operation,
                {"pipelineExecutionSummaries": [{"pipelineExecutionId": "x", "startTime": moment, "statusSummary": None}]},
            )
        )
        self.assertEqual(body, {"pipelineExecutionSummaries": [{"pipelineExecutionId": "x", "startTime": moment.timestamp()}]})

    def test_errors_must_be_listed_for_the_operation(self) -> None:
        operation = model.operation_model("codecommit", "GetBranch")
        status, body = model.error_answer(operation, model.ApiError("BranchDoesNotExistException", "no"))
        self.assertEqual((status, json.loads(body)["__type"]), (400, "BranchDoesNotExistException"))
        with self.assertRaises(model.ShapeMismatch):
            model.error_answer(operation, model.ApiError("CommitIdDoesNotExistException", "not listed"))

    def test_git_object_ids(self) -> None:
        self.assertEqual(codecommit_module._tree_id({}), "4b825dc642cb6eb9a060e54bf8d69288fbee4904")
        self.assertEqual(
            codecommit_module.FileEntry(b"hello", "NORMAL").blob_id, "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"
        )


# --- CodeCommit --------------------------------------------------------------------------


class CodeCommitTests(EmulatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.codecommit.create_repository(repositoryName="app")

    def test_commits_branches_and_default_branch(self) -> None:
        first = self.codecommit.create_commit(
            repositoryName="app",
            branchName="main",
            authorName="Dev",
            email="dev@example.com",
            commitMessage="Initial commit",
            putFiles=[{"filePath": "README.md", "fileContent": b"hello"}],
        )
        self.assertRegex(first["commitId"], "^[0-9a-f]{40}$")
        self.assertEqual(
            first["filesAdded"],
            [{"absolutePath": "README.md", "blobId": "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0", "fileMode": "NORMAL"}],
        )
        second = self.commit("app", "main", first["commitId"], {"README.md": b"hello\n", "src/main.rs": b"fn main() {}"}, "Add code")

        commit = self.codecommit.get_commit(repositoryName="app", commitId=second)["commit"]
        self.assertEqual(commit["parents"], [first["commitId"]])
        self.assertEqual(commit["message"], "Add code")
        self.assertEqual(commit["author"]["name"], "Dev")
        self.assertEqual(commit["committer"]["email"], "dev@example.com")
        self.assertRegex(commit["author"]["date"], COMMIT_DATE)
        self.assertEqual(
            self.codecommit.get_branch(repositoryName="app", branchName="main")["branch"],
            {"branchName": "main", "commitId": second},
        )
        self.assertEqual(
            self.codecommit.get_repository(repositoryName="app")["repositoryMetadata"]["defaultBranch"], "main"
        )

    def test_parent_commit_rules(self) -> None:
        first = self.commit("app", "main", None, {"a.txt": b"1"}, "one")
        second = self.commit("app", "main", first, {"a.txt": b"2"}, "two")
        self.assertClientError(
            "ParentCommitIdOutdatedException", self.commit, "app", "main", first, {"a.txt": b"3"}, "stale"
        )
        self.assertClientError("ParentCommitIdRequiredException", self.commit, "app", "main", None, {"a.txt": b"3"}, "x")
        self.assertClientError(
            "ParentCommitDoesNotExistException", self.commit, "app", "main", "0" * 40, {"a.txt": b"3"}, "x"
        )
        self.assertClientError("InvalidParentCommitIdException", self.commit, "app", "main", "abc", {"a.txt": b"3"}, "x")
        self.assertClientError("NoChangeException", self.commit, "app", "main", second, {"a.txt": b"2"}, "same")
        self.assertClientError("BranchDoesNotExistException", self.commit, "app", "feature", second, {"b": b"1"}, "x")
        self.assertClientError(
            "RepositoryDoesNotExistException", self.commit, "nope", "main", None, {"b": b"1"}, "x"
        )

    def test_first_commit_with_parent_is_refused(self) -> None:
        self.assertClientError(
            "ParentCommitDoesNotExistException", self.commit, "app", "main", "1" * 40, {"a": b"1"}, "x"
        )

    def test_get_commit_errors(self) -> None:
        self.commit("app", "main", None, {"a.txt": b"1"}, "one")
        self.assertClientError("InvalidCommitIdException", self.codecommit.get_commit, repositoryName="app", commitId="xyz")
        self.assertClientError(
            "CommitIdDoesNotExistException", self.codecommit.get_commit, repositoryName="app", commitId="f" * 40
        )
        self.assertClientError(
            "RepositoryDoesNotExistException", self.codecommit.get_commit, repositoryName="other", commitId="f" * 40
        )

    def test_branch_operations(self) -> None:
        first = self.commit("app", "main", None, {"a.txt": b"1"}, "one")
        self.codecommit.create_branch(repositoryName="app", branchName="feature/x", commitId=first)
        self.assertClientError(
            "BranchNameExistsException", self.codecommit.create_branch, repositoryName="app", branchName="feature/x", commitId=first
        )
        self.assertClientError(
            "CommitDoesNotExistException", self.codecommit.create_branch, repositoryName="app", branchName="y", commitId="e" * 40
        )
        self.assertClientError(
            "InvalidBranchNameException", self.codecommit.create_branch, repositoryName="app", branchName="a..b", commitId=first
        )
        feature = self.commit("app", "feature/x", first, {"b.txt": b"2"}, "feature work")
        self.assertEqual(self.codecommit.list_branches(repositoryName="app")["branches"], ["feature/x", "main"])
        self.assertEqual(
            self.codecommit.get_branch(repositoryName="app", branchName="main")["branch"]["commitId"], first
        )
        self.assertClientError(
            "DefaultBranchCannotBeDeletedException", self.codecommit.delete_branch, repositoryName="app", branchName="main"
        )
        deleted = self.codecommit.delete_branch(repositoryName="app", branchName="feature/x")["deletedBranch"]
        self.assertEqual(deleted, {"branchName": "feature/x", "commitId": feature})
        self.assertClientError(
            "BranchDoesNotExistException", self.codecommit.get_branch, repositoryName="app", branchName="feature/x"
        )
        self.assertClientError("BranchNameRequiredException", self.codecommit.get_branch, repositoryName="app")

    def test_list_branches_pages(self) -> None:
        first = self.commit("app", "main", None, {"a.txt": b"1"}, "one")
        for i in range(104):
            self.codecommit.create_branch(repositoryName="app", branchName=f"b{i:03d}", commitId=first)
        page = self.codecommit.list_branches(repositoryName="app")
        self.assertEqual(len(page["branches"]), 100)
        rest = self.codecommit.list_branches(repositoryName="app", nextToken=page["nextToken"])
        self.assertEqual(rest["branches"], ["b100", "b101", "b102", "b103", "main"])
        self.assertNotIn("nextToken", rest)
        self.assertClientError(
            "InvalidContinuationTokenException", self.codecommit.list_branches, repositoryName="app", nextToken="zzz"
        )

    def test_file_changes(self) -> None:
        first = self.commit("app", "main", None, {"dir/a.txt": b"a", "dir/sub/b.txt": b"b", "run.sh": b"#!/bin/sh"}, "one")
        result = self.codecommit.create_commit(
            repositoryName="app",
            branchName="main",
            parentCommitId=first,
            deleteFiles=[{"filePath": "dir/sub/b.txt"}],
            putFiles=[{"filePath": "moved.txt", "sourceFile": {"filePath": "dir/a.txt", "isMove": True}}],
            setFileModes=[{"filePath": "run.sh", "fileMode": "EXECUTABLE"}],
            keepEmptyFolders=True,
        )
        self.assertEqual([f["absolutePath"] for f in result["filesAdded"]], ["dir/sub/.gitkeep", "moved.txt"])
        self.assertEqual([f["absolutePath"] for f in result["filesDeleted"]], ["dir/a.txt", "dir/sub/b.txt"])
        self.assertEqual(result["filesUpdated"], [{"absolutePath": "run.sh", "blobId": result["filesUpdated"][0]["blobId"], "fileMode": "EXECUTABLE"}])
        self.assertClientError(
            "SamePathRequestException",
            self.codecommit.create_commit,
            repositoryName="app",
            branchName="main",
            parentCommitId=result["commitId"],
            deleteFiles=[{"filePath": "moved.txt"}],
            putFiles=[{"filePath": "moved.txt", "fileContent": b"x"}],
        )
        self.assertClientError(
            "FileDoesNotExistException",
            self.codecommit.create_commit,
            repositoryName="app",
            branchName="main",
            parentCommitId=result["commitId"],
            deleteFiles=[{"filePath": "missing.txt"}],
        )
        self.assertClientError(
            "DirectoryNameConflictsWithFileNameException",
            self.commit, "app", "main", result["commitId"], {"moved.txt/inner": b"x"}, "conflict",
        )
        self.assertClientError(
            "FileEntryRequiredException",
            self.codecommit.create_commit,
            repositoryName="app",
            branchName="main",
            parentCommitId=result["commitId"],
        )


# --- CodePipeline ------------------------------------------------------------------------


def pipeline_definition(role_arn: str, name: str = "app", mode: str = "SUPERSEDED") -> dict[str, Any]:
    return {
        "name": name,
        "roleArn": role_arn,
        "pipelineType": "V2",
        "executionMode": mode,
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "variables": [{"name": "ENVIRONMENT", "defaultValue": "dev"}, {"name": "IMAGE_TAG", "defaultValue": "latest"}],
        "stages": [
            {
                "name": "Source",
                "actions": [
                    {
                        "name": "Source",
                        "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"},
                        "configuration": {"RepositoryName": "app", "BranchName": "main", "PollForSourceChanges": "false"},
                        "outputArtifacts": [{"name": "SourceArtifact"}],
                        "namespace": "SourceVariables",
                    }
                ],
            },
            {
                "name": "Deploy",
                "actions": [
                    {
                        "name": "Deploy",
                        "actionTypeId": {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"},
                        "configuration": {
                            "FunctionName": "deployer",
                            "UserParameters": "#{SourceVariables.CommitId} #{variables.ENVIRONMENT}",
                        },
                        "inputArtifacts": [{"name": "SourceArtifact"}],
                        "namespace": "DeployVariables",
                        "runOrder": 1,
                    },
                    {
                        "name": "Approve",
                        "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                        "configuration": {"CustomData": "deployed #{DeployVariables.url}"},
                        "runOrder": 2,
                    },
                ],
            },
        ],
    }


class PipelineTestCase(EmulatorTestCase):
    """A repository with two commits and a V2 pipeline building it: Source -> Deploy (Lambda, then approval)."""

    def setUp(self) -> None:
        super().setUp()
        iam = client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }
        self.role_arn = iam.create_role(RoleName="pipeline", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        self.codecommit.create_repository(repositoryName="app")
        self.first = self.commit("app", "main", None, {"README.md": b"v1"}, "First version")
        self.second = self.commit("app", "main", self.first, {"README.md": b"v2"}, "Second version")
        self.codepipeline.create_pipeline(pipeline=pipeline_definition(self.role_arn))

    def start(self, commit: str | None = None, **kwargs: Any) -> str:
        if commit is not None:
            kwargs["sourceRevisions"] = [{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": commit}]
        return self.codepipeline.start_pipeline_execution(name="app", **kwargs)["pipelineExecutionId"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.codepipeline.get_pipeline_execution(pipelineName="app", pipelineExecutionId=execution_id)[
            "pipelineExecution"
        ]

    def stage_states(self) -> dict[str, dict[str, Any]]:
        state = self.codepipeline.get_pipeline_state(name="app")
        return {stage["stageName"]: stage for stage in state["stageStates"]}

    def complete(self, execution_id: str, action: str, status: str, **extra: Any) -> tuple[int, Any]:
        body = {"executionId": execution_id, "stage": "Deploy", "action": action, "status": status, **extra}
        return http("POST", "/_emulator/codepipeline/complete-action", body)


class CodePipelineTests(PipelineTestCase):
    def test_start_on_exact_commit(self) -> None:
        execution_id = self.start(self.first)
        execution = self.execution(execution_id)
        self.assertEqual(execution["status"], "InProgress")
        self.assertEqual(execution["pipelineVersion"], 1)
        self.assertEqual(execution["executionMode"], "SUPERSEDED")
        self.assertEqual(execution["executionType"], "STANDARD")
        self.assertEqual(
            execution["trigger"],
            {"triggerType": "StartPipelineExecution", "triggerDetail": "arn:aws:sts::123456789012:user/moto"},
        )
        [artifact] = execution["artifactRevisions"]
        self.assertEqual(artifact["name"], "SourceArtifact")
        self.assertEqual(artifact["revisionId"], self.first)
        self.assertEqual(artifact["revisionSummary"], "First version")
        self.assertIn(f"/repositories/app/commit/{self.first}", artifact["revisionUrl"])
        self.assertEqual(
            execution["variables"],
            [{"name": "ENVIRONMENT", "resolvedValue": "dev"}, {"name": "IMAGE_TAG", "resolvedValue": "latest"}],
        )

        [summary] = self.codepipeline.list_pipeline_executions(pipelineName="app")["pipelineExecutionSummaries"]
        self.assertEqual(summary["pipelineExecutionId"], execution_id)
        self.assertEqual(summary["sourceRevisions"][0]["revisionId"], self.first)
        self.assertEqual(summary["sourceRevisions"][0]["actionName"], "Source")

        stages = self.stage_states()
        self.assertNotIn("inboundTransitionState", stages["Source"])
        self.assertEqual(stages["Source"]["latestExecution"]["status"], "Succeeded")
        [source] = stages["Source"]["actionStates"]
        self.assertEqual(source["latestExecution"]["status"], "Succeeded")
        self.assertEqual(source["latestExecution"]["summary"], "First version")
        self.assertEqual(source["currentRevision"]["revisionId"], self.first)
        self.assertEqual(stages["Deploy"]["latestExecution"], {"pipelineExecutionId": execution_id, "status": "InProgress"})
        self.assertEqual(stages["Deploy"]["inboundTransitionState"], {"enabled": True})
        deploy, approve = stages["Deploy"]["actionStates"]
        self.assertEqual(deploy["latestExecution"]["status"], "InProgress")
        self.assertNotIn("latestExecution", approve)

    def test_without_source_revisions_the_branch_tip_is_built(self) -> None:
        execution = self.execution(self.start(variables=[{"name": "ENVIRONMENT", "value": "prod"}]))
        self.assertEqual(execution["artifactRevisions"][0]["revisionId"], self.second)
        self.assertEqual(execution["variables"][0], {"name": "ENVIRONMENT", "resolvedValue": "prod"})

    def test_missing_branch_fails_the_source_action(self) -> None:
        definition = pipeline_definition(self.role_arn, name="other")
        definition["stages"][0]["actions"][0]["configuration"]["BranchName"] = "missing"
        self.codepipeline.create_pipeline(pipeline=definition)
        execution_id = self.codepipeline.start_pipeline_execution(name="other")["pipelineExecutionId"]
        execution = self.codepipeline.get_pipeline_execution(pipelineName="other", pipelineExecutionId=execution_id)
        self.assertEqual(execution["pipelineExecution"]["status"], "Failed")
        state = self.codepipeline.get_pipeline_state(name="other")["stageStates"][0]["actionStates"][0]
        self.assertEqual(state["latestExecution"]["errorDetails"]["code"], "JobFailed")
        self.assertIn("no branch named missing", state["latestExecution"]["errorDetails"]["message"])

    def test_client_request_token_is_idempotent_per_pipeline(self) -> None:
        first = self.start(self.first, clientRequestToken="deploy-1")
        again = self.start(self.first, clientRequestToken="deploy-1")
        self.assertEqual(first, again)
        self.assertEqual(len(self.codepipeline.list_pipeline_executions(pipelineName="app")["pipelineExecutionSummaries"]), 1)
        self.assertClientError("ConflictException", self.start, self.second, clientRequestToken="deploy-1")

    def test_invalid_source_revisions(self) -> None:
        def start(action: str, kind: str, value: str) -> None:
            self.codepipeline.start_pipeline_execution(
                name="app", sourceRevisions=[{"actionName": action, "revisionType": kind, "revisionValue": value}]
            )

        error = self.assertClientError("ValidationException", start, "Deploy", "COMMIT_ID", self.first)
        self.assertIn("not a Source action", str(error))
        error = self.assertClientError("ValidationException", start, "Source", "IMAGE_DIGEST", "sha256:abc")
        self.assertIn("does not fit", str(error))
        error = self.assertClientError("ValidationException", start, "Source", "COMMIT_ID", "a" * 40)
        self.assertIn("does not exist in repository 'app'", str(error))
        self.assertClientError(
            "ValidationException", self.start, variables=[{"name": "UNDECLARED", "value": "x"}]
        )
        self.assertEqual(self.codepipeline.list_pipeline_executions(pipelineName="app")["pipelineExecutionSummaries"], [])

    def test_unknown_pipeline_and_execution(self) -> None:
        self.assertClientError("PipelineNotFoundException", self.codepipeline.start_pipeline_execution, name="nope")
        self.assertClientError("PipelineNotFoundException", self.codepipeline.get_pipeline_state, name="nope")
        self.assertClientError(
            "PipelineExecutionNotFoundException",
            self.codepipeline.get_pipeline_execution,
            pipelineName="app",
            pipelineExecutionId="00000000-0000-0000-0000-000000000000",
        )

    def test_completing_actions_runs_the_pipeline_to_success(self) -> None:
        execution_id = self.start(self.first)
        status, body = self.complete(execution_id, "Deploy", "Succeeded", summary="deployed", outputVariables={"url": "https://app"})
        self.assertEqual((status, body), (200, {"pipelineExecutionId": execution_id, "status": "InProgress"}))
        approve = self.stage_states()["Deploy"]["actionStates"][1]["latestExecution"]
        self.assertEqual(approve["status"], "InProgress")
        status, body = self.complete(execution_id, "Approve", "Succeeded")
        self.assertEqual(body["status"], "Succeeded")
        self.assertEqual(self.execution(execution_id)["status"], "Succeeded")
        stages = self.stage_states()
        self.assertEqual(stages["Deploy"]["latestExecution"]["status"], "Succeeded")
        self.assertEqual(stages["Deploy"]["actionStates"][0]["latestExecution"]["summary"], "deployed")
        listed = self.codepipeline.list_pipeline_executions(
            pipelineName="app", filter={"succeededInStage": {"stageName": "Deploy"}}
        )["pipelineExecutionSummaries"]
        self.assertEqual([e["pipelineExecutionId"] for e in listed], [execution_id])

    def test_a_failed_action_fails_the_execution(self) -> None:
        execution_id = self.start(self.first)
        status, body = self.complete(execution_id, "Deploy", "Failed", errorMessage="rollout timed out")
        self.assertEqual((status, body["status"]), (200, "Failed"))
        execution = self.execution(execution_id)
        self.assertEqual(execution["status"], "Failed")
        self.assertEqual(execution["statusSummary"], "rollout timed out")
        deploy = self.stage_states()["Deploy"]
        self.assertEqual(deploy["latestExecution"]["status"], "Failed")
        self.assertEqual(
            deploy["actionStates"][0]["latestExecution"]["errorDetails"], {"code": "JobFailed", "message": "rollout timed out"}
        )

    def test_admin_complete_action_errors(self) -> None:
        execution_id = self.start(self.first)
        self.assertEqual(self.complete("00000000-0000-0000-0000-000000000000", "Deploy", "Succeeded")[0], 404)
        self.assertEqual(self.complete(execution_id, "Approve", "Succeeded")[0], 409)
        self.assertEqual(self.complete(execution_id, "Deploy", "Done")[0], 400)
        self.assertEqual(http("POST", "/_emulator/codepipeline/complete-action", {"executionId": execution_id})[0], 400)

    def test_hooks_see_resolved_configuration_and_can_complete(self) -> None:
        seen: dict[str, str] = {}

        def lambda_job(execution: Any, action: Any) -> None:
            seen.update(action.configuration)
            action.external_execution_id = "job-1"
            APP.codepipeline.complete_action(
                execution.pipeline_execution_id, action.stage_name, action.name, "Succeeded",
                output_variables={"url": "https://app.example"},
            )

        def approval(execution: Any, action: Any) -> None:
            action.token = "11111111-2222-3333-4444-555555555555"
            seen["CustomData"] = action.configuration["CustomData"]

        APP.codepipeline.on_action_started[("Invoke", "Lambda")] = lambda_job
        APP.codepipeline.on_action_started[("Approval", "Manual")] = approval
        execution_id = self.start(self.first)
        self.assertEqual(seen["UserParameters"], f"{self.first} dev")
        self.assertEqual(seen["CustomData"], "deployed https://app.example")
        deploy, approve = self.stage_states()["Deploy"]["actionStates"]
        self.assertEqual(deploy["latestExecution"]["externalExecutionId"], "job-1")
        self.assertEqual(approve["latestExecution"]["token"], "11111111-2222-3333-4444-555555555555")
        self.assertEqual(self.execution(execution_id)["status"], "InProgress")

    def test_unresolvable_variable_fails_the_action(self) -> None:
        definition = pipeline_definition(self.role_arn, name="broken")
        definition["stages"][1]["actions"][0]["configuration"]["UserParameters"] = "#{Nowhere.value}"
        self.codepipeline.create_pipeline(pipeline=definition)
        execution_id = self.codepipeline.start_pipeline_execution(name="broken")["pipelineExecutionId"]
        execution = self.codepipeline.get_pipeline_execution(pipelineName="broken", pipelineExecutionId=execution_id)
        self.assertEqual(execution["pipelineExecution"]["status"], "Failed")
        self.assertIn("#{Nowhere.value}", execution["pipelineExecution"]["statusSummary"])

    def test_stop_abandon_and_stop_wait(self) -> None:
        abandoned = self.start(self.first)
        self.codepipeline.stop_pipeline_execution(pipelineName="app", pipelineExecutionId=abandoned, abandon=True, reason="not needed")
        self.assertEqual(self.execution(abandoned)["status"], "Stopped")
        self.assertEqual(self.stage_states()["Deploy"]["actionStates"][0]["latestExecution"]["status"], "Abandoned")
        self.assertClientError(
            "PipelineExecutionNotStoppableException",
            self.codepipeline.stop_pipeline_execution, pipelineName="app", pipelineExecutionId=abandoned,
        )

        waiting = self.start(self.second)
        self.codepipeline.stop_pipeline_execution(pipelineName="app", pipelineExecutionId=waiting)
        self.assertEqual(self.execution(waiting)["status"], "Stopping")
        self.assertClientError(
            "DuplicatedStopRequestException",
            self.codepipeline.stop_pipeline_execution, pipelineName="app", pipelineExecutionId=waiting,
        )
        self.assertEqual(self.complete(waiting, "Deploy", "Succeeded")[1]["status"], "Stopped")
        summaries = self.codepipeline.list_pipeline_executions(pipelineName="app")["pipelineExecutionSummaries"]
        self.assertEqual([s["status"] for s in summaries], ["Stopped", "Stopped"])
        self.assertEqual(summaries[1]["stopTrigger"], {"reason": "not needed"})

    def test_executions_run_concurrently_and_list_newest_first(self) -> None:
        ids = [self.start(commit) for commit in (self.first, self.second, self.first)]
        page = self.codepipeline.list_pipeline_executions(pipelineName="app", maxResults=2)
        self.assertEqual([s["pipelineExecutionId"] for s in page["pipelineExecutionSummaries"]], ids[:0:-1])
        rest = self.codepipeline.list_pipeline_executions(pipelineName="app", maxResults=2, nextToken=page["nextToken"])
        self.assertEqual([s["pipelineExecutionId"] for s in rest["pipelineExecutionSummaries"]], [ids[0]])
        self.assertNotIn("nextToken", rest)
        self.assertClientError(
            "InvalidNextTokenException", self.codepipeline.list_pipeline_executions, pipelineName="app", nextToken="bogus"
        )
        self.assertEqual(self.complete(ids[0], "Deploy", "Failed")[1]["status"], "Failed")
        self.assertEqual(self.execution(ids[1])["status"], "InProgress")

    def test_a_running_execution_keeps_its_pipeline_version(self) -> None:
        execution_id = self.start(self.first)
        definition = pipeline_definition(self.role_arn)
        definition["stages"][1]["actions"] = definition["stages"][1]["actions"][:1]
        self.codepipeline.update_pipeline(pipeline=definition)
        self.complete(execution_id, "Deploy", "Succeeded", outputVariables={"url": "https://app"})
        execution = self.execution(execution_id)
        self.assertEqual((execution["pipelineVersion"], execution["status"]), (1, "InProgress"))
        self.assertEqual(self.codepipeline.get_pipeline_state(name="app")["pipelineVersion"], 2)


# --- raw protocol: what boto3 would refuse to send ------------------------------------------


class RawProtocolTests(EmulatorTestCase):
    def test_missing_required_member(self) -> None:
        status, body = aws_json("CodePipeline_20150709.StartPipelineExecution", {})
        self.assertEqual(status, 400)
        self.assertEqual(
            body,
            {
                "__type": "ValidationException",
                "message": "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
                "Member must not be null",
            },
        )

    def test_over_long_and_pattern_violating_token(self) -> None:
        status, body = aws_json(
            "CodePipeline_20150709.StartPipelineExecution", {"name": "app", "clientRequestToken": "x" * 129}
        )
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertIn("Member must have length less than or equal to 128", body["message"])
        status, body = aws_json(
            "CodePipeline_20150709.StartPipelineExecution", {"name": "bad name", "clientRequestToken": "bad token!"}
        )
        self.assertEqual(body["__type"], "ValidationException")
        self.assertTrue(body["message"].startswith("2 validation errors detected: "), body["message"])
        self.assertIn(
            "Value 'bad token!' at 'clientRequestToken' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-]+$",
            body["message"],
        )

    def test_nested_members_enums_and_ranges(self) -> None:
        status, body = aws_json(
            "CodePipeline_20150709.StartPipelineExecution",
            {"name": "app", "sourceRevisions": [{"actionName": "Source", "revisionType": "BRANCH"}]},
        )
        self.assertEqual(body["__type"], "ValidationException")
        self.assertIn("Value null at 'sourceRevisions.1.member.revisionValue'", body["message"])
        self.assertIn("Member must satisfy enum value set: [COMMIT_ID, IMAGE_DIGEST, S3_OBJECT_VERSION_ID, S3_OBJECT_KEY]", body["message"])
        status, body = aws_json("CodePipeline_20150709.ListPipelineExecutions", {"pipelineName": "app", "maxResults": 101})
        self.assertIn("Member must have value less than or equal to 100", body["message"])

    def test_unknown_members_wrong_types_and_bad_json(self) -> None:
        status, body = aws_json("CodePipeline_20150709.GetPipelineState", {"name": "app", "verbose": True})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))
        status, body = aws_json("CodePipeline_20150709.ListPipelineExecutions", {"pipelineName": "app", "maxResults": "5"})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))
        status, body = aws_json("CodeCommit_20150413.GetBranch", b"{not json")
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))
        status, body = aws_json("CodeCommit_20150413.CreateCommit", {"repositoryName": "app", "branchName": "main", "putFiles": [{"filePath": "a", "fileContent": "***"}]})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))

    def test_service_specific_errors_for_top_level_members(self) -> None:
        self.assertEqual(aws_json("CodeCommit_20150413.GetCommit", {"commitId": "a" * 40})[1]["__type"], "RepositoryNameRequiredException")
        self.assertEqual(aws_json("CodeCommit_20150413.GetCommit", {"repositoryName": "app"})[1]["__type"], "CommitIdRequiredException")
        self.assertEqual(
            aws_json("CodeCommit_20150413.GetCommit", {"repositoryName": "bad name", "commitId": "a" * 40})[1]["__type"],
            "InvalidRepositoryNameException",
        )
        self.assertEqual(aws_json("CodeCommit_20150413.GetBranch", {"branchName": "main"})[1]["__type"], "RepositoryNameRequiredException")

    def test_unknown_operation(self) -> None:
        status, body = aws_json("CodePipeline_20150709.LaunchRocket", {})
        self.assertEqual((status, body["__type"]), (400, "UnknownOperationException"))
        # in the model, but neither moto nor aws_ext implement it: a clear, non-retried error
        error = self.assertClientError("UnknownOperationException", self.codecommit.get_file, repositoryName="app", filePath="a")
        self.assertIn("GetFile is not emulated", str(error))

    def test_requests_for_moto_are_validated_too(self) -> None:
        status, body = aws_json("CodeCommit_20150413.CreateRepository", {"repositoryName": "app", "colour": "blue"})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))
        status, body = aws_json("CodeCommit_20150413.CreateRepository", {"repositoryName": "app"})
        self.assertEqual((status, body["repositoryMetadata"]["repositoryName"]), (200, "app"))


class RoundTripTests(PipelineTestCase):
    """Every operation we implement answered at least once through boto3's parser."""

    def test_every_implemented_operation_round_trips(self) -> None:
        CHECKED_OPERATIONS.clear()
        branch_commit = self.codecommit.get_branch(repositoryName="app", branchName="main")["branch"]["commitId"]
        self.codecommit.get_commit(repositoryName="app", commitId=branch_commit)
        self.codecommit.create_branch(repositoryName="app", branchName="tmp", commitId=branch_commit)
        self.codecommit.list_branches(repositoryName="app")
        self.codecommit.delete_branch(repositoryName="app", branchName="tmp")
        self.commit("app", "main", branch_commit, {"x": b"y"}, "")
        execution_id = self.start(self.first)
        self.execution(execution_id)
        self.codepipeline.list_pipeline_executions(pipelineName="app")
        self.codepipeline.get_pipeline_state(name="app")
        self.codepipeline.stop_pipeline_execution(pipelineName="app", pipelineExecutionId=execution_id, abandon=True)
        self.codepipeline.get_pipeline_state(name="app")
        APP.approvals.install()
        approval = self.start(self.first)
        self.complete(approval, "Deploy", "Succeeded", outputVariables={"url": "https://app"})
        token = self.stage_states()["Deploy"]["actionStates"][1]["latestExecution"]["token"]
        self.codepipeline.put_approval_result(
            pipelineName="app", stageName="Deploy", actionName="Approve", token=token,
            result={"summary": "ok", "status": "Approved"},
        )
        self.codepipeline.list_action_executions(pipelineName="app", filter={"pipelineExecutionId": approval})
        implemented = {(service, op) for (service, op) in APP._handlers}
        self.assertEqual(implemented - CHECKED_OPERATIONS, set())


# --- EKS and the admin API ---------------------------------------------------------------


class EksTests(EmulatorTestCase):
    def test_clusters_point_at_the_local_cluster(self) -> None:
        eks = client("eks")
        created = eks.create_cluster(
            name="demo", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []}
        )["cluster"]
        expected_ca = base64.b64encode(FakeKube.ca_pem).decode()
        self.assertEqual(created["endpoint"], FakeKube.server_url)
        self.assertEqual(created["certificateAuthority"], {"data": expected_ca})
        described = eks.describe_cluster(name="demo")["cluster"]
        self.assertEqual((described["endpoint"], described["certificateAuthority"]["data"]), (FakeKube.server_url, expected_ca))
        self.assertIn("demo", known_cluster_names())
        with self.assertRaises(ClientError):
            eks.create_cluster(name="demo", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={})


class AdminTests(EmulatorTestCase):
    def test_health_and_routing(self) -> None:
        self.assertEqual(http("GET", "/_emulator/health"), (200, {"status": "ok"}))
        self.assertEqual(http("GET", "/_emulator/nope")[0], 404)
        self.assertEqual(http("GET", "/_emulator/reset")[0], 405)
        self.assertEqual(http("POST", "/_emulator/kubernetes/faults", b"[1]")[0], 400)

    def test_reset_empties_moto_and_the_extensions(self) -> None:
        self.codecommit.create_repository(repositoryName="gone")
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)
        self.assertClientError("RepositoryDoesNotExistException", self.codecommit.get_repository, repositoryName="gone")
        self.assertEqual(KUBE.calls, [("reset", (), {})])

    def test_kubernetes_wrappers(self) -> None:
        self.assertEqual(
            http("GET", "/_emulator/kubernetes/requests"),
            (200, {"requests": [{"method": "GET", "path": "/version", "status": 200}]}),
        )
        self.assertEqual(http("DELETE", "/_emulator/kubernetes/requests")[0], 200)
        faults = {"method": "PATCH", "pathRegex": "/apis/apps/v1/.*", "status": 409, "count": 2}
        self.assertEqual(http("POST", "/_emulator/kubernetes/faults", faults)[0], 200)
        race = {"method": "PATCH", "pathRegex": "/deployments/web$", "race": True}
        self.assertEqual(http("POST", "/_emulator/kubernetes/faults", race)[0], 200)
        reset = {"method": "GET", "pathRegex": "/pods$", "reset": "before"}
        self.assertEqual(http("POST", "/_emulator/kubernetes/faults", reset)[0], 200)
        self.assertEqual(http("POST", "/_emulator/kubernetes/faults", {"method": "GET", "pathRegex": 1})[0], 400)
        self.assertEqual(http("GET", "/_emulator/kubernetes/faults")[0], 200)
        self.assertEqual(http("POST", "/_emulator/kubernetes/drop-watches", {"events": 2})[0], 200)
        self.assertEqual(http("POST", "/_emulator/kubernetes/drop-watches", {"events": "2"})[0], 400)
        scoped = {"events": 1, "count": 2, "pathRegex": "/namespaces/shop/"}
        self.assertEqual(http("POST", "/_emulator/kubernetes/drop-watches", scoped)[0], 200)
        no_fault = {"race": False, "reset": None, "status": None}
        self.assertEqual(
            KUBE.calls,
            [
                ("request_log", (), {}),
                ("clear_request_log", (), {}),
                ("inject_faults", (), {**no_fault, "method": "PATCH", "path_regex": "/apis/apps/v1/.*", "status": 409, "count": 2}),
                ("inject_faults", (), {**no_fault, "method": "PATCH", "path_regex": "/deployments/web$", "race": True}),
                ("inject_faults", (), {**no_fault, "method": "GET", "path_regex": "/pods$", "reset": "before"}),
                ("faults", (), {}),
                ("drop_watches_after", (), {"events": 2}),
                ("drop_watches_after", (), {"events": 1, "count": 2, "path_regex": "/namespaces/shop/"}),
            ],
        )

    def test_without_kubernetes_the_wrappers_refuse(self) -> None:
        response = Client(make_app(None)).post("/_emulator/kubernetes/drop-watches", json={"events": 1})
        self.assertEqual(response.status_code, 409)


if __name__ == "__main__":
    unittest.main()
