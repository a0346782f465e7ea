"""Tests of the emulated CodeCommit pull requests (aws_ext/pullrequests.py) through boto3 and raw HTTP.

One in-process server (random port on 127.0.0.1, no Kubernetes emulator);
every test starts from POST /_emulator/reset.  Every boto3 response of the
pull-request operations is also checked against the output shape's required
members, so each test doubles as a round-trip check through botocore's parser.

Two identities take part, as on a real team: the author (an IAM user of the
emulated account, with its own access key) and the bot (the default test
credentials, which STS names ``user/moto``).
"""

from __future__ import annotations

import datetime
import re
import sys
import unittest
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402
from aws_ext import pullrequests as pullrequests_module  # noqa: E402

ACCOUNT = "123456789012"
BOT = f"arn:aws:sts::{ACCOUNT}:user/moto"
AUTHOR = f"arn:aws:iam::{ACCOUNT}:user/mary"
JAVA_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}$")

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


def client(service: str, access_key: str = "testing", secret: str = "testing") -> Any:
    return model_checks.client(ENDPOINT, service, _after_call, access_key=access_key, secret=secret)


def http(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return model_checks.raw_request(ENDPOINT, method, path, body, headers)


def codecommit_json(operation: str, body: Any) -> tuple[int, Any]:
    return model_checks.raw_json_call(ENDPOINT, "codecommit", f"CodeCommit_20150413.{operation}", body)


def pull_request_event(pull_request_id: str, event: str, **query: str) -> tuple[int, Any]:
    return http(
        "GET",
        "/_emulator/codecommit/pull-request-event?"
        + urllib.parse.urlencode({"pullRequestId": pull_request_id, "event": event, **query}),
    )


class PullRequestTestCase(unittest.TestCase):
    """A repository ``shop`` with ``main`` (one commit) and ``feature/cart`` (one commit on top)."""

    def setUp(self) -> None:
        status, _ = http("POST", "/_emulator/reset")
        self.assertEqual(status, 200)
        self.bot = client("codecommit")
        iam = boto3.client(
            "iam", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        iam.create_user(UserName="mary")
        key = iam.create_access_key(UserName="mary")["AccessKey"]
        self.author = client("codecommit", key["AccessKeyId"], key["SecretAccessKey"])
        self.bot.create_repository(repositoryName="shop")
        self.main = self.commit("main", None, "README.md", "shop\n", "Initial commit")
        self.bot.create_branch(repositoryName="shop", branchName="feature/cart", commitId=self.main)
        self.feature = self.commit("feature/cart", self.main, "cart.rs", "fn cart() {}\n", "Add the cart")

    def commit(self, branch: str, parent: str | None, path: str, content: str, message: str) -> str:
        params: dict[str, Any] = dict(
            repositoryName="shop",
            branchName=branch,
            authorName="Mary Major",
            email="mary@example.com",
            commitMessage=message,
            putFiles=[{"filePath": path, "fileContent": content.encode()}],
        )
        if parent:
            params["parentCommitId"] = parent
        return self.author.create_commit(**params)["commitId"]

    def open_pull_request(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            title="Add the cart",
            description="The cart, at last.",
            targets=[{"repositoryName": "shop", "sourceReference": "feature/cart", "destinationReference": "main"}],
        )
        params.update(extra)
        return self.author.create_pull_request(**params)["pullRequest"]

    def get(self, pull_request_id: str) -> dict[str, Any]:
        return self.bot.get_pull_request(pullRequestId=pull_request_id)["pullRequest"]

    def comment(self, pull_request: dict[str, Any], content: str, token: str, **extra: Any) -> dict[str, Any]:
        target = pull_request["pullRequestTargets"][0]
        params: dict[str, Any] = dict(
            pullRequestId=pull_request["pullRequestId"],
            repositoryName="shop",
            beforeCommitId=target["destinationCommit"],
            afterCommitId=target["sourceCommit"],
            content=content,
            clientRequestToken=token,
        )
        params.update(extra)
        return self.bot.post_comment_for_pull_request(**params)

    def assertClientError(self, code: str, call: Any, *args: Any, **kwargs: Any) -> ClientError:
        with self.assertRaises(ClientError) as raised:
            call(*args, **kwargs)
        error = raised.exception.response["Error"]
        self.assertEqual(error["Code"], code, error.get("Message"))
        return raised.exception


class HelperTests(unittest.TestCase):
    def test_java_dates(self) -> None:
        moment = datetime.datetime(2026, 11, 3, 9, 4, 5, tzinfo=datetime.timezone.utc)
        self.assertEqual(pullrequests_module.java_date(moment), "Tue Nov 03 09:04:05 UTC 2026")


class CreateAndGetTests(PullRequestTestCase):
    def test_a_new_pull_request(self) -> None:
        created = self.open_pull_request()
        self.assertEqual(created["pullRequestId"], "1")
        self.assertEqual(created["pullRequestStatus"], "OPEN")
        self.assertEqual(created["authorArn"], AUTHOR)
        self.assertRegex(created["revisionId"], "^[0-9a-f]{64}$")
        self.assertEqual(created["approvalRules"], [])
        self.assertEqual(
            created["pullRequestTargets"],
            [
                {
                    "repositoryName": "shop",
                    "sourceReference": "refs/heads/feature/cart",
                    "destinationReference": "refs/heads/main",
                    "destinationCommit": self.main,
                    "sourceCommit": self.feature,
                    "mergeBase": self.main,
                    "mergeMetadata": {"isMerged": False},
                }
            ],
        )
        self.assertEqual(self.get("1"), created)
        second = self.open_pull_request(title="Again")
        self.assertEqual(second["pullRequestId"], "2", "ids count per account and region")

    def test_destination_defaults_to_the_default_branch_and_full_references_work(self) -> None:
        created = self.open_pull_request(targets=[{"repositoryName": "shop", "sourceReference": "refs/heads/feature/cart"}])
        self.assertEqual(created["pullRequestTargets"][0]["destinationReference"], "refs/heads/main")

    def test_client_request_token_is_idempotent(self) -> None:
        first = self.open_pull_request(clientRequestToken="create-1")
        again = self.open_pull_request(clientRequestToken="create-1")
        self.assertEqual(again["pullRequestId"], first["pullRequestId"])
        self.assertClientError(
            "IdempotencyParameterMismatchException", self.open_pull_request, clientRequestToken="create-1", title="Other"
        )

    def test_creation_errors(self) -> None:
        target = {"repositoryName": "shop", "sourceReference": "feature/cart", "destinationReference": "main"}
        cases = [
            ("RepositoryDoesNotExistException", [{**target, "repositoryName": "nope"}]),
            ("ReferenceDoesNotExistException", [{**target, "sourceReference": "feature/none"}]),
            ("ReferenceDoesNotExistException", [{**target, "destinationReference": "develop"}]),
            ("InvalidReferenceNameException", [{**target, "sourceReference": "a..b"}]),
            ("ReferenceTypeNotSupportedException", [{**target, "sourceReference": "refs/tags/v1"}]),
            ("SourceAndDestinationAreSameException", [{**target, "sourceReference": "main"}]),
            ("MultipleRepositoriesInPullRequestException", [target, target]),
        ]
        for code, targets in cases:
            with self.subTest(code=code, targets=targets):
                self.assertClientError(code, self.open_pull_request, targets=targets)
        self.assertClientError("TitleRequiredException", self.open_pull_request, title="   ")
        self.assertClientError("InvalidTitleException", self.open_pull_request, title="t" * 151)
        self.assertClientError("InvalidPullRequestIdException", self.bot.get_pull_request, pullRequestId="abc")
        self.assertClientError("PullRequestDoesNotExistException", self.bot.get_pull_request, pullRequestId="42")

    def test_raw_requests_are_validated_against_the_model(self) -> None:
        status, body = codecommit_json("CreatePullRequest", {"title": "x"})
        self.assertEqual((status, body["__type"]), (400, "TargetsRequiredException"))
        status, body = codecommit_json(
            "CreatePullRequest", {"title": "x", "targets": [{"repositoryName": "shop", "sourceReference": "feature/cart"}]}
        )
        self.assertEqual((status, body["__type"]), (400, "ClientRequestTokenRequiredException"))
        status, body = codecommit_json("UpdatePullRequestApprovalState", {"pullRequestId": "1", "revisionId": "r", "approvalState": "LGTM"})
        self.assertEqual((status, body["__type"]), (400, "InvalidApprovalStateException"))
        status, body = codecommit_json("GetPullRequest", {"pullRequestId": 1})
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))


class BranchTests(PullRequestTestCase):
    def test_a_push_to_the_source_branch_makes_a_new_revision(self) -> None:
        created = self.open_pull_request()
        newer = self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 1 }\n", "Fix the cart")
        now = self.get(created["pullRequestId"])
        self.assertNotEqual(now["revisionId"], created["revisionId"])
        target = now["pullRequestTargets"][0]
        self.assertEqual((target["sourceCommit"], target["destinationCommit"], target["mergeBase"]), (newer, self.main, self.main))

    def test_a_push_to_the_destination_moves_the_destination_commit_and_merge_base_stays(self) -> None:
        created = self.open_pull_request()
        hotfix = self.commit("main", self.main, "README.md", "shop!\n", "Hotfix")
        now = self.get(created["pullRequestId"])
        target = now["pullRequestTargets"][0]
        self.assertEqual((target["sourceCommit"], target["destinationCommit"], target["mergeBase"]), (self.feature, hotfix, self.main))
        self.assertNotEqual(now["revisionId"], created["revisionId"])

    def test_other_branches_and_closed_pull_requests_do_not_move(self) -> None:
        created = self.open_pull_request()
        self.bot.create_branch(repositoryName="shop", branchName="other", commitId=self.main)
        self.commit("other", self.main, "x.txt", "x", "Elsewhere")
        self.assertEqual(self.get("1")["revisionId"], created["revisionId"])
        self.author.update_pull_request_status(pullRequestId="1", pullRequestStatus="CLOSED")
        self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 2 }\n", "While closed")
        closed = self.get("1")
        self.assertEqual(closed["revisionId"], created["revisionId"])
        self.assertEqual(closed["pullRequestTargets"][0]["sourceCommit"], self.feature)


class StatusTests(PullRequestTestCase):
    def test_close_then_reopen_through_the_admin_api(self) -> None:
        created = self.open_pull_request()
        closed = self.author.update_pull_request_status(pullRequestId="1", pullRequestStatus="CLOSED")["pullRequest"]
        self.assertEqual(closed["pullRequestStatus"], "CLOSED")
        self.assertEqual(
            self.bot.update_pull_request_status(pullRequestId="1", pullRequestStatus="CLOSED")["pullRequest"]["pullRequestStatus"],
            "CLOSED",
        )
        self.assertClientError(
            "InvalidPullRequestStatusUpdateException", self.author.update_pull_request_status, pullRequestId="1", pullRequestStatus="OPEN"
        )
        newer = self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 3 }\n", "While closed")
        status, reopened = http("POST", "/_emulator/codecommit/reopen-pull-request", {"pullRequestId": "1"})
        self.assertEqual(status, 200, reopened)
        self.assertEqual((reopened["pullRequestStatus"], reopened["sourceCommit"]), ("OPEN", newer))
        self.assertNotEqual(reopened["revisionId"], created["revisionId"])
        self.assertEqual(self.get("1")["pullRequestStatus"], "OPEN")
        self.assertEqual(http("POST", "/_emulator/codecommit/reopen-pull-request", {"pullRequestId": "1"})[0], 409)
        self.assertEqual(http("POST", "/_emulator/codecommit/reopen-pull-request", {"pullRequestId": "9"})[0], 404)
        self.assertEqual(http("POST", "/_emulator/codecommit/reopen-pull-request", {})[0], 400)

    def test_merge_by_fast_forward(self) -> None:
        self.open_pull_request()
        self.assertClientError(
            "TipOfSourceReferenceIsDifferentException",
            self.author.merge_pull_request_by_fast_forward,
            pullRequestId="1",
            repositoryName="shop",
            sourceCommitId=self.main,
        )
        self.bot.create_repository(repositoryName="other")
        self.assertClientError(
            "RepositoryNotAssociatedWithPullRequestException",
            self.author.merge_pull_request_by_fast_forward,
            pullRequestId="1",
            repositoryName="other",
        )
        merged = self.author.merge_pull_request_by_fast_forward(pullRequestId="1", repositoryName="shop", sourceCommitId=self.feature)[
            "pullRequest"
        ]
        self.assertEqual(merged["pullRequestStatus"], "CLOSED")
        self.assertEqual(
            merged["pullRequestTargets"][0]["mergeMetadata"],
            {"isMerged": True, "mergedBy": AUTHOR, "mergeCommitId": self.feature, "mergeOption": "FAST_FORWARD_MERGE"},
        )
        self.assertEqual(self.bot.get_branch(repositoryName="shop", branchName="main")["branch"]["commitId"], self.feature)
        self.assertClientError(
            "PullRequestAlreadyClosedException", self.author.merge_pull_request_by_fast_forward, pullRequestId="1", repositoryName="shop"
        )
        self.assertEqual(http("POST", "/_emulator/codecommit/reopen-pull-request", {"pullRequestId": "1"})[0], 409)

    def test_a_diverged_destination_needs_a_manual_merge(self) -> None:
        self.open_pull_request()
        self.commit("main", self.main, "README.md", "diverged\n", "Diverge")
        self.assertClientError(
            "ManualMergeRequiredException", self.author.merge_pull_request_by_fast_forward, pullRequestId="1", repositoryName="shop"
        )


class CommentTests(PullRequestTestCase):
    def test_a_comment_and_its_token(self) -> None:
        pull_request = self.open_pull_request()
        posted = self.comment(pull_request, "Build started for 4b7615d", "prv-started-1")
        self.assertEqual(posted["pullRequestId"], "1")
        self.assertEqual((posted["beforeCommitId"], posted["afterCommitId"]), (self.main, self.feature))
        comment = posted["comment"]
        self.assertEqual(comment["authorArn"], BOT)
        self.assertEqual(comment["clientRequestToken"], "prv-started-1")
        self.assertFalse(comment["deleted"])

        again = self.comment(pull_request, "Build started for 4b7615d", "prv-started-1")
        self.assertEqual(again["comment"]["commentId"], comment["commentId"], "the same request answers the first comment")
        self.assertClientError(
            "IdempotencyParameterMismatchException", self.comment, pull_request, "Something else", "prv-started-1"
        )
        listed = self.bot.get_comments_for_pull_request(pullRequestId="1")["commentsForPullRequestData"]
        self.assertEqual(len(listed), 1)
        self.assertEqual([c["content"] for c in listed[0]["comments"]], ["Build started for 4b7615d"])

    def test_comment_errors(self) -> None:
        pull_request = self.open_pull_request()
        self.assertClientError("CommentContentRequiredException", self.comment, pull_request, "", "t1")
        self.assertClientError("CommentContentSizeLimitExceededException", self.comment, pull_request, "x" * 10241, "t2")
        self.comment(pull_request, "x" * 10240, "t3")
        self.assertClientError("InvalidCommitIdException", self.comment, pull_request, "hi", "t4", beforeCommitId="abc")
        self.assertClientError("CommitDoesNotExistException", self.comment, pull_request, "hi", "t5", afterCommitId="f" * 40)
        self.assertClientError(
            "BeforeCommitIdAndAfterCommitIdAreSameException", self.comment, pull_request, "hi", "t6", beforeCommitId=self.feature
        )
        self.bot.create_repository(repositoryName="other")
        self.assertClientError("RepositoryNotAssociatedWithPullRequestException", self.comment, pull_request, "hi", "t7", repositoryName="other")
        self.assertClientError("RepositoryDoesNotExistException", self.comment, pull_request, "hi", "t8", repositoryName="nope")
        self.assertClientError("PullRequestDoesNotExistException", self.comment, pull_request, "hi", "t9", pullRequestId="7")
        status, body = codecommit_json(
            "PostCommentForPullRequest",
            {"pullRequestId": "1", "repositoryName": "shop", "beforeCommitId": self.main, "afterCommitId": self.feature, "content": "hi"},
        )
        self.assertEqual((status, body["__type"]), (400, "ClientRequestTokenRequiredException"))

    def test_comments_group_by_comparison_and_page(self) -> None:
        pull_request = self.open_pull_request()
        for i in range(3):
            self.comment(pull_request, f"first revision {i}", f"a{i}")
        newer = self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 4 }\n", "More")
        updated = self.get("1")
        self.comment(updated, "second revision", "b0")

        data = self.bot.get_comments_for_pull_request(pullRequestId="1")["commentsForPullRequestData"]
        self.assertEqual([(d["afterCommitId"], len(d["comments"])) for d in data], [(self.feature, 3), (newer, 1)])
        only = self.bot.get_comments_for_pull_request(
            pullRequestId="1", repositoryName="shop", beforeCommitId=self.main, afterCommitId=newer
        )["commentsForPullRequestData"]
        self.assertEqual([c["content"] for d in only for c in d["comments"]], ["second revision"])

        first = self.bot.get_comments_for_pull_request(pullRequestId="1", maxResults=2)
        self.assertEqual(sum(len(d["comments"]) for d in first["commentsForPullRequestData"]), 2)
        rest = self.bot.get_comments_for_pull_request(pullRequestId="1", maxResults=2, nextToken=first["nextToken"])
        self.assertEqual([c["content"] for d in rest["commentsForPullRequestData"] for c in d["comments"]], ["first revision 2", "second revision"])
        self.assertNotIn("nextToken", rest)

        self.assertClientError("InvalidMaxResultsException", self.bot.get_comments_for_pull_request, pullRequestId="1", maxResults=501)
        self.assertClientError("InvalidContinuationTokenException", self.bot.get_comments_for_pull_request, pullRequestId="1", nextToken="zzz")
        self.assertClientError(
            "CommitIdRequiredException", self.bot.get_comments_for_pull_request, pullRequestId="1", repositoryName="shop", beforeCommitId=self.main
        )
        self.assertClientError(
            "RepositoryNameRequiredException", self.bot.get_comments_for_pull_request, pullRequestId="1", beforeCommitId=self.main, afterCommitId=newer
        )


class ApprovalTests(PullRequestTestCase):
    def test_approve_and_revoke_on_the_current_revision(self) -> None:
        pull_request = self.open_pull_request()
        revision = pull_request["revisionId"]
        self.assertEqual(self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=revision)["approvals"], [])
        self.bot.update_pull_request_approval_state(pullRequestId="1", revisionId=revision, approvalState="APPROVE")
        self.bot.update_pull_request_approval_state(pullRequestId="1", revisionId=revision, approvalState="APPROVE")
        self.assertEqual(
            self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=revision)["approvals"],
            [{"userArn": BOT, "approvalState": "APPROVE"}],
        )
        self.bot.update_pull_request_approval_state(pullRequestId="1", revisionId=revision, approvalState="REVOKE")
        self.assertEqual(
            self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=revision)["approvals"],
            [{"userArn": BOT, "approvalState": "REVOKE"}],
        )

    def test_a_new_revision_starts_without_approvals_and_the_old_one_is_not_current(self) -> None:
        pull_request = self.open_pull_request()
        old = pull_request["revisionId"]
        self.bot.update_pull_request_approval_state(pullRequestId="1", revisionId=old, approvalState="APPROVE")
        self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 5 }\n", "Change")
        current = self.get("1")["revisionId"]
        self.assertEqual(self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=current)["approvals"], [])
        self.assertEqual(len(self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=old)["approvals"]), 1)
        self.assertClientError(
            "RevisionNotCurrentException", self.bot.update_pull_request_approval_state, pullRequestId="1", revisionId=old, approvalState="APPROVE"
        )

    def test_approval_errors(self) -> None:
        pull_request = self.open_pull_request()
        revision = pull_request["revisionId"]
        self.assertClientError(
            "PullRequestCannotBeApprovedByAuthorException",
            self.author.update_pull_request_approval_state,
            pullRequestId="1",
            revisionId=revision,
            approvalState="APPROVE",
        )
        self.author.update_pull_request_approval_state(pullRequestId="1", revisionId=revision, approvalState="REVOKE")
        self.assertClientError(
            "InvalidRevisionIdException", self.bot.update_pull_request_approval_state, pullRequestId="1", revisionId="nope", approvalState="APPROVE"
        )
        self.assertClientError("InvalidRevisionIdException", self.bot.get_pull_request_approval_states, pullRequestId="1", revisionId="nope")
        self.author.update_pull_request_status(pullRequestId="1", pullRequestStatus="CLOSED")
        self.assertClientError(
            "PullRequestAlreadyClosedException", self.bot.update_pull_request_approval_state, pullRequestId="1", revisionId=revision, approvalState="APPROVE"
        )


class EventTests(PullRequestTestCase):
    def test_the_created_event_is_what_codecommit_emits(self) -> None:
        pull_request = self.open_pull_request()
        status, event = pull_request_event("1", "pullRequestCreated", repositoryName="shop", eventId="11111111-2222-4333-8444-555555555555")
        self.assertEqual(status, 200, event)
        self.assertEqual(event["id"], "11111111-2222-4333-8444-555555555555")
        self.assertEqual(
            {k: event[k] for k in ("version", "detail-type", "source", "account", "region", "resources")},
            {
                "version": "0",
                "detail-type": "CodeCommit Pull Request State Change",
                "source": "aws.codecommit",
                "account": ACCOUNT,
                "region": "us-east-1",
                "resources": [f"arn:aws:codecommit:us-east-1:{ACCOUNT}:shop"],
            },
        )
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        detail = event["detail"]
        self.assertRegex(detail.pop("creationDate"), JAVA_DATE)
        self.assertRegex(detail.pop("lastModifiedDate"), JAVA_DATE)
        self.assertTrue(detail.pop("notificationBody").startswith("A pull request event occurred in the following AWS CodeCommit repository: shop."))
        self.assertEqual(
            detail,
            {
                "author": AUTHOR,
                "callerUserArn": AUTHOR,
                "description": "The cart, at last.",
                "destinationCommit": self.main,
                "destinationReference": "refs/heads/main",
                "event": "pullRequestCreated",
                "isMerged": "False",
                "pullRequestId": "1",
                "pullRequestStatus": "Open",
                "repositoryNames": ["shop"],
                "revisionId": pull_request["revisionId"],
                "sourceCommit": self.feature,
                "sourceReference": "refs/heads/feature/cart",
                "title": "Add the cart",
            },
        )
        self.assertNotEqual(pull_request_event("1", "pullRequestCreated")[1]["id"], pull_request_event("1", "pullRequestCreated")[1]["id"])

    def test_update_close_and_merge_events(self) -> None:
        self.open_pull_request()
        newer = self.commit("feature/cart", self.feature, "cart.rs", "fn cart() -> u8 { 6 }\n", "Update")
        _, updated = pull_request_event("1", "pullRequestSourceBranchUpdated")
        self.assertEqual((updated["detail"]["event"], updated["detail"]["sourceCommit"]), ("pullRequestSourceBranchUpdated", newer))
        self.assertEqual(pull_request_event("1", "pullRequestMergeStatusUpdated")[0], 409)
        self.bot.merge_pull_request_by_fast_forward(pullRequestId="1", repositoryName="shop")
        _, merged = pull_request_event("1", "pullRequestMergeStatusUpdated")
        detail = merged["detail"]
        self.assertEqual(
            (detail["pullRequestStatus"], detail["isMerged"], detail["mergeOption"], detail["callerUserArn"]),
            ("Closed", "True", "FAST_FORWARD_MERGE", BOT),
        )
        _, closed = pull_request_event("1", "pullRequestStatusChanged")
        self.assertNotIn("mergeOption", closed["detail"])

    def test_event_errors(self) -> None:
        self.open_pull_request()
        self.assertEqual(pull_request_event("1", "pullRequestExploded")[0], 400)
        self.assertEqual(pull_request_event("2", "pullRequestCreated")[0], 404)
        self.assertEqual(pull_request_event("1", "pullRequestCreated", repositoryName="other")[0], 404)
        self.assertEqual(http("GET", "/_emulator/codecommit/pull-request-event?pullRequestId=1")[0], 400)


class RoundTripTests(PullRequestTestCase):
    """Every pull-request operation answered at least once through boto3's parser."""

    def test_every_implemented_operation_round_trips(self) -> None:
        CHECKED_OPERATIONS.clear()
        pull_request = self.open_pull_request()
        self.get("1")
        self.comment(pull_request, "hello", "round-trip")
        self.bot.get_comments_for_pull_request(pullRequestId="1")
        self.bot.update_pull_request_approval_state(pullRequestId="1", revisionId=pull_request["revisionId"], approvalState="APPROVE")
        self.bot.get_pull_request_approval_states(pullRequestId="1", revisionId=pull_request["revisionId"])
        self.bot.merge_pull_request_by_fast_forward(pullRequestId="1", repositoryName="shop")
        self.bot.update_pull_request_status(pullRequestId="1", pullRequestStatus="CLOSED")
        implemented = {operation for (_, operation) in APP._pull_request_handlers}
        self.assertEqual(implemented - CHECKED_OPERATIONS, set())


if __name__ == "__main__":
    unittest.main()
