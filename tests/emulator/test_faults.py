"""Tests of injected AWS faults (aws_ext/faults.py) through boto3, with and without retries.

One in-process server on a random port of 127.0.0.1; each test starts from
POST /_emulator/reset, which also clears faults.
"""

from __future__ import annotations

import json
import sys
import time
import unittest
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from botocore.exceptions import ClientError, ReadTimeoutError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
import run  # noqa: E402
from aws_ext import make_app  # noqa: E402

TIMEOUT = 10
APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, _ = run.start_aws_server(APP)
    ENDPOINT = f"http://127.0.0.1:{SERVER.server_port}"


def tearDownModule() -> None:
    SERVER.shutdown()
    SERVER.server_close()


def client(service: str, attempts: int = 1, read_timeout: float = TIMEOUT) -> Any:
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=TIMEOUT,
            read_timeout=read_timeout,
        ),
    )


def admin(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, f"/_emulator{path}", body)


def fault(**body: Any) -> dict[str, Any]:
    status, answer = admin("POST", "/aws/faults", body)
    assert status == 200, answer
    return answer


def served(fault_id: str) -> int:
    status, answer = admin("GET", f"/aws/faults?id={fault_id}")
    assert status == 200, answer
    return answer["faults"][0]["served"]


class FaultTest(unittest.TestCase):
    def setUp(self) -> None:
        self.assertEqual(admin("POST", "/reset")[0], 200)

    def pipeline(self, name: str) -> None:
        iam = client("iam")
        role = iam.create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )["Role"]["Arn"]
        client("codecommit").create_repository(repositoryName=f"{name}-repo")
        client("codepipeline").create_pipeline(
            pipeline={
                "name": name,
                "roleArn": role,
                "pipelineType": "V2",
                "artifactStore": {"type": "S3", "location": "artifacts"},
                "stages": [
                    {
                        "name": "Source",
                        "actions": [
                            {
                                "name": "Source",
                                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"},
                                "configuration": {"RepositoryName": f"{name}-repo", "BranchName": "main"},
                                "outputArtifacts": [{"name": "Out"}],
                            }
                        ],
                    },
                    {
                        "name": "Build",
                        "actions": [
                            {
                                "name": "Build",
                                "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                                "configuration": {"ProjectName": "p"},
                                "inputArtifacts": [{"name": "Out"}],
                            }
                        ],
                    },
                ],
            }
        )

    def test_a_throttled_json_call_fails_without_retries_and_gets_through_with_them(self) -> None:
        self.pipeline("shop")
        throttle = fault(service="codepipeline", operation="ListPipelineExecutions", status=400, count=2)
        with self.assertRaises(ClientError) as raised:
            client("codepipeline").list_pipeline_executions(pipelineName="shop")
        self.assertEqual(raised.exception.response["Error"]["Code"], "ThrottlingException")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        # boto3's standard mode retries throttling: the second fault, then the real answer.
        answer = client("codepipeline", attempts=3).list_pipeline_executions(pipelineName="shop")
        self.assertEqual(answer["pipelineExecutionSummaries"], [])
        self.assertEqual(served(throttle["id"]), 2)

    def test_a_failed_call_has_no_effect(self) -> None:
        self.pipeline("shop")
        failure = fault(service="codepipeline", operation="StartPipelineExecution", status=500)
        with self.assertRaises(ClientError) as raised:
            client("codepipeline").start_pipeline_execution(name="shop", clientRequestToken="t-1")
        self.assertEqual(raised.exception.response["Error"]["Code"], "InternalFailure")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        executions = client("codepipeline").list_pipeline_executions(pipelineName="shop")
        self.assertEqual(executions["pipelineExecutionSummaries"], [])
        self.assertEqual(served(failure["id"]), 1)

    def test_faults_match_on_operation_and_on_the_request_text(self) -> None:
        self.pipeline("shop")
        self.pipeline("other")
        scoped = fault(service="codepipeline", match='"shop"', status=503, code="ServiceUnavailableException")
        # Another pipeline's calls, and other services, pass untouched.
        client("codepipeline").list_pipeline_executions(pipelineName="other")
        client("codecommit").get_repository(repositoryName="shop-repo")
        self.assertEqual(served(scoped["id"]), 0)
        with self.assertRaises(ClientError) as raised:
            client("codepipeline").list_pipeline_executions(pipelineName="shop")
        self.assertEqual(raised.exception.response["Error"]["Code"], "ServiceUnavailableException")
        self.assertEqual(served(scoped["id"]), 1)
        client("codepipeline").list_pipeline_executions(pipelineName="shop")

    def test_query_services_answer_their_own_error_document(self) -> None:
        topic = client("sns").create_topic(Name="builds")["TopicArn"]
        throttle = fault(service="sns", operation="Publish", status=400)
        with self.assertRaises(ClientError) as raised:
            client("sns").publish(TopicArn=topic, Message="hello")
        self.assertEqual(raised.exception.response["Error"]["Code"], "Throttling")
        self.assertEqual(served(throttle["id"]), 1)
        status, published = admin("GET", f"/sns/published?topicArn={topic}")
        self.assertEqual(published["messages"], [], "a throttled publish sends nothing")
        client("sns").publish(TopicArn=topic, Message="hello")
        self.assertEqual(len(admin("GET", f"/sns/published?topicArn={topic}")[1]["messages"]), 1)

    def test_a_late_answer_has_its_effect_and_a_retry_shows_idempotency(self) -> None:
        self.pipeline("shop")
        late = fault(service="codepipeline", operation="StartPipelineExecution", delaySeconds=1.5)
        started = time.monotonic()
        with self.assertRaises(ReadTimeoutError):
            client("codepipeline", read_timeout=0.5).start_pipeline_execution(name="shop", clientRequestToken="t-2")
        self.assertLess(time.monotonic() - started, 1.4)
        self.assertEqual(served(late["id"]), 1)
        # The first attempt did start an execution; the same token again answers the same one.
        again = client("codepipeline").start_pipeline_execution(name="shop", clientRequestToken="t-2")
        executions = client("codepipeline").list_pipeline_executions(pipelineName="shop")["pipelineExecutionSummaries"]
        self.assertEqual([e["pipelineExecutionId"] for e in executions], [again["pipelineExecutionId"]])

    def test_rest_json_services_are_matched_by_their_mapped_operation(self) -> None:
        failure = fault(service="eks", operation="DescribeCluster", status=500)
        with self.assertRaises(ClientError) as raised:
            client("eks").describe_cluster(name="nowhere")
        self.assertEqual(raised.exception.response["Error"]["Code"], "InternalFailure")
        self.assertEqual(served(failure["id"]), 1)

    def test_admin_requests_are_never_faulted_and_reset_clears_faults(self) -> None:
        fault(service="codepipeline", status=500, count=5)
        self.assertEqual(admin("GET", "/health"), (200, {"status": "ok"}))
        self.assertEqual(admin("POST", "/reset")[0], 200)
        self.assertEqual(admin("GET", "/aws/faults")[1], {"faults": []})
        fault(service="codepipeline", status=500, count=5)
        self.assertEqual(admin("DELETE", "/aws/faults")[0], 200)
        self.assertEqual(admin("GET", "/aws/faults")[1], {"faults": []})

    def publish_batch(self, topic: str, entries: list[dict[str, Any]], validate: bool = True) -> dict[str, Any]:
        sns = boto3.client(
            "sns",
            endpoint_url=ENDPOINT,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
        )
        return sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)

    @staticmethod
    def email(entry_id: str, approver: str, subject: str = "Approval needed") -> dict[str, Any]:
        return {
            "Id": entry_id,
            "Subject": subject,
            "Message": f"links for {approver}",
            "MessageAttributes": {"approver": {"DataType": "String", "StringValue": approver}},
        }

    def published(self, topic: str) -> list[str]:
        status, answer = admin("GET", f"/sns/published?topicArn={topic}")
        self.assertEqual(status, 200, answer)
        return [message["attributes"]["approver"] for message in answer["messages"]]

    def test_a_batch_fault_fails_the_chosen_entries_and_publishes_the_others(self) -> None:
        topic = client("sns").create_topic(Name="approvers")["TopicArn"]
        failing = fault(service="sns", operation="PublishBatch", entries="StringValue=alice@", count=2)
        entries = [self.email("0", "alice@example.com"), self.email("1", "bob@example.com")]

        answer = self.publish_batch(topic, entries)

        self.assertEqual([entry["Id"] for entry in answer["Successful"]], ["1"])
        self.assertEqual(
            [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]],
            [("0", "InternalError", False)],
        )
        self.assertEqual(self.published(topic), ["bob@example.com"])
        # A retry of the failed entry alone: failed again, then (the fault spent) published.
        self.assertEqual(len(self.publish_batch(topic, entries[:1])["Failed"]), 1)
        answer = self.publish_batch(topic, entries[:1])
        self.assertEqual((len(answer["Successful"]), answer["Failed"]), (1, []))
        self.assertEqual(self.published(topic), ["bob@example.com", "alice@example.com"])
        status, view = admin("GET", f"/aws/faults?id={failing['id']}")
        self.assertEqual(view["faults"][0]["batches"], [{"entries": 2, "failed": 1}, {"entries": 1, "failed": 1}])
        self.assertEqual(view["faults"][0]["served"], 2)

    def test_a_batch_fault_on_every_entry_publishes_nothing(self) -> None:
        topic = client("sns").create_topic(Name="approvers")["TopicArn"]
        fault(service="sns", operation="PublishBatch", entries="approver", code="Throttled", senderFault=False)
        answer = self.publish_batch(topic, [self.email("a", "alice@example.com"), self.email("b", "bob@example.com")])
        self.assertEqual(answer["Successful"], [])
        self.assertEqual(sorted(f["Code"] for f in answer["Failed"]), ["Throttled", "Throttled"])
        self.assertEqual(self.published(topic), [])

    def test_publish_batch_is_refused_and_fails_entries_as_sns_does(self) -> None:
        topic = client("sns").create_topic(Name="approvers")["TopicArn"]
        refusals = [
            ([], "EmptyBatchRequest"),
            ([self.email("not.valid", "alice@example.com")], "InvalidBatchEntryId"),
            ([self.email(str(i), "a@example.com") | {"Message": "x" * 30_000} for i in range(9)], "BatchRequestTooLong"),
            ([self.email(str(i), "a@example.com") for i in range(11)], "TooManyEntriesInBatchRequest"),
            ([self.email("0", "a@example.com"), self.email("0", "b@example.com")], "BatchEntryIdsNotDistinct"),
        ]
        for entries, code in refusals:
            with self.assertRaises(ClientError, msg=code) as raised:
                self.publish_batch(topic, entries, validate=False)
            self.assertEqual(raised.exception.response["Error"]["Code"], code)
        self.assertEqual(self.published(topic), [])
        # A subject SNS refuses fails its entry alone.
        answer = self.publish_batch(
            topic,
            [self.email("0", "alice@example.com", subject="line\nbreak"), self.email("1", "bob@example.com")],
        )
        self.assertEqual(
            [(f["Id"], f["Code"], f["SenderFault"]) for f in answer["Failed"]],
            [("0", "InvalidParameter", True)],
        )
        self.assertEqual(self.published(topic), ["bob@example.com"])

    def test_invalid_faults_are_refused(self) -> None:
        for body in [
            {},
            {"service": "codepipeline"},
            {"service": "codepipeline", "status": 200},
            {"service": "codepipeline", "status": 500, "count": 0},
            {"service": "codepipeline", "status": 500, "match": "("},
            {"service": "codepipeline", "delaySeconds": 99},
            {"service": "codepipeline", "status": "500"},
            {"service": "sns", "operation": "Publish", "entries": "alice"},
            {"service": "sns", "operation": "PublishBatch", "entries": "("},
            {"service": "sns", "operation": "PublishBatch", "entries": "alice", "status": 500},
            {"service": "sns", "operation": "PublishBatch", "entries": "alice", "senderFault": "yes"},
        ]:
            status, answer = admin("POST", "/aws/faults", body)
            self.assertEqual(status, 400, body)
            self.assertIn("error", answer)


if __name__ == "__main__":
    unittest.main()
