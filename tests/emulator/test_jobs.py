"""Tests of CodePipeline Lambda invoke jobs (aws_ext/jobs.py) through boto3, raw HTTP and the admin API.

One in-process server (random port on 127.0.0.1, no Kubernetes emulator);
every test starts from POST /_emulator/reset.  The pipeline is the project's
shape: CodeCommit source, a CodeBuild action publishing ``IMAGE_URI`` in the
``BuildVariables`` namespace, then a Deploy stage whose Lambda action
(eks-deploy) takes that image in ``UserParameters`` and a second Lambda action
that reads the first one's output variables.  The tests play the function's
part: they read the event from the admin API, as the harness that runs the
real binary does, and report with the job APIs.
"""

from __future__ import annotations

import json
import re
import sys
import unittest
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402

ACCOUNT = "123456789012"
PIPELINE = "shop-delivery-pipeline"  # longer than 20 characters: artifact keys cut it short
BUCKET = "shop-pipeline-artifacts"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/shop:0ccf1ae"
USER_PARAMETERS = (
    '{"cluster": "shop-prod", "namespace": "shop", "deployment": "web", "container": "web", '
    '"image": "#{BuildVariables.IMAGE_URI}"}'
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

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


def client(service: str, region: str = "us-east-1") -> Any:
    return model_checks.client(ENDPOINT, service, _after_call, region=region)


def http(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, headers)


def codepipeline_json(operation: str, body: Any) -> tuple[int, Any]:
    return model_checks.raw_json_call(ENDPOINT, "codepipeline", f"CodePipeline_20150709.{operation}", body)


def jobs(**query: str) -> list[dict[str, Any]]:
    status, body = http("GET", "/_emulator/codepipeline/jobs?" + urllib.parse.urlencode({"pipeline": PIPELINE, **query}))
    assert status == 200, body
    return body["jobs"]


def pipeline_definition(role_arn: str) -> dict[str, Any]:
    def action(name: str, category: str, provider: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"}, **extra}

    return {
        "name": PIPELINE,
        "roleArn": role_arn,
        "pipelineType": "V2",
        "executionMode": "PARALLEL",
        "artifactStore": {"type": "S3", "location": BUCKET},
        "stages": [
            {
                "name": "Source",
                "actions": [
                    action(
                        "Source", "Source", "CodeCommit",
                        configuration={"RepositoryName": "shop", "BranchName": "main", "PollForSourceChanges": "false"},
                        outputArtifacts=[{"name": "SourceArtifact"}],
                        namespace="SourceVariables",
                    )
                ],
            },
            {
                "name": "Build",
                "actions": [
                    action(
                        "BuildImage", "Build", "CodeBuild",
                        configuration={"ProjectName": "shop-image"},
                        inputArtifacts=[{"name": "SourceArtifact"}],
                        outputArtifacts=[{"name": "BuildOutput"}],
                        namespace="BuildVariables",
                    )
                ],
            },
            {
                "name": "Deploy",
                "actions": [
                    action(
                        "DeployToEks", "Invoke", "Lambda",
                        configuration={"FunctionName": "eks-deploy", "UserParameters": USER_PARAMETERS},
                        inputArtifacts=[{"name": "BuildOutput"}],
                        namespace="DeployVariables",
                        runOrder=1,
                    ),
                    action(
                        "SmokeTest", "Invoke", "Lambda",
                        configuration={"FunctionName": "smoke-test", "UserParameters": "#{DeployVariables.ROLLED_OUT_IMAGE}"},
                        inputArtifacts=[{"name": "SourceArtifact"}],
                        outputArtifacts=[{"name": "SmokeReport"}],
                        runOrder=2,
                    ),
                ],
            },
        ],
    }


class JobsTestCase(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = http("POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        self.codepipeline = client("codepipeline")
        iam = client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }
        role_arn = iam.create_role(RoleName="shop-pipeline", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        codecommit = client("codecommit")
        codecommit.create_repository(repositoryName="shop")
        self.commit = codecommit.create_commit(
            repositoryName="shop", branchName="main", authorName="Dev", email="dev@example.com",
            commitMessage="Shop v1", putFiles=[{"filePath": "Dockerfile", "fileContent": b"FROM scratch\n"}],
        )["commitId"]
        self.codepipeline.create_pipeline(pipeline=pipeline_definition(role_arn))

    def start_and_build(self, image: str = IMAGE) -> str:
        """Start an execution and finish its build with ``IMAGE_URI``: the Deploy stage starts."""
        execution_id = self.codepipeline.start_pipeline_execution(name=PIPELINE)["pipelineExecutionId"]
        status, body = http(
            "POST",
            "/_emulator/codepipeline/complete-action",
            {"executionId": execution_id, "stage": "Build", "action": "BuildImage", "status": "Succeeded",
             "outputVariables": {"IMAGE_URI": image}},
        )
        self.assertEqual((status, body["status"]), (200, "InProgress"), body)
        return execution_id

    def only_job(self, **query: str) -> dict[str, Any]:
        found = jobs(status="InProgress", **query)
        self.assertEqual(len(found), 1, found)
        return found[0]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.codepipeline.get_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=execution_id)[
            "pipelineExecution"
        ]

    def action_state(self, action: str) -> dict[str, Any]:
        stages = self.codepipeline.get_pipeline_state(name=PIPELINE)["stageStates"]
        deploy = next(stage for stage in stages if stage["stageName"] == "Deploy")
        return next(state for state in deploy["actionStates"] if state["actionName"] == action)

    def assertClientError(self, code: str, call: Any, *args: Any, **kwargs: Any) -> ClientError:
        with self.assertRaises(ClientError) as raised:
            call(*args, **kwargs)
        error = raised.exception.response["Error"]
        self.assertEqual(error["Code"], code, error.get("Message"))
        return raised.exception


# --- the job and its event ---------------------------------------------------------------


class JobEventTests(JobsTestCase):
    def test_no_job_before_the_lambda_action_starts(self) -> None:
        self.codepipeline.start_pipeline_execution(name=PIPELINE)
        self.assertEqual(jobs(), [])

    def test_the_event_is_what_codepipeline_sends(self) -> None:
        execution_id = self.start_and_build()
        job = self.only_job()
        self.assertRegex(job["jobId"], UUID)
        self.assertEqual(
            {k: v for k, v in job.items() if k != "event"},
            {"jobId": job["jobId"], "pipeline": PIPELINE, "executionId": execution_id,
             "stage": "Deploy", "action": "DeployToEks", "status": "InProgress"},
        )
        event = job["event"]
        self.assertEqual(list(event), ["CodePipeline.job"])
        body = event["CodePipeline.job"]
        self.assertEqual(list(body), ["id", "accountId", "data"])
        self.assertEqual((body["id"], body["accountId"]), (job["jobId"], ACCOUNT))
        data = body["data"]
        self.assertEqual(list(data), ["actionConfiguration", "inputArtifacts", "outputArtifacts", "artifactCredentials"])
        configuration = data["actionConfiguration"]["configuration"]
        self.assertEqual(configuration["FunctionName"], "eks-deploy")
        self.assertEqual(
            json.loads(configuration["UserParameters"]),
            {"cluster": "shop-prod", "namespace": "shop", "deployment": "web", "container": "web", "image": IMAGE},
        )
        [artifact] = data["inputArtifacts"]
        key = artifact["location"]["s3Location"]["objectKey"]
        self.assertRegex(key, r"^shop-delivery-pipeli/BuildOutpu/[A-Za-z0-9]{7}$")
        self.assertEqual(
            artifact,
            {"name": "BuildOutput", "revision": None,
             "location": {"type": "S3", "s3Location": {"bucketName": BUCKET, "objectKey": key}}},
        )
        self.assertEqual(data["outputArtifacts"], [])
        credentials = data["artifactCredentials"]
        self.assertEqual(set(credentials), {"accessKeyId", "secretAccessKey", "sessionToken", "expirationTime"})
        self.assertRegex(credentials["accessKeyId"], r"^ASIA[A-Z0-9]{16}$")
        self.assertIsInstance(credentials["expirationTime"], int)

        details = self.codepipeline.get_job_details(jobId=job["jobId"])["jobDetails"]
        self.assertEqual((details["id"], details["accountId"]), (job["jobId"], ACCOUNT))
        self.assertEqual(details["data"]["actionTypeId"], {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"})
        self.assertEqual(details["data"]["actionConfiguration"], data["actionConfiguration"])
        self.assertEqual(details["data"]["inputArtifacts"], [{k: v for k, v in artifact.items() if k != "revision"}])
        self.assertEqual(details["data"]["artifactCredentials"], {k: v for k, v in credentials.items() if k != "expirationTime"})
        context = details["data"]["pipelineContext"]
        self.assertEqual(context["pipelineArn"], f"arn:aws:codepipeline:us-east-1:{ACCOUNT}:{PIPELINE}")
        self.assertEqual(context["pipelineExecutionId"], execution_id)
        self.assertEqual((context["stage"]["name"], context["action"]["name"]), ("Deploy", "DeployToEks"))
        self.assertEqual(context["action"]["actionExecutionId"], self.action_state("DeployToEks")["latestExecution"]["actionExecutionId"])

    def test_each_execution_has_its_own_jobs_and_artifact_keys(self) -> None:
        first = self.start_and_build()
        second = self.start_and_build(image=IMAGE.replace("0ccf1ae", "9b1de4f"))
        self.assertEqual(len(jobs()), 2)
        one, two = self.only_job(executionId=first), self.only_job(executionId=second)
        self.assertNotEqual(one["jobId"], two["jobId"])
        self.assertIn("9b1de4f", two["event"]["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"])
        key = lambda job: job["event"]["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]["objectKey"]  # noqa: E731
        self.assertNotEqual(key(one), key(two))


# --- PutJobSuccessResult / PutJobFailureResult ---------------------------------------------


class JobResultTests(JobsTestCase):
    def test_continuation_then_success_runs_the_pipeline_to_the_end(self) -> None:
        execution_id = self.start_and_build()
        first = self.only_job()
        token = json.dumps({"image": IMAGE, "startedAt": 1795000000})
        self.codepipeline.put_job_success_result(
            jobId=first["jobId"],
            continuationToken=token,
            executionDetails={"summary": "shop/web: 1 of 3 replicas updated", "externalExecutionId": "shop/web@2", "percentComplete": 33},
        )

        second = self.only_job()
        self.assertNotEqual(second["jobId"], first["jobId"])
        self.assertEqual((second["stage"], second["action"]), ("Deploy", "DeployToEks"))
        data, first_data = second["event"]["CodePipeline.job"]["data"], first["event"]["CodePipeline.job"]["data"]
        self.assertEqual(data["continuationToken"], token)
        self.assertEqual(data["actionConfiguration"], first_data["actionConfiguration"])
        self.assertEqual(data["inputArtifacts"], first_data["inputArtifacts"], "same artifacts, same keys")
        self.assertEqual([j["status"] for j in jobs()], ["Succeeded", "InProgress"])
        self.assertEqual(self.codepipeline.get_job_details(jobId=second["jobId"])["jobDetails"]["data"]["continuationToken"], token)
        latest = self.action_state("DeployToEks")["latestExecution"]
        self.assertEqual(
            (latest["status"], latest["summary"], latest["externalExecutionId"], latest["percentComplete"]),
            ("InProgress", "shop/web: 1 of 3 replicas updated", "shop/web@2", 33),
        )
        self.assertEqual(self.execution(execution_id)["status"], "InProgress")

        # A redelivered invocation of the first job reports again: the job is over.
        error = self.assertClientError(
            "InvalidJobStateException", self.codepipeline.put_job_success_result, jobId=first["jobId"], continuationToken=token
        )
        self.assertIn(second["jobId"], str(error))
        self.assertEqual(len(jobs()), 2, "no job was started by the refused report")

        self.codepipeline.put_job_success_result(
            jobId=second["jobId"],
            executionDetails={"summary": "shop/web: 3 of 3 replicas run the image", "percentComplete": 100},
            outputVariables={"ROLLED_OUT_IMAGE": IMAGE},
        )
        latest = self.action_state("DeployToEks")["latestExecution"]
        self.assertEqual(
            (latest["status"], latest["summary"], latest["externalExecutionId"], latest["percentComplete"]),
            ("Succeeded", "shop/web: 3 of 3 replicas run the image", "shop/web@2", 100),
        )
        self.assertNotIn("errorDetails", latest)
        self.assertEqual([j["status"] for j in jobs()], ["Succeeded", "Succeeded", "InProgress"])
        self.assertClientError(
            "InvalidJobStateException", self.codepipeline.put_job_failure_result,
            jobId=second["jobId"], failureDetails={"type": "JobFailed", "message": "too late"},
        )

        # The next action reads the output variables of the finished one.
        smoke = self.only_job()
        self.assertEqual(smoke["action"], "SmokeTest")
        smoke_data = smoke["event"]["CodePipeline.job"]["data"]
        self.assertEqual(smoke_data["actionConfiguration"]["configuration"], {"FunctionName": "smoke-test", "UserParameters": IMAGE})
        [source] = smoke_data["inputArtifacts"]
        self.assertEqual((source["name"], source["revision"]), ("SourceArtifact", self.commit))
        [report] = smoke_data["outputArtifacts"]
        self.assertEqual(report["revision"], None)
        self.assertRegex(report["location"]["s3Location"]["objectKey"], r"^shop-delivery-pipeli/SmokeRepor/[A-Za-z0-9]{7}$")
        self.codepipeline.put_job_success_result(jobId=smoke["jobId"])
        self.assertEqual(self.execution(execution_id)["status"], "Succeeded")
        self.assertEqual(self.action_state("SmokeTest")["latestExecution"]["status"], "Succeeded")
        self.assertEqual(jobs(status="InProgress"), [])

    def test_failure_fails_the_action_and_the_execution(self) -> None:
        kept = self.start_and_build()
        failing = self.start_and_build()
        job = self.only_job(executionId=failing)
        self.codepipeline.put_job_failure_result(
            jobId=job["jobId"],
            failureDetails={"type": "ConfigurationError", "message": "namespace 'Shop_Prod' is not a DNS label", "externalExecutionId": "shop/web"},
        )
        execution = self.execution(failing)
        self.assertEqual((execution["status"], execution["statusSummary"]), ("Failed", "namespace 'Shop_Prod' is not a DNS label"))
        latest = self.action_state("DeployToEks")["latestExecution"]
        self.assertEqual(latest["status"], "Failed")
        self.assertEqual(latest["errorDetails"], {"code": "ConfigurationError", "message": "namespace 'Shop_Prod' is not a DNS label"})
        self.assertEqual(latest["externalExecutionId"], "shop/web")
        self.assertNotIn("summary", latest)
        self.assertEqual(self.action_state("SmokeTest").get("latestExecution"), None, "the stage stopped at the failure")
        self.assertEqual(jobs(executionId=failing)[0]["status"], "Failed")
        self.assertClientError(
            "InvalidJobStateException", self.codepipeline.put_job_failure_result,
            jobId=job["jobId"], failureDetails={"type": "JobFailed", "message": "again"},
        )
        # The other execution is untouched.
        self.assertEqual(self.execution(kept)["status"], "InProgress")
        self.only_job(executionId=kept)

    def test_unknown_jobs(self) -> None:
        unknown = str(uuid.uuid4())
        self.assertClientError("JobNotFoundException", self.codepipeline.put_job_success_result, jobId=unknown)
        self.assertClientError(
            "JobNotFoundException", self.codepipeline.put_job_failure_result,
            jobId=unknown, failureDetails={"type": "JobFailed", "message": "x"},
        )
        self.assertClientError("JobNotFoundException", self.codepipeline.get_job_details, jobId=unknown)
        self.start_and_build()
        job = self.only_job()
        # Jobs belong to the pipeline's account and region.
        self.assertClientError("JobNotFoundException", client("codepipeline", "eu-west-1").put_job_success_result, jobId=job["jobId"])
        self.assertEqual(self.only_job()["jobId"], job["jobId"])

    def test_output_variables_need_the_last_report(self) -> None:
        self.start_and_build()
        job = self.only_job()
        self.assertClientError(
            "ValidationException", self.codepipeline.put_job_success_result,
            jobId=job["jobId"], continuationToken="t", outputVariables={"ROLLED_OUT_IMAGE": IMAGE},
        )
        self.assertEqual(self.only_job()["jobId"], job["jobId"], "nothing changed")

    def test_a_job_ends_with_its_action(self) -> None:
        completed = self.start_and_build()
        http("POST", "/_emulator/codepipeline/complete-action",
             {"executionId": completed, "stage": "Deploy", "action": "DeployToEks", "status": "Failed", "errorMessage": "by hand"})
        [job] = jobs(executionId=completed)
        self.assertEqual(job["status"], "Failed")
        error = self.assertClientError("InvalidJobStateException", self.codepipeline.put_job_success_result, jobId=job["jobId"])
        self.assertIn("Deploy/DeployToEks is Failed", str(error))

        stopped = self.start_and_build()
        self.codepipeline.stop_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=stopped, abandon=True)
        [job] = jobs(executionId=stopped)
        self.assertEqual(job["status"], "Failed")
        self.assertClientError("InvalidJobStateException", self.codepipeline.put_job_success_result, jobId=job["jobId"])


# --- the admin API, raw protocol and round trips ---------------------------------------------


class AdminTests(JobsTestCase):
    def test_listing_filters_and_errors(self) -> None:
        execution_id = self.start_and_build()
        self.assertEqual(len(jobs(executionId=execution_id)), 1)
        self.assertEqual(jobs(executionId=str(uuid.uuid4())), [])
        self.assertEqual(jobs(status="Succeeded"), [])
        status, body = http("GET", "/_emulator/codepipeline/jobs?pipeline=nope")
        self.assertEqual((status, body), (200, {"jobs": []}))
        self.assertEqual(http("GET", "/_emulator/codepipeline/jobs")[0], 400)
        status, body = http("GET", f"/_emulator/codepipeline/jobs?pipeline={PIPELINE}&status=Running")
        self.assertEqual(status, 400)
        self.assertIn("InProgress", body["error"])
        self.assertEqual(http("POST", "/_emulator/codepipeline/jobs", {"pipeline": PIPELINE})[0], 405)

    def test_reset_forgets_jobs(self) -> None:
        self.start_and_build()
        job = self.only_job()
        self.assertEqual(http("POST", "/_emulator/reset")[0], 200)
        self.assertEqual(jobs(), [])
        self.assertClientError("JobNotFoundException", self.codepipeline.get_job_details, jobId=job["jobId"])


class RawProtocolTests(JobsTestCase):
    def test_validation_errors(self) -> None:
        status, body = codepipeline_json("PutJobSuccessResult", {})
        self.assertEqual(
            (status, body),
            (400, {"__type": "ValidationException",
                   "message": "1 validation error detected: Value null at 'jobId' failed to satisfy constraint: Member must not be null"}),
        )
        status, body = codepipeline_json("GetJobDetails", {"jobId": "job-1"})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertIn("Value 'job-1' at 'jobId' failed to satisfy constraint: Member must satisfy regular expression pattern", body["message"])
        job_id = str(uuid.uuid4())
        status, body = codepipeline_json("PutJobFailureResult", {"jobId": job_id, "failureDetails": {"type": "Oops"}})
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        self.assertTrue(body["message"].startswith("2 validation errors detected: "), body["message"])
        self.assertIn("Value null at 'failureDetails.message' failed to satisfy constraint: Member must not be null", body["message"])
        self.assertIn("Value 'Oops' at 'failureDetails.type' failed to satisfy constraint: Member must satisfy enum value set", body["message"])
        status, body = codepipeline_json("PutJobSuccessResult", {"jobId": job_id, "executionDetails": {"percentComplete": 101}})
        self.assertIn("Member must have value less than or equal to 100", body["message"])
        status, body = codepipeline_json("PutJobSuccessResult", {"jobId": job_id, "continuationToken": ""})
        self.assertIn("Value '' at 'continuationToken' failed to satisfy constraint: Member must have length greater than or equal to 1", body["message"])
        self.assertEqual(codepipeline_json("PutJobSuccessResult", {"jobId": job_id, "status": "ok"})[1]["__type"], "SerializationException")
        self.assertEqual(
            codepipeline_json("PutJobSuccessResult", {"jobId": job_id, "executionDetails": {"percentComplete": "50"}})[1]["__type"],
            "SerializationException",
        )
        # Valid requests for a job nobody has: the service's own error, after validation.
        status, body = codepipeline_json("PutJobSuccessResult", {"jobId": job_id})
        self.assertEqual((status, body["__type"]), (400, "JobNotFoundException"))


class RoundTripTests(JobsTestCase):
    """Every job operation answered at least once through boto3's parser."""

    def test_every_job_operation_round_trips(self) -> None:
        self.start_and_build()
        CHECKED_OPERATIONS.clear()
        job = self.only_job()
        self.codepipeline.get_job_details(jobId=job["jobId"])
        self.codepipeline.put_job_success_result(jobId=job["jobId"], continuationToken="again")
        self.codepipeline.put_job_failure_result(jobId=self.only_job()["jobId"], failureDetails={"type": "JobFailed", "message": "x"})
        implemented = {operation for (_, operation) in APP._job_handlers}
        self.assertEqual(implemented - CHECKED_OPERATIONS, set())


if __name__ == "__main__":
    unittest.main()
