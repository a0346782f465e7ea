"""Request validation and response serialization driven by botocore's service models.

The emulator must not drift from the real AWS API, so nothing here knows a
CodePipeline or CodeCommit shape by heart: requests are checked member by member
against ``operation_model.input_shape`` and answers are written by walking
``operation_model.output_shape``.  A handler that returns a member the model
does not define, leaves out a required one or puts a value of the wrong type
is an emulator bug and fails loudly (``ShapeMismatch`` -> HTTP 500) instead of
producing an answer the real service could never give.

Error classes follow the real JSON-protocol (Coral) services:

* a body that is not JSON, a value of the wrong JSON type or a member the input
  shape does not define -> ``SerializationException`` (the document does not
  deserialize into the input structure; real services stop there too);
* constraint violations (required, length, pattern, enum, range) ->
  ``ValidationException`` with AWS's wording, e.g. ``1 validation error
  detected: Value 'x' at 'clientRequestToken' failed to satisfy constraint:
  Member must satisfy regular expression pattern: ^[a-zA-Z0-9-]+$``;
* when the operation lists a service-specific error for a top-level member
  (CodeCommit's ``RepositoryNameRequiredException``,
  ``InvalidCommitIdException``...), that error is used instead, as the real
  CodeCommit does.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import botocore.session
import cbor2
from botocore.model import OperationModel, Shape

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
CBOR_CONTENT_TYPE = "application/cbor"
# RFC 8949 tag 1: epoch-based date/time, the only timestamp form Smithy RPC v2 CBOR allows.
_CBOR_EPOCH_TAG = 1

# Errors every JSON-protocol service can return although no operation lists them.
COMMON_ERROR_STATUS = {
    "ValidationException": 400,
    "SerializationException": 400,
    "UnknownOperationException": 400,
    "InternalFailure": 500,
}


class ApiError(Exception):
    """An AWS error answer: ``__type`` ``code`` with ``message``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ShapeMismatch(AssertionError):
    """A handler produced output that does not fit the model: an emulator bug."""


@functools.lru_cache(maxsize=None)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.lru_cache(maxsize=None)
def service_model(service: str):
    """botocore's ``ServiceModel`` for ``service`` (cached: loading costs ~15 ms)."""
    return _session().get_service_model(service)


def operation_model(service: str, operation: str) -> OperationModel:
    """The operation's model, or ``UnknownOperationException`` like the real service."""
    model = service_model(service)
    if operation not in model.operation_names:
        raise ApiError("UnknownOperationException", f"Unknown operation {operation}")
    return model.operation_model(operation)


def target_prefixes(services: tuple[str, ...]) -> dict[str, str]:
    """Map each service's ``X-Amz-Target`` prefix (``CodePipeline_20150709``) to its name."""
    return {service_model(s).metadata["targetPrefix"]: s for s in services}


# --- patterns ------------------------------------------------------------------------

# Java's '.' excludes every line terminator, not only '\n' as Python's does.
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"


@functools.lru_cache(maxsize=None)
def java_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a model pattern (Java regex syntax) into an equivalent Python regex.

    The models' patterns are Java regexes that must match the whole value.  The
    differences that matter for the models we serve: ``\\w``/``\\d``/``\\s`` are
    ASCII-only in Java (hence ``re.ASCII``) and ``.`` excludes all line
    terminators.  Java features with no direct Python spelling (``\\p{...}``
    classes, ``&&`` class intersection) are refused rather than guessed at;
    ``test_aws_ext`` compiles every pattern of the served models.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in ("p", "P"):
                raise ValueError(f"unsupported Java character property in {pattern!r}")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if pattern.startswith("&&", i):
                raise ValueError(f"unsupported Java class intersection in {pattern!r}")
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == ".":
            char = _JAVA_DOT
        out.append(char)
        i += 1
    return re.compile("".join(out), re.ASCII)


# --- request validation --------------------------------------------------------------

_MISSING = object()


@dataclass
class _Violation:
    path: str  # AWS style: 'sourceRevisions.1.member.revisionValue'
    value: Any
    constraint: str
    required: bool  # True: the member is absent

    def text(self) -> str:
        shown = "null" if self.value is _MISSING or self.value is None else f"'{_java_str(self.value)}'"
        return f"Value {shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


def _java_str(value: Any) -> str:
    """Render a value the way the real services' messages do (Java ``toString``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


class _Deserializer:
    """Checks a decoded JSON (or CBOR) document against a shape and converts it.

    Conversion: blobs become ``bytes`` and timestamps timezone-aware
    ``datetime`` objects, so handlers see the same Python types botocore gives
    clients.  Constraint violations are collected (AWS reports all of them at
    once); structural problems abort at once with ``SerializationException``.
    With ``cbor`` the wire types are CBOR's: blobs are byte strings and
    timestamps tag 1 (which cbor2 decodes to an aware ``datetime``).
    """

    def __init__(self, cbor: bool = False) -> None:
        self.violations: list[_Violation] = []
        self.cbor = cbor

    def value(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape, value, path)
        if kind == "list":
            return self._list(shape, value, path)
        if kind == "map":
            return self._map(shape, value, path)
        if kind == "string":
            return self._string(shape, value, path)
        if kind in ("integer", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise _type_error(path, value, "an integer")
            self._range(shape, value, path)
            return value
        if kind in ("float", "double"):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise _type_error(path, value, "a number")
            self._range(shape, value, path)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _type_error(path, value, "a boolean")
            return value
        if kind == "blob":
            return self._blob(shape, value, path)
        if kind == "timestamp":
            if self.cbor:
                if not isinstance(value, datetime.datetime):
                    raise _type_error(path, value, "a timestamp (CBOR tag 1)")
                return value
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise _type_error(path, value, "a timestamp in epoch seconds")
            return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
        raise ShapeMismatch(f"shape type {kind} of {shape.name} is not supported")

    def _structure(self, shape: Shape, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(path, value, f"a {shape.name} structure")
        for name in value:
            if name not in shape.members:
                where = f"{path}.{name}" if path else name
                raise ApiError(
                    "SerializationException",
                    f"Unknown member '{where}': {shape.name} has no member named '{name}'",
                )
        result = {}
        for name, member in shape.members.items():
            where = f"{path}.{name}" if path else name
            item = value.get(name)
            if item is None:
                if name in shape.required_members:
                    self.violations.append(_Violation(where, _MISSING, "Member must not be null", True))
                continue
            result[name] = self.value(member, item, where)
        return result

    def _list(self, shape: Shape, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _type_error(path, value, "a list")
        self._length(shape, value, len(value), path)
        return [self.value(shape.member, item, f"{path}.{i}.member") for i, item in enumerate(value, 1)]

    def _map(self, shape: Shape, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(path, value, "a map")
        self._length(shape, value, len(value), path)
        result = {}
        for key, item in value.items():
            keys = _Deserializer(self.cbor)
            keys.value(shape.key, key, path)
            if keys.violations:
                constraints = ", ".join(v.constraint for v in keys.violations)
                self.violations.append(
                    _Violation(path, key, f"Map keys must satisfy constraint: [{constraints}]", False)
                )
            result[key] = self.value(shape.value, item, f"{path}.{key}")
        return result

    def _string(self, shape: Shape, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _type_error(path, value, "a string")
        self._length(shape, value, len(value), path)
        pattern = shape.metadata.get("pattern")
        if pattern is not None and not java_pattern(pattern).fullmatch(value):
            self.violations.append(
                _Violation(path, value, f"Member must satisfy regular expression pattern: {pattern}", False)
            )
        if shape.enum and value not in shape.enum:
            self.violations.append(
                _Violation(path, value, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]", False)
            )
        return value

    def _blob(self, shape: Shape, value: Any, path: str) -> bytes:
        if self.cbor:
            if not isinstance(value, bytes):
                raise _type_error(path, value, "a byte string")
            self._length(shape, value, len(value), path)
            return value
        if not isinstance(value, str):
            raise _type_error(path, value, "a base64-encoded string")
        try:
            data = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ApiError("SerializationException", f"Value at '{path}' is not valid base64") from None
        self._length(shape, value, len(data), path)
        return data

    def _length(self, shape: Shape, value: Any, length: int, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and length < low:
            self.violations.append(
                _Violation(path, value, f"Member must have length greater than or equal to {low}", False)
            )
        if high is not None and length > high:
            self.violations.append(
                _Violation(path, value, f"Member must have length less than or equal to {high}", False)
            )

    def _range(self, shape: Shape, value: float, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.violations.append(
                _Violation(path, value, f"Member must have value greater than or equal to {low}", False)
            )
        if high is not None and value > high:
            self.violations.append(
                _Violation(path, value, f"Member must have value less than or equal to {high}", False)
            )


def _type_error(path: str, value: Any, expected: str) -> ApiError:
    return ApiError(
        "SerializationException",
        f"Value '{_java_str(value)}' at '{path or 'body'}' cannot be deserialized: expected {expected}",
    )


def _capitalized(member: str) -> str:
    return member[:1].upper() + member[1:]


def parse_request(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """Validate a JSON request body against the operation's input shape.

    Returns the parameters with blobs decoded and timestamps parsed, or raises
    ``ApiError`` exactly as the real service would answer.
    """
    if body.strip():
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError("SerializationException", f"Request body is not valid JSON: {exc}") from None
    else:
        document = {}
    return _checked(operation, document, _Deserializer())


def parse_cbor_request(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """Validate a Smithy RPC v2 CBOR request body against the operation's input shape.

    An empty body is an empty input, as the protocol allows for operations
    without input; anything else must be one CBOR data item.
    """
    if body:
        try:
            document = cbor2.loads(body)
        except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
            raise ApiError("SerializationException", f"Request body is not valid CBOR: {exc}") from None
    else:
        document = {}
    return _checked(operation, document, _Deserializer(cbor=True))


def _checked(operation: OperationModel, document: Any, checker: _Deserializer) -> dict[str, Any]:
    shape = operation.input_shape
    if shape is None:
        if document:
            raise ApiError("SerializationException", f"{operation.name} takes no input")
        return {}
    params = checker.value(shape, document, "")
    if checker.violations:
        raise _violations_error(operation, checker.violations)
    return params


def _violations_error(operation: OperationModel, violations: list[_Violation]) -> ApiError:
    """Pick the error the real service answers for these violations.

    Services with their own per-member errors (CodeCommit) list them for the
    operation as ``<Member>RequiredException`` and ``Invalid<Member>Exception``;
    a violation of a top-level member with such an error becomes that error.
    Everything else is reported together as one ``ValidationException``.
    """
    listed = {shape.name for shape in operation.error_shapes}
    for violation in violations:
        if "." in violation.path:
            continue
        member = _capitalized(violation.path)
        code = f"{member}RequiredException" if violation.required else f"Invalid{member}Exception"
        if code in listed:
            if violation.required:
                return ApiError(code, f"A {violation.path} is required but was not specified.")
            return ApiError(code, f"The {violation.path} '{_java_str(violation.value)}' is not valid: {violation.constraint}")
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    details = "; ".join(v.text() for v in violations)
    return ApiError("ValidationException", f"{count} validation {noun} detected: {details}")


# --- response serialization ----------------------------------------------------------


def serialize_output(operation: OperationModel, output: dict[str, Any]) -> bytes:
    """Write a handler's result as the operation's JSON output shape.

    Members whose value is ``None`` are left out (the JSON protocol never sends
    nulls); anything else must fit the shape exactly.
    """
    shape = operation.output_shape
    if shape is None:
        if output:
            raise ShapeMismatch(f"{operation.name} has no output shape but the handler returned {output!r}")
        return b"{}"
    return json.dumps(_serialize(shape, output, shape.name)).encode()


def serialize_cbor_output(operation: OperationModel, output: dict[str, Any]) -> bytes:
    """Write a handler's result as the operation's output shape in CBOR (Smithy RPC v2).

    An operation without output answers an empty body, as the protocol says;
    doubles are always CBOR floats and timestamps tag 1 over float epoch
    seconds, the forms the Smithy decoders accept.
    """
    shape = operation.output_shape
    if shape is None:
        if output:
            raise ShapeMismatch(f"{operation.name} has no output shape but the handler returned {output!r}")
        return b""
    return cbor2.dumps(_serialize(shape, output, shape.name, cbor=True))


def _serialize(shape: Shape, value: Any, path: str, cbor: bool = False) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ShapeMismatch(f"{path}: {shape.name} must be a dict, got {value!r}")
        unknown = set(value) - set(shape.members)
        if unknown:
            raise ShapeMismatch(f"{path}: {shape.name} has no member(s) {sorted(unknown)}")
        result = {}
        for name, member in shape.members.items():
            item = value.get(name)
            if item is None:
                if name in shape.required_members:
                    raise ShapeMismatch(f"{path}: required member {name} of {shape.name} is missing")
                continue
            result[name] = _serialize(member, item, f"{path}.{name}", cbor)
        return result
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise ShapeMismatch(f"{path}: {shape.name} must be a list, got {value!r}")
        return [_serialize(shape.member, item, f"{path}[{i}]", cbor) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise ShapeMismatch(f"{path}: {shape.name} must be a dict, got {value!r}")
        return {
            _serialize(shape.key, k, f"{path}.key", cbor): _serialize(shape.value, v, f"{path}[{k!r}]", cbor)
            for k, v in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            raise ShapeMismatch(f"{path}: {shape.name} must be a str, got {value!r}")
        if shape.enum and value not in shape.enum:
            raise ShapeMismatch(f"{path}: {value!r} is not one of {shape.name} {shape.enum}")
        return value
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShapeMismatch(f"{path}: {shape.name} must be an int, got {value!r}")
        return value
    if kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ShapeMismatch(f"{path}: {shape.name} must be a number, got {value!r}")
        return float(value) if cbor else value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ShapeMismatch(f"{path}: {shape.name} must be a bool, got {value!r}")
        return value
    if kind == "timestamp":
        if not isinstance(value, datetime.datetime) or value.tzinfo is None:
            raise ShapeMismatch(f"{path}: {shape.name} must be an aware datetime, got {value!r}")
        if cbor:
            return cbor2.CBORTag(_CBOR_EPOCH_TAG, value.timestamp())
        return value.timestamp()
    if kind == "blob":
        if not isinstance(value, bytes):
            raise ShapeMismatch(f"{path}: {shape.name} must be bytes, got {value!r}")
        return value if cbor else base64.b64encode(value).decode()
    raise ShapeMismatch(f"{path}: shape type {kind} is not supported")


def error_answer(operation: OperationModel | None, error: ApiError) -> tuple[int, bytes]:
    """Status and body for ``error``, which the operation must list (or be common).

    Raising an error the model does not list for the operation would let
    clients see a code the real service never returns for it, so that is an
    emulator bug (``ShapeMismatch``).
    """
    status, _ = error_status(operation, error)
    return status, json.dumps({"__type": error.code, "message": error.message}).encode()


def error_status(operation: OperationModel | None, error: ApiError) -> tuple[int, str]:
    """HTTP status and query-protocol code (``awsQueryError``) of ``error``, which the operation
    must list or which must be common to every operation."""
    if error.code in COMMON_ERROR_STATUS:
        return COMMON_ERROR_STATUS[error.code], error.code
    listed = {shape.name: shape for shape in operation.error_shapes} if operation else {}
    if error.code not in listed:
        name = operation.name if operation else "the request"
        raise ShapeMismatch(f"{name} does not list error {error.code} ({error.message})")
    trait = listed[error.code].metadata.get("error", {})
    return trait.get("httpStatusCode", 400), trait.get("code", error.code)


def cbor_error_answer(
    operation: OperationModel | None, error: ApiError, service: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, CBOR body and headers of ``error`` in Smithy RPC v2 CBOR.

    ``__type`` is the error shape's shape ID; services with the
    ``awsQueryCompatible`` trait (CloudWatch) also send ``x-amzn-query-error:
    Code;Sender`` with the code their query protocol used, which SDKs prefer.
    """
    status, query_code = error_status(operation, error)
    model = operation.service_model if operation else (service_model(service) if service else None)
    namespace = f"com.amazonaws.{model.service_name}" if model else "smithy.framework"
    body = cbor2.dumps({"__type": f"{namespace}#{error.code}", "message": error.message})
    headers = {}
    if model is not None and "awsQueryCompatible" in model.metadata:
        headers["x-amzn-query-error"] = f"{query_code};{'Sender' if status < 500 else 'Receiver'}"
    return status, body, headers
