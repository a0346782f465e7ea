"""Tests of the emulated STS AssumeRole (aws_ext/sts.py): refused as STS refuses it.

One in-process server (random port on 127.0.0.1, no Kubernetes cluster); every
test starts from POST /_emulator/reset.  Every boto3 answer is checked against
the output shape's required members.
"""

from __future__ import annotations

import sys
import unittest
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import model_checks  # noqa: E402
from aws_ext import make_app  # noqa: E402
from aws_ext.sts import canonical_role_arn, trust_allows  # noqa: E402

TARGET = "210987654321"
ROLE = f"arn:aws:iam::{TARGET}:role/eks-deploy-target"
CALLER_ROLE = "arn:aws:iam::123456789012:role/eks-cicd-EksDeployRole"
APP = make_app(None)
SERVER: Any = None
ENDPOINT = ""


def setUpModule() -> None:
    global SERVER, ENDPOINT
    SERVER, ENDPOINT = model_checks.start_server(APP)


def tearDownModule() -> None:
    model_checks.stop_server(SERVER)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
    if http_response.status_code == 200:
        model_checks.checked_output(parsed, model)


def trust(principal: Any, external_id: str | None = "shop-main-production") -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


class AssumeRoleTest(unittest.TestCase):
    def setUp(self) -> None:
        status, _ = model_checks.raw_request(ENDPOINT, "POST", "/_emulator/reset", {})
        self.assertEqual(status, 200)
        self.sts = model_checks.client(ENDPOINT, "sts", _after_call)

    def role(self, policy: dict[str, Any]) -> None:
        status, answer = model_checks.raw_request(
            ENDPOINT,
            "POST",
            "/_emulator/iam/role",
            {"accountId": TARGET, "roleName": "eks-deploy-target", "trustPolicy": policy},
        )
        self.assertEqual((status, answer), (200, {"arn": ROLE}))

    def assume(self, external_id: str | None = "shop-main-production", session: str = "production-e-1") -> Any:
        params = {"RoleArn": ROLE, "RoleSessionName": session}
        if external_id is not None:
            params["ExternalId"] = external_id
        return self.sts.assume_role(**params)

    def assert_denied(self, **kwargs: Any) -> None:
        with self.assertRaises(ClientError) as raised:
            self.assume(**kwargs)
        error = raised.exception.response["Error"]
        self.assertEqual(error["Code"], "AccessDenied")
        self.assertIn(f"is not authorized to perform: sts:AssumeRole on resource: {ROLE}", error["Message"])
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_a_role_that_does_not_exist_cannot_be_assumed(self) -> None:
        self.assert_denied()

    def test_the_external_id_must_be_the_one_the_trust_policy_requires(self) -> None:
        # moto's caller for the static key is a user of 123456789012: the account root trusts it.
        self.role(trust("arn:aws:iam::123456789012:root"))
        self.assert_denied(external_id="someone-else")
        self.assert_denied(external_id=None)

        credentials = self.assume()["Credentials"]

        assumed = model_checks.client(
            ENDPOINT,
            "sts",
            _after_call,
            access_key=credentials["AccessKeyId"],
            secret=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
        )
        identity = assumed.get_caller_identity()
        self.assertEqual(identity["Account"], TARGET)
        self.assertEqual(identity["Arn"], f"arn:aws:sts::{TARGET}:assumed-role/eks-deploy-target/production-e-1")

    def test_a_trust_policy_for_another_principal_refuses(self) -> None:
        self.role(trust("arn:aws:iam::999999999999:root"))
        self.assert_denied()

    def test_a_malformed_request_is_refused_as_the_model_says(self) -> None:
        self.role(trust("arn:aws:iam::123456789012:root"))
        body = urllib.parse.urlencode(
            {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": ROLE, "RoleSessionName": "x", "ExternalId": "shop-main-production"}
        ).encode()
        request = urllib.request.Request(
            ENDPOINT + "/",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        with self.assertRaises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        with raised.exception as error:
            self.assertEqual(error.code, 400)
            text = error.read().decode()
        self.assertIn("<Code>ValidationError</Code>", text)
        self.assertIn("RoleSessionName", text)


class TrustPolicyTest(unittest.TestCase):
    def test_a_role_principal_is_matched_by_its_sessions(self) -> None:
        caller = canonical_role_arn("arn:aws:sts::123456789012:assumed-role/eks-cicd-EksDeployRole/eks-deploy")
        self.assertEqual(caller, CALLER_ROLE)
        self.assertTrue(trust_allows(trust(CALLER_ROLE), caller, "shop-main-production"))
        self.assertTrue(trust_allows(trust([CALLER_ROLE, "arn:aws:iam::1:role/x"]), caller, "shop-main-production"))
        self.assertFalse(trust_allows(trust("arn:aws:iam::123456789012:role/other"), caller, "shop-main-production"))

    def test_a_deny_wins_and_an_unknown_condition_never_allows(self) -> None:
        policy = trust(CALLER_ROLE, external_id=None)
        policy["Statement"].append({"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
        self.assertFalse(trust_allows(policy, CALLER_ROLE, None))
        odd = trust(CALLER_ROLE, external_id=None)
        odd["Statement"][0]["Condition"] = {"StringLike": {"sts:ExternalId": "*"}}
        self.assertFalse(trust_allows(odd, CALLER_ROLE, "anything"))
        self.assertTrue(trust_allows(trust(CALLER_ROLE, external_id=None), CALLER_ROLE, None))


if __name__ == "__main__":
    unittest.main()
