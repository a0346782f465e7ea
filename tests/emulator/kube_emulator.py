"""A small kube-apiserver for tests: Deployments, ReplicaSets and Pods over HTTPS.

The Rust code under test deploys with the ``kube`` crate: it creates and
patches Deployments, watches them, and reads the rollout state the way
``kubectl rollout status`` does.  A mock that only records requests cannot
tell whether that code is right, because correctness depends on apiserver
behaviour: which writes bump ``metadata.generation``, what a strategic merge
patch of one container does to the others, when a stale ``resourceVersion``
is refused, what a watch replays and when it answers ``410 Expired``, and how
``status`` moves through a rollout that succeeds or gets stuck on a bad image.
This module reproduces those rules for the few resources we use:

* :class:`KubeEmulator` - the HTTPS server (self-signed CA made at start-up),
  bearer-token authentication, the REST verbs, watches and the admin hooks
  tests use (bad images, fault injection, cut watches, a request log).
* ``_Store`` - objects, the single global ``resourceVersion`` counter and the
  bounded event history that watches replay.
* ``_Api`` - what the apiserver does on each write: decoding, defaulting,
  validation, the status/spec split, generation, optimistic concurrency.
* ``_Controllers`` - one background thread playing the deployment
  controller, the replicaset controller and the kubelet, one step every
  ``step_seconds``, so that watchers see a rollout happen.

Only the standard library and ``cryptography`` are used.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import http.server
import ipaddress
import itertools
import json
import re
import secrets
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from strategic_merge import PatchError, json_merge_patch, json_patch, strategic_merge_patch

__all__ = ["ApiError", "BAD_IMAGE_REASONS", "KubeEmulator", "static_token_verifier"]

#: Reasons :meth:`KubeEmulator.mark_image_bad` accepts (what the kubelet reports).
BAD_IMAGE_REASONS = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff")
#: Watches without ``timeoutSeconds`` end after this long (the apiserver picks 30-60 min).
WATCH_TIMEOUT_CAP = 300.0
#: How long a client may take to finish the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
#: How long :meth:`KubeEmulator.stop` lets open watches write their last chunk.
STOP_GRACE = 2.0
#: Label the deployment controller puts on a ReplicaSet and its pods.
POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
NODE_NAME = "emulator-node"
NODE_IP = "192.168.49.2"
#: ``k8s.io/apimachinery/pkg/util/rand`` alphabet: no vowels, no 0/1/3, so names never spell words.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def static_token_verifier(tokens: Mapping[str, str]) -> Callable[[str], str]:
    """A ``token -> username`` verifier for fixed tokens (``{token: username}``).

    Every entry is compared with :func:`hmac.compare_digest` and the loop
    never stops early, so response time reveals neither which token matched
    nor how much of a wrong one was right.  Raises ``PermissionError``.
    """
    entries = [(token.encode(), user) for token, user in tokens.items()]

    def verify(token: str) -> str:
        presented = token.encode()
        user = None
        for expected, name in entries:
            if hmac.compare_digest(presented, expected):
                user = name
        if user is None:
            raise PermissionError("invalid bearer token")
        return user

    return verify


# --------------------------------------------------------------------------
# Resources and errors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One REST resource as discovery describes it."""

    plural: str
    singular: str
    kind: str
    group: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...]
    #: Field selector labels besides ``metadata.name`` / ``metadata.namespace``.
    extra_field_labels: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        """``deployments.apps`` - how errors name the resource (``GroupResource.String()``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name}
        if self.group:
            details["group"] = self.group
        details["kind"] = self.plural
        return details


_WRITE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
RESOURCES: dict[tuple[str, str], Resource] = {
    ("apps", "deployments"): Resource(
        "deployments", "deployment", "Deployment", "apps", True, _WRITE_VERBS, ("deploy",), subresources=("status",)
    ),
    ("apps", "replicasets"): Resource("replicasets", "replicaset", "ReplicaSet", "apps", True, ("get", "list", "watch"), ("rs",)),
    ("", "pods"): Resource(
        "pods", "pod", "Pod", "", True, ("get", "list", "watch"), ("po",), extra_field_labels=("spec.nodeName", "status.phase")
    ),
    ("", "namespaces"): Resource("namespaces", "namespace", "Namespace", "", False, ("get",), ("ns",)),
}
DEPLOYMENTS = RESOURCES[("apps", "deployments")]
NAMESPACES = RESOURCES[("", "namespaces")]
_BY_PLURAL = {resource.plural: resource for resource in RESOURCES.values()}


class ApiError(Exception):
    """An error answer; :meth:`status` is the ``metav1.Status`` body the apiserver sends."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


#: ``metav1.StatusReason`` for the codes injected faults may use.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def _path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', resource.details(name))


def _already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists', resource.details(name))


def _conflict(resource: Resource, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}', resource.details(name))


_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def _method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def _expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


@dataclass(frozen=True)
class _Cause:
    """One ``details.causes`` entry of an Invalid error (a ``field.Error``)."""

    reason: str
    field: str
    message: str


def _invalid(resource: Resource, name: str, causes: list[_Cause]) -> ApiError:
    """``errors.NewInvalid``: one line per cause, bracketed when there are several."""
    lines = [f"{cause.field}: {cause.message}" for cause in causes]
    summary = lines[0] if len(lines) == 1 else "[" + ", ".join(lines) + "]"
    group_kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.kind
    details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {summary}', details)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _now() -> str:
    """RFC 3339 in UTC at second precision, as ``metav1.Time`` serialises."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_value(value: Any) -> str:
    """How ``field.Invalid`` prints a value (``%#v``) for the types we report."""
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(value, sort_keys=True)


def _go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String()`` for whole seconds: ``10s``, ``1m20s``, ``5m0s``."""
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _random_suffix(length: int = 5) -> str:
    """``names.SimpleNameGenerator``: five characters of :data:`SAFE_ALPHABET`."""
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def _template_hash(template: Mapping[str, Any]) -> str:
    """The ``pod-template-hash`` of a pod template, shaped like the controller's.

    The controller FNV-hashes the template and "safe-encodes" the decimal
    digits; we hash canonical JSON instead, so the value is stable for equal
    templates and differs for different ones, which is all that matters.
    """
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).digest()
    decimal = str(int.from_bytes(digest[:4], "big"))
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in decimal)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _is_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or [])


def _revision(replica_set: Mapping[str, Any]) -> int:
    value = ((replica_set["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)) or "0"
    return int(value) if value.isdigit() else 0


def _creation_order(obj: Mapping[str, Any]) -> tuple[str, int, str]:
    return (obj["metadata"]["creationTimestamp"], _revision(obj), obj["metadata"]["name"])


def _set_default(mapping: dict[str, Any], key: str, value: Any) -> Any:
    """``setdefault`` that also replaces JSON ``null`` (an unset field to the apiserver)."""
    if mapping.get(key) is None:
        mapping[key] = value
    return mapping[key]


# --------------------------------------------------------------------------
# Label and field selectors
# --------------------------------------------------------------------------

_LABEL_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_LABEL_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_REQUIREMENT = re.compile(rf"\s*({_LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*")
_EQUALITY_REQUIREMENT = re.compile(rf"\s*({_LABEL_KEY})\s*(==|!=|=)\s*({_LABEL_VALUE})\s*")
_EXISTS_REQUIREMENT = re.compile(rf"\s*(!?)\s*({_LABEL_KEY})\s*")
_FIELD_REQUIREMENT = re.compile(r"\s*([A-Za-z][A-Za-z.]*)\s*(==|!=|=)\s*([^,]*?)\s*")


@dataclass(frozen=True)
class _Requirement:
    """One label requirement; ``=`` / ``!=`` are ``in`` / ``notin`` with one value."""

    key: str
    operator: str  # "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "in":
            return labels.get(self.key) in self.values
        if self.operator == "notin":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "exists":
            return self.key in labels
        return self.key not in labels


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` value lists."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str) -> tuple[_Requirement, ...]:
    """``labels.Parse``: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``."""
    if not text.strip():
        return ()
    requirements = []
    for part in _split_selector(text):
        if match := _SET_REQUIREMENT.fullmatch(part):
            values = [v.strip() for v in match.group(3).split(",")]
            if not all(re.fullmatch(_LABEL_VALUE, v) for v in values):
                raise _bad_request(f"unable to parse requirement: invalid label value in {part.strip()!r}")
            requirements.append(_Requirement(match.group(1), match.group(2), frozenset(values)))
        elif match := _EQUALITY_REQUIREMENT.fullmatch(part):
            operator = "notin" if match.group(2) == "!=" else "in"
            requirements.append(_Requirement(match.group(1), operator, frozenset({match.group(3)})))
        elif match := _EXISTS_REQUIREMENT.fullmatch(part):
            requirements.append(_Requirement(match.group(2), "!" if match.group(1) else "exists"))
        else:
            raise _bad_request(f"unable to parse requirement: found {part.strip()!r}, expected a label requirement")
    return tuple(requirements)


def _selector_requirements(selector: Mapping[str, Any]) -> tuple[_Requirement, ...]:
    """A ``metav1.LabelSelector`` (matchLabels + matchExpressions) as requirements."""
    requirements = [_Requirement(k, "in", frozenset({v})) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            raise ValueError(f"invalid label selector requirement {expression!r}")
        operator = operators.get(expression.get("operator"))
        if operator is None or not isinstance(expression.get("key"), str):
            raise ValueError(f"invalid label selector requirement {expression!r}")
        requirements.append(_Requirement(expression["key"], operator, frozenset(expression.get("values") or [])))
    return tuple(requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


@dataclass(frozen=True)
class _Filter:
    """What a list or watch selects: a namespace and label / field selectors."""

    namespace: str | None
    labels: tuple[_Requirement, ...]
    fields: tuple[tuple[str, bool, str], ...]  # (path, equal?, value)

    @classmethod
    def from_query(cls, resource: Resource, namespace: str | None, query: Mapping[str, str]) -> "_Filter":
        fields = []
        allowed = ("metadata.name", "metadata.namespace", *resource.extra_field_labels)
        text = query.get("fieldSelector", "")
        for part in _split_selector(text) if text.strip() else []:
            match = _FIELD_REQUIREMENT.fullmatch(part)
            if match is None:
                raise _bad_request(f"invalid selector: {text!r}; can't understand {part.strip()!r}")
            if match.group(1) not in allowed:
                raise _bad_request(f"field label not supported: {match.group(1)}")
            fields.append((match.group(1), match.group(2) != "!=", match.group(3)))
        return cls(namespace, parse_label_selector(query.get("labelSelector", "")), tuple(fields))

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        labels = _labels(obj)
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((_field_value(obj, path) == value) == equal for path, equal, value in self.fields)


# --------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    resource_version: int
    plural: str
    type: str  # ADDED, MODIFIED or DELETED
    obj: dict[str, Any]
    #: The object before this write, so a filtered watch can turn a MODIFIED that
    #: moves an object into (out of) its selector into ADDED (DELETED), as the
    #: apiserver's watch cache does.
    previous: dict[str, Any] | None


class _Store:
    """Objects, the global ``resourceVersion`` and the event history, guarded by ``cond``.

    Like etcd, every write of any object takes the next revision, so
    resourceVersions are comparable across kinds and a list's
    resourceVersion says exactly which writes it includes.  Each write appends
    one event, so the event with revision ``r`` sits at index ``r - floor - 1``
    of the history; ``floor`` is the newest revision already evicted (etcd's
    compaction point) and a watch starting below it gets ``410 Expired``.

    Stored objects are never mutated after :meth:`commit`: writers commit a
    modified copy.  That lets watchers serialise event objects outside the lock.
    ``cond`` wraps an RLock so helpers can nest ``with store.cond``; every
    commit notifies it, which is what wakes watchers (no polling).
    """

    def __init__(self, history_size: int) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.resource_version = 0
        self.floor = 0
        #: Bumped by :meth:`clear`; watches opened before a reset end.
        self.epoch = 0
        self.stopping = False
        self.open_watches = 0
        self._history_size = history_size
        self._history: deque[_Event] = deque()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.cond:
            return self._objects.get(plural, {}).get((namespace, name))

    def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects in key order (namespace, name), as etcd range reads return them."""
        with self.cond:
            table = self._objects.get(plural, {})
            return [table[key] for key in sorted(table) if namespace is None or key[0] == namespace]

    def commit(self, plural: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (or delete it) under the next resourceVersion; returns ``obj``."""
        with self.cond:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            table = self._objects.setdefault(plural, {})
            previous = table.get(key)
            self.resource_version += 1
            meta["resourceVersion"] = str(self.resource_version)
            if event_type == "DELETED":
                table.pop(key, None)
            else:
                table[key] = obj
            self._history.append(_Event(self.resource_version, plural, event_type, obj, previous))
            while len(self._history) > self._history_size:
                self.floor = self._history.popleft().resource_version
            self.cond.notify_all()
            return obj

    def events_after(self, resource_version: int) -> list[_Event] | None:
        """Events newer than ``resource_version``; ``None`` if some were already evicted."""
        with self.cond:
            if resource_version < self.floor:
                return None
            return list(itertools.islice(self._history, resource_version - self.floor, None))

    def clear(self) -> None:
        """Drop every object and the history; the revision counter never goes back."""
        with self.cond:
            self._objects.clear()
            self._history.clear()
            self.floor = self.resource_version
            self.epoch += 1
            self.cond.notify_all()


# --------------------------------------------------------------------------
# Writes: decoding, defaulting, validation, the deployment strategy
# --------------------------------------------------------------------------

#: JSON types of the Deployment fields the emulator reads (parents before children;
#: ``[]`` = every list element).  Anything else is stored as sent.
_DEPLOYMENT_SHAPE: dict[str, type] = {
    "metadata": dict,
    "metadata.name": str,
    "metadata.generateName": str,
    "metadata.namespace": str,
    "metadata.resourceVersion": str,
    "metadata.labels": dict,
    "metadata.annotations": dict,
    "spec": dict,
    "spec.replicas": int,
    "spec.progressDeadlineSeconds": int,
    "spec.revisionHistoryLimit": int,
    "spec.selector": dict,
    "spec.selector.matchLabels": dict,
    "spec.selector.matchExpressions": list,
    "spec.strategy": dict,
    "spec.strategy.type": str,
    "spec.strategy.rollingUpdate": dict,
    "spec.template": dict,
    "spec.template.metadata": dict,
    "spec.template.metadata.labels": dict,
    "spec.template.metadata.annotations": dict,
    "spec.template.spec": dict,
    "spec.template.spec.restartPolicy": str,
    "status": dict,
}
for _list in ("containers", "initContainers"):
    _base = f"spec.template.spec.{_list}"
    _DEPLOYMENT_SHAPE.update(
        {
            _base: list,
            f"{_base}[]": dict,
            f"{_base}[].name": str,
            f"{_base}[].image": str,
            f"{_base}[].ports": list,
            f"{_base}[].ports[]": dict,
        }
    )
_STRING_MAPS = (
    "metadata.labels",
    "metadata.annotations",
    "spec.selector.matchLabels",
    "spec.template.metadata.labels",
    "spec.template.metadata.annotations",
)
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_GO_TYPE_NAMES = {dict: "struct", list: "slice", str: "string", int: "int32"}
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT_OR_PERCENT = re.compile(r"(\d+)%")


def _values_at(obj: Any, path: str) -> Iterable[Any]:
    """Every non-null value at a dotted path, ``name[]`` iterating over a list."""
    nodes = [obj]
    for part in path.split("."):
        values = [node.get(part.removesuffix("[]")) for node in nodes if isinstance(node, dict)]
        if part.endswith("[]"):
            nodes = [item for value in values if isinstance(value, list) for item in value if item is not None]
        else:
            nodes = [value for value in values if value is not None]
    return nodes


def _check_shape(obj: dict[str, Any], resource: Resource) -> None:
    """Reject wrong JSON types with the 400 the apiserver's decoder gives."""

    def fail(path: str, value: Any, expected: str) -> ApiError:
        return _bad_request(
            f'{resource.kind} in version "v1" cannot be handled as a {resource.kind}: json: cannot unmarshal '
            f"{_JSON_TYPE_NAMES.get(type(value), 'value')} into Go struct field {path} of type {expected}"
        )

    for path, expected in _DEPLOYMENT_SHAPE.items():
        for value in _values_at(obj, path):
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise fail(path, value, _GO_TYPE_NAMES[expected])
    for path in _STRING_MAPS:
        for mapping in _values_at(obj, path):
            for key, value in mapping.items():
                if not isinstance(value, str):
                    raise fail(f"{path}.{key}", value, "string")


def _default_pull_policy(image: str) -> str:
    """``SetDefaults_Container``: ``Always`` for ``:latest`` or an untagged, undigested image."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag == "latest" or (not tag and not digest) else "IfNotPresent"


def _default_deployment(obj: dict[str, Any]) -> None:
    """The apps/v1 and core/v1 defaulting functions for the fields a Deployment carries.

    The apiserver defaults every decoded object, on create *and* update, so a
    client that omits a defaulted field does not change the spec (and does not
    bump the generation).
    """
    spec = _set_default(obj, "spec", {})
    _set_default(spec, "replicas", 1)
    strategy = _set_default(spec, "strategy", {})
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _set_default(strategy, "rollingUpdate", {})
        _set_default(rolling, "maxUnavailable", "25%")
        _set_default(rolling, "maxSurge", "25%")
    _set_default(spec, "revisionHistoryLimit", 10)
    _set_default(spec, "progressDeadlineSeconds", 600)
    template = _set_default(spec, "template", {})
    _set_default(template, "metadata", {})
    pod = _set_default(template, "spec", {})
    _set_default(pod, "restartPolicy", "Always")
    _set_default(pod, "terminationGracePeriodSeconds", 30)
    _set_default(pod, "dnsPolicy", "ClusterFirst")
    _set_default(pod, "securityContext", {})
    _set_default(pod, "schedulerName", "default-scheduler")
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        if isinstance(container.get("image"), str):
            _set_default(container, "imagePullPolicy", _default_pull_policy(container["image"]))
        _set_default(container, "resources", {})
        _set_default(container, "terminationMessagePath", "/dev/termination-log")
        _set_default(container, "terminationMessagePolicy", "File")
        for port in container.get("ports") or []:
            _set_default(port, "protocol", "TCP")


def _validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[_Cause]:
    """The ``ValidateDeployment`` checks this emulator reproduces."""
    causes: list[_Cause] = []
    name = obj["metadata"].get("name", "")
    if not name:
        causes.append(_Cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        causes.append(
            _Cause(
                "FieldValueInvalid",
                "metadata.name",
                f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        )
    spec = obj["spec"]
    if spec["replicas"] < 0:
        causes.append(
            _Cause("FieldValueInvalid", "spec.replicas", f"Invalid value: {spec['replicas']}: must be greater than or equal to 0")
        )
    strategy = spec["strategy"]
    if strategy["type"] not in ("RollingUpdate", "Recreate"):
        causes.append(
            _Cause(
                "FieldValueNotSupported",
                "spec.strategy.type",
                f'Unsupported value: {json.dumps(strategy["type"])}: supported values: "Recreate", "RollingUpdate"',
            )
        )
    elif strategy["type"] == "RollingUpdate":
        for key in ("maxSurge", "maxUnavailable"):
            value = strategy["rollingUpdate"][key]
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0) and not (
                isinstance(value, str) and _INT_OR_PERCENT.fullmatch(value)
            ):
                causes.append(
                    _Cause(
                        "FieldValueInvalid",
                        f"spec.strategy.rollingUpdate.{key}",
                        f"Invalid value: {json.dumps(value)}: must be a non-negative integer or a percentage like '25%'",
                    )
                )
    template = spec["template"]
    selector = spec.get("selector")
    if selector is None:
        causes.append(_Cause("FieldValueRequired", "spec.selector", "Required value"))
    else:
        try:
            requirements = _selector_requirements(selector)
        except ValueError as exc:
            causes.append(_Cause("FieldValueInvalid", "spec.selector", f"Invalid value: {_go_value(selector)}: {exc}"))
        else:
            labels = template["metadata"].get("labels") or {}
            if not requirements:
                causes.append(
                    _Cause("FieldValueInvalid", "spec.selector", f"Invalid value: {_go_value(selector)}: empty selector is invalid for deployment")
                )
            elif not all(r.matches(labels) for r in requirements):
                causes.append(
                    _Cause(
                        "FieldValueInvalid",
                        "spec.template.metadata.labels",
                        f"Invalid value: {_go_value(labels)}: `selector` does not match template `labels`",
                    )
                )
        if old is not None and selector != old["spec"].get("selector"):
            causes.append(_Cause("FieldValueInvalid", "spec.selector", f"Invalid value: {_go_value(selector)}: field is immutable"))
    pod = template["spec"]
    if not pod.get("containers"):
        causes.append(_Cause("FieldValueRequired", "spec.template.spec.containers", "Required value"))
    seen: set[str] = set()
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(list_name) or []):
            path = f"spec.template.spec.{list_name}[{index}]"
            container_name = container.get("name")
            if not container_name:
                causes.append(_Cause("FieldValueRequired", f"{path}.name", "Required value"))
            elif container_name in seen:
                causes.append(_Cause("FieldValueDuplicate", f"{path}.name", f"Duplicate value: {json.dumps(container_name)}"))
            else:
                seen.add(container_name)
            if not container.get("image"):
                causes.append(_Cause("FieldValueRequired", f"{path}.image", "Required value"))
    if pod["restartPolicy"] != "Always":
        causes.append(
            _Cause(
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f'Unsupported value: {json.dumps(pod["restartPolicy"])}: supported values: "Always"',
            )
        )
    return causes


#: Metadata only the server sets; whatever a client sends there is replaced.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/merge-patch+json": json_merge_patch,
    "application/json-patch+json": json_patch,
}


class _Api:
    """The write and read semantics of the REST verbs, on top of :class:`_Store`.

    Every method takes the store lock for its whole read-modify-write, so a
    PATCH is atomic - the apiserver gets the same effect by retrying its
    guaranteed update internally.  ``on_write`` is called after each
    Deployment write so the controllers look at it, as their informers would.
    """

    def __init__(self, store: _Store, on_write: Callable[[str, str], None]) -> None:
        self._store = store
        self._on_write = on_write

    # -- reads ---------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self._store.get(resource.plural, namespace, name)
        if obj is None:
            raise _not_found(resource, name)
        return obj

    def list(self, resource: Resource, namespace: str | None, query: Mapping[str, str]) -> dict[str, Any]:
        """A ``<Kind>List``; ``limit``/``continue`` paginate over the current state.

        Items carry no ``apiVersion``/``kind``: the apiserver leaves them out
        of typed lists.
        """
        flt = _Filter.from_query(resource, namespace, query)
        start_after = self._decode_continue(query.get("continue", ""))
        with self._store.cond:
            objects = [o for o in self._store.list(resource.plural, namespace) if flt.matches(o)]
            resource_version = self._store.resource_version
        if start_after is not None:
            objects = [o for o in objects if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start_after]
        metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
        limit = query.get("limit", "")
        if limit.isdigit() and 0 < int(limit) < len(objects):
            last = objects[int(limit) - 1]["metadata"]
            token = json.dumps({"rv": resource_version, "start": [last.get("namespace", ""), last["name"]]})
            metadata["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            metadata["remainingItemCount"] = len(objects) - int(limit)
            objects = objects[: int(limit)]
        items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in objects]
        return {"kind": f"{resource.kind}List", "apiVersion": resource.api_version, "metadata": metadata, "items": items}

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, str] | None:
        if not token:
            return None
        try:
            start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            return (str(start[0]), str(start[1]))
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
            raise _bad_request(f"continue key is not valid: {token!r}") from None

    def namespace(self, name: str) -> dict[str, Any]:
        """Every namespace exists and is Active: the emulator does not model namespace lifecycle."""
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kube-emulator/namespaces/{name}")),
                "resourceVersion": "1",
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # -- writes --------------------------------------------------------------

    def decode(self, resource: Resource, body: bytes) -> dict[str, Any]:
        """Parse a request body as the apiserver's JSON decoder would."""
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise _bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        if not isinstance(obj, dict):
            raise _bad_request("couldn't get version/kind; json parse error: the body is not a JSON object")
        self._check_type(resource, obj)
        return obj

    @staticmethod
    def _check_type(resource: Resource, obj: dict[str, Any]) -> None:
        if not obj.get("kind"):
            raise _bad_request(f"Object 'Kind' is missing in '{json.dumps(obj, separators=(',', ':'))[:200]}'")
        if obj.get("apiVersion") != resource.api_version or obj["kind"] != resource.kind:
            raise _bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) and kind ({obj['kind']}) do not match "
                f"the expected {resource.api_version} {resource.kind}"
            )
        _check_shape(obj, resource)

    def create(self, resource: Resource, namespace: str, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        if meta.get("namespace") not in (None, namespace):
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + _random_suffix()
        with self._store.cond:
            if name and self._store.get(resource.plural, namespace, name) is not None:
                raise _already_exists(resource, name)
            new = self._prepare(resource, namespace, name, None, obj)
            if dry_run:
                return new
            self._store.commit(resource.plural, "ADDED", new)
        self._on_write(namespace, name)
        return new

    def update(
        self, resource: Resource, namespace: str, name: str, obj: dict[str, Any], subresource: str | None, dry_run: bool
    ) -> dict[str, Any]:
        """PUT: unconditional unless the body carries a resourceVersion, which must be current."""
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            raise _bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        if meta.get("namespace") not in (None, namespace):
            raise _bad_request("the namespace of the provided object does not match the namespace sent on the request")
        with self._store.cond:
            old = self.get(resource, namespace, name)
            expected = meta.get("resourceVersion")
            if expected and expected != old["metadata"]["resourceVersion"]:
                raise _conflict(resource, name, _MODIFIED)
            new = self._prepare(resource, namespace, name, old, obj, subresource)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old or dry_run:
                # A write that changes nothing is not a write: no new resourceVersion, no event.
                return new
            self._store.commit(resource.plural, "MODIFIED", new)
        self._on_write(namespace, name)
        return new

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Apply a patch to the stored object, then update as PUT would.

        A patch that leaves ``metadata.resourceVersion`` alone keeps the
        stored one (unconditional); one that sets it makes the write
        conditional - the apiserver's optimistic concurrency for patches.
        """
        patcher = _PATCHERS.get(content_type)
        if patcher is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(_PATCHERS)}",
            )
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise _bad_request(f"error decoding patch: {exc}") from None
        with self._store.cond:
            old = self.get(resource, namespace, name)
            try:
                patched = patcher(old, document)
            except PatchError as exc:
                raise ApiError(exc.code, _REASONS.get(exc.code, "BadRequest"), str(exc)) from None
            if not isinstance(patched, dict):
                raise _bad_request("the patch did not produce a JSON object")
            self._check_type(resource, patched)
            return self.update(resource, namespace, name, patched, subresource, dry_run)

    def put(self, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create-or-replace for seeding (``KubeEmulator.put_object``)."""
        obj = copy.deepcopy(obj)
        _set_default(obj, "apiVersion", resource.api_version)
        _set_default(obj, "kind", resource.kind)
        self._check_type(resource, obj)
        name = (obj.get("metadata") or {}).get("name") or ""
        with self._store.cond:
            if name and self._store.get(resource.plural, namespace, name) is not None:
                return self.update(resource, namespace, name, obj, None, False)
            return self.create(resource, namespace, obj, False)

    def delete(self, resource: Resource, namespace: str, name: str, body: bytes, dry_run: bool) -> dict[str, Any]:
        """DELETE with optional ``DeleteOptions.preconditions``; answers a Success Status.

        Dependents (ReplicaSets, pods) go when the controllers next run, as
        the garbage collector removes them after their owner.
        """
        options: Any = {}
        if body.strip():
            try:
                options = json.loads(body)
            except ValueError as exc:
                raise _bad_request(f"couldn't decode DeleteOptions: {exc}") from None
        if not isinstance(options, dict) or not isinstance(options.get("preconditions") or {}, dict):
            raise _bad_request("DeleteOptions must be a JSON object")
        preconditions = options.get("preconditions") or {}
        dry_run = dry_run or options.get("dryRun") == ["All"]
        with self._store.cond:
            old = self.get(resource, namespace, name)
            for field_name, key in (("UID", "uid"), ("ResourceVersion", "resourceVersion")):
                wanted = preconditions.get(key)
                if wanted and wanted != old["metadata"][key]:
                    raise _conflict(
                        resource,
                        name,
                        f"Precondition failed: {field_name} in precondition: {wanted}, {field_name} in object meta: {old['metadata'][key]}",
                    )
            if not dry_run:
                self._store.commit(resource.plural, "DELETED", copy.deepcopy(old))
        if not dry_run:
            self._on_write(namespace, name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**resource.details(name), "uid": old["metadata"]["uid"]},
        }

    def _prepare(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        old: dict[str, Any] | None,
        body: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """The object to store, following the Deployment REST strategy.

        * ``/status`` writes change only ``status``; the main resource never
          changes ``status`` (a client cannot fake a finished rollout).
        * Server metadata (uid, creationTimestamp, generation...) is the
          server's, whatever the client sent.
        * ``generation`` starts at 1 and grows only when ``spec`` changes, so
          ``status.observedGeneration == metadata.generation`` tells a client
          that the controller has seen its latest spec.
        """
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status") or {})
            return new
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if old is None:
            meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now())
        else:
            meta.update(uid=old["metadata"]["uid"], generation=0, creationTimestamp=old["metadata"]["creationTimestamp"])
        sent = body.get("metadata") or {}
        meta.update((k, v) for k, v in sent.items() if k not in _SERVER_METADATA and k not in meta)
        new = {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": meta,
            "spec": copy.deepcopy(body.get("spec") or {}),
            "status": copy.deepcopy(old["status"]) if old is not None else {},
        }
        _default_deployment(new)
        causes = _validate_deployment(new, old)
        if causes:
            raise _invalid(resource, name, causes)
        if old is not None:
            meta["generation"] = old["metadata"]["generation"] + (new["spec"] != old["spec"])
        return new


# --------------------------------------------------------------------------
# The controllers: deployment controller, replicaset controller and kubelet
# --------------------------------------------------------------------------


@dataclass
class _Rollout:
    """Controller memory about one Deployment that the API does not hold."""

    template_hash: str
    #: Monotonic time of the last progress - the Progressing condition's
    #: lastUpdateTime, kept precisely (API timestamps have whole seconds).
    progress_at: float


def _fenceposts(spec: Mapping[str, Any], replicas: int) -> tuple[int, int]:
    """``ResolveFenceposts``: maxSurge rounds up, maxUnavailable down, never both 0."""
    strategy = spec["strategy"]
    if strategy["type"] != "RollingUpdate":
        return 0, 0
    rolling = strategy["rollingUpdate"]

    def scaled(value: int | str, round_up: bool) -> int:
        if isinstance(value, int):
            return value
        percent = int(value[:-1])
        return -(-replicas * percent // 100) if round_up else replicas * percent // 100

    surge, unavailable = scaled(rolling["maxSurge"], True), scaled(rolling["maxUnavailable"], False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def _set_condition(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, stamp: str) -> None:
    """``SetDeploymentCondition``: no-op if status and reason are unchanged; keeps
    ``lastTransitionTime`` while the status stays the same; moves it to the end."""
    current = _condition(conditions, kind)
    if current is not None and current["status"] == status and current["reason"] == reason:
        return
    transition = current["lastTransitionTime"] if current is not None and current["status"] == status else stamp
    conditions[:] = [c for c in conditions if c.get("type") != kind]
    conditions.append(
        {
            "type": kind,
            "status": status,
            "lastUpdateTime": stamp,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message,
        }
    )


def _renew_progressing(conditions: list[dict[str, Any]], reason: str, message: str, stamp: str) -> None:
    """What ``SyncRolloutStatus`` does on progress: rewrite Progressing=True with a
    fresh ``lastUpdateTime`` (the deadline clock) even when the reason is unchanged."""
    current = _condition(conditions, "Progressing")
    conditions[:] = [c for c in conditions if c.get("type") != "Progressing"]
    _set_condition(conditions, "Progressing", "True", reason, message, stamp)
    if current is not None and current["status"] == "True":
        conditions[-1]["lastTransitionTime"] = current["lastTransitionTime"]


def _set_pod_condition(conditions: list[dict[str, Any]], kind: str, ready: bool, reason: str | None, message: str | None, stamp: str) -> None:
    status = "True" if ready else "False"
    current = _condition(conditions, kind)
    entry: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None}
    entry["lastTransitionTime"] = current["lastTransitionTime"] if current and current["status"] == status else stamp
    if reason:
        entry.update(reason=reason, message=message)
    if current is None:
        conditions.append(entry)
    else:
        conditions[conditions.index(current)] = entry


def _made_progress(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """``DeploymentProgressing``: more updated/ready/available pods or fewer old ones."""

    def old_pods(status: Mapping[str, Any]) -> int:
        return status.get("replicas", 0) - status.get("updatedReplicas", 0)

    return (
        after.get("updatedReplicas", 0) > before.get("updatedReplicas", 0)
        or old_pods(after) < old_pods(before)
        or after.get("readyReplicas", 0) > before.get("readyReplicas", 0)
        or after.get("availableReplicas", 0) > before.get("availableReplicas", 0)
    )


class _Controllers:
    """One thread playing deployment controller, replicaset controller and kubelet.

    Like the real deployment controller it is level-triggered: a pass
    (:meth:`_reconcile`) looks at a Deployment, its ReplicaSets and pods,
    and moves them one step towards the spec; a Deployment whose rollout is
    not complete is looked at again ``step_seconds`` later.  API writes to a
    Deployment queue it at once (:meth:`schedule`).  A pass runs under the
    store lock, so an API request never sees half a pass; each write still
    takes its own resourceVersion, so watchers see every step.

    One pass, in the order the real components act:

    1. kubelet: pods created by the previous pass start - Ready, or stuck in
       ``waiting`` with the reason registered for their image;
    2. deployment controller: find or create the ReplicaSet of the current
       template and compute every ReplicaSet's replicas with the real
       rolling-update arithmetic (maxSurge / maxUnavailable);
    3. replicaset controller: delete surplus pods, create at most one pod per
       ReplicaSet (so a rollout visibly advances one pod per step);
    4. deployment status and conditions, including ProgressDeadlineExceeded.
    """

    def __init__(self, store: _Store, step_seconds: float) -> None:
        self._store = store
        self._step = step_seconds
        self._cond = threading.Condition()
        self._due: dict[tuple[str, str], float] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pod_ips = itertools.count(2)
        # Guarded by the store lock (read during passes):
        self.bad_images: dict[str, str] = {}
        self._rollouts: dict[str, _Rollout] = {}
        #: pod uid -> container name -> monotonic time of its next CrashLoopBackOff restart.
        self._restart_at: dict[str, dict[str, float]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kube-emulator-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def schedule(self, namespace: str, name: str, delay: float = 0.0) -> None:
        with self._cond:
            at = time.monotonic() + delay
            self._due[(namespace, name)] = min(self._due.get((namespace, name), at), at)
            self._cond.notify_all()

    def set_step(self, seconds: float) -> None:
        """Steps already scheduled keep their time; the following ones take ``seconds``."""
        with self._cond:
            self._step = seconds

    def clear(self) -> None:
        """Forget every rollout (``reset``); the caller holds the store lock."""
        with self._cond:
            self._due.clear()
        self.bad_images.clear()
        self._rollouts.clear()
        self._restart_at.clear()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    due = [key for key, at in self._due.items() if at <= now]
                    if due:
                        break
                    self._cond.wait(min(self._due.values()) - now if self._due else None)
                for key in due:
                    del self._due[key]
            for namespace, name in due:
                with self._store.cond:
                    try:
                        again = self._reconcile(namespace, name)
                    except Exception:  # a bug here must not kill the thread; keep it visible
                        traceback.print_exc()
                        again = False
                if again:
                    self.schedule(namespace, name, self._step)

    # -- one pass ------------------------------------------------------------

    def _reconcile(self, namespace: str, name: str) -> bool:
        """Move one Deployment a step; True while its rollout is not complete."""
        store = self._store
        deployment = store.get("deployments", namespace, name)
        uid = deployment["metadata"]["uid"] if deployment is not None else None
        owned = []
        for replica_set in store.list("replicasets", namespace):
            ref = _controller_ref(replica_set)
            if ref is None or ref.get("kind") != "Deployment" or ref.get("name") != name:
                continue
            if ref.get("uid") == uid:
                owned.append(replica_set)
            else:  # the owner is gone (or was replaced): garbage-collect
                self._rollouts.pop(ref.get("uid"), None)
                self._delete_replica_set(replica_set)
        if deployment is None:
            return False

        now, stamp = time.monotonic(), _now()
        pods = {rs["metadata"]["uid"]: [self._kubelet(pod, now, stamp) for pod in self._pods_of(rs)] for rs in owned}

        spec = deployment["spec"]
        desired = spec["replicas"]
        template_hash = _template_hash(spec["template"])
        conditions = copy.deepcopy((deployment.get("status") or {}).get("conditions") or [])
        new_rs = next((rs for rs in owned if _labels(rs).get(POD_TEMPLATE_HASH) == template_hash), None)
        old_rss = sorted((rs for rs in owned if rs is not new_rs), key=_creation_order)
        max_old_revision = max((_revision(rs) for rs in old_rss), default=0)
        rollout = self._rollouts.get(uid)
        if new_rs is None or rollout is None or rollout.template_hash != template_hash:
            # A rollout starts (create or template change): the new ReplicaSet
            # appears and Progressing is renewed at once, restarting the deadline.
            if new_rs is None:
                new_rs = self._create_replica_set(deployment, template_hash, max_old_revision + 1, stamp)
                pods[new_rs["metadata"]["uid"]] = []
            elif _revision(new_rs) <= max_old_revision:
                # Back to a template that still has a ReplicaSet (a rollback): it becomes the newest revision.
                updated = copy.deepcopy(new_rs)
                _set_default(updated["metadata"], "annotations", {})[REVISION_ANNOTATION] = str(max_old_revision + 1)
                new_rs = store.commit("replicasets", "MODIFIED", updated)
            _renew_progressing(conditions, "ReplicaSetUpdated", f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.', stamp)
            rollout = self._rollouts[uid] = _Rollout(template_hash, now)

        surge, unavailable = _fenceposts(spec, desired)
        targets = self._scale_targets(spec, desired, surge, unavailable, new_rs, old_rss, pods)
        for replica_set in [new_rs, *old_rss]:
            rs_uid = replica_set["metadata"]["uid"]
            pods[rs_uid] = self._sync_replica_set(replica_set, targets[rs_uid], pods[rs_uid], stamp)

        all_pods = [pod for group in pods.values() for pod in group]
        ready = sum(_is_ready(pod) for pod in all_pods)
        counts = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": len(all_pods),
            "updatedReplicas": len(pods[new_rs["metadata"]["uid"]]),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, sum(targets.values()) - ready),
        }
        if ready >= desired - unavailable:
            _set_condition(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", stamp)
        else:
            _set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", stamp)

        complete = counts["updatedReplicas"] == desired and counts["replicas"] == desired and ready == desired
        progressing = _condition(conditions, "Progressing")
        already_complete = (
            counts["replicas"] == counts["updatedReplicas"]
            and progressing is not None
            and progressing["reason"] == "NewReplicaSetAvailable"
        )
        rs_name = new_rs["metadata"]["name"]
        if not already_complete:
            if complete:
                _renew_progressing(conditions, "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.', stamp)
                rollout.progress_at = now
            elif _made_progress(deployment.get("status") or {}, counts):
                _renew_progressing(conditions, "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', stamp)
                rollout.progress_at = now
            elif (progressing is not None and progressing["reason"] == "ProgressDeadlineExceeded") or (
                now - rollout.progress_at > spec["progressDeadlineSeconds"]
            ):
                _set_condition(
                    conditions, "Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.', stamp
                )
        if complete:
            self._clean_up_history(spec, old_rss, targets, pods)

        updated = copy.deepcopy(deployment)
        _set_default(updated["metadata"], "annotations", {})[REVISION_ANNOTATION] = str(_revision(new_rs))
        # Zero counts are omitted (``omitempty``), so a finished rollout has no unavailableReplicas.
        updated["status"] = {**{k: v for k, v in counts.items() if v}, "conditions": conditions}
        if updated != deployment:
            store.commit("deployments", "MODIFIED", updated)
        return not complete

    @staticmethod
    def _scale_targets(
        spec: Mapping[str, Any],
        desired: int,
        surge: int,
        unavailable: int,
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
        pods: Mapping[str, list[dict[str, Any]]],
    ) -> dict[str, int]:
        """ReplicaSet sizes after one controller sync.

        RollingUpdate follows ``reconcileNewReplicaSet`` (grow the new
        ReplicaSet up to replicas + maxSurge in total) and
        ``reconcileOldReplicaSets`` (first drop unhealthy old pods, then old
        pods while at least replicas - maxUnavailable stay available).  With a
        bad image the new pods never become available, so old ones are never
        scaled down - the stuck rollout ``kubectl rollout status`` reports.
        Recreate removes every old pod before the new ReplicaSet grows.
        """
        uid = lambda rs: rs["metadata"]["uid"]  # noqa: E731
        targets = {uid(rs): rs["spec"]["replicas"] for rs in [new_rs, *old_rss]}
        available = {key: sum(_is_ready(p) for p in group) for key, group in pods.items()}
        if spec["strategy"]["type"] == "Recreate":
            old_pods_left = any(pods[uid(rs)] for rs in old_rss)
            targets.update({uid(rs): 0 for rs in old_rss})
            targets[uid(new_rs)] = 0 if old_pods_left else desired
            return targets

        new_target = targets[uid(new_rs)]
        if new_target > desired:
            new_target = desired
        elif new_target < desired:
            room = desired + surge - sum(targets.values())
            new_target += max(0, min(room, desired - new_target))
        targets[uid(new_rs)] = new_target

        min_available = desired - unavailable
        max_scaled_down = sum(targets.values()) - min_available - (new_target - available[uid(new_rs)])
        if max_scaled_down <= 0:
            return targets
        cleaned = 0
        for rs in old_rss:
            unhealthy = targets[uid(rs)] - available[uid(rs)]
            if cleaned >= max_scaled_down:
                break
            if targets[uid(rs)] == 0 or unhealthy <= 0:
                continue
            down = min(max_scaled_down - cleaned, unhealthy)
            targets[uid(rs)] -= down
            cleaned += down
        to_remove = sum(available.values()) - min_available
        for rs in old_rss:
            if to_remove <= 0:
                break
            down = min(targets[uid(rs)], to_remove)
            targets[uid(rs)] -= down
            to_remove -= down
        return targets

    def _clean_up_history(
        self,
        spec: Mapping[str, Any],
        old_rss: list[dict[str, Any]],
        targets: Mapping[str, int],
        pods: Mapping[str, list[dict[str, Any]]],
    ) -> None:
        """``cleanupDeployment``: keep at most ``revisionHistoryLimit`` empty old ReplicaSets."""
        empty = [rs for rs in old_rss if targets[rs["metadata"]["uid"]] == 0 and not pods[rs["metadata"]["uid"]]]
        excess = len(empty) - spec["revisionHistoryLimit"]
        for replica_set in sorted(empty, key=_revision)[: max(0, excess)]:
            self._delete_replica_set(replica_set)

    # -- ReplicaSets and pods --------------------------------------------------

    def _pods_of(self, replica_set: Mapping[str, Any]) -> list[dict[str, Any]]:
        uid = replica_set["metadata"]["uid"]
        return [
            pod
            for pod in self._store.list("pods", replica_set["metadata"]["namespace"])
            if (_controller_ref(pod) or {}).get("uid") == uid
        ]

    def _delete_replica_set(self, replica_set: dict[str, Any]) -> None:
        for pod in self._pods_of(replica_set):
            self._delete_pod(pod)
        self._store.commit("replicasets", "DELETED", copy.deepcopy(replica_set))

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        self._restart_at.pop(pod["metadata"]["uid"], None)
        self._store.commit("pods", "DELETED", copy.deepcopy(pod))

    def _create_replica_set(self, deployment: dict[str, Any], template_hash: str, revision: int, stamp: str) -> dict[str, Any]:
        meta = deployment["metadata"]
        template = copy.deepcopy(deployment["spec"]["template"])
        labels = {**(template["metadata"].get("labels") or {}), POD_TEMPLATE_HASH: template_hash}
        template["metadata"]["labels"] = labels
        selector = copy.deepcopy(deployment["spec"]["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: template_hash}
        replica_set = {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": f"{meta['name']}-{template_hash}",
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": stamp,
                "labels": labels,
                "annotations": {REVISION_ANNOTATION: str(revision)},
                "ownerReferences": [_owner_reference(deployment)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        return self._store.commit("replicasets", "ADDED", replica_set)

    def _sync_replica_set(
        self, replica_set: dict[str, Any], target: int, pods: list[dict[str, Any]], stamp: str
    ) -> list[dict[str, Any]]:
        """The replicaset controller: resize to ``target``, then write spec + status.

        Surplus pods go at once (unready first, then newest), like the real
        controller's burst deletion; missing pods come one per pass.
        """
        pods = list(pods)
        if len(pods) > target:
            doomed = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
            doomed.sort(key=_is_ready)
            for pod in doomed[: len(pods) - target]:
                self._delete_pod(pod)
                pods.remove(pod)
        elif len(pods) < target:
            pods.append(self._create_pod(replica_set, stamp))
        updated = copy.deepcopy(replica_set)
        generation = replica_set["metadata"]["generation"] + (target != replica_set["spec"]["replicas"])
        updated["metadata"]["generation"] = generation
        updated["spec"]["replicas"] = target
        ready = sum(_is_ready(pod) for pod in pods)
        status = {"fullyLabeledReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": generation}
        updated["status"] = {"replicas": len(pods), **{k: v for k, v in status.items() if v}}
        if updated != replica_set:
            self._store.commit("replicasets", "MODIFIED", updated)
        return pods

    def _create_pod(self, replica_set: dict[str, Any], stamp: str) -> dict[str, Any]:
        """A scheduled pod whose containers are still being created."""
        rs_meta = replica_set["metadata"]
        template = replica_set["spec"]["template"]
        spec = copy.deepcopy(template["spec"])
        spec["nodeName"] = NODE_NAME
        number = next(self._pod_ips)
        pod_ip = f"10.244.{number // 250 % 250}.{number % 250 + 2}"
        metadata: dict[str, Any] = {
            "name": f"{rs_meta['name']}-{_random_suffix()}",
            "generateName": f"{rs_meta['name']}-",
            "namespace": rs_meta["namespace"],
            "uid": str(uuid.uuid4()),
            "creationTimestamp": stamp,
            "labels": dict(template["metadata"]["labels"]),
            "ownerReferences": [_owner_reference(replica_set)],
        }
        if template["metadata"].get("annotations"):
            metadata["annotations"] = dict(template["metadata"]["annotations"])
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": spec,
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}],
                "hostIP": NODE_IP,
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": stamp,
                "containerStatuses": [
                    {
                        "name": container["name"],
                        "image": container["image"],
                        "imageID": "",
                        "ready": False,
                        "started": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                        "lastState": {},
                    }
                    for container in spec["containers"]
                ],
                "qosClass": "BestEffort",
            },
        }
        return self._store.commit("pods", "ADDED", pod)

    def _kubelet(self, pod: dict[str, Any], now: float, stamp: str) -> dict[str, Any]:
        """Start the pod's containers, or report why they cannot run."""
        current = pod["status"]["containerStatuses"]
        statuses = [self._container_status(pod, container, status, now, stamp) for container, status in zip(pod["spec"]["containers"], current)]
        if statuses == current:
            return pod
        updated = copy.deepcopy(pod)
        status = updated["status"]
        status["containerStatuses"] = statuses
        status["phase"] = "Running" if any("running" in s["state"] or s["restartCount"] for s in statuses) else "Pending"
        unready = [s["name"] for s in statuses if not s["ready"]]
        reason, message = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]") if unready else (None, None)
        _set_pod_condition(status["conditions"], "Initialized", True, None, None, stamp)
        _set_pod_condition(status["conditions"], "ContainersReady", not unready, reason, message, stamp)
        _set_pod_condition(status["conditions"], "Ready", not unready, reason, message, stamp)
        return self._store.commit("pods", "MODIFIED", updated)

    def _container_status(
        self, pod: dict[str, Any], container: dict[str, Any], current: dict[str, Any], now: float, stamp: str
    ) -> dict[str, Any]:
        """A container that runs keeps running (the kubelet does not re-pull);
        any other starts if its image is good, else waits with the image's reason.
        Clearing a bad image therefore lets stuck pods start, as a retried pull would."""
        if "running" in current["state"]:
            return current
        image = container["image"]
        reason = self.bad_images.get(image)
        digest = hashlib.sha256(image.encode()).hexdigest()
        if reason is None:
            return {
                **current,
                "ready": True,
                "started": True,
                "imageID": f"{image.split('@')[0]}@sha256:{digest}",
                "containerID": f"containerd://{secrets.token_hex(32)}",
                "state": {"running": {"startedAt": stamp}},
            }
        if reason == "ImagePullBackOff":
            return {**current, "state": {"waiting": {"reason": reason, "message": f'Back-off pulling image "{image}"'}}}
        if reason == "ErrImagePull":
            message = f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": not found'
            return {**current, "state": {"waiting": {"reason": reason, "message": message}}}
        # CrashLoopBackOff: the container starts, exits 1 and is restarted with a
        # doubling back-off (10s, 20s ... 5m in the kubelet; ``step_seconds`` doubling here).
        pod_uid = pod["metadata"]["uid"]
        due = self._restart_at.setdefault(pod_uid, {})
        if current["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" and now < due.get(container["name"], 0.0):
            return current
        restarts = current["restartCount"] + 1
        due[container["name"]] = now + self._step * 2 ** min(restarts - 1, 5)
        container_id = f"containerd://{secrets.token_hex(32)}"
        back_off = _go_duration(min(10 * 2 ** (restarts - 1), 300))
        meta = pod["metadata"]
        return {
            **current,
            "ready": False,
            "started": False,
            "restartCount": restarts,
            "imageID": f"{image.split('@')[0]}@sha256:{digest}",
            "containerID": container_id,
            "state": {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {back_off} restarting failed container={container['name']} "
                    f"pod={meta['name']}_{meta['namespace']}({meta['uid']})",
                }
            },
            "lastState": {
                "terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp, "containerID": container_id}
            },
        }


# --------------------------------------------------------------------------
# HTTPS
# --------------------------------------------------------------------------


def _make_tls(host: str) -> tuple[bytes, ssl.SSLContext]:
    """A fresh CA and a server certificate it signs (SAN 127.0.0.1, localhost and ``host``).

    Keys are P-256 (fast to make; rustls and OpenSSL both accept them).  The
    server key touches disk only inside a private temporary directory that is
    removed as soon as the context has loaded it (``ssl`` only loads files).
    """
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-emulator-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        extra: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra = x509.DNSName(host)
    if extra not in names:
        names.append(extra)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="kube-emulator-") as directory:
        cert_file, key_file = Path(directory, "server.crt"), Path(directory, "server.key")
        cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.load_cert_chain(cert_file, key_file)
    return ca_cert.public_bytes(serialization.Encoding.PEM), context


class _TlsServer(http.server.ThreadingHTTPServer):
    """A threading HTTPS server that can close its keep-alive connections on stop.

    The TLS handshake is done in the connection's own thread (``setup``), so
    a slow or failing client never blocks ``accept``.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, emulator: "KubeEmulator") -> None:
        super().__init__(address, _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down at the TCP level, waking threads blocked on it."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _abort(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that go away or fail the handshake are normal; report anything else."""
        if not isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)):
            super().handle_error(request, client_address)


def _abort(connection: socket.socket) -> None:
    """Cut a connection without a TLS close_notify or HTTP terminator.

    ``socket.socket.shutdown`` is called on the raw socket on purpose: the
    SSLSocket override would tear down its SSL object under a thread that
    may be using it.
    """
    try:
        socket.socket.shutdown(connection, socket.SHUT_RDWR)
    except OSError:
        pass


class _WatchCut(Exception):
    """The admin asked for this watch to be cut (``drop_watches_after``)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every answer has a Content-Length or is chunked."""

    protocol_version = "HTTP/1.1"
    server_version = "kube-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # watch events are small writes that must not wait
    server: _TlsServer

    def setup(self) -> None:
        self.server.track(self.request)
        try:
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
            self.request.settimeout(None)
        except BaseException:
            self.server.untrack(self.request)
            raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log replaces the access log

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- request plumbing --------------------------------------------------------

    def _handle(self) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        self._entry = {
            "method": self.command,
            "path": url.path,
            "query": query,
            "user": None,
            "status": None,
            "watch": self.command == "GET" and query.get("watch") in ("true", "1"),
        }
        self._streaming = False
        try:
            body = self._read_body()
            self._entry["user"] = emulator._authenticate(self.headers.get("Authorization"))
            emulator._take_fault(self.command, url.path)
            self._route(url.path, query, body)
        except ApiError as error:
            self._send_json(error.code, error.status(), error.headers)
        except OSError:  # the client went away (ssl.SSLError is an OSError too)
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            if not self._streaming:
                self._send_json(500, ApiError(500, "InternalError", "Internal error occurred: emulator bug").status())
            self.close_connection = True

    def _read_body(self) -> bytes:
        """Read the whole body first, so the connection stays in sync whatever we answer."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            self.close_connection = True
            raise _bad_request(f"invalid Content-Length {length!r}")
        return self.rfile.read(int(length))

    def _log(self, status: int) -> None:
        self._entry["status"] = status
        self.server.emulator._record(self._entry)

    def _send_json(self, code: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        self._log(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    # -- routing -------------------------------------------------------------------

    def _route(self, path: str, query: Mapping[str, str], body: bytes) -> None:
        emulator = self.server.emulator
        discovery = emulator._discovery(path)
        if discovery is not None:
            if self.command != "GET":
                raise _method_not_allowed()
            self._send_json(200, discovery)
            return
        resource, namespace, name, subresource = _parse_path(path)
        api = emulator._api
        if resource is NAMESPACES:
            if self.command != "GET" or name is None:
                raise _method_not_allowed()
            self._send_json(200, api.namespace(name))
            return
        if name is None:
            if self.command == "GET" and self._entry["watch"]:
                self._watch(resource, namespace, query)
            elif self.command == "GET":
                self._send_json(200, api.list(resource, namespace, query))
            elif self.command == "POST" and "create" in resource.verbs and namespace is not None:
                self._require_json()
                self._send_json(201, api.create(resource, namespace, api.decode(resource, body), _dry_run(query)))
            else:
                raise _method_not_allowed()
            return
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(self.command)
        if verb not in resource.verbs or (subresource is not None and verb == "delete"):
            raise _method_not_allowed()
        if verb == "get":
            self._send_json(200, api.get(resource, namespace, name))
        elif verb == "update":
            self._require_json()
            obj = api.decode(resource, body)
            self._send_json(200, api.update(resource, namespace, name, obj, subresource, _dry_run(query)))
        elif verb == "patch":
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            self._send_json(200, api.patch(resource, namespace, name, content_type, body, subresource, _dry_run(query)))
        else:
            self._send_json(200, api.delete(resource, namespace, name, body, _dry_run(query)))

    def _require_json(self) -> None:
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
        if content_type not in ("application/json", "*/*", ""):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f'the body of the request was in an unknown format - accepted media types include: application/json (got "{content_type}")',
            )

    # -- watch ---------------------------------------------------------------------

    def _watch(self, resource: Resource, namespace: str | None, query: Mapping[str, str]) -> None:
        """Stream events as the apiserver's watch cache does.

        * ``resourceVersion`` unset or "0": synthetic ADDED events for what
          exists now, then live events.
        * ``resourceVersion=N``: replay every event after N from the history;
          if N is older than the history, a single ERROR event with a 410
          ``Expired`` Status and the end of the stream (HTTP status stays 200).
          A watcher that falls so far behind that the history overtakes it
          gets the same.
        * ``timeoutSeconds`` (default and cap :data:`WATCH_TIMEOUT_CAP`) ends
          the stream with the chunked terminator; so do ``stop()`` and ``reset()``.
        * ``allowWatchBookmarks``: a BOOKMARK carrying the current
          resourceVersion every ``bookmark_seconds``.
        * ``sendInitialEvents=true`` (streaming lists): the current objects as
          ADDED, then the BOOKMARK annotated ``k8s.io/initial-events-end``
          that such clients wait for (``resourceVersionMatch`` is not checked).
        """
        emulator = self.server.emulator
        store = emulator._store
        flt = _Filter.from_query(resource, namespace, query)
        timeout = _positive_int(query, "timeoutSeconds")
        deadline = time.monotonic() + (min(timeout, WATCH_TIMEOUT_CAP) if timeout else WATCH_TIMEOUT_CAP)
        bookmark_every = emulator._bookmark_seconds if query.get("allowWatchBookmarks") in ("true", "1") else None
        start = query.get("resourceVersion", "")
        if start not in ("", "0") and not start.isdigit():
            raise _bad_request(f'invalid resource version "{start}"')
        send_initial_events = query.get("sendInitialEvents") == "true"
        with store.cond:
            epoch = store.epoch
            pending: list[tuple[str, dict[str, Any]]] = []
            finished = False
            if send_initial_events or start in ("", "0"):
                cursor = store.resource_version
                pending = [("ADDED", obj) for obj in store.list(resource.plural, namespace) if flt.matches(obj)]
                if send_initial_events:
                    pending.append(("BOOKMARK", _bookmark(resource, cursor, initial_events_end=True)))
            elif int(start) < store.floor:
                cursor, finished = int(start), True
                pending = [("ERROR", _expired(f"too old resource version: {start} ({store.floor})").status())]
            else:
                cursor = int(start)
            store.open_watches += 1
        cut_after = emulator._take_watch_cut(urlsplit(self.path).path)
        sent = 0
        self._log(200)
        self._streaming = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            next_bookmark = time.monotonic() + bookmark_every if bookmark_every else None
            while True:
                for event_type, obj in pending:
                    if cut_after is not None and sent >= cut_after:
                        raise _WatchCut()
                    line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    sent += 1
                if cut_after is not None and sent >= cut_after:
                    raise _WatchCut()
                if finished:
                    break
                pending, cursor, finished, bookmark_due = self._next_events(
                    store, resource, flt, cursor, epoch, deadline, next_bookmark
                )
                if bookmark_due:
                    pending.append(("BOOKMARK", _bookmark(resource, cursor)))
                    next_bookmark = time.monotonic() + bookmark_every
                if finished and not pending:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except _WatchCut:
            self.close_connection = True
            _abort(self.request)
        finally:
            with store.cond:
                store.open_watches -= 1
                store.cond.notify_all()

    @staticmethod
    def _next_events(
        store: _Store,
        resource: Resource,
        flt: _Filter,
        cursor: int,
        epoch: int,
        deadline: float,
        next_bookmark: float | None,
    ) -> tuple[list[tuple[str, dict[str, Any]]], int, bool, bool]:
        """Block on the store condition until there is something to send.

        Returns (events, new cursor, stream finished?, bookmark due?).
        """
        with store.cond:
            while True:
                if store.stopping or store.epoch != epoch:
                    return [], cursor, True, False
                events = store.events_after(cursor)
                if events is None:
                    status = _expired(f"too old resource version: {cursor} ({store.floor})").status()
                    return [("ERROR", status)], cursor, True, False
                pending = []
                for event in events:
                    if event.plural != resource.plural:
                        continue
                    was, now_matches = flt.matches(event.previous), flt.matches(event.obj)
                    if event.type == "DELETED":
                        if was:
                            pending.append(("DELETED", event.obj))
                    elif now_matches:
                        pending.append(("MODIFIED" if was else "ADDED", event.obj))
                    elif was:
                        pending.append(("DELETED", event.obj))
                cursor = store.resource_version if events else cursor
                now = time.monotonic()
                if pending:
                    return pending, cursor, False, False
                if now >= deadline:
                    return [], cursor, True, False
                if next_bookmark is not None and now >= next_bookmark:
                    return [], cursor, False, True
                store.cond.wait(min(deadline, next_bookmark or deadline) - now)


def _bookmark(resource: Resource, resource_version: int, initial_events_end: bool = False) -> dict[str, Any]:
    """A BOOKMARK object: only the kind and the resourceVersion the watch has reached."""
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}


def _parse_path(path: str) -> tuple[Resource, str | None, str | None, str | None]:
    """``/api/v1/...`` or ``/apis/apps/v1/...`` -> (resource, namespace, name, subresource)."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:3] == ["apis", "apps", "v1"]:
        group, rest = "apps", parts[3:]
    else:
        raise _path_not_found()
    namespace = None
    if group == "" and len(rest) == 2 and rest[0] == "namespaces":
        return NAMESPACES, None, rest[1], None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = RESOURCES.get((group, rest[0])) if 1 <= len(rest) <= 3 else None
    if resource is None or resource is NAMESPACES or (namespace is not None and not resource.namespaced):
        raise _path_not_found()
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in resource.subresources:
        raise _path_not_found()
    return resource, namespace, name, subresource


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise _bad_request(f'Invalid dry run value: "{value}", supported values: "All"')
    return True


def _positive_int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit():
        raise _bad_request(f'invalid {name} "{value}": must be a non-negative integer')
    return int(value)


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int


class KubeEmulator:
    """An HTTPS kube-apiserver for Deployments, ReplicaSets and Pods, plus test hooks.

    ``token_verifier(token) -> username`` authenticates every request (raise to
    refuse).  ``step_seconds`` paces rollouts.  ``history_size`` bounds the
    watch history (small values make ``410 Expired`` easy to provoke) and
    ``bookmark_seconds`` is the BOOKMARK period for watches that allow them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_verifier: Callable[[str], str],
        step_seconds: float = 0.2,
        history_size: int = 1000,
        bookmark_seconds: float = 60.0,
    ) -> None:
        if step_seconds <= 0 or history_size < 1 or bookmark_seconds <= 0:
            raise ValueError("step_seconds, history_size and bookmark_seconds must be positive")
        self._host = host
        self._port = port
        self._token_verifier = token_verifier
        self._bookmark_seconds = bookmark_seconds
        self._store = _Store(history_size)
        self._controllers = _Controllers(self._store, step_seconds)
        self._api = _Api(self._store, self._controllers.schedule)
        self._admin_lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._watch_cuts: deque[tuple[int, re.Pattern[str] | None]] = deque()
        self._log: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._server: _TlsServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.ca_pem = b""
        self.server_url = ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Generate the certificates, start listening and start the controllers (once per emulator)."""
        if self.server_url:
            raise RuntimeError("a KubeEmulator can be started only once")
        self.ca_pem, context = _make_tls(self._host)
        self._server = _TlsServer((self._host, self._port), context, self)
        port = self._server.server_address[1]
        self.server_url = f"https://{self._host}:{port}"
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-emulator-http", daemon=True
        )
        self._serve_thread.start()
        self._controllers.start()

    def stop(self) -> None:
        """Stop accepting, end open watches cleanly, close connections, join every thread."""
        if self._server is None:
            return
        self._server.shutdown()
        with self._store.cond:
            self._store.stopping = True
            self._store.cond.notify_all()
            self._store.cond.wait_for(lambda: self._store.open_watches == 0, timeout=STOP_GRACE)
        self._server.close_connections()
        self._server.server_close()  # joins the connection threads
        self._serve_thread.join(timeout=5)
        self._controllers.stop()
        self._server = None

    # -- test hooks ------------------------------------------------------------------

    def mark_image_bad(self, image: str, reason: str = "ImagePullBackOff") -> None:
        """Containers using exactly ``image`` will not start, with this kubelet reason."""
        if reason not in BAD_IMAGE_REASONS:
            raise ValueError(f"reason must be one of {', '.join(BAD_IMAGE_REASONS)}")
        with self._store.cond:
            self._controllers.bad_images[image] = reason

    def clear_bad_images(self) -> None:
        with self._store.cond:
            self._controllers.bad_images.clear()

    def set_step_seconds(self, seconds: float) -> None:
        """Pace rollouts from now on: one controller step every ``seconds`` (the benchmark
        shows that eks-deploy's requests do not grow with a rollout's length)."""
        if not seconds > 0:
            raise ValueError("step_seconds must be positive")
        self._controllers.set_step(seconds)

    def inject_faults(self, method: str, path_regex: str, status: int, count: int = 1) -> None:
        """The next ``count`` authenticated requests with ``method`` and a path matching
        ``path_regex`` (``re.search``) get a ``status`` error Status instead of being served."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("status must be 400-599 and count at least 1")
        with self._admin_lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), status, count))

    def drop_watches_after(self, events: int, count: int = 1, path_regex: str | None = None) -> None:
        """Cut the next ``count`` watch streams (of paths matching ``path_regex``, if given:
        ``re.search``) after ``events`` events: the connection closes with no chunked
        terminator, as when a load balancer or apiserver dies."""
        if events < 0 or count < 1:
            raise ValueError("events must be >= 0 and count >= 1")
        pattern = re.compile(path_regex) if path_regex is not None else None
        with self._admin_lock:
            self._watch_cuts.extend([(events, pattern)] * count)

    def request_log(self) -> list[dict[str, Any]]:
        """Answered requests in order: ``{method, path, query, user, status, watch}``."""
        with self._admin_lock:
            return copy.deepcopy(list(self._log))

    def clear_request_log(self) -> None:
        with self._admin_lock:
            self._log.clear()

    def reset(self) -> None:
        """Drop every object, rollout, fault, cut, bad image and log entry; open watches end."""
        with self._store.cond:
            self._store.clear()
            self._controllers.clear()
        with self._admin_lock:
            self._faults.clear()
            self._watch_cuts.clear()
            self._log.clear()

    def get_object(self, kind_plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._store.get(kind_plural, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def put_object(self, kind_plural: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a Deployment through the API's defaulting and validation
        (raises :class:`ApiError`); the controllers then roll it out."""
        resource = _BY_PLURAL.get(kind_plural)
        if resource is not DEPLOYMENTS:
            raise ValueError("only deployments can be written; the controllers own replicasets and pods")
        return copy.deepcopy(self._api.put(resource, namespace, obj))

    # -- used by the handler -------------------------------------------------------------

    def _authenticate(self, header: str | None) -> str:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized()
        try:
            return self._token_verifier(token.strip())
        except Exception:
            raise _unauthorized() from None

    def _take_fault(self, method: str, path: str) -> None:
        with self._admin_lock:
            for fault in self._faults:
                if fault.method == method and fault.path.search(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    break
            else:
                return
        reason = _REASONS.get(fault.status, "InternalError" if fault.status >= 500 else "BadRequest")
        headers = {"Retry-After": "1"} if fault.status in (429, 503) else None
        raise ApiError(fault.status, reason, f"injected fault: {fault.status} {reason} for {method} {path}", {}, headers)

    def _take_watch_cut(self, path: str) -> int | None:
        with self._admin_lock:
            for index, (events, pattern) in enumerate(self._watch_cuts):
                if pattern is None or pattern.search(path):
                    del self._watch_cuts[index]
                    return events
            return None

    def _record(self, entry: dict[str, Any]) -> None:
        with self._admin_lock:
            self._log.append(copy.deepcopy(entry))

    def _discovery(self, path: str) -> dict[str, Any] | None:
        """``/version`` and the legacy discovery documents, or None for other paths."""
        path = "/" + path.strip("/")
        if path == "/version":
            return VERSION_INFO
        if path == "/api":
            address = f"{self._host}:{self._server.server_address[1]}"
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            }
        if path == "/apis":
            version = {"groupVersion": "apps/v1", "version": "v1"}
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [version], "preferredVersion": version}],
            }
        groups = {"/api/v1": "", "/apis/apps/v1": "apps"}
        if path not in groups:
            return None
        resources = []
        for resource in RESOURCES.values():
            if resource.group != groups[path]:
                continue
            resources.append(
                {
                    "name": resource.plural,
                    "singularName": resource.singular,
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(resource.verbs),
                    "shortNames": list(resource.short_names),
                }
            )
            for subresource in resource.subresources:
                resources.append(
                    {
                        "name": f"{resource.plural}/{subresource}",
                        "singularName": "",
                        "namespaced": resource.namespaced,
                        "kind": resource.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": path.split("/", 2)[2], "resources": resources}
