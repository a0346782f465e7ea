"""STS AssumeRole as AWS decides it: the role's trust policy, with its ExternalId condition.

moto's AssumeRole gives credentials for any role ARN, existing or not, whatever
the caller and the ExternalId ("the role does not need to exist").  STS refuses
unless the role exists and its trust policy (``AssumeRolePolicyDocument``)
allows the caller: ``AccessDenied``, "User: <caller> is not authorized to
perform: sts:AssumeRole on resource: <role>".  :class:`AssumeRoleGuard` holds
a request to that before moto answers it.

The trust policy is evaluated for what trust policies of this project say
(``infra/target-account.yaml``): ``Allow`` statements for ``sts:AssumeRole``
whose ``Principal`` is ``{"AWS": ...}`` (role ARNs, account roots, account ids,
``*``), with ``StringEquals`` on ``sts:ExternalId``.  A ``Deny`` statement that
matches refuses; a statement with any other condition does not allow (a
condition the emulator cannot evaluate must not let a caller in).

The request is checked against botocore's model of ``AssumeRole`` (the query
protocol's form body: the members' names and constraints) before anything else.

The caller is named by ``caller_of(access_key)``: the role ARN a static key
stands for locally (the local cluster's eks-deploy role), or the role of an
assumed-role session (role chaining), else moto's view of the caller.
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from botocore.validate import ParamValidator
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from moto.utilities.utils import PARTITION_NAMES

from . import model
from .context import RequestContext

__all__ = ["AssumeRoleGuard", "assumed_session", "canonical_role_arn"]


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def assumed_session(access_key: str) -> Any | None:
    """moto's AssumedRole holding ``access_key``, in whichever account it was made."""
    for regions in list(sts_backends.values()):
        for backend in list(regions.values()):
            for role in list(backend.assumed_roles):
                if role.access_key_id == access_key:
                    return role
    return None


def canonical_role_arn(arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/S`` -> ``arn:aws:iam::A:role/R``; other ARNs unchanged."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
    return arn


def _form(body: bytes) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def is_assume_role(environ: dict[str, Any], body: bytes) -> bool:
    if RequestContext.from_environ(environ).signing_service != "sts":
        return False
    query = {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    return (_form(body).get("Action") or query.get("Action")) == "AssumeRole"


_QUERY_ONLY = {"Action", "Version"}


def _params(form: dict[str, str]) -> dict[str, Any]:
    """The form's members, as botocore's model names and types them (scalars only: the
    list members, policy ARNs and tags, are not what this project sends)."""
    operation = model.operation_model("sts", "AssumeRole")
    members = operation.input_shape.members
    params: dict[str, Any] = {}
    for key, value in form.items():
        if key in _QUERY_ONLY:
            continue
        name = key.split(".", 1)[0]
        if name not in members:
            raise Refusal(400, "InvalidParameterValue", f"unknown parameter {key}")
        shape = members[name]
        if shape.type_name == "integer":
            try:
                params[name] = int(value)
            except ValueError:
                raise Refusal(400, "InvalidParameterValue", f"{name}: not an integer") from None
        elif shape.type_name == "string":
            params[name] = value
        else:
            raise Refusal(400, "InvalidParameterValue", f"{name}: {shape.type_name} members are not emulated")
    report = ParamValidator().validate(params, operation.input_shape)
    if report.has_errors():
        raise Refusal(400, "ValidationError", report.generate_report())
    # botocore's validator checks types and required members; the length limits are STS's.
    for name, value in params.items():
        shape = members[name]
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if isinstance(value, str) and ((low is not None and len(value) < low) or (high is not None and len(value) > high)):
            raise Refusal(400, "ValidationError", f"{name}: length {len(value)} is outside {low}..{high}")
        if isinstance(value, int) and ((low is not None and value < low) or (high is not None and value > high)):
            raise Refusal(400, "ValidationError", f"{name}: {value} is outside {low}..{high}")
    return params


def _role(role_arn: str) -> Any | None:
    parts = role_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[5].startswith("role/"):
        return None
    account, partition = parts[4], parts[1]
    if partition not in PARTITION_NAMES or account not in iam_backends:
        return None
    backend = iam_backends[account][partition]
    try:
        return backend.get_role_by_arn(role_arn)
    except Exception:  # moto: IAMNotFoundException
        return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, caller_arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    account = caller_arn.split(":")[4] if caller_arn.count(":") >= 5 else ""
    partition = caller_arn.split(":")[1] if caller_arn.count(":") >= 5 else "aws"
    for given in _as_list(principal.get("AWS", [])):
        if given in ("*", caller_arn, account, f"arn:{partition}:iam::{account}:root"):
            return True
    return False


def _action_matches(action: Any) -> bool:
    return any(a in ("*", "sts:*", "sts:AssumeRole") for a in _as_list(action))


def _conditions_hold(condition: Any, external_id: str | None) -> bool:
    if not condition:
        return True
    if not isinstance(condition, dict):
        return False
    for operator, tests in condition.items():
        if operator != "StringEquals" or not isinstance(tests, dict):
            return False
        for key, expected in tests.items():
            if key.lower() != "sts:externalid":
                return False
            if external_id is None or external_id not in [str(e) for e in _as_list(expected)]:
                return False
    return True


def trust_allows(policy: Any, caller_arn: str, external_id: str | None) -> bool:
    """Whether the trust policy ``policy`` (a document or its JSON) lets ``caller_arn`` assume
    the role with ``external_id``."""
    if isinstance(policy, str):
        text = policy if policy.lstrip().startswith("{") else unquote(policy)
        policy = json.loads(text)
    allowed = False
    for statement in _as_list(policy.get("Statement", [])):
        if not _action_matches(statement.get("Action", [])) or not _principal_matches(
            statement.get("Principal"), caller_arn
        ):
            continue
        holds = _conditions_hold(statement.get("Condition"), external_id)
        if statement.get("Effect") == "Deny" and holds:
            return False
        if statement.get("Effect") == "Allow" and holds:
            allowed = True
    return allowed


class AssumeRoleGuard:
    """Refuses the AssumeRole requests STS would refuse; the rest go on to moto."""

    def __init__(self, caller_of: Callable[[str], str | None]) -> None:
        self._caller_of = caller_of

    def caller_arn(self, ctx: RequestContext) -> str:
        session = assumed_session(ctx.access_key)
        if session is not None:
            return canonical_role_arn(session.arn)
        return self._caller_of(ctx.access_key) or canonical_role_arn(ctx.caller_arn())

    def refusal(self, environ: dict[str, Any], body: bytes) -> Refusal | None:
        """None when STS would answer the request; else its refusal."""
        try:
            params = _params(_form(body))
        except Refusal as refusal:
            return refusal
        ctx = RequestContext.from_environ(environ)
        caller = self.caller_arn(ctx)
        role_arn = params["RoleArn"]
        role = _role(role_arn)
        if role is None or not trust_allows(role.assume_role_policy_document, caller, params.get("ExternalId")):
            return Refusal(
                403,
                "AccessDenied",
                f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            )
        return None
