"""Tests of what the benchmark asks of the emulators: the AWS request log."""

from __future__ import annotations

import json
import sys
import unittest
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import botocore.config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from aws_ext import make_app  # noqa: E402


class NoCluster:
    """Stands in for the local cluster, which these tests do not need."""

    server_url = "https://127.0.0.1:6443"
    ca_pem = b""

    def reset(self) -> None:
        pass


class BenchHookTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.kube = NoCluster()
        cls.server, _ = run.start_aws_server(make_app(cls.kube))
        cls.endpoint = f"http://127.0.0.1:{cls.server.server_port}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self) -> None:
        self.admin("POST", "/reset", {})  # also empties the AWS request log

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.endpoint}/_emulator{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )

    def test_every_protocol_is_logged_with_its_service_operation_and_sdk(self) -> None:
        self.client("codepipeline").list_pipelines()  # JSON protocol (X-Amz-Target)
        topic = self.client("sns").create_topic(Name="builds")["TopicArn"]  # query protocol, form body
        self.client("eks").list_clusters()  # REST protocol

        status, log = self.admin("GET", "/aws/requests")

        self.assertEqual(status, 200)
        self.assertEqual(
            [(r["service"], r["operation"], r["sdk"]) for r in log["requests"]],
            [
                ("codepipeline", "ListPipelines", "Boto3"),
                ("sns", "CreateTopic", "Boto3"),
                ("eks", "GET /clusters", "Boto3"),
            ],
        )
        # The form body read for the log still reached moto.
        self.assertEqual(self.client("sns").list_topics()["Topics"], [{"TopicArn": topic}])

    def test_an_application_name_in_the_user_agent_is_kept(self) -> None:
        client = boto3.client(
            "sns",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(user_agent_appid="bench-harness"),
        )
        client.list_topics()
        self.client("sns").list_topics()

        apps = [r["app"] for r in self.admin("GET", "/aws/requests")[1]["requests"]]

        self.assertEqual(apps, ["bench-harness", ""])

    def test_admin_calls_are_not_logged_and_delete_clears_the_log(self) -> None:
        self.client("sns").list_topics()
        self.admin("GET", "/health")
        self.assertEqual(len(self.admin("GET", "/aws/requests")[1]["requests"]), 1)

        self.assertEqual(self.admin("DELETE", "/aws/requests")[0], 200)

        self.assertEqual(self.admin("GET", "/aws/requests")[1]["requests"], [])


if __name__ == "__main__":
    unittest.main()
