"""The AWS calls the emulator answered, for counting them (``GET /_emulator/aws/requests``).

The benchmark (``tests/scripts/bench``) counts what each function asks of AWS per event, and
checks that the Python baselines make the same calls.  Each entry names the service (the SigV4
credential scope), the operation and the caller's SDK:

* JSON protocol (``X-Amz-Target: Prefix.Operation``): the operation;
* query protocol (SNS, SQS, STS…): the ``Action`` parameter, from the query string or the form
  body (which is read, then put back for moto);
* REST protocol: EKS's ``DescribeCluster`` and ``CreateCluster`` by name (as the fault
  injection names them), others (S3…) as ``METHOD /path``;

and ``app``, the application name the caller's SDK was given (``app/NAME`` in its user agent),
so that a harness's own calls can be told from the function's; ``at`` is when the request
arrived (epoch seconds, as the Kubernetes request log has it), so a test can check the pace
of a poll (eks-deploy's alarm reads while a release bakes).

Admin requests (``/_emulator/...``, moto's ``/moto-api/...``) are not AWS calls and are not
recorded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from .faults import describe as describe_call, read_body


def describe(environ: dict[str, Any]) -> dict[str, Any]:
    """``{service, operation, sdk, app, at}`` of one AWS request; puts back the body it reads."""
    call = describe_call(environ, read_body(environ))
    operation = call.operation or f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
    # "aws-sdk-rust/1.3.9 os/linux… app/NAME" or "Boto3/1.43.108 md/Botocore#1.43.127…": the
    # first token names the SDK, an `app/` token the application that set one.
    tokens = environ.get("HTTP_USER_AGENT", "").split()
    sdk = tokens[0].split("/", 1)[0] if tokens else ""
    app = next((t.split("/", 1)[1] for t in tokens if t.startswith("app/")), "")
    return {"service": call.service or "unsigned", "operation": operation, "sdk": sdk, "app": app, "at": time.time()}


class AwsRequestLog:
    """A bounded, thread-safe log of the AWS requests served, oldest first."""

    def __init__(self, size: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)

    def record(self, environ: dict[str, Any]) -> None:
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            return
        entry = describe(environ)
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
