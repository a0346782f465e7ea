"""Tests of the emulated CodePipeline manual approvals and the SNS read-back, through boto3.

Shares test_aws_ext's server helpers; every test starts from POST /_emulator/reset.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_aws_ext as base  # noqa: E402

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def setUpModule() -> None:
    base.setUpModule()


def tearDownModule() -> None:
    base.tearDownModule()


class ApprovalTestCase(base.PipelineTestCase):
    """A pipeline "gated" whose Approve action notifies an SNS topic."""

    mode = "SUPERSEDED"

    def setUp(self) -> None:
        super().setUp()
        base.APP.approvals.install()  # the harness clears every hook between tests
        self.sns = base.client("sns")
        self.topic = self.sns.create_topic(Name="approval-requests")["TopicArn"]
        definition = base.pipeline_definition(self.role_arn, name="gated", mode=self.mode)
        approve = definition["stages"][1]["actions"][1]
        approve["configuration"].update(
            NotificationArn=self.topic, ExternalEntityLink="https://staging.example.com"
        )
        self.codepipeline.create_pipeline(pipeline=definition)

    def start_approval(self) -> str:
        """Start "gated" on the first commit and run it up to its approval."""
        execution_id = self.codepipeline.start_pipeline_execution(
            name="gated",
            sourceRevisions=[{"actionName": "Source", "revisionType": "COMMIT_ID", "revisionValue": self.first}],
        )["pipelineExecutionId"]
        status, _ = self.complete(execution_id, "Deploy", "Succeeded", outputVariables={"url": "https://app"})
        self.assertEqual(status, 200)
        return execution_id

    def approve_state(self) -> dict[str, Any]:
        stages = self.codepipeline.get_pipeline_state(name="gated")["stageStates"]
        return stages[1]["actionStates"][1]

    def token(self) -> str:
        return self.approve_state()["latestExecution"]["token"]

    def put(self, token: str, status: str = "Approved", summary: str = "ok", **names: str) -> dict[str, Any]:
        return self.codepipeline.put_approval_result(
            pipelineName=names.get("pipeline", "gated"),
            stageName=names.get("stage", "Deploy"),
            actionName=names.get("action", "Approve"),
            result={"summary": summary, "status": status},
            token=token,
        )

    def gated_execution(self, execution_id: str) -> dict[str, Any]:
        return self.codepipeline.get_pipeline_execution(pipelineName="gated", pipelineExecutionId=execution_id)[
            "pipelineExecution"
        ]


class ApprovalTests(ApprovalTestCase):
    def test_an_approval_waits_with_a_single_use_token_and_notifies_its_topic(self) -> None:
        before = datetime.datetime.now(datetime.timezone.utc)
        self.start_approval()
        latest = self.approve_state()["latestExecution"]
        self.assertEqual(latest["status"], "InProgress")
        self.assertRegex(latest["token"], UUID)

        status, body = base.http("GET", f"/_emulator/sns/published?topicArn={self.topic}")
        self.assertEqual(status, 200)
        [published] = body["messages"]
        self.assertEqual(published["subject"], "APPROVAL NEEDED: AWS CodePipeline gated for action Approve")
        message = json.loads(published["message"])
        self.assertEqual(message["region"], "us-east-1")
        self.assertEqual(
            message["consoleLink"], "https://console.aws.amazon.com/codepipeline/home?region=us-east-1#/view/gated"
        )
        approval = message["approval"]
        self.assertEqual(
            {k: approval[k] for k in ("pipelineName", "stageName", "actionName", "token", "customData")},
            {
                "pipelineName": "gated",
                "stageName": "Deploy",
                "actionName": "Approve",
                "token": latest["token"],
                "customData": "deployed https://app",
            },
        )
        self.assertEqual(approval["externalEntityLink"], "https://staging.example.com")
        self.assertTrue(approval["approvalReviewLink"].endswith(f"/gated/Deploy/Approve/approve/{latest['token']}"))
        expires = datetime.datetime.strptime(approval["expires"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=datetime.timezone.utc)
        self.assertAlmostEqual((expires - before).total_seconds(), 7 * 86400, delta=120)

    def test_approving_records_the_summary_and_runs_the_pipeline_on(self) -> None:
        execution_id = self.start_approval()
        answer = self.put(self.token(), "Approved", "Approved by alice@example.com via the email link")
        self.assertLess(abs((answer["approvedAt"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()), 60)
        latest = self.approve_state()["latestExecution"]
        self.assertEqual(latest["status"], "Succeeded")
        self.assertEqual(latest["summary"], "Approved by alice@example.com via the email link")
        self.assertNotIn("token", latest)
        self.assertEqual(self.gated_execution(execution_id)["status"], "Succeeded")
        status, body = base.http("GET", "/_emulator/codepipeline/approvals")
        [approval] = body["approvals"]
        self.assertEqual((approval["status"], approval["pipelineExecutionId"]), ("Approved", execution_id))
        self.assertEqual(approval["decidedBy"], "arn:aws:sts::123456789012:user/moto")
        self.assertIsNotNone(approval["approvedAt"])

    def test_rejecting_fails_the_execution_with_the_summary(self) -> None:
        execution_id = self.start_approval()
        self.put(self.token(), "Rejected", "Rejected by bob@example.com: not during the freeze")
        execution = self.gated_execution(execution_id)
        self.assertEqual(execution["status"], "Failed")
        self.assertEqual(execution["statusSummary"], "Rejected by bob@example.com: not during the freeze")
        self.assertEqual(self.approve_state()["latestExecution"]["status"], "Failed")

    def test_put_approval_result_answers_the_real_errors(self) -> None:
        self.start_approval()
        token = self.token()
        other = "00000000-0000-4000-8000-000000000000"
        self.assertClientError("PipelineNotFoundException", self.put, token, pipeline="nope")
        self.assertClientError("StageNotFoundException", self.put, token, stage="Nope")
        self.assertClientError("ActionNotFoundException", self.put, token, action="Nope")
        self.assertClientError("ActionNotFoundException", self.put, token, action="Deploy")
        self.assertClientError("InvalidApprovalTokenException", self.put, other)
        self.assertClientError("InvalidApprovalTokenException", self.put, token, pipeline="app")
        self.assertClientError("ValidationException", self.put, "not-a-token")
        self.assertClientError("ValidationException", self.put, token, summary="x" * 513)
        status, body = base.aws_json(
            "CodePipeline_20150709.PutApprovalResult",
            {"pipelineName": "gated", "stageName": "Deploy", "actionName": "Approve", "token": token,
             "result": {"summary": "x", "status": "Maybe"}},
        )
        self.assertEqual((status, body["__type"]), (400, "ValidationException"))
        # Nothing above decided anything; the token is single-use once it does.
        self.assertEqual(self.approve_state()["latestExecution"]["status"], "InProgress")
        self.put(token)
        self.assertClientError("ApprovalAlreadyCompletedException", self.put, token)
        self.assertClientError("ApprovalAlreadyCompletedException", self.put, token, "Rejected")

    def test_each_run_of_the_action_has_its_own_token(self) -> None:
        self.start_approval()
        first = self.token()
        self.start_approval()
        second = self.token()
        self.assertNotEqual(first, second)
        self.put(first, "Rejected")
        self.put(second, "Approved")
        statuses = [a["status"] for a in base.http("GET", "/_emulator/codepipeline/approvals")[1]["approvals"]]
        self.assertEqual(statuses, ["Rejected", "Approved"])

    def test_an_expired_approval_fails_its_action_and_cannot_be_decided(self) -> None:
        self.assertEqual(base.http("POST", "/_emulator/codepipeline/approval-ttl", {"seconds": 0.2})[0], 200)
        execution_id = self.start_approval()
        token = self.token()
        time.sleep(0.3)
        latest = self.approve_state()["latestExecution"]
        self.assertEqual(latest["status"], "Failed")
        self.assertIn("expired", latest["errorDetails"]["message"])
        self.assertEqual(self.gated_execution(execution_id)["status"], "Failed")
        self.assertClientError("ApprovalAlreadyCompletedException", self.put, token)
        self.assertEqual(base.http("GET", "/_emulator/codepipeline/approvals")[1]["approvals"][0]["status"], "Expired")

    def test_a_stopped_execution_abandons_its_approval(self) -> None:
        execution_id = self.start_approval()
        token = self.token()
        self.codepipeline.stop_pipeline_execution(pipelineName="gated", pipelineExecutionId=execution_id, abandon=True)
        self.assertClientError("ApprovalAlreadyCompletedException", self.put, token)

    def test_reset_restores_the_default_lifetime(self) -> None:
        base.http("POST", "/_emulator/codepipeline/approval-ttl", {"seconds": 1})
        base.http("POST", "/_emulator/reset")
        self.assertEqual(base.APP.approvals.ttl, datetime.timedelta(days=7))
        self.assertEqual(base.http("POST", "/_emulator/codepipeline/approval-ttl", {"seconds": -1})[0], 400)
        self.assertEqual(base.http("POST", "/_emulator/codepipeline/approval-ttl", {})[0], 400)


class QueuedApprovalTests(ApprovalTestCase):
    mode = "QUEUED"

    def test_a_queued_pipeline_shows_the_token_as_a_superseded_one_does(self) -> None:
        execution_id = self.start_approval()
        latest = self.approve_state()["latestExecution"]
        self.assertRegex(latest["token"], UUID)
        self.assertEqual(self.gated_execution(execution_id)["executionMode"], "QUEUED")
        self.put(latest["token"])
        self.assertEqual(self.gated_execution(execution_id)["status"], "Succeeded")


class ParallelApprovalTests(ApprovalTestCase):
    """PutApprovalResult: "For a pipeline where the execution mode is set to PARALLEL, the token
    ... is not available. Instead, use the externalExecutionId in the response output from the
    ListActionExecutions action as the token in the approval request.\""""

    mode = "PARALLEL"

    def approvals_listed(self, **filters: Any) -> list[dict[str, Any]]:
        details = self.codepipeline.list_action_executions(pipelineName="gated", **filters)["actionExecutionDetails"]
        return [d for d in details if (d["stageName"], d["actionName"]) == ("Deploy", "Approve")]

    def test_get_pipeline_state_shows_no_token_and_list_action_executions_has_the_one_to_decide_with(self) -> None:
        first = self.start_approval()
        second = self.start_approval()
        latest = self.approve_state()["latestExecution"]
        self.assertEqual(latest["status"], "InProgress")
        self.assertNotIn("token", latest)
        listed = self.approvals_listed()
        self.assertEqual([d["pipelineExecutionId"] for d in listed], [second, first], "newest first")
        self.assertEqual([d["status"] for d in listed], ["InProgress", "InProgress"])
        request_ids = [d["output"]["executionResult"]["externalExecutionId"] for d in listed]
        for request_id in request_ids:
            self.assertRegex(request_id, UUID)
        self.assertNotEqual(request_ids[0], request_ids[1], "each waiting execution has its own")
        _, body = base.http("GET", f"/_emulator/sns/published?topicArn={self.topic}")
        notified = [json.loads(m["message"])["approval"]["token"] for m in body["messages"]]
        self.assertEqual(notified, request_ids[::-1], "the notification carries what PutApprovalResult takes")

        self.put(request_ids[1], "Rejected", "Rejected by bob@example.com")
        self.assertEqual(self.gated_execution(first)["status"], "Failed")
        self.assertEqual(self.gated_execution(second)["status"], "InProgress", "executions run independently")
        [decided] = self.approvals_listed(filter={"pipelineExecutionId": first})
        self.assertEqual(decided["status"], "Failed")
        self.assertEqual(decided["output"]["executionResult"]["externalExecutionSummary"], "Rejected by bob@example.com")
        self.assertEqual(decided["output"]["executionResult"]["externalExecutionId"], request_ids[1])
        self.assertClientError("ApprovalAlreadyCompletedException", self.put, request_ids[1])
        self.put(request_ids[0])
        self.assertEqual(self.gated_execution(second)["status"], "Succeeded")

    def test_action_executions_page_and_filter(self) -> None:
        execution_id = self.start_approval()
        everything = self.codepipeline.list_action_executions(pipelineName="gated")["actionExecutionDetails"]
        self.assertEqual([d["actionName"] for d in everything], ["Approve", "Deploy", "Source"])
        first = self.codepipeline.list_action_executions(pipelineName="gated", maxResults=2)
        self.assertEqual(len(first["actionExecutionDetails"]), 2)
        rest = self.codepipeline.list_action_executions(pipelineName="gated", maxResults=2, nextToken=first["nextToken"])
        self.assertEqual([d["actionName"] for d in rest["actionExecutionDetails"]], ["Source"])
        self.assertNotIn("nextToken", rest)
        source = everything[2]
        self.assertEqual(source["output"]["executionResult"]["externalExecutionId"], self.first)
        self.assertEqual(source["pipelineExecutionId"], execution_id)
        self.assertClientError(
            "PipelineExecutionNotFoundException",
            self.codepipeline.list_action_executions,
            pipelineName="gated",
            filter={"pipelineExecutionId": "00000000-0000-0000-0000-000000000000"},
        )
        self.assertClientError(
            "InvalidNextTokenException", self.codepipeline.list_action_executions, pipelineName="gated", nextToken="nope"
        )
        self.assertClientError("PipelineNotFoundException", self.codepipeline.list_action_executions, pipelineName="nope")


class SnsReadBackTests(ApprovalTestCase):
    def test_an_inbox_gets_only_what_its_filter_policy_lets_through(self) -> None:
        approvers = self.sns.create_topic(Name="approvers")["TopicArn"]
        for address in ("alice@example.com", "bob@example.com"):
            self.sns.subscribe(
                TopicArn=approvers,
                Protocol="email",
                Endpoint=address,
                Attributes={"FilterPolicy": json.dumps({"approver": [address]})},
            )
        for address in ("alice@example.com", "bob@example.com", "carol@example.com"):
            self.sns.publish(
                TopicArn=approvers,
                Subject=f"for {address}",
                Message="links",
                MessageAttributes={"approver": {"DataType": "String", "StringValue": address}},
            )
        status, body = base.http("GET", "/_emulator/sns/inbox?endpoint=alice@example.com")
        self.assertEqual(status, 200)
        self.assertEqual([m["subject"] for m in body["messages"]], ["for alice@example.com"])
        self.assertEqual(body["messages"][0]["attributes"], {"approver": "alice@example.com"})
        self.assertEqual(base.http("GET", "/_emulator/sns/inbox?endpoint=carol@example.com")[1], {"messages": []})
        self.assertEqual(len(base.http("GET", f"/_emulator/sns/published?topicArn={approvers}")[1]["messages"]), 3)
        self.assertEqual(base.http("GET", "/_emulator/sns/inbox")[0], 400)


class SnsSubjectTests(base.EmulatorTestCase):
    """Publish refuses what SNS refuses in a subject, as SNS answers it, and publishes nothing."""

    def setUp(self) -> None:
        super().setUp()
        self.sns = base.client("sns")
        self.topic = self.sns.create_topic(Name="builds")["TopicArn"]

    def published(self) -> list[str]:
        return [m["subject"] for m in base.http("GET", f"/_emulator/sns/published?topicArn={self.topic}")[1]["messages"]]

    def test_subjects_of_printable_ascii_under_100_characters_are_published(self) -> None:
        for subject in ("FAILED: shop-image #42 on main (0ccf1ae)", "x" * 99, "[shop] 100% ~done~", "#1"):
            self.sns.publish(TopicArn=self.topic, Subject=subject, Message="body")
        self.sns.publish(TopicArn=self.topic, Message="no subject at all")
        self.assertEqual(self.published(), ["FAILED: shop-image #42 on main (0ccf1ae)", "x" * 99, "[shop] 100% ~done~", "#1", None])

    def test_non_ascii_line_breaks_control_characters_and_100_characters_are_refused(self) -> None:
        for subject in (
            "FAILED: shop-image #42 on feature/crème-brûlée",
            "cut with an ellipsis…",
            "FAILED:\nshop",
            "tab\tinside",
            "bell\x07",
            "x" * 100,
            " leading space",
            "",
        ):
            with self.subTest(subject=subject):
                raised = self.assertClientError(
                    "InvalidParameter", self.sns.publish, TopicArn=self.topic, Subject=subject, Message="body"
                )
                self.assertEqual(raised.response["Error"]["Message"], "Invalid parameter: Subject")
                self.assertEqual(raised.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        self.assertEqual(self.published(), [])


if __name__ == "__main__":
    unittest.main()
