"""Injected AWS faults: the next N matching requests are throttled, fail, or answer late.

A fault names a service (the SigV4 signing name: ``codepipeline``, ``sns``,
``dynamodb``...), optionally an operation (``StartPipelineExecution``; for JSON
services the ``X-Amz-Target`` suffix, for query services the ``Action``, for
EKS ``DescribeCluster``/``CreateCluster``) and optionally a regular expression
searched in the request's path, query and body (``match``), which keeps a
test's faults away from the other tests sharing the emulator.

It then does one of two things to each of the next ``count`` matching
requests:

* with a ``status``: answers that error instead of serving the request, in
  the service's own protocol (``__type`` and ``x-amzn-ErrorType`` for JSON,
  a CBOR ``__type`` document for Smithy RPC v2 CBOR (CloudWatch from the
  Rust SDK), an ``ErrorResponse`` document for query services), after ``delaySeconds``
  if given; the request has no effect.  ``code`` defaults to the service's
  throttling code for 400 and 429 and to ``InternalFailure`` otherwise;
* without a ``status``: serves the request (its effect happens) and holds
  the answer back ``delaySeconds``, as when an answer is lost on the way and
  the client times out: what a retry then does shows whether the call is
  idempotent.

A fault on SNS ``PublishBatch`` may instead fail chosen entries: with
``entries``, a regular expression searched in each entry's fields (one
``Name=value`` a line: ``Id=0``, ``MessageAttributes.entry.1.Value.StringValue=
alice@example.com``...), the matching entries of each of the next ``count``
matching requests are answered in the ``Failed`` list (``code`` defaulting to
``InternalError``, ``SenderFault`` false unless ``senderFault``) and not
published; the others are served.  Its view lists, for each request it served,
how many entries it held and how many it failed (``batches``), so a test can
see that a retry carried only the failed entries.

Every fault counts the requests it served, so a test can check that its
fault was hit (a fault nothing matched proves nothing).
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid

import cbor2
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

from .context import RequestContext

# Query-protocol services, which answer errors as XML documents.
QUERY_SERVICES = {"sns", "sqs", "iam", "sts", "cloudformation", "monitoring"}
# The throttling error codes the services use (the SDKs retry both).
QUERY_THROTTLING = "Throttling"
JSON_THROTTLING = "ThrottlingException"
MAX_DELAY_SECONDS = 30.0


class FaultError(ValueError):
    """An invalid fault definition."""


@dataclass
class Fault:
    id: str
    service: str
    operation: str | None
    match: re.Pattern[str] | None
    status: int | None
    code: str | None
    message: str
    delay_seconds: float
    count: int
    entries: re.Pattern[str] | None = None
    sender_fault: bool = False
    served: int = 0
    requests: list[str] = field(default_factory=list)
    batches: list[dict[str, int]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.count - self.served

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "operation": self.operation,
            "match": self.match.pattern if self.match else None,
            "status": self.status,
            "code": self.code,
            "delaySeconds": self.delay_seconds,
            "count": self.count,
            "served": self.served,
            "remaining": self.remaining,
            "operations": list(self.requests),
            "entries": self.entries.pattern if self.entries else None,
            "senderFault": self.sender_fault,
            "batches": [dict(batch) for batch in self.batches],
        }

    def entry_failure(self, entry_text: str) -> tuple[str, str, bool] | None:
        """``(code, message, sender_fault)`` for an entry this fault fails, or None."""
        assert self.entries is not None
        if not self.entries.search(entry_text):
            return None
        return self.code or "InternalError", self.message, self.sender_fault


@dataclass(frozen=True)
class Call:
    """What a fault is matched against."""

    service: str | None
    operation: str | None
    text: str
    json_protocol: bool
    cbor_protocol: bool = False


# Smithy RPC v2: POST /service/<ServiceName>/operation/<Operation>
_RPC_V2_PATH = re.compile(r"/service/([^/]+)/operation/([^/]+)")


def rpc_v2_cbor_operation(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(service name, operation) of a Smithy RPC v2 CBOR request; None for anything else."""
    if environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor":
        return None
    match = _RPC_V2_PATH.fullmatch(environ.get("PATH_INFO", ""))
    return (match.group(1), match.group(2)) if match else None


def _operation(environ: dict[str, Any], service: str | None, body: bytes) -> tuple[str | None, bool]:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rpartition(".")[2], True
    rpc = rpc_v2_cbor_operation(environ)
    if rpc is not None:
        return rpc[1], False
    if service in QUERY_SERVICES:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action") or parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        return (action[0] if action else None), False
    if service == "eks":
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "").rstrip("/")
        if method == "POST" and path == "/clusters":
            return "CreateCluster", False
        if method == "GET" and re.fullmatch(r"/clusters/[^/]+", path):
            return "DescribeCluster", False
    return None, False


def describe(environ: dict[str, Any], body: bytes) -> Call:
    service = RequestContext.from_environ(environ).signing_service
    operation, json_protocol = _operation(environ, service, body)
    cbor_protocol = rpc_v2_cbor_operation(environ) is not None
    if cbor_protocol:
        # Match on the decoded document, which is what a test can write a pattern for.
        try:
            shown = json.dumps(cbor2.loads(body), default=str) if body else ""
        except (cbor2.CBORDecodeError, ValueError, TypeError):
            shown = body.decode("utf-8", "replace")
    else:
        shown = body.decode("utf-8", "replace")
    text = f"{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}\n{shown}"
    return Call(service, operation, text, json_protocol, cbor_protocol)


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for whoever serves the request."""
    length = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(length)) if length.isdigit() and int(length) > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class AwsFaults:
    """The faults to inject, in the order they were added (the first match is taken)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counter = 0

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        service = body.get("service")
        if not isinstance(service, str) or not service:
            raise FaultError("service: the SigV4 signing name of the service (codepipeline, sns...)")
        operation = body.get("operation")
        if operation is not None and (not isinstance(operation, str) or not operation):
            raise FaultError("operation: an operation name like StartPipelineExecution")
        pattern = body.get("match")
        try:
            match = re.compile(pattern) if pattern is not None else None
        except (re.error, TypeError) as exc:
            raise FaultError(f"match: not a regular expression: {exc}") from None
        status = body.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
            raise FaultError("status: an HTTP error status, 400-599")
        delay = body.get("delaySeconds", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise FaultError(f"delaySeconds: a number from 0 to {MAX_DELAY_SECONDS:g}")
        entries_pattern = body.get("entries")
        try:
            entries = re.compile(entries_pattern) if entries_pattern is not None else None
        except (re.error, TypeError) as exc:
            raise FaultError(f"entries: not a regular expression: {exc}") from None
        sender_fault = body.get("senderFault", False)
        if not isinstance(sender_fault, bool):
            raise FaultError("senderFault: true or false")
        if entries is not None:
            if service != "sns" or operation != "PublishBatch":
                raise FaultError("entries: only for service sns, operation PublishBatch")
            if status is not None or delay:
                raise FaultError("entries: fails entries in the answer; give no status or delaySeconds")
        elif status is None and not delay:
            raise FaultError("give a status (answer an error), delaySeconds (answer late) or entries (fail those entries)")
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FaultError("count: a positive integer")
        code = body.get("code")
        if code is not None and (not isinstance(code, str) or not code):
            raise FaultError("code: an error code like ThrottlingException")
        message = body.get("message", "injected fault")
        if not isinstance(message, str):
            raise FaultError("message: a string")
        with self._lock:
            self._counter += 1
            fault = Fault(
                id=f"fault-{self._counter}",
                service=service,
                operation=operation,
                match=match,
                status=status,
                code=code,
                message=message,
                delay_seconds=float(delay),
                count=count,
                entries=entries,
                sender_fault=sender_fault,
            )
            self._faults.append(fault)
        return fault.view()

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.view() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> bool:
        with self._lock:
            return any(fault.remaining > 0 for fault in self._faults)

    def record_batch(self, fault: Fault, entries: int, failed: int) -> None:
        """Notes what an ``entries`` fault did to one request."""
        with self._lock:
            fault.batches.append({"entries": entries, "failed": failed})

    def take(self, call: Call) -> Fault | None:
        """The fault for this request, counted as served; None when none matches."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0 or fault.service != call.service:
                    continue
                if fault.operation is not None and fault.operation != call.operation:
                    continue
                if fault.match is not None and not fault.match.search(call.text):
                    continue
                fault.served += 1
                fault.requests.append(call.operation or "?")
                return fault
        return None


def error_response(fault: Fault, call: Call) -> Response:
    """The error the service would answer, in its own protocol."""
    assert fault.status is not None
    throttling = fault.status in (400, 429)
    if call.service in QUERY_SERVICES and not call.json_protocol and not call.cbor_protocol:
        code = fault.code or (QUERY_THROTTLING if throttling else "InternalFailure")
        return query_error(call.service, fault.status, code, fault.message)
    if call.cbor_protocol:
        code = fault.code or (JSON_THROTTLING if throttling else "InternalFailure")
        response = Response(
            cbor2.dumps({"__type": code, "message": fault.message}), status=fault.status, content_type="application/cbor"
        )
        response.headers["smithy-protocol"] = "rpc-v2-cbor"
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        if call.service == "monitoring":  # CloudWatch is awsQueryCompatible: its query code rides along
            query_code = QUERY_THROTTLING if code == JSON_THROTTLING else code
            response.headers["x-amzn-query-error"] = f"{query_code};{'Sender' if fault.status < 500 else 'Receiver'}"
        return response
    code = fault.code or (JSON_THROTTLING if throttling else "InternalFailure")
    document = {"__type": code, "message": fault.message} if call.json_protocol else {"message": fault.message}
    response = Response(
        json.dumps(document),
        status=fault.status,
        content_type="application/x-amz-json-1.1" if call.json_protocol else "application/json",
    )
    response.headers["x-amzn-ErrorType"] = code
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def query_error(service: str, status: int, code: str, message: str) -> Response:
    """An error of a query-protocol service (SNS, SQS...): its ``ErrorResponse`` XML document."""
    request_id = str(uuid.uuid4())
    kind = "Sender" if status < 500 else "Receiver"
    document = (
        f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/">'
        f"<Error><Type>{kind}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    response = Response(document, status=status, content_type="text/xml")
    response.headers["x-amzn-RequestId"] = request_id
    return response
