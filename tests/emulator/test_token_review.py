"""Tests of token_review.py: EKS tokens reviewed as aws-iam-authenticator reviews them for EKS.

The tokens are made as clients make them (botocore presigning STS
GetCallerIdentity with the ``x-k8s-aws-id`` header), and the access entry is
the one ``infra/pipeline.yaml`` ships, so what the cluster's RBAC judges is the
user and groups a deployed eks-deploy gets.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import tempfile
import unittest
from pathlib import Path

import botocore.session
from botocore.credentials import Credentials
from botocore.model import ServiceId
from botocore.signers import RequestSigner

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from control_plane import Authority, serving_context  # noqa: E402
from eks_token import EksTokenVerifier  # noqa: E402
from token_review import (  # noqa: E402
    AccessEntry,
    CallerIdentity,
    TokenReviewer,
    TokenReviewServer,
    access_entries_from_template,
    canonical_arn,
    deploy_entry,
)

PIPELINE = HERE.parent.parent / "infra" / "pipeline.yaml"
CALLER = CallerIdentity("123456789012", "eks-cicd-EksDeployRole", "eks-deploy")


def token(cluster: str, key: str = "testing", secret: str = "testing") -> str:
    session = botocore.session.get_session()
    signer = RequestSigner(
        ServiceId("STS"), "us-east-1", "sts", "v4", Credentials(key, secret), session.get_component("event_emitter")
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster},
            "context": {},
        },
        region_name="us-east-1",
        expires_in=60,
        operation_name="",
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def reviewer() -> TokenReviewer:
    entry = deploy_entry(access_entries_from_template(PIPELINE), PIPELINE)
    verifier = EksTokenVerifier(credentials={"testing": "testing"}, cluster_names=lambda: ["shop-prod"])
    return TokenReviewer(verifier, callers={"testing": CALLER}, entry=entry)


class AccessEntryTests(unittest.TestCase):
    def test_the_shipped_access_entry_gives_the_eks_deploy_group_and_the_default_username(self) -> None:
        entries = access_entries_from_template(PIPELINE)
        # One per cluster of the pipeline's account (infra/environments.yml), all alike.
        self.assertEqual(
            [(e.cluster, e.kind, e.groups) for e in entries],
            [("shop-staging", "STANDARD", ("eks-deploy",)), ("shop-prod", "STANDARD", ("eks-deploy",))],
        )
        entry = deploy_entry(entries, PIPELINE)
        self.assertEqual((entry.kind, entry.groups, entry.principal), ("STANDARD", ("eks-deploy",), None))
        # EKS's default for an IAM role: its assumed-role ARN with the session name.
        self.assertEqual(
            entry.username_for(CALLER), "arn:aws:sts::123456789012:assumed-role/eks-cicd-EksDeployRole/eks-deploy"
        )

    def test_a_custom_username_takes_the_session_and_account(self) -> None:
        entry = AccessEntry("E", "STANDARD", ("g",), "deployer:{{AccountID}}:{{SessionName}}")
        self.assertEqual(entry.username_for(CALLER), "deployer:123456789012:eks-deploy")

    def test_entries_computed_at_deploy_time_are_refused_not_guessed(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            template = Path(folder) / "t.yaml"
            template.write_text(
                "Resources:\n  E:\n    Type: AWS::EKS::AccessEntry\n    Properties:\n"
                "      KubernetesGroups: [!Ref Group]\n"
            )
            with self.assertRaisesRegex(ValueError, "literal"):
                access_entries_from_template(template)
            template.write_text("Resources: {}\n")
            with self.assertRaisesRegex(ValueError, "found none"):
                deploy_entry(access_entries_from_template(template), template)

    def test_entries_that_map_eks_deploy_differently_cannot_share_one_cluster(self) -> None:
        entries = [AccessEntry("A", "STANDARD", ("eks-deploy",), None), AccessEntry("B", "STANDARD", ("admins",), None)]
        with self.assertRaisesRegex(ValueError, "A and B map eks-deploy differently"):
            deploy_entry(entries, PIPELINE)


TARGET_ROLE = "arn:aws:iam::210987654321:role/eks-deploy-target"
SESSION_ARN = "arn:aws:sts::210987654321:assumed-role/eks-deploy-target/shop-main-1f0c2d3e"


class AssumedRoleTests(unittest.TestCase):
    """Callers named by their STS assumed-role ARN, mapped as aws-iam-authenticator maps them."""

    def test_an_assumed_role_arn_stands_for_its_role(self) -> None:
        self.assertEqual(canonical_arn(SESSION_ARN), TARGET_ROLE)
        # The session is the last segment; a role's path is not in the ARN STS gives.
        self.assertEqual(
            canonical_arn("arn:aws-cn:sts::210987654321:assumed-role/team/deployer/s1"),
            "arn:aws-cn:iam::210987654321:role/team/deployer",
        )

    def test_other_principals_are_kept_or_refused(self) -> None:
        for kept in (
            TARGET_ROLE,
            "arn:aws:iam::210987654321:user/bob",
            "arn:aws:iam::210987654321:root",
            "arn:aws:sts::210987654321:federated-user/bob",
        ):
            self.assertEqual(canonical_arn(kept), kept)
        for refused in (
            "arn:aws:sts::210987654321:assumed-role/no-session",
            "arn:aws:iam::210987654321:group/admins",
            "arn:aws:s3:::bucket",
            "arn:elsewhere:iam::210987654321:role/r",
            "not-an-arn",
        ):
            with self.assertRaises(ValueError, msg=refused):
                canonical_arn(refused)

    def test_a_session_arn_is_the_caller_it_names(self) -> None:
        caller = CallerIdentity.from_arn(SESSION_ARN)
        self.assertEqual(caller, CallerIdentity("210987654321", "eks-deploy-target", "shop-main-1f0c2d3e"))
        self.assertEqual((caller.assumed_role_arn, caller.role_arn), (SESSION_ARN, TARGET_ROLE))
        with self.assertRaisesRegex(ValueError, "not a role session"):
            CallerIdentity.from_arn(TARGET_ROLE)

    def test_an_assumed_role_session_of_the_entrys_principal_is_its_user(self) -> None:
        # The target account's entry (infra/target-account.yaml) names the role; eks-deploy's
        # session of it, made by AssumeRole, is known by its temporary access key.
        entry = AccessEntry("TargetAccessEntry", "STANDARD", ("eks-deploy",), None, principal=TARGET_ROLE)
        sessions = {"ASIATARGET": CallerIdentity.from_arn(SESSION_ARN), "ASIAOTHER": CALLER}
        verifier = EksTokenVerifier(
            credentials={"ASIATARGET": "s1", "ASIAOTHER": "s2"}, cluster_names=lambda: ["shop-prod"]
        )
        reviewer = TokenReviewer(verifier, callers=sessions.get, entry=entry)

        status = reviewer.review(token("shop-prod", key="ASIATARGET", secret="s1"))

        self.assertTrue(status["authenticated"], status)
        self.assertEqual(status["user"]["username"], SESSION_ARN)
        self.assertEqual(status["user"]["groups"], ["eks-deploy"])
        self.assertEqual(status["user"]["extra"]["canonicalArn"], [TARGET_ROLE])
        self.assertEqual(status["user"]["extra"]["sessionName"], ["shop-main-1f0c2d3e"])
        # A session of another role has no entry here, whatever it signed.
        other = reviewer.review(token("shop-prod", key="ASIAOTHER", secret="s2"))
        self.assertEqual(other, {"authenticated": False, "error": "the caller has no access entry in this cluster"})


class ReviewTests(unittest.TestCase):
    def test_a_token_for_the_cluster_is_the_access_entrys_user(self) -> None:
        review = reviewer()
        good = token("shop-prod")
        status = review.review(good)
        self.assertTrue(status["authenticated"], status)
        self.assertEqual(status["user"]["username"], CALLER.assumed_role_arn)
        self.assertEqual(status["user"]["groups"], ["eks-deploy"])
        self.assertEqual(status["user"]["extra"]["canonicalArn"], [CALLER.role_arn])
        self.assertEqual(review.user_of(good), CALLER.assumed_role_arn)

    def test_tokens_of_another_cluster_key_or_shape_are_not_authenticated(self) -> None:
        review = reviewer()
        for bad in (token("elsewhere"), token("shop-prod", key="AKIDOTHER", secret="x"), "k8s-aws-v1.bm9wZQ", "static"):
            with self.subTest(token=bad[:20]):
                status = review.review(bad)
                self.assertFalse(status["authenticated"])
                self.assertTrue(status["error"])
                self.assertIsNone(review.user_of(bad))


class WebhookTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.folder = tempfile.TemporaryDirectory()
        cls.authority = Authority()
        tls = serving_context(cls.authority.issue("review"), Path(cls.folder.name), "review")
        cls.server = TokenReviewServer(reviewer(), tls)
        cls.server.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.folder.cleanup()

    def post(self, path: str, body: bytes) -> tuple[int, dict]:
        host, port = self.server._server.server_address[:2]
        connection = http.client.HTTPSConnection(host, port, context=self.authority.client_context(), timeout=10)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            connection.close()

    def test_the_api_servers_token_review_is_answered_in_kind(self) -> None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token("shop-prod")}}
        # The API server adds its own timeout to the configured URL.
        status, answer = self.post("/authenticate?timeout=30s", json.dumps(review).encode())
        self.assertEqual(status, 200)
        self.assertEqual((answer["apiVersion"], answer["kind"]), ("authentication.k8s.io/v1", "TokenReview"))
        self.assertTrue(answer["status"]["authenticated"])

    def test_what_is_not_a_token_review_is_refused(self) -> None:
        self.assertEqual(self.post("/authenticate", b"{}")[0], 400)
        self.assertEqual(self.post("/authenticate", b"not json")[0], 400)
        self.assertEqual(self.post("/elsewhere", b"{}")[0], 404)


if __name__ == "__main__":
    unittest.main()
