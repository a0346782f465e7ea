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
    single_standard_entry,
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
    entry = single_standard_entry(access_entries_from_template(PIPELINE), PIPELINE)
    verifier = EksTokenVerifier(credentials={"testing": "testing"}, cluster_names=lambda: ["shop-prod"])
    return TokenReviewer(verifier, callers={"testing": CALLER}, entry=entry)


class AccessEntryTests(unittest.TestCase):
    def test_the_shipped_access_entry_gives_the_eks_deploy_group_and_the_default_username(self) -> None:
        entry = single_standard_entry(access_entries_from_template(PIPELINE), PIPELINE)
        self.assertEqual((entry.name, entry.kind, entry.groups), ("DeployAccessEntry", "STANDARD", ("eks-deploy",)))
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
                single_standard_entry(access_entries_from_template(template), template)


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
