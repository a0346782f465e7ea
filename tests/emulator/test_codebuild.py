"""Tests of the emulated CodeBuild builds (aws_ext/codebuild.py) through boto3 and raw HTTP.

One in-process server (random port on 127.0.0.1, no Kubernetes emulator);
every test starts from POST /_emulator/reset.  Every boto3 response of
CodeBuild is also checked against the output shape's required members, so
each test doubles as a round-trip check through botocore's parser.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import unittest
import urllib.parse
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import codebuild as codebuild_module  # noqa: E402
from aws_ext import make_app, model  # noqa: E402

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/codebuild-app"
REPOSITORY_URL = "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/app"
# "Sep 1, 2017 4:12:29 PM": unpadded day and hour, as CodeBuild and the Rust crate write them
EVENT_TIME = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [1-9]\d?, \d{4} (1[0-2]|[1-9]):[0-5]\d:[0-5]\d (AM|PM)$")
PHASES_AFTER_BUILD_FAILURE = [
    ("SUBMITTED", "SUCCEEDED"),
    ("QUEUED", "SUCCEEDED"),
    ("PROVISIONING", "SUCCEEDED"),
    ("DOWNLOAD_SOURCE", "SUCCEEDED"),
    ("INSTALL", "SUCCEEDED"),
    ("PRE_BUILD", "SUCCEEDED"),
    ("BUILD", "FAILED"),
    ("POST_BUILD", "SUCCEEDED"),
    ("UPLOAD_ARTIFACTS", "SUCCEEDED"),
    ("FINALIZING", "SUCCEEDED"),
    ("COMPLETED", None),
]
CARGO_FAILURE = "COMMAND_EXECUTION_ERROR: Error while executing command: cargo test. Reason: exit status 101"

APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""
CHECKED_OPERATIONS: set[str] = set()


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)
        CHECKED_OPERATIONS.add(model.name)


def client(service: str, **credentials: str) -> Any:
    return model_checks.client(
        ENDPOINT,
        service,
        _after_call,
        access_key=credentials.get("aws_access_key_id", "testing"),
        secret=credentials.get("aws_secret_access_key", "testing"),
        session_token=credentials.get("aws_session_token"),
    )


def http(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, headers)


def codebuild_json(operation: str, body: Any) -> tuple[int, Any]:
    return model_checks.raw_json_call(ENDPOINT, "codebuild", f"CodeBuild_20161006.{operation}", body)


def complete(build_id: str, status: str, **fields: Any) -> tuple[int, Any]:
    return http("POST", "/_emulator/codebuild/complete", {"buildId": build_id, "status": status, **fields})


def event(build_id: str, **query: str) -> tuple[int, Any]:
    return http("GET", "/_emulator/codebuild/event?" + urllib.parse.urlencode({"buildId": build_id, **query}))


def phases(build: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(p["phaseType"], p.get("phaseStatus")) for p in build["phases"]]


class CodeBuildTestCase(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = http("POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        self.codebuild = client("codebuild")

    def create_project(self, name: str = "app", **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "name": name,
            "source": {"type": "CODECOMMIT", "location": REPOSITORY_URL, "buildspec": "buildspec.yml"},
            "artifacts": {"type": "NO_ARTIFACTS"},
            "environment": {
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
                "privilegedMode": True,
                "environmentVariables": [
                    {"name": "IMAGE_REPO_NAME", "value": "shop"},
                    {"name": "SOURCE_BRANCH", "value": "main", "type": "PLAINTEXT"},
                    {"name": "DOCKER_HUB_TOKEN", "value": "shop/docker-hub:token", "type": "SECRETS_MANAGER"},
                ],
            },
            "serviceRole": ROLE,
        }
        params.update(extra)
        return self.codebuild.create_project(**params)["project"]

    def start(self, project: str = "app", **params: Any) -> dict[str, Any]:
        return self.codebuild.start_build(projectName=project, **params)["build"]

    def get(self, build_id: str) -> dict[str, Any]:
        builds = self.codebuild.batch_get_builds(ids=[build_id])["builds"]
        self.assertEqual(len(builds), 1)
        return builds[0]

    def assertClientError(self, code: str, call: Any, *args: Any, **kwargs: Any) -> ClientError:
        with self.assertRaises(ClientError) as raised:
            call(*args, **kwargs)
        error = raised.exception.response["Error"]
        self.assertEqual(error["Code"], code, error.get("Message"))
        return raised.exception


# --- the model ---------------------------------------------------------------------------


class ModelTests(unittest.TestCase):
    # Tag keys and values use Java's \p{L}\p{Z}\p{N}, which model.java_pattern refuses
    # rather than guessing; CreateProject with tags answers InternalFailure until it learns them.
    KNOWN_UNSUPPORTED = {"KeyInput", "ValueInput"}

    def test_every_other_codebuild_pattern_compiles(self) -> None:
        service_model = model.service_model("codebuild")
        unsupported = set()
        for name in service_model.shape_names:
            pattern = service_model.shape_for(name).metadata.get("pattern")
            if pattern is None:
                continue
            try:
                model.java_pattern(pattern)
            except ValueError:
                unsupported.add(name)
        self.assertEqual(unsupported, self.KNOWN_UNSUPPORTED)

    def test_event_time_format(self) -> None:
        moment = datetime.datetime(2017, 9, 1, 16, 12, 29, tzinfo=datetime.timezone.utc)
        self.assertEqual(codebuild_module.event_time(moment), "Sep 1, 2017 4:12:29 PM")
        self.assertEqual(codebuild_module.event_time(moment.replace(hour=0, minute=5)), "Sep 1, 2017 12:05:29 AM")
        self.assertEqual(codebuild_module.event_time(moment.replace(hour=12, day=23, month=11)), "Nov 23, 2017 12:12:29 PM")

    def test_initiator_names(self) -> None:
        self.assertEqual(codebuild_module.initiator_from_arn(f"arn:aws:iam::{ACCOUNT}:user/dev/alice"), "alice")
        self.assertEqual(
            codebuild_module.initiator_from_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci-session"),
            "deployer/ci-session",
        )
        self.assertEqual(codebuild_module.initiator_from_arn(f"arn:aws:iam::{ACCOUNT}:root"), "root")


# --- StartBuild, BatchGetBuilds, listing -------------------------------------------------


class StartBuildTests(CodeBuildTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.create_project()

    def test_a_started_build(self) -> None:
        commit = "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"
        build = self.start(sourceVersion=commit.upper())
        self.assertRegex(build["id"], r"^app:[0-9a-f-]{36}$")
        build_uuid = build["id"].split(":", 1)[1]
        self.assertEqual(build["arn"], f"arn:aws:codebuild:us-east-1:{ACCOUNT}:build/{build['id']}")
        self.assertEqual(build["buildNumber"], 1)
        self.assertEqual((build["buildStatus"], build["currentPhase"], build["buildComplete"]), ("IN_PROGRESS", "QUEUED", False))
        self.assertEqual(phases(build), [("SUBMITTED", "SUCCEEDED"), ("QUEUED", None)])
        self.assertNotIn("endTime", build)
        self.assertEqual(build["initiator"], "moto")  # moto's caller for unknown access keys: user/moto
        self.assertEqual(build["sourceVersion"], commit.upper())
        self.assertEqual(build["resolvedSourceVersion"], commit)
        self.assertEqual(build["projectName"], "app")
        self.assertEqual(build["source"], {"type": "CODECOMMIT", "location": REPOSITORY_URL, "buildspec": "buildspec.yml"})
        self.assertEqual((build["timeoutInMinutes"], build["queuedTimeoutInMinutes"]), (60, 480))
        self.assertEqual(build["serviceRole"], ROLE)
        self.assertEqual(build["logs"]["groupName"], "/aws/codebuild/app")
        self.assertEqual(build["logs"]["streamName"], build_uuid)
        self.assertEqual(
            build["logs"]["deepLink"],
            f"https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/app;stream={build_uuid}",
        )
        self.assertEqual(self.get(build["id"]), build)

    def test_build_numbers_and_newest_first(self) -> None:
        first, second = self.start(), self.start()
        self.assertEqual((first["buildNumber"], second["buildNumber"]), (1, 2))
        self.assertEqual(self.codebuild.list_builds_for_project(projectName="app")["ids"], [second["id"], first["id"]])
        self.assertEqual(
            self.codebuild.list_builds_for_project(projectName="app", sortOrder="ASCENDING")["ids"],
            [first["id"], second["id"]],
        )
        self.assertEqual(
            self.codebuild.list_builds_for_project(projectName="app", sortOrder="DESCENDING")["ids"],
            [second["id"], first["id"]],
        )

    def test_pages_of_100(self) -> None:
        ids = [self.start()["id"] for _ in range(103)]
        page = self.codebuild.list_builds_for_project(projectName="app")
        self.assertEqual(page["ids"], ids[::-1][:100])
        rest = self.codebuild.list_builds_for_project(projectName="app", nextToken=page["nextToken"])
        self.assertEqual(rest["ids"], ids[2::-1])
        self.assertNotIn("nextToken", rest)

        ascending = self.codebuild.list_builds_for_project(projectName="app", sortOrder="ASCENDING")
        self.assertEqual(ascending["ids"], ids[:100])
        rest = self.codebuild.list_builds_for_project(projectName="app", nextToken=ascending["nextToken"])
        self.assertEqual(rest["ids"], ids[100:], "the token keeps the order")

        # as the real service: a paginator repeating sortOrder fails on the second page
        error = self.assertClientError(
            "InvalidInputException",
            self.codebuild.list_builds_for_project,
            projectName="app",
            sortOrder="DESCENDING",
            nextToken=page["nextToken"],
        )
        self.assertEqual(error.response["Error"]["Message"], "Sort order can't be specified when passing a nextToken")
        self.assertClientError(
            "InvalidInputException", self.codebuild.list_builds_for_project, projectName="app", nextToken="garbage"
        )

        everything = self.codebuild.list_builds()
        self.assertEqual(everything["ids"], ids[::-1][:100])
        self.assertEqual(self.codebuild.list_builds(nextToken=everything["nextToken"])["ids"], ids[2::-1])
        self.assertClientError(
            "InvalidInputException", self.codebuild.list_builds_for_project, projectName="app", nextToken=everything["nextToken"]
        )

    def test_list_builds_spans_projects(self) -> None:
        self.create_project("other")
        first, other, second = self.start(), self.start("other"), self.start()
        self.assertEqual(self.codebuild.list_builds()["ids"], [second["id"], other["id"], first["id"]])
        self.assertEqual(self.codebuild.list_builds(sortOrder="ASCENDING")["ids"], [first["id"], other["id"], second["id"]])
        self.assertEqual(other["buildNumber"], 1, "numbers count per project")
        self.assertEqual(self.codebuild.list_builds_for_project(projectName="other")["ids"], [other["id"]])

    def test_overrides(self) -> None:
        build = self.start(
            environmentVariablesOverride=[
                {"name": "SOURCE_BRANCH", "value": "feature/x"},
                {"name": "SOURCE_COMMIT", "value": "abc", "type": "PLAINTEXT"},
                {"name": "DB_PASSWORD", "value": "/shop/db", "type": "PARAMETER_STORE"},
            ],
            imageOverride="aws/codebuild/amazonlinux-aarch64-standard:3.0",
            environmentTypeOverride="ARM_CONTAINER",
            timeoutInMinutesOverride=15,
            queuedTimeoutInMinutesOverride=30,
            sourceTypeOverride="S3",
            sourceLocationOverride="bucket/source.zip",
            buildspecOverride="ci/buildspec.yml",
            sourceVersion="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
        )
        environment = build["environment"]
        self.assertEqual(
            environment["environmentVariables"],
            [
                {"name": "IMAGE_REPO_NAME", "value": "shop", "type": "PLAINTEXT"},
                {"name": "SOURCE_BRANCH", "value": "feature/x", "type": "PLAINTEXT"},
                {"name": "DOCKER_HUB_TOKEN", "value": "shop/docker-hub:token", "type": "SECRETS_MANAGER"},
                {"name": "SOURCE_COMMIT", "value": "abc", "type": "PLAINTEXT"},
                {"name": "DB_PASSWORD", "value": "/shop/db", "type": "PARAMETER_STORE"},
            ],
        )
        self.assertEqual(
            (environment["image"], environment["type"], environment["computeType"], environment["privilegedMode"]),
            ("aws/codebuild/amazonlinux-aarch64-standard:3.0", "ARM_CONTAINER", "BUILD_GENERAL1_SMALL", True),
        )
        self.assertEqual((build["timeoutInMinutes"], build["queuedTimeoutInMinutes"]), (15, 30))
        self.assertEqual(build["source"], {"type": "S3", "location": "bucket/source.zip", "buildspec": "ci/buildspec.yml"})
        self.assertNotIn("resolvedSourceVersion", build, "an S3 object version is no commit")
        # the project itself is unchanged
        project = self.codebuild.batch_get_projects(names=["app"])["projects"][0]
        self.assertEqual(len(project["environment"]["environmentVariables"]), 3)

    def test_idempotency_token(self) -> None:
        first = self.start(idempotencyToken="deploy-42", sourceVersion="main")
        again = self.start(idempotencyToken="deploy-42", sourceVersion="main")
        self.assertEqual(again["id"], first["id"])
        self.assertEqual(len(self.codebuild.list_builds_for_project(projectName="app")["ids"]), 1)
        # the project's ARN names the same project
        self.assertEqual(self.start(self.codebuild.batch_get_projects(names=["app"])["projects"][0]["arn"],
                                    idempotencyToken="deploy-42", sourceVersion="main")["id"], first["id"])
        self.assertClientError("InvalidInputException", self.start, idempotencyToken="deploy-42", sourceVersion="other")
        self.create_project("other")
        self.assertClientError("InvalidInputException", self.start, "other", idempotencyToken="deploy-42", sourceVersion="main")
        # the token is valid for five minutes
        later = codebuild_module._now() + datetime.timedelta(minutes=5, seconds=1)
        with mock.patch.object(codebuild_module, "_now", return_value=later):
            fresh = self.start(idempotencyToken="deploy-42", sourceVersion="other")
        self.assertNotEqual(fresh["id"], first["id"])
        self.assertEqual(fresh["buildNumber"], 2)

    def test_batch_get_builds(self) -> None:
        first, second = self.start(), self.start()
        missing = "app:00000000-0000-0000-0000-000000000000"
        answer = self.codebuild.batch_get_builds(ids=[second["id"], missing, first["arn"]])
        self.assertEqual([b["id"] for b in answer["builds"]], [second["id"], first["id"]])
        self.assertEqual(answer["buildsNotFound"], [missing])
        self.assertClientError("InvalidInputException", self.codebuild.batch_get_builds, ids=["no-colon"])

    def test_unknown_project(self) -> None:
        error = self.assertClientError("ResourceNotFoundException", self.start, "nope")
        self.assertEqual(
            error.response["Error"]["Message"],
            f"Project cannot be found: arn:aws:codebuild:us-east-1:{ACCOUNT}:project/nope",
        )
        error = self.assertClientError("ResourceNotFoundException", self.codebuild.list_builds_for_project, projectName="nope")
        self.assertEqual(
            error.response["Error"]["Message"],
            f"The provided project arn:aws:codebuild:us-east-1:{ACCOUNT}:project/nope does not exist",
        )

    def test_initiator_of_an_assumed_role(self) -> None:
        iam = client("iam")
        # A trust policy that lets this account assume it: the emulated STS refuses otherwise.
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
        iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=json.dumps(trust))
        credentials = client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/deployer", RoleSessionName="ci-session"
        )["Credentials"]
        assumed = client(
            "codebuild",
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self.assertEqual(assumed.start_build(projectName="app")["build"]["initiator"], "deployer/ci-session")

    def test_codecommit_branches_resolve_to_their_tip(self) -> None:
        codecommit = client("codecommit")
        codecommit.create_repository(repositoryName="app")
        tip = codecommit.create_commit(
            repositoryName="app", branchName="main", putFiles=[{"filePath": "README.md", "fileContent": b"hi"}]
        )["commitId"]
        self.assertEqual(self.start()["resolvedSourceVersion"], tip, "no version: the default branch")
        self.assertEqual(self.start(sourceVersion="refs/heads/main")["resolvedSourceVersion"], tip)
        self.assertEqual(self.start(sourceVersion="main")["resolvedSourceVersion"], tip)
        self.assertNotIn("resolvedSourceVersion", self.start(sourceVersion="missing-branch"))

    def test_logs_config_and_artifacts(self) -> None:
        self.create_project(
            "configured",
            artifacts={"type": "S3", "location": "artifact-bucket", "path": "builds", "name": "out.zip", "namespaceType": "BUILD_ID"},
            logsConfig={"cloudWatchLogs": {"status": "ENABLED", "groupName": "ci", "streamName": "app"}},
            timeoutInMinutes=20,
        )
        build = self.start("configured")
        build_uuid = build["id"].split(":", 1)[1]
        self.assertEqual((build["logs"]["groupName"], build["logs"]["streamName"]), ("ci", f"app/{build_uuid}"))
        self.assertEqual(build["artifacts"]["location"], f"arn:aws:s3:::artifact-bucket/builds/{build_uuid}/out.zip")
        self.assertEqual(build["timeoutInMinutes"], 20)

    def test_builds_outlive_their_project(self) -> None:
        old = self.start()
        self.codebuild.delete_project(name="app")
        self.assertEqual(self.get(old["id"])["id"], old["id"])
        self.assertClientError("ResourceNotFoundException", self.codebuild.list_builds_for_project, projectName="app")
        self.create_project()
        new = self.start()
        self.assertEqual(new["buildNumber"], 1, "a re-created project counts afresh")
        self.assertEqual(self.codebuild.list_builds_for_project(projectName="app")["ids"], [new["id"]])
        self.assertEqual(self.codebuild.list_builds()["ids"], [new["id"], old["id"]])

    def test_reset_forgets_builds(self) -> None:
        build = self.start()
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)
        self.assertEqual(self.codebuild.batch_get_builds(ids=[build["id"]])["buildsNotFound"], [build["id"]])
        self.assertEqual(self.codebuild.list_builds()["ids"], [])


# --- StopBuild, BatchDeleteBuilds and the admin API ---------------------------------------


class LifecycleTests(CodeBuildTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.create_project()
        self.build = self.start()

    def test_stop_a_queued_build(self) -> None:
        stopped = self.codebuild.stop_build(id=self.build["id"])["build"]
        self.assertEqual((stopped["buildStatus"], stopped["currentPhase"], stopped["buildComplete"]), ("STOPPED", "COMPLETED", True))
        self.assertEqual(phases(stopped), [("SUBMITTED", "SUCCEEDED"), ("QUEUED", "STOPPED"), ("COMPLETED", None)])
        self.assertEqual(stopped["endTime"], stopped["phases"][-1]["startTime"])
        self.assertTrue(all("endTime" in p and "durationInSeconds" in p for p in stopped["phases"][:-1]))
        self.assertEqual(self.get(self.build["id"]), stopped)
        self.assertEqual(self.codebuild.stop_build(id=self.build["id"])["build"], stopped, "a completed build is returned unchanged")

    def test_stop_a_running_build_where_it_is(self) -> None:
        status, advanced = http("POST", "/_emulator/codebuild/advance", {"buildId": self.build["id"], "phase": "BUILD"})
        self.assertEqual(status, 200)
        self.assertEqual(advanced["currentPhase"], "BUILD")
        self.assertEqual(
            [p["phaseType"] for p in advanced["phases"]],
            ["SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD"],
        )
        self.assertEqual(advanced["phases"][2]["contexts"], [{"statusCode": "", "message": ""}])
        stopped = self.codebuild.stop_build(id=self.build["arn"])["build"]
        self.assertEqual(phases(stopped)[-3:], [("PRE_BUILD", "SUCCEEDED"), ("BUILD", "STOPPED"), ("COMPLETED", None)])
        self.assertNotIn("contexts", stopped["phases"][-2])

    def test_stop_errors(self) -> None:
        self.assertClientError("ResourceNotFoundException", self.codebuild.stop_build, id="app:00000000-0000-0000-0000-000000000000")
        self.assertClientError("InvalidInputException", self.codebuild.stop_build, id="nonsense")

    def test_complete_failed(self) -> None:
        status, answer = complete(self.build["id"], "FAILED", failedPhase="BUILD", context=CARGO_FAILURE, durationSeconds=192)
        self.assertEqual(status, 200)
        build = self.get(self.build["id"])
        self.assertEqual(answer["buildStatus"], "FAILED")
        self.assertEqual((build["buildStatus"], build["currentPhase"], build["buildComplete"]), ("FAILED", "COMPLETED", True))
        self.assertEqual(phases(build), PHASES_AFTER_BUILD_FAILURE)
        self.assertEqual((build["endTime"] - build["startTime"]).total_seconds(), 192)
        failed = build["phases"][6]
        self.assertEqual(
            failed["contexts"],
            [{"statusCode": "COMMAND_EXECUTION_ERROR", "message": "Error while executing command: cargo test. Reason: exit status 101"}],
        )
        for previous, phase in zip(build["phases"], build["phases"][1:]):
            self.assertEqual(phase["startTime"], previous["endTime"], phase["phaseType"])
        self.assertEqual(sum(p.get("durationInSeconds", 0) for p in build["phases"]), 192)
        self.assertGreater(failed["durationInSeconds"], 100, "BUILD takes most of the time")
        self.assertNotIn("contexts", build["phases"][1], "QUEUED has no contexts")
        self.assertEqual(build["phases"][-2]["contexts"], [{"statusCode": "", "message": ""}])

        status, again = complete(self.build["id"], "SUCCEEDED")
        self.assertEqual(status, 409, again)

    def test_complete_succeeded(self) -> None:
        status, build = complete(self.build["id"], "SUCCEEDED", durationSeconds=60)
        self.assertEqual(status, 200)
        self.assertEqual([s for _, s in phases(build)], ["SUCCEEDED"] * 10 + [None])
        self.assertEqual(len(build["phases"]), 11)

    def test_failures_before_build_skip_to_finalizing(self) -> None:
        status, build = complete(self.build["id"], "FAILED", failedPhase="PRE_BUILD",
                                 context="COMMAND_EXECUTION_ERROR: Error while executing command: make login. Reason: exit status 2")
        self.assertEqual(status, 200)
        self.assertEqual(phases(build)[-3:], [("PRE_BUILD", "FAILED"), ("FINALIZING", "SUCCEEDED"), ("COMPLETED", None)])

    def test_time_out_lasts_the_timeout(self) -> None:
        status, build = complete(self.build["id"], "TIMED_OUT")
        self.assertEqual(status, 200)
        self.assertEqual(build["endTime"] - build["startTime"], 3600)
        self.assertEqual(phases(build)[-3:], [("BUILD", "TIMED_OUT"), ("FINALIZING", "SUCCEEDED"), ("COMPLETED", None)])
        self.assertEqual(build["phases"][-3]["contexts"], [{"statusCode": "BUILD_TIMED_OUT", "message": "Build has timed out. "}])

    def test_admin_errors(self) -> None:
        build_id = self.build["id"]
        self.assertEqual(complete("app:00000000-0000-0000-0000-000000000000", "FAILED")[0], 404)
        self.assertEqual(complete(build_id, "DONE")[0], 400)
        self.assertEqual(complete(build_id, "SUCCEEDED", failedPhase="BUILD")[0], 400)
        self.assertEqual(complete(build_id, "FAILED", context="no status code")[0], 400)
        self.assertEqual(complete(build_id, "FAILED", failedPhase="COMPLETED")[0], 400)
        self.assertEqual(complete(build_id, "FAILED", failedPhase="QUEUED")[0], 400)
        self.assertEqual(complete(build_id, "FAILED", durationSeconds=-1)[0], 400)
        self.assertEqual(complete(build_id, "FAILED", durationSeconds="5")[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/complete", {"status": "FAILED"})[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/advance", {"buildId": build_id, "phase": "QUEUED"})[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/advance", {"buildId": build_id, "phase": "POST_BUILD"})[0], 200)
        self.assertEqual(complete(build_id, "FAILED", failedPhase="BUILD")[0], 400, "BUILD is behind POST_BUILD")
        status, build = complete(build_id, "FAILED")
        self.assertEqual(status, 200)
        self.assertEqual(phases(build)[-4:], [("POST_BUILD", "FAILED"), ("UPLOAD_ARTIFACTS", "SUCCEEDED"), ("FINALIZING", "SUCCEEDED"), ("COMPLETED", None)])
        self.assertEqual(http("POST", "/_emulator/codebuild/advance", {"buildId": build_id, "phase": "FINALIZING"})[0], 409)
        self.assertEqual(http("GET", "/_emulator/codebuild/complete")[0], 405)

    def test_batch_delete_builds(self) -> None:
        done = self.start()
        complete(done["id"], "SUCCEEDED")
        later = self.start()
        missing = "app:00000000-0000-0000-0000-000000000000"
        answer = self.codebuild.batch_delete_builds(ids=[self.build["id"], done["id"], missing])
        self.assertEqual(answer["buildsDeleted"], [done["arn"]])
        self.assertEqual(
            answer["buildsNotDeleted"],
            [{"id": self.build["arn"], "statusCode": "BUILD_IN_PROGRESS"}, {"id": missing, "statusCode": "BUILD_NOT_FOUND"}],
        )
        self.assertEqual(self.codebuild.list_builds_for_project(projectName="app")["ids"], [later["id"], self.build["id"]])
        self.assertEqual(self.get(later["id"])["buildNumber"], 3, "deleting a build renumbers nothing")


# --- the EventBridge event ----------------------------------------------------------------


class EventTests(CodeBuildTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.create_project()
        self.build = self.start(
            sourceVersion="refs/heads/main",
            environmentVariablesOverride=[{"name": "SOURCE_COMMIT", "value": "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"}],
        )

    def assertCrateShape(self, document: dict[str, Any]) -> None:
        """What aws_lambda_events' CodeBuildEvent (1.2) requires, and the project's own BuildStateChange."""
        for key in ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"):
            self.assertIn(key, document)
        datetime.datetime.strptime(document["time"], "%Y-%m-%dT%H:%M:%SZ")
        detail = document["detail"]
        for key in ("build-status", "project-name", "build-id", "additional-information", "current-phase",
                    "current-phase-context", "version"):
            self.assertIn(key, detail)
        self.assertIsInstance(detail["current-phase-context"], str)
        info = detail["additional-information"]
        for key in ("artifact", "environment", "timeout-in-minutes", "build-complete", "build-number", "initiator",
                    "build-start-time", "source", "logs", "phases", "queued-timeout-in-minutes"):
            self.assertIn(key, info)
        self.assertIsInstance(info["build-number"], float)
        self.assertIsInstance(info["build-complete"], bool)
        self.assertIsInstance(info["timeout-in-minutes"], int)
        self.assertRegex(info["build-start-time"], EVENT_TIME)
        environment = info["environment"]
        self.assertIsInstance(environment["privileged-mode"], bool)
        for variable in environment["environment-variables"]:
            self.assertEqual(set(variable), {"name", "type", "value"})
        self.assertEqual(set(info["logs"]), {"group-name", "stream-name", "deep-link"})
        for phase in info["phases"]:
            self.assertRegex(phase["start-time"], EVENT_TIME)
            self.assertIn("phase-type", phase)
            if "end-time" in phase:
                self.assertRegex(phase["end-time"], EVENT_TIME)
                self.assertIsInstance(phase["duration-in-seconds"], int)
                self.assertTrue(all(isinstance(c, str) for c in phase["phase-context"]))
            else:
                self.assertEqual(set(phase), {"start-time", "phase-type"})

    def test_event_of_a_failed_build(self) -> None:
        complete(self.build["id"], "FAILED", context=CARGO_FAILURE, durationSeconds=192)
        status, document = event(self.build["id"], eventId="5f8c2e1a-6b3d-4c7e-9a0f-1d2e3f4a5b6c")
        self.assertEqual(status, 200)
        self.assertCrateShape(document)
        build = self.get(self.build["id"])
        self.assertEqual(
            {k: document[k] for k in ("version", "id", "detail-type", "source", "account", "region", "resources")},
            {
                "version": "0",
                "id": "5f8c2e1a-6b3d-4c7e-9a0f-1d2e3f4a5b6c",
                "detail-type": "CodeBuild Build State Change",
                "source": "aws.codebuild",
                "account": ACCOUNT,
                "region": "us-east-1",
                "resources": [build["arn"]],
            },
        )
        self.assertEqual(document["time"], build["endTime"].strftime("%Y-%m-%dT%H:%M:%SZ"))
        detail = document["detail"]
        self.assertEqual(
            {k: detail[k] for k in ("build-status", "project-name", "build-id", "current-phase", "current-phase-context", "version")},
            {
                "build-status": "FAILED",
                "project-name": "app",
                "build-id": build["arn"],
                "current-phase": "COMPLETED",
                "current-phase-context": "[]",
                "version": "1",
            },
        )
        info = detail["additional-information"]
        self.assertEqual(info["build-number"], 1.0)
        self.assertIn('"build-number": 1.0', json.dumps(document), "a float on the wire, as CodeBuild sends it")
        self.assertTrue(info["build-complete"])
        self.assertEqual(info["initiator"], "moto")
        self.assertEqual(info["source-version"], "refs/heads/main")
        self.assertEqual(info["source"], {"location": REPOSITORY_URL, "type": "CODECOMMIT", "buildspec": "buildspec.yml"})
        self.assertEqual(info["artifact"], {"location": ""})
        self.assertEqual(
            info["environment"],
            {
                "image": "aws/codebuild/standard:7.0",
                "privileged-mode": True,
                "image-pull-credentials-type": "CODEBUILD",
                "compute-type": "BUILD_GENERAL1_SMALL",
                "type": "LINUX_CONTAINER",
                "environment-variables": [
                    {"name": "IMAGE_REPO_NAME", "type": "PLAINTEXT", "value": "shop"},
                    {"name": "SOURCE_BRANCH", "type": "PLAINTEXT", "value": "main"},
                    {"name": "DOCKER_HUB_TOKEN", "type": "SECRETS_MANAGER", "value": "shop/docker-hub:token"},
                    {"name": "SOURCE_COMMIT", "type": "PLAINTEXT", "value": "0ccf1ae1bf4c7d610115754eef7bf8c60e7f167e"},
                ],
            },
        )
        self.assertEqual(
            info["logs"],
            {
                "group-name": build["logs"]["groupName"],
                "stream-name": build["logs"]["streamName"],
                "deep-link": build["logs"]["deepLink"],
            },
        )
        start = datetime.datetime.strptime(info["build-start-time"], "%b %d, %Y %I:%M:%S %p").replace(tzinfo=datetime.timezone.utc)
        self.assertEqual(start, build["startTime"].replace(microsecond=0))
        self.assertEqual(
            [(p["phase-type"], p.get("phase-status")) for p in info["phases"]], PHASES_AFTER_BUILD_FAILURE
        )
        by_type = {p["phase-type"]: p for p in info["phases"]}
        self.assertEqual(by_type["BUILD"]["phase-context"], [CARGO_FAILURE])
        self.assertEqual(by_type["SUBMITTED"]["phase-context"], [])
        self.assertEqual(by_type["QUEUED"]["phase-context"], [])
        self.assertEqual(by_type["POST_BUILD"]["phase-context"], [": "])
        self.assertEqual(by_type["COMPLETED"], {"start-time": by_type["COMPLETED"]["start-time"], "phase-type": "COMPLETED"})
        self.assertEqual(sum(p.get("duration-in-seconds", 0) for p in info["phases"]), 192)

    def test_a_timed_out_or_faulted_build_is_failed_in_its_event_and_tells_it_by_its_phase(self) -> None:
        faulted = self.start()
        complete(self.build["id"], "TIMED_OUT")
        complete(faulted["id"], "FAULT", failedPhase="PROVISIONING", context="BUILD_CONTAINER_UNABLE_TO_PULL_IMAGE: no image")
        for build, status, phase in ((self.build, "TIMED_OUT", "BUILD"), (faulted, "FAULT", "PROVISIONING")):
            self.assertEqual(self.get(build["id"])["buildStatus"], status, "BatchGetBuilds tells it as it is")
            _, document = event(build["id"])
            self.assertCrateShape(document)
            detail = document["detail"]
            self.assertEqual(detail["build-status"], "FAILED", "the event's values: IN_PROGRESS, SUCCEEDED, FAILED, STOPPED")
            by_type = {p["phase-type"]: p for p in detail["additional-information"]["phases"]}
            self.assertEqual(by_type[phase]["phase-status"], status)
        _, document = event(self.build["id"])
        by_type = {p["phase-type"]: p for p in document["detail"]["additional-information"]["phases"]}
        self.assertEqual(by_type["BUILD"]["phase-context"], ["BUILD_TIMED_OUT: Build has timed out. "])

    def test_event_of_a_running_build(self) -> None:
        status, first = event(self.build["arn"])
        self.assertEqual(status, 200)
        self.assertCrateShape(first)
        _, second = event(self.build["id"])
        self.assertNotEqual(first["id"], second["id"], "every emission has its own id")
        uuid.UUID(first["id"])
        detail = first["detail"]
        self.assertEqual((detail["build-status"], detail["current-phase"]), ("IN_PROGRESS", "QUEUED"))
        info = detail["additional-information"]
        self.assertFalse(info["build-complete"])
        self.assertEqual(info["phases"][-1], {"start-time": info["build-start-time"], "phase-type": "QUEUED"})
        self.assertEqual(first["time"], self.build["startTime"].strftime("%Y-%m-%dT%H:%M:%SZ"))

    def test_chosen_events_are_lost_on_the_way(self) -> None:
        complete(self.build["id"], "SUCCEEDED")
        status, body = http("POST", "/_emulator/codebuild/lose-events", {"buildId": self.build["arn"], "count": 2})
        self.assertEqual((status, body), (200, {"buildId": self.build["id"], "status": "ok"}))
        for _ in range(2):
            status, body = event(self.build["id"])
            self.assertEqual(status, 410)
            self.assertIn("lost", body["error"])
        status, document = event(self.build["id"])
        self.assertEqual((status, document["detail"]["build-status"]), (200, "SUCCEEDED"), "CodeBuild's next emission arrives")
        self.assertEqual(http("POST", "/_emulator/codebuild/lose-events", {"buildId": self.build["id"], "count": 0})[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/lose-events", {"buildId": "app:nope"})[0], 404)
        self.assertEqual(http("POST", "/_emulator/codebuild/lose-events", {})[0], 400)

    def test_event_errors(self) -> None:
        self.assertEqual(event("app:00000000-0000-0000-0000-000000000000")[0], 404)
        self.assertEqual(http("GET", "/_emulator/codebuild/event")[0], 400)
        self.assertEqual(http("POST", "/_emulator/codebuild/event", {"buildId": self.build["id"]})[0], 405)


# --- raw protocol and round trips ----------------------------------------------------------


class RawProtocolTests(CodeBuildTestCase):
    def test_validation_errors(self) -> None:
        status, body = codebuild_json("StartBuild", {})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertEqual(
            body["message"],
            "1 validation error detected: Value null at 'projectName' failed to satisfy constraint: Member must not be null",
        )
        ids = [f"app:{uuid.uuid4()}" for _ in range(101)]
        status, body = codebuild_json("BatchGetBuilds", {"ids": ids})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertIn("Member must have length less than or equal to 100", body["message"])
        self.assertEqual(codebuild_json("BatchGetBuilds", {"ids": []})[1]["__type"], "ValidationException")
        status, body = codebuild_json("ListBuildsForProject", {"projectName": "app", "sortOrder": "NEWEST"})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertEqual(codebuild_json("StartBuild", {"projectName": "app", "timeoutInMinutesOverride": "5"})[1]["__type"], "SerializationException")
        self.assertEqual(codebuild_json("StartBuild", {"projectName": "app", "colour": "red"})[1]["__type"], "SerializationException")
        status, body = codebuild_json("StartBuild", {"projectName": "app", "timeoutInMinutesOverride": 1})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))

    def test_requests_for_moto_are_validated_too(self) -> None:
        status, body = codebuild_json("CreateProject", {"name": "app"})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertTrue(body["message"].startswith("4 validation errors detected"), body["message"])


class RoundTripTests(CodeBuildTestCase):
    """Every CodeBuild operation we implement answered at least once through boto3's parser."""

    def test_every_implemented_operation_round_trips(self) -> None:
        self.create_project()
        CHECKED_OPERATIONS.clear()
        build = self.start()
        self.codebuild.batch_get_builds(ids=[build["id"]])
        self.codebuild.list_builds_for_project(projectName="app")
        self.codebuild.list_builds()
        self.codebuild.stop_build(id=build["id"])
        self.codebuild.batch_delete_builds(ids=[build["id"]])
        implemented = {operation for (_, operation) in APP._codebuild_handlers}
        self.assertEqual(implemented - CHECKED_OPERATIONS, set())


if __name__ == "__main__":
    unittest.main()
