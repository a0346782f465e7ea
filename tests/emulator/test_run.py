"""Tests of run.py, the runner: a real process around real servers.

Each test runs ``run.py`` as a subprocess (bounded by timeouts) and checks
what scripts rely on: the endpoints file and environment reach the command,
the AWS emulator and the local cluster answer (the API server over TLS with
the published CA, the admin token, and EKS tokens through the TokenReview
webhook and RBAC), the exit status is the command's, and afterwards neither
the endpoints file nor a listening port nor a process of the cluster is left,
however the runner ended (its command finished, a signal, ``kill -9``).
"""

from __future__ import annotations

import http.client
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
           "not_granted": get(cluster, "/api/v1/namespaces", token("demo")),
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
    kube = endpoints["kubernetes"]
    return [int(url.rsplit(":", 1)[1]) for url in (endpoints["aws"]["endpoint"], kube["server"], kube["apiserver"])]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids still running (zombies count as gone)."""
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            living.add(pid)
    return living


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
                self.assertRegex(finished.stderr, r"Kubernetes v1\.\d+\.\d+ on https://127\.0\.0\.1:\d+ in [\d.]+ s")
                self.assertEqual(report["version"]["gitVersion"], endpoints["kubernetes"]["version"])
                self.assertIn("AWS emulator on http://127.0.0.1:", finished.stderr)
                self.assertNothingLeft(endpoints)

    def test_eks_tokens_for_emulated_clusters_are_accepted_and_rbac_decides(self) -> None:
        finished = self.run_with(PYTHON, "-c", EKS_CHILD, str(self.report))
        self.assertEqual(finished.returncode, 0, finished.stderr)
        # Authenticated as eks-deploy's access entry, which no role lets list namespaces;
        # a token signed for another cluster is not authenticated at all.
        self.assertEqual(
            json.loads(self.report.read_text()), {"valid": 200, "not_granted": 403, "other_cluster": 401}
        )

    def test_no_process_of_the_cluster_outlives_the_runner_even_killed(self) -> None:
        for how in ("command ends", "SIGTERM", "SIGKILL"):
            with self.subTest(how=how):
                self.report.unlink(missing_ok=True)
                argument = "0" if how == "command ends" else "wait"
                process = subprocess.Popen(
                    [PYTHON, RUN, "--endpoints", str(self.endpoints), "--", PYTHON, "-c", CHILD, str(self.report), argument],
                    stderr=subprocess.DEVNULL,
                )
                try:
                    wait_for(self.report, process)
                    cluster = descendants(process.pid)
                    self.assertGreaterEqual(len(cluster), 5, "etcd, kube-apiserver, the controllers, kwok")
                    if how == "SIGTERM":
                        process.send_signal(signal.SIGTERM)
                    elif how == "SIGKILL":
                        process.kill()
                    process.wait(timeout=TIMEOUT)
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait(timeout=TIMEOUT)
                deadline = time.monotonic() + 10
                while alive(cluster) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(alive(cluster), set(), f"left running after {how}")
                if how != "SIGKILL":  # a killed runner cannot tidy its files; its processes still die
                    self.assertNothingLeft(json.loads(self.report.read_text())["endpoints"])
                self.endpoints.unlink(missing_ok=True)
                for leftover in self.endpoints.parent.glob(".emulators.json.*"):
                    leftover.unlink()

    def test_a_cluster_that_cannot_start_says_why_and_leaves_nothing(self) -> None:
        binaries = self.directory / "binaries"
        binaries.mkdir()
        apiserver = binaries / "kube-apiserver"
        apiserver.write_text("#!/bin/sh\necho 'E1202 run.go:72] \"command failed\" err=\"no good\"' >&2\nexit 1\n")
        apiserver.chmod(0o755)
        finished = subprocess.run(
            [PYTHON, RUN, "--endpoints", str(self.endpoints), "--", "true"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, "KUBERNETES_BINARIES": str(binaries)},
        )
        self.assertNotEqual(finished.returncode, 0)
        self.assertIn("kube-apiserver exited with 1", finished.stderr)
        self.assertIn('err=\"no good\"', finished.stderr)
        self.assertFalse(self.endpoints.exists())

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


class EndpointsFileTests(unittest.TestCase):
    def test_written_atomically_without_leftovers(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "sub" / "endpoints.json"
            run.write_atomically(path, {"a": 1})
            run.write_atomically(path, {"a": 2})
            self.assertEqual(json.loads(path.read_text()), {"a": 2})
            self.assertEqual(os.listdir(path.parent), ["endpoints.json"])


class AwsServerConnectionTests(unittest.TestCase):
    """The AWS emulator keeps connections alive as AWS does (the SDK reuses them)."""

    def test_requests_share_one_connection_and_no_body_leaks_into_the_next(self) -> None:
        seen: list[tuple[str, str, bytes]] = []

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            # /ignore leaves its body unread, as an application answering an error may.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = b"" if environ["PATH_INFO"] == "/ignore" else environ["wsgi.input"].read(length)
            seen.append((environ["PATH_INFO"], environ["REMOTE_PORT"], body))
            # No Content-Length: the answer is chunked, in several writes.
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok ", body]

        server, _ = run.start_aws_server(app)
        connection = http.client.HTTPConnection(run.HOST, server.server_port, timeout=10)
        try:
            for path, body in [("/a", b"x" * 10), ("/ignore", b"y" * 70_000), ("/b", b"z")]:
                connection.request("POST", path, body=body)
                answer = connection.getresponse()
                self.assertIsNone(answer.getheader("Connection"), path)
                self.assertEqual(answer.read(), b"ok " + (b"" if path == "/ignore" else body))
            self.assertEqual([path for path, _, _ in seen], ["/a", "/ignore", "/b"])
            self.assertEqual(len({port for _, port, _ in seen}), 1, "one connection for all three")
            self.assertEqual(seen[2][2], b"z")

            # A chunked body's end is only known once read: that answer closes the connection.
            connection.putrequest("POST", "/chunked")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders(b"1\r\nq\r\n0\r\n\r\n")
            answer = connection.getresponse()
            self.assertEqual(answer.getheader("Connection"), "close")
            answer.read()
        finally:
            connection.close()
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    unittest.main()
