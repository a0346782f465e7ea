"""What the emulator's own test modules share: one in-process server each, and boto3 clients
that check every answer against the botocore model, so each test doubles as a round-trip check
through botocore's parser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Callable

import boto3
import botocore.config

import run

TIMEOUT = 10


def start_server(app: Any) -> tuple[Any, str]:
    """The AWS emulator ``app`` served on a free port of 127.0.0.1, and its endpoint."""
    server, _ = run.start_aws_server(app)
    return server, f"http://127.0.0.1:{server.server_port}"


def stop_server(server: Any) -> None:
    server.shutdown()
    server.server_close()


def check_required(shape: Any, value: Any, path: str) -> None:
    """Every required member of every structure in ``value`` is present."""
    if shape is None:
        return
    if shape.type_name == "structure":
        for name in shape.required_members:
            if name not in value:
                raise AssertionError(f"{path}: required member {name} missing")
        for name, item in value.items():
            if name in shape.members:
                check_required(shape.members[name], item, f"{path}.{name}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            check_required(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            check_required(shape.value, item, f"{path}[{key}]")


def checked_output(parsed: dict[str, Any], model: Any) -> None:
    """Checks a parsed answer of operation ``model`` against its output shape."""
    check_required(model.output_shape, {k: v for k, v in parsed.items() if k != "ResponseMetadata"}, model.name)


def client(
    endpoint: str,
    service: str,
    after_call: Callable[..., None],
    region: str = "us-east-1",
    access_key: str = "testing",
    secret: str = "testing",
    session_token: str | None = None,
) -> Any:
    """A boto3 client of the emulator at ``endpoint``, one attempt per call, ``after_call``
    registered to see every answer."""
    made = boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=TIMEOUT, read_timeout=TIMEOUT),
    )
    made.meta.events.register("after-call", after_call)
    return made


def raw_request(
    endpoint: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A raw request (no boto3 client-side validation); returns status and decoded JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def raw_json_call(endpoint: str, service: str, target: str, body: Any) -> tuple[int, Any]:
    """A raw JSON-protocol call to ``service`` (``X-Amz-Target: target``), signed-looking enough
    for the emulator to route it."""
    return raw_request(
        endpoint,
        "POST",
        "/",
        body,
        {
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=00",
        },
    )
