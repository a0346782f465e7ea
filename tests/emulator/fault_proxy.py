"""A TLS proxy in front of the local kube-apiserver: it forwards, and breaks only what a test asks.

A real API server answers 500, 429 or a resourceVersion conflict only when it
is in trouble, and never cuts a watch or resets a connection on demand. The
tests need exactly those moments, so eks-deploy reaches the cluster through
this proxy (it is the endpoint the emulated DescribeCluster gives) while the
API server decides everything else: authentication (the TokenReview webhook),
RBAC, admission, the controllers' status.

Faults, each for a number of requests matching a method and a path regex:

* ``status``: answered here with that HTTP status and the ``Status`` body the
  API server sends for it (``Retry-After`` on 429); the request never arrives.
* ``race``: a real conflict. Just before the request is forwarded, the proxy
  changes the object itself (a label, as the cluster's admin), so the
  API server refuses the request's stale resourceVersion with its own 409.
* ``reset``: the connection is reset (RST) ``before`` forwarding, or ``after``
  the API server applied the request, so the answer is lost.
* watch cuts: a watch is cut mid-stream (no terminating chunk, as a broken
  connection looks) after a number of events.

Every request is logged (method, path, query, user, status, watch, fault);
the user is what the TokenReview webhook said of the request's token.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FaultProxy", "FaultError"]

#: Headers that belong to one hop, not to the request or answer (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
#: A watch stays open as long as the API server keeps it (timeoutSeconds); a plain request
#: that gets no answer within this is treated as a dead upstream.
UPSTREAM_TIMEOUT = 330.0
MAX_BODY = 8 * 1024 * 1024
REASONS = {
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class FaultError(ValueError):
    """A fault that cannot be injected as asked."""


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    remaining: int
    status: int | None = None
    race: bool = False
    reset: str | None = None
    hits: int = 0

    def describe(self) -> str:
        if self.race:
            return "race"
        if self.reset is not None:
            return f"reset-{self.reset}"
        return f"status-{self.status}"


@dataclass
class WatchCut:
    events: int
    remaining: int
    path: re.Pattern[str] | None
    hits: int = 0


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    cuts: list[WatchCut] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    races: int = 0


class FaultProxy:
    """Forwards HTTPS requests to ``upstream`` (host, port), trusting ``upstream_tls``.

    ``user_of(token)`` names the user of a bearer token for the log;
    ``admin_token`` is the cluster admin's, for the changes a race makes.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        upstream_tls: ssl.SSLContext,
        serving_tls: ssl.SSLContext,
        user_of: Callable[[str], str | None],
        admin_token: str,
        admin_user: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream
        self.upstream_tls = upstream_tls
        self.user_of = user_of
        self.admin_token = admin_token
        self.admin_user = admin_user
        self.state = State()
        self._server = _QuietServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        # Handshakes happen in the handler threads, so one slow client cannot stall the others.
        self._server.socket = serving_tls.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- what tests ask -----------------------------------------------------------------

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int | None = None,
        count: int = 1,
        race: bool = False,
        reset: str | None = None,
    ) -> None:
        """The next ``count`` requests of ``method`` whose path matches get the fault."""
        chosen = [status is not None, race, reset is not None]
        if sum(chosen) != 1:
            raise FaultError("give exactly one of status, race or reset")
        if status is not None and not 400 <= status <= 599:
            raise FaultError("status must be an HTTP error status (400-599)")
        if reset is not None and reset not in ("before", "after"):
            raise FaultError("reset must be 'before' or 'after'")
        if race and method.upper() not in ("PATCH", "PUT"):
            raise FaultError("a race needs a PATCH or PUT carrying a resourceVersion")
        if not 1 <= count <= 1000:
            raise FaultError("count must be between 1 and 1000")
        fault = Fault(
            method=method.upper(),
            path=_compile(path_regex),
            remaining=count,
            status=status,
            race=race,
            reset=reset,
        )
        with self.state.lock:
            self.state.faults.append(fault)

    def cut_watches(self, events: int, count: int = 1, path_regex: str | None = None) -> None:
        """The next ``count`` watches (matching ``path_regex``) are cut after ``events`` events."""
        if not 0 <= events <= 10_000 or not 1 <= count <= 1000:
            raise FaultError("events must be 0-10000 and count 1-1000")
        cut = WatchCut(events=events, remaining=count, path=_compile(path_regex) if path_regex else None)
        with self.state.lock:
            self.state.cuts.append(cut)

    def faults(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [
                {"method": f.method, "pathRegex": f.path.pattern, "fault": f.describe(), "remaining": f.remaining, "hits": f.hits}
                for f in self.state.faults
            ] + [
                {"watchCutAfter": c.events, "pathRegex": c.path.pattern if c.path else None, "remaining": c.remaining, "hits": c.hits}
                for c in self.state.cuts
            ]

    def request_log(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(entry) for entry in self.state.log]

    def clear_request_log(self) -> None:
        with self.state.lock:
            self.state.log.clear()

    def reset(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.cuts.clear()
            self.state.log.clear()

    # --- for the handler ----------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if fault.remaining > 0 and fault.method == method and fault.path.search(path):
                    fault.remaining -= 1
                    fault.hits += 1
                    return fault
        return None

    def take_cut(self, path: str) -> WatchCut | None:
        with self.state.lock:
            for cut in self.state.cuts:
                if cut.remaining > 0 and (cut.path is None or cut.path.search(path)):
                    cut.remaining -= 1
                    cut.hits += 1
                    return cut
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.state.lock:
            if len(self.state.log) >= 100_000:
                del self.state.log[:10_000]
            self.state.log.append(entry)

    def connect_upstream(self) -> http.client.HTTPSConnection:
        host, port = self.upstream
        return http.client.HTTPSConnection(host, port, context=self.upstream_tls, timeout=UPSTREAM_TIMEOUT)

    def make_race(self, path: str) -> None:
        """Changes the object at ``path`` as the admin, so a request computed before is stale."""
        with self.state.lock:
            self.state.races += 1
            serial = self.state.races
        # A label, not an annotation: a Deployment's annotations are copied to its ReplicaSets, so
        # changing one bumps its generation; a label changes only its resourceVersion.
        body = json.dumps({"metadata": {"labels": {"emulator.cicd/race": str(serial)}}}).encode()
        connection = self.connect_upstream()
        try:
            connection.request(
                "PATCH",
                path,
                body=body,
                headers={
                    "Authorization": f"Bearer {self.admin_token}",
                    "Content-Type": "application/merge-patch+json",
                    "Accept": "application/json",
                },
            )
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise FaultError(f"the race's own change of {path} was refused: {answer.status}")
        finally:
            connection.close()


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-answer (a cut watch, a test that ended) is no error here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (OSError, ssl.SSLError, http.client.HTTPException)):
            return
        super().handle_error(request, client_address)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise FaultError(f"invalid regex {pattern!r}: {error}") from None


def _status_body(code: int, message: str) -> bytes:
    reason = REASONS.get(code, "InternalError")
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An answer leaves in pieces (the headers, then the body or each chunk of a watch): with
        # Nagle's algorithm a piece waits for the client's ACK of the one before, which the
        # client delays by 40 ms. The API server (Go) sends without delay; so must its proxy.
        disable_nagle_algorithm = True
        upstream: http.client.HTTPSConnection | None = None

        def setup(self) -> None:
            # The TLS handshake, here in the connection's own thread.
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise
            self.request.settimeout(None)
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._forward()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                if self.upstream is not None:
                    self.upstream.close()

        # --- one request --------------------------------------------------------------

        def _forward(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            watch = query.get("watch") in ("true", "1")
            token = _bearer(self.headers.get("Authorization", ""))
            entry: dict[str, Any] = {
                "method": self.command,
                "path": parts.path,
                "query": query,
                "user": self._user(token),
                "watch": watch,
                "status": None,
                "fault": None,
                "at": time.time(),
            }
            body = self._read_body()
            if body is None:
                entry["status"] = 400
                proxy.record(entry)
                return self._answer(400, _status_body(400, "unreadable request body"))

            fault = proxy.take_fault(self.command, parts.path)
            if fault is not None:
                entry["fault"] = fault.describe()
                if fault.status is not None:
                    entry["status"] = fault.status
                    proxy.record(entry)
                    extra = {"Retry-After": "1"} if fault.status == 429 else {}
                    message = f"injected by the fault proxy: {fault.status} {REASONS.get(fault.status, '')}".strip()
                    return self._answer(fault.status, _status_body(fault.status, message), extra)
                if fault.reset == "before":
                    proxy.record(entry)
                    return self._reset()
                if fault.race:
                    try:
                        proxy.make_race(parts.path)
                    except (OSError, FaultError, http.client.HTTPException) as error:
                        entry["status"] = 502
                        proxy.record(entry)
                        return self._answer(502, _status_body(502, f"the fault proxy could not make the race: {error}"))

            try:
                answer = self._send_upstream(body)
            except (OSError, http.client.HTTPException) as error:
                entry["status"] = 502
                proxy.record(entry)
                return self._answer(502, _status_body(502, f"the API server did not answer the fault proxy: {error}"))
            entry["status"] = answer.status
            if user := self._user(token):
                entry["user"] = user
            proxy.record(entry)
            if fault is not None and fault.reset == "after":
                answer.read()
                return self._reset()
            if watch and answer.status == 200:
                return self._relay_watch(answer, proxy.take_cut(parts.path))
            self._relay(answer)

        def _user(self, token: str | None) -> str | None:
            if token is None:
                return None
            if token == proxy.admin_token:
                return proxy.admin_user
            return proxy.user_of(token)

        def _read_body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                total = 0
                while True:
                    line = self.rfile.readline(1024)
                    try:
                        size = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        return None
                    if size == 0:
                        self.rfile.readline(1024)
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline(1024)
            length = self.headers.get("Content-Length")
            if not length:
                return b""
            if not length.isdigit() or int(length) > MAX_BODY:
                return None
            return self.rfile.read(int(length))

        def _send_upstream(self, body: bytes) -> http.client.HTTPResponse:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
            for attempt in (1, 2):
                if self.upstream is None:
                    self.upstream = proxy.connect_upstream()
                try:
                    self.upstream.request(self.command, self.path, body=body or None, headers=headers)
                    return self.upstream.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    # A kept-alive upstream connection the API server closed meanwhile.
                    self.upstream.close()
                    self.upstream = None
                    if attempt == 2:
                        raise
            raise http.client.HTTPException("unreachable")

        def _start(self, answer: http.client.HTTPResponse, chunked: bool) -> None:
            self.send_response_only(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() in HOP_BY_HOP or (chunked and key.lower() == "content-length"):
                    continue
                self.send_header(key, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _relay(self, answer: http.client.HTTPResponse) -> None:
            if answer.getheader("Content-Length") is not None or self.command == "HEAD":
                data = answer.read()
                self._start(answer, chunked=False)
                self.wfile.write(data)
                self.wfile.flush()
                return
            self._start(answer, chunked=True)
            while data := answer.read1(65536):
                self._chunk(data)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _relay_watch(self, answer: http.client.HTTPResponse, cut: WatchCut | None) -> None:
            """A watch is one JSON event per line: relayed line by line, as the events come."""
            self._start(answer, chunked=True)
            events = 0
            try:
                while True:
                    if cut is not None and events >= cut.events:
                        # Cut as a broken connection looks: no terminating chunk.
                        self.upstream.close()
                        self.upstream = None
                        self.close_connection = True
                        self.request.shutdown(socket.SHUT_RDWR)
                        return
                    line = answer.readline(MAX_BODY)
                    if not line:
                        break
                    self._chunk(line)
                    events += 1
            except (OSError, http.client.HTTPException):
                # The client went away, or the API server did: nothing more to relay.
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response_only(status, REASONS.get(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _reset(self) -> None:
            """RST instead of an answer: SO_LINGER with a zero timeout, then close."""
            self.close_connection = True
            try:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw = self.request.detach() if isinstance(self.request, ssl.SSLSocket) else self.request
                if isinstance(raw, int):
                    socket.socket(fileno=raw).close()
                else:
                    raw.close()
            except OSError:
                pass

    return Handler


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
