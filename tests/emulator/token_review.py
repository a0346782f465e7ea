"""The local cluster's authentication of EKS tokens: a TokenReview webhook, as on EKS.

On EKS, the API server hands every bearer token it does not know to
aws-iam-authenticator through ``--authentication-token-webhook-config-file``:
a ``TokenReview`` (authentication.k8s.io/v1) comes in, the token is checked
(``pkg/token/token.go``: the presigned STS ``GetCallerIdentity`` URL, replayed
against STS), the caller's IAM identity is looked up in the cluster's access
entries, and the answer names the Kubernetes user and groups RBAC then judges.

:class:`TokenReviewer` does the same: :class:`eks_token.EksTokenVerifier`
checks the token (signature recomputed with botocore instead of the STS call),
the access key is the caller's IAM role session (there is no STS to ask), and
the access entry comes from ``infra/pipeline.yaml``'s ``AWS::EKS::AccessEntry``
resources, read as CloudFormation would create them. So the Role in
``infra/k8s/rbac.yaml`` is judged against exactly the user and groups that
the shipped access entry gives eks-deploy.

A caller is matched to an entry as aws-iam-authenticator matches it: the
caller's ARN (an STS ``assumed-role/ROLE/SESSION`` ARN for a role session,
which is how eks-deploy calls, also when it assumed a role of another account)
is canonicalized to the IAM role ARN (:func:`canonical_arn`), and that is the
entry's principal; the username keeps the session name.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

__all__ = [
    "AccessEntry",
    "CallerIdentity",
    "TokenReviewer",
    "TokenReviewServer",
    "access_entries_from_template",
    "canonical_arn",
    "deploy_entry",
]

REVIEW_PATH = "/authenticate"
MAX_BODY = 64 * 1024
#: The partitions aws-iam-authenticator recognizes (pkg/arn: checkPartition).
PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b")


def canonical_arn(arn: str) -> str:
    """The principal ``arn`` stands for, as aws-iam-authenticator's ``arn.Canonicalize`` has it.

    An STS assumed-role ARN (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``)
    becomes its IAM role's ARN; the role's path is not in it, and everything
    between ``assumed-role/`` and the last ``/`` (the session) is the role
    name. IAM users, roles, the root and STS federated users are kept as they
    are; anything else is refused (``ValueError``), never passed through.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[5]:
        raise ValueError(f"arn {arn!r} is invalid")
    _, partition, service, _, account, resource = parts
    if partition not in PARTITIONS:
        raise ValueError(f"arn {arn!r} does not have a recognized partition")
    kind, *rest = resource.split("/")
    if service == "sts":
        if kind == "federated-user":
            return arn
        if kind == "assumed-role":
            if len(rest) < 2:
                raise ValueError(f"assumed-role arn {arn!r} does not have a role")
            return f"arn:{partition}:iam::{account}:role/{'/'.join(rest[:-1])}"
        raise ValueError(f"unrecognized resource {resource} for service sts")
    if service == "iam":
        if kind in ("role", "user", "root"):
            return arn
        raise ValueError(f"unrecognized resource {resource} for service iam")
    raise ValueError(f"service {service} in arn {arn} is not a valid service for identities")


@dataclass(frozen=True)
class CallerIdentity:
    """Who signed a token: the IAM role and its session, as STS GetCallerIdentity would say."""

    account_id: str
    role_name: str
    session_name: str

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.role_name}"

    @property
    def assumed_role_arn(self) -> str:
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.role_name}/{self.session_name}"

    @classmethod
    def from_arn(cls, arn: str) -> CallerIdentity:
        """The role session an STS ``assumed-role`` ARN (GetCallerIdentity's ``Arn``) names."""
        role_arn = canonical_arn(arn)
        if ":assumed-role/" not in arn:
            raise ValueError(f"{arn!r} is not a role session (an STS assumed-role ARN)")
        account_id = arn.split(":")[4]
        role_name = role_arn.split(":role/", 1)[1]
        session_name = arn.rsplit("/", 1)[1]
        return cls(account_id, role_name, session_name)


@dataclass(frozen=True)
class AccessEntry:
    """An EKS access entry: which IAM principal is which Kubernetes user, in which groups."""

    #: The logical id in the template, for messages.
    name: str
    #: ``STANDARD`` entries carry Kubernetes groups; the others are for nodes.
    kind: str
    groups: tuple[str, ...]
    #: The template's ``Username``; None takes EKS's default for the principal.
    username: str | None
    #: The template's ``PrincipalArn`` when it is literal; None when it is given at deploy time
    #: (``!Ref DeployFunctionRoleArn``): then the entry is the one of the role the emulator's
    #: callers are sessions of.
    principal: str | None = None
    #: The template's ``ClusterName`` when it is literal.
    cluster: str | None = None

    def admits(self, caller: CallerIdentity) -> bool:
        """Whether ``caller``'s canonical ARN is this entry's principal."""
        return self.principal is None or canonical_arn(caller.assumed_role_arn) == self.principal

    def username_for(self, caller: CallerIdentity) -> str:
        """EKS's default username for an IAM role is its assumed-role ARN with the session name."""
        template = self.username or f"arn:aws:sts::{caller.account_id}:assumed-role/{caller.role_name}/{{{{SessionName}}}}"
        return (
            template.replace("{{SessionName}}", caller.session_name)
            .replace("{{AccountID}}", caller.account_id)
        )


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt...) kept as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _any_tag)


def access_entries_from_template(template: Path) -> list[AccessEntry]:
    """The ``AWS::EKS::AccessEntry`` resources of a CloudFormation template.

    Groups and usernames must be literal in the template: a value computed at
    deploy time (``!Ref``) cannot be known here, and guessing it would let the
    tests judge RBAC against a user that the real stack never has.
    """
    document = yaml.load(template.read_text(), Loader=_CloudFormationLoader)
    entries = []
    for name, resource in (document.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::EKS::AccessEntry":
            continue
        properties = resource.get("Properties") or {}
        groups = properties.get("KubernetesGroups") or []
        username = properties.get("Username")
        if not all(isinstance(group, str) for group in groups) or not (username is None or isinstance(username, str)):
            raise ValueError(f"{template}: {name}: KubernetesGroups and Username must be literal strings")
        principal = properties.get("PrincipalArn")
        cluster = properties.get("ClusterName")
        entries.append(
            AccessEntry(
                name=name,
                kind=str(properties.get("Type", "STANDARD")),
                groups=tuple(groups),
                username=username,
                principal=principal if isinstance(principal, str) else None,
                cluster=cluster if isinstance(cluster, str) else None,
            )
        )
    return entries


class TokenReviewer:
    """``token -> (username, groups)``: the EKS token checked, the caller mapped by its access entry.

    ``verify`` is an :class:`eks_token.EksTokenVerifier` (token -> access key
    id); ``callers`` maps access key ids to the role session holding them (a
    mapping, or a function for sessions made later, as STS AssumeRole makes them);
    ``entry`` is the access entry of the principal the tokens come from.
    Every review is remembered by a digest of its token (never the token), so
    the fault proxy's request log can name the user of a request it saw.
    """

    def __init__(
        self,
        verify: Callable[[str], str],
        callers: Mapping[str, CallerIdentity] | Callable[[str], CallerIdentity | None],
        entry: AccessEntry,
    ) -> None:
        self._verify = verify
        self._callers = callers
        self._entry = entry
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}

    def review(self, token: str) -> dict[str, Any]:
        """The ``status`` of a TokenReview for ``token``."""
        from eks_token import TokenError

        try:
            access_key = self._verify(token)
        except TokenError as error:
            return {"authenticated": False, "error": str(error)}
        caller = self._callers(access_key) if callable(self._callers) else self._callers.get(access_key)
        if caller is None or not self._entry.admits(caller):
            return {"authenticated": False, "error": "the caller has no access entry in this cluster"}
        username = self._entry.username_for(caller)
        with self._lock:
            if len(self._users) > 10_000:
                self._users.clear()
            self._users[_digest(token)] = username
        return {
            "authenticated": True,
            "user": {
                "username": username,
                # aws-iam-authenticator's uid: the principal, not the session.
                "uid": f"aws-iam-authenticator:{caller.account_id}:{caller.role_arn}",
                "groups": list(self._entry.groups),
                "extra": {
                    "arn": [caller.assumed_role_arn],
                    "canonicalArn": [caller.role_arn],
                    "sessionName": [caller.session_name],
                    "accessKeyId": [access_key],
                },
            },
        }

    def user_of(self, token: str) -> str | None:
        """The username an earlier review gave ``token``, if any."""
        with self._lock:
            return self._users.get(_digest(token))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenReviewServer:
    """The webhook the API server calls: HTTPS on 127.0.0.1, ``POST /authenticate``."""

    def __init__(self, reviewer: TokenReviewer, tls: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        handler = _handler_for(reviewer)
        self._server = ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-review", daemon=True)
        self.reviews = 0

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}{REVIEW_PATH}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(reviewer: TokenReviewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The headers and the body leave in two writes: without this, the body waits for the
        # API server's delayed ACK of the headers (40 ms), as a Go server's never does.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length_header = self.headers.get("Content-Length") or "0"
            length = int(length_header) if length_header.isdigit() else -1
            if length <= 0 or length > MAX_BODY:
                self.close_connection = True
                return self._answer(400, {"error": "a TokenReview body is required"})
            body = self.rfile.read(length)
            # The API server adds its own ?timeout=...
            if self.path.split("?", 1)[0] != REVIEW_PATH:
                return self._answer(404, {"error": "not found"})
            try:
                review = json.loads(body)
                token = review["spec"]["token"]
                if not isinstance(token, str):
                    raise TypeError("spec.token is not a string")
            except (ValueError, KeyError, TypeError) as error:
                return self._answer(400, {"error": f"not a TokenReview: {error}"})
            self._answer(
                200,
                {
                    "apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"),
                    "kind": "TokenReview",
                    "status": reviewer.review(token),
                },
            )

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def deploy_entry(entries: Iterable[AccessEntry], template: Path) -> AccessEntry:
    """eks-deploy's access entry in the pipeline template: its STANDARD entries.

    The pipeline gives eks-deploy's role one entry per cluster of its account
    (infra/environments.py), all with the same groups and username: the local
    cluster stands for any of them.
    """
    standard = [entry for entry in entries if entry.kind == "STANDARD"]
    if not standard:
        raise ValueError(f"{template}: expected eks-deploy's STANDARD AWS::EKS::AccessEntry, found none")
    first = standard[0]
    for entry in standard[1:]:
        if (entry.groups, entry.username, entry.principal) != (first.groups, first.username, first.principal):
            raise ValueError(
                f"{template}: {first.name} and {entry.name} map eks-deploy differently: one cluster cannot stand for both"
            )
    return first
