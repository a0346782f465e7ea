"""Tests of run.py, the runner: a real process around real servers.

Each test runs ``run.py`` as a subprocess (bounded by timeouts) and checks
what scripts rely on: the endpoints file and environment reach the command,
both servers answer (the Kubernetes one over TLS with the published CA and
the static token), the exit status is the command's, and afterwards neither
the endpoints file nor a listening port is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

PYTHON = sys.executable
RUN = str(HERE / "run.py")
TIMEOUT = 60

# The command under test: reads EMULATORS_FILE, calls AWS through boto3 (configured
# only by the environment run.py sets) and the Kubernetes /version over TLS.
CHILD = r"""
import base64, json, os, ssl, sys, time, urllib.request
import boto3
endpoints = json.load(open(os.environ["EMULATORS_FILE"]))
assert os.environ["AWS_ENDPOINT_URL"] == endpoints["aws"]["endpoint"]
repository = boto3.client("codecommit").create_repository(repositoryName="from-child")["repositoryMetadata"]
kube = endpoints["kubernetes"]
tls = ssl.create_default_context(cadata=base64.b64decode(kube["ca_data"]).decode())
request = urllib.request.Request(kube["server"] + "/version", headers={"Authorization": "Bearer " + kube["static_token"]})
with urllib.request.urlopen(request, context=tls, timeout=10) as response:
    version = json.load(response)
report = {"endpoints": endpoints, "repository": repository["repositoryName"], "version": version,
          "region": os.environ["AWS_REGION"], "file": os.environ["EMULATORS_FILE"]}
with open(sys.argv[1], "w") as handle:
    json.dump(report, handle)
if sys.argv[2] == "wait":
    time.sleep(30)
sys.exit(int(sys.argv[2]) if sys.argv[2] != "wait" else 0)
"""

# EKS end to end: a cluster created through the AWS emulator points at the Kubernetes
# emulator, which accepts an EKS token (presigned STS GetCallerIdentity) for it only.
EKS_CHILD = r"""
import base64, json, ssl, sys, urllib.error, urllib.request
import boto3, botocore.session
from botocore.model import ServiceId
from botocore.signers import RequestSigner

def token(cluster):
    session = botocore.session.get_session()
    sts = "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15"
    signer = RequestSigner(ServiceId("STS"), "us-east-1", "sts", "v4", session.get_credentials(), session.get_component("event_emitter"))
    url = signer.generate_presigned_url(
        {"method": "GET", "url": sts, "body": {}, "headers": {"x-k8s-aws-id": cluster}, "context": {}},
        region_name="us-east-1", expires_in=60, operation_name="")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")

def get(cluster, path, bearer):
    tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificateAuthority"]["data"]).decode())
    request = urllib.request.Request(cluster["endpoint"] + path, headers={"Authorization": "Bearer " + bearer})
    try:
        with urllib.request.urlopen(request, context=tls, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code

eks = boto3.client("eks")
eks.create_cluster(name="demo", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={"subnetIds": []})
cluster = eks.describe_cluster(name="demo")["cluster"]
json.dump({"valid": get(cluster, "/version", token("demo")),
           "other_cluster": get(cluster, "/api/v1/namespaces", token("elsewhere"))}, open(sys.argv[1], "w"))
"""


def wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"run.py exited early with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {seconds} s")
        time.sleep(0.05)


def ports(endpoints: dict[str, Any]) -> list[int]:
    return [int(endpoints["aws"]["endpoint"].rsplit(":", 1)[1]), int(endpoints["kubernetes"]["server"].rsplit(":", 1)[1])]


class RunnerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="emulators-test-"))
        self.endpoints = self.directory / "nested" / "emulators.json"
        self.report = self.directory / "report.json"

    def tearDown(self) -> None:
        for path in sorted(self.directory.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        self.directory.rmdir()

    def assertNothingLeft(self, endpoints: dict[str, Any]) -> None:
        self.assertFalse(self.endpoints.exists(), "endpoints file left behind")
        self.assertEqual([p.name for p in self.endpoints.parent.iterdir()], [], "temporary files left behind")
        for port in ports(endpoints):
            with self.assertRaises(ConnectionRefusedError, msg=f"port {port} still listening"):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()

    def run_with(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, RUN, "--endpoints", str(self.endpoints), "--", *command],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def test_command_sees_both_emulators_and_its_status_is_returned(self) -> None:
        for status in (0, 3):
            with self.subTest(status=status):
                finished = self.run_with(PYTHON, "-c", CHILD, str(self.report), str(status))
                self.assertEqual(finished.returncode, status, finished.stderr)
                report = json.loads(self.report.read_text())
                endpoints = report["endpoints"]
                self.assertEqual(report["repository"], "from-child")
                self.assertIn("gitVersion", report["version"])
                self.assertEqual(report["region"], "us-east-1")
                self.assertEqual(report["file"], str(self.endpoints))
                self.assertEqual((endpoints["region"], endpoints["account_id"]), ("us-east-1", "123456789012"))
                self.assertEqual(endpoints["admin"], endpoints["aws"]["endpoint"] + "/_emulator")
                self.assertTrue(endpoints["kubernetes"]["server"].startswith("https://127.0.0.1:"))
                self.assertIn("Kubernetes emulator on https://127.0.0.1:", finished.stderr)
                self.assertIn("AWS emulator on http://127.0.0.1:", finished.stderr)
                self.assertNothingLeft(endpoints)

    def test_eks_tokens_for_emulated_clusters_are_accepted(self) -> None:
        finished = self.run_with(PYTHON, "-c", EKS_CHILD, str(self.report))
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertEqual(json.loads(self.report.read_text()), {"valid": 200, "other_cluster": 401})

    def test_signals_are_forwarded_to_the_command(self) -> None:
        process = subprocess.Popen(
            [PYTHON, RUN, "--endpoints", str(self.endpoints), "--", PYTHON, "-c", CHILD, str(self.report), "wait"],
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(self.report, process)
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(timeout=TIMEOUT), 128 + signal.SIGTERM)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=TIMEOUT)
        self.assertNothingLeft(json.loads(self.report.read_text())["endpoints"])

    def test_without_a_command_it_serves_until_interrupted(self) -> None:
        process = subprocess.Popen([PYTHON, RUN, "--endpoints", str(self.endpoints)], stderr=subprocess.DEVNULL)
        try:
            wait_for(self.endpoints, process)
            endpoints = json.loads(self.endpoints.read_text())
            with urllib.request.urlopen(endpoints["admin"] + "/health", timeout=10) as response:
                self.assertEqual(json.load(response), {"status": "ok"})
            process.send_signal(signal.SIGINT)
            self.assertEqual(process.wait(timeout=TIMEOUT), 0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=TIMEOUT)
        self.assertNothingLeft(endpoints)

    def test_a_missing_command_exits_127(self) -> None:
        finished = self.run_with(str(self.directory / "no-such-command"))
        self.assertEqual(finished.returncode, 127)
        self.assertFalse(self.endpoints.exists())


class VerifierTests(unittest.TestCase):
    def test_static_token_first_then_eks(self) -> None:
        asked: list[str] = []

        def eks(token: str) -> str:
            asked.append(token)
            if token != "eks-token":
                raise ValueError("not an EKS token")
            return "testing"

        verify = run.combined_token_verifier("static-secret", eks)
        self.assertEqual(verify("static-secret"), run.STATIC_TOKEN_USER)
        self.assertEqual(verify("eks-token"), "testing")
        with self.assertRaises(ValueError):
            verify("static-secreT")
        self.assertEqual(asked, ["eks-token", "static-secreT"])


class EndpointsFileTests(unittest.TestCase):
    def test_written_atomically_without_leftovers(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "sub" / "endpoints.json"
            run.write_atomically(path, {"a": 1})
            run.write_atomically(path, {"a": 2})
            self.assertEqual(json.loads(path.read_text()), {"a": 2})
            self.assertEqual(os.listdir(path.parent), ["endpoints.json"])


if __name__ == "__main__":
    unittest.main()
