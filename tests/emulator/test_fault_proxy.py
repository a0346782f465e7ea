"""Tests of fault_proxy.py against a small scripted HTTPS upstream (no cluster needed).

The upstream plays the API server's part that matters here: it answers plain
requests, streams a watch as one JSON line per event, and refuses a PATCH whose
resourceVersion is stale with a 409, as kube-apiserver does.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_plane import Authority, serving_context  # noqa: E402
from fault_proxy import FaultError, FaultProxy  # noqa: E402

ADMIN = "admin-token"
TIMEOUT = 10


class Upstream:
    """A Deployment `web` with a resourceVersion, and a watch of three events."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.version = 1
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                with upstream.lock:
                    upstream.seen.append(("GET", self.path, self.headers.get("Authorization")))
                if "watch=true" in self.path:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for n in range(3):
                            line = json.dumps({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": str(10 + n)}}}).encode() + b"\n"
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                            self.wfile.flush()
                            time.sleep(0.05)
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:  # the proxy cut this watch
                        self.close_connection = True
                    return
                with upstream.lock:
                    version = upstream.version
                self._json(200, {"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": str(version)}})

            def do_PATCH(self) -> None:
                patch = json.loads(self._body())
                with upstream.lock:
                    upstream.seen.append(("PATCH", self.path, self.headers.get("Authorization")))
                    wanted = patch.get("metadata", {}).get("resourceVersion")
                    if wanted is not None and wanted != str(upstream.version):
                        return self._json(409, {"kind": "Status", "code": 409, "reason": "Conflict"})
                    upstream.version += 1
                    version = upstream.version
                self._json(200, {"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": str(version)}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FaultProxyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.folder = Path(__import__("tempfile").mkdtemp(prefix="fault-proxy-test-"))
        cls.authority = Authority()
        cls.upstream = Upstream(serving_context(cls.authority.issue("upstream"), cls.folder, "upstream"))
        users = {"eks-token": "arn:aws:sts::123456789012:assumed-role/deploy/eks-deploy"}
        cls.proxy = FaultProxy(
            upstream=cls.upstream.address,
            upstream_tls=cls.authority.client_context(),
            serving_tls=serving_context(cls.authority.issue("proxy"), cls.folder, "proxy"),
            user_of=users.get,
            admin_token=ADMIN,
            admin_user="emulator-admin",
        )
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.proxy.stop()
        cls.upstream.stop()
        for path in cls.folder.iterdir():
            path.unlink()
        cls.folder.rmdir()

    def setUp(self) -> None:
        self.proxy.reset()
        with self.upstream.lock:
            self.upstream.seen.clear()

    def connection(self) -> http.client.HTTPSConnection:
        host, port = self.proxy._server.server_address[:2]
        return http.client.HTTPSConnection(host, port, context=self.authority.client_context(), timeout=TIMEOUT)

    def call(self, method: str, path: str, body: Any = None, token: str = "eks-token") -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            headers = {"Authorization": f"Bearer {token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/strategic-merge-patch+json"
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            connection.close()

    def test_requests_are_forwarded_with_their_token_and_logged_with_the_user(self) -> None:
        status, _, body = self.call("GET", "/apis/apps/v1/namespaces/shop/deployments/web")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["metadata"]["name"], "web")
        self.assertEqual(self.upstream.seen, [("GET", "/apis/apps/v1/namespaces/shop/deployments/web", "Bearer eks-token")])
        [entry] = self.proxy.request_log()
        self.assertEqual(
            {k: entry[k] for k in ("method", "path", "query", "user", "status", "watch", "fault")},
            {
                "method": "GET",
                "path": "/apis/apps/v1/namespaces/shop/deployments/web",
                "query": {},
                "user": "arn:aws:sts::123456789012:assumed-role/deploy/eks-deploy",
                "status": 200,
                "watch": False,
                "fault": None,
            },
        )

    def test_a_status_fault_is_answered_here_with_the_api_servers_status_body(self) -> None:
        self.proxy.inject("GET", r"/deployments/web$", status=429, count=1)
        status, headers, body = self.call("GET", "/apis/apps/v1/namespaces/shop/deployments/web")
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("Retry-After"), "1")
        self.assertEqual(json.loads(body)["reason"], "TooManyRequests")
        self.assertEqual(self.upstream.seen, [], "the request never arrived")
        self.assertEqual(self.call("GET", "/apis/apps/v1/namespaces/shop/deployments/web")[0], 200, "one time only")
        self.assertEqual([e["status"] for e in self.proxy.request_log()], [429, 200])
        self.assertEqual(self.proxy.request_log()[0]["fault"], "status-429")

    def test_a_race_makes_the_api_server_refuse_the_stale_patch_itself(self) -> None:
        path = "/apis/apps/v1/namespaces/shop/deployments/web"
        version = json.loads(self.call("GET", path)[2])["metadata"]["resourceVersion"]
        self.proxy.inject("PATCH", r"/deployments/web$", race=True)
        status, _, body = self.call("PATCH", path, {"metadata": {"resourceVersion": version}})
        self.assertEqual((status, json.loads(body)["reason"]), (409, "Conflict"))
        methods = [(method, token) for method, _, token in self.upstream.seen]
        self.assertEqual(methods, [("GET", "Bearer eks-token"), ("PATCH", f"Bearer {ADMIN}"), ("PATCH", "Bearer eks-token")])

    def test_a_reset_before_never_arrives_and_one_after_is_applied_but_unanswered(self) -> None:
        path = "/apis/apps/v1/namespaces/shop/deployments/web"
        for when, arrives in (("before", False), ("after", True)):
            with self.subTest(when=when):
                with self.upstream.lock:
                    self.upstream.seen.clear()
                self.proxy.inject("PATCH", r"/deployments/web$", reset=when)
                with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected, ssl.SSLError, OSError)):
                    self.call("PATCH", path, {"metadata": {}})
                self.assertEqual(any(m == "PATCH" for m, _, _ in self.upstream.seen), arrives)

    def test_watches_are_relayed_event_by_event_and_cut_mid_stream_on_demand(self) -> None:
        path = "/apis/apps/v1/namespaces/shop/deployments?watch=true&resourceVersion=9"
        status, _, body = self.call("GET", path)
        self.assertEqual(status, 200)
        self.assertEqual(len(body.splitlines()), 3)
        self.proxy.cut_watches(1, count=1, path_regex="/deployments$")
        connection = self.connection()
        try:
            connection.request("GET", path, headers={"Authorization": "Bearer eks-token"})
            answer = connection.getresponse()
            self.assertEqual(answer.status, 200)
            first = answer.readline()
            self.assertEqual(json.loads(first)["object"]["metadata"]["resourceVersion"], "10")
            with self.assertRaises((http.client.IncompleteRead, http.client.HTTPException, ConnectionError, OSError)):
                answer.read()  # no terminating chunk: a broken connection, not an end
        finally:
            connection.close()
        watch = self.proxy.request_log()[-1]
        self.assertTrue(watch["watch"])
        self.assertEqual(watch["query"], {"watch": "true", "resourceVersion": "9"})

    def test_faults_are_refused_when_they_make_no_sense(self) -> None:
        for bad in (
            {"status": 200},
            {"race": True, "status": 500},
            {},
            {"reset": "sometime"},
        ):
            with self.subTest(bad=bad), self.assertRaises(FaultError):
                self.proxy.inject("PATCH", ".*", **bad)
        with self.assertRaises(FaultError):
            self.proxy.inject("GET", ".*", race=True)
        with self.assertRaises(FaultError):
            self.proxy.inject("GET", "(", status=500)

    def test_the_admin_token_is_logged_as_the_admin(self) -> None:
        self.call("GET", "/version", token=ADMIN)
        self.assertEqual(self.proxy.request_log()[0]["user"], "emulator-admin")

    def test_a_client_that_never_finishes_its_handshake_stalls_no_one_else(self) -> None:
        host, port = self.proxy._server.server_address[:2]
        with socket.create_connection((host, port), timeout=TIMEOUT):
            self.assertEqual(self.call("GET", "/version")[0], 200)


if __name__ == "__main__":
    unittest.main()
