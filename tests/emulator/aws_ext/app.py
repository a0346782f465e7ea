"""The AWS emulator's WSGI application: moto's server plus our extensions.

Request routing, in order:

1. ``/_emulator/...``: the admin and read-back API (see README.md);
2. ``X-Amz-Target`` requests of the services in ``VALIDATED_SERVICES``: the
   body is validated against botocore's model of the operation; operations we
   implement (``operations()`` of ``codepipeline.py``/``codecommit.py``/
   ``codebuild.py``, ``reports.py``, ``jobs.py``, ``ecr.py``, ``cloudwatch.py``) are answered here and serialized through the output shape, those moto
   implements go on to moto with the already-validated body, and the rest get
   a clear ``UnknownOperationException``;
   Smithy RPC v2 CBOR requests (``smithy-protocol: rpc-v2-cbor``, CloudWatch
   from the Rust SDK) likewise, in CBOR; moto speaks no CBOR, so what we do
   not implement gets ``UnknownOperationException``;
3. EKS ``CreateCluster`` (REST ``POST /clusters``) when a local cluster
   is attached: moto creates the cluster, then its endpoint and CA become the
   local cluster's (its fault proxy, and the CA that signed it and the API
   server), so DescribeCluster leads to a real API server;
4. everything else: moto unchanged.

Before any of that (admin requests aside), faults injected with
``POST /_emulator/aws/faults`` (``faults.py``) may throttle, fail or delay the
request.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from botocore import xform_name
from moto.cloudwatch.responses import CloudWatchResponse
from moto.codebuild.responses import CodeBuildResponse
from moto.codecommit.responses import CodeCommitResponse
from moto.codepipeline.responses import CodePipelineResponse
from moto.eks.models import eks_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.test import run_wsgi_app
from werkzeug.wrappers import Request, Response

from . import model
from .codebuild import BuildNotFound, BuildNotInProgress, CodeBuildExtension, EventLost
from . import sns, sts
from .approvals import ManualApprovals
from .cloudwatch import Alarms
from .codecommit import CodeCommitExtension
from .ecr import ImageRegistry
from .codepipeline import ActionNotInProgress, CodePipelineExtension, ExecutionNotFound
from .pullrequests import PullRequestExtension, PullRequestNotFound, PullRequestStateConflict
from .reports import ReportNotFound, TestReports
from .context import RequestContext
from .request_log import AwsRequestLog
from .faults import AwsFaults, FaultError, describe, error_response, query_error, read_body, rpc_v2_cbor_operation
from .jobs import LambdaJobs

# JSON-protocol services whose requests are validated, with moto's response class.
VALIDATED_SERVICES: dict[str, type] = {
    "codepipeline": CodePipelineResponse,
    "codecommit": CodeCommitResponse,
    "codebuild": CodeBuildResponse,
    "cloudwatch": CloudWatchResponse,
    # ecr.py serves ECR whole: moto's ECR keeps a second store, so none of its operations is used.
    "ecr": object,
}
# Smithy RPC v2 CBOR services, by the service name in their request paths.
CBOR_SERVICES = ("cloudwatch",)
ADMIN_PREFIX = "/_emulator"
# The environ key of an ``entries`` fault taken for a PublishBatch request.
BATCH_FAULT = "aws_ext.batch_fault"

AdminHandler = Callable[[dict[str, Any]], dict[str, Any]]


def make_app(kube: Any = None) -> EmulatorApp:
    """The WSGI app; ``kube`` is a started ``local_cluster.LocalCluster`` (or None: no EKS patching)."""
    return EmulatorApp(kube)


def known_cluster_names() -> set[str]:
    """Names of all EKS clusters in moto, over every account and region.

    The EKS token verifier accepts tokens only for these clusters.  Called from
    the TokenReview webhook's threads, hence the snapshots of moto's dicts.
    """
    names: set[str] = set()
    for regions in list(eks_backends.values()):
        for backend in list(regions.values()):
            names.update(list(backend.clusters))
    return names


class AdminError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        # The AWS error code when the refusal is the one the API would answer.
        self.code = code


# Admin refusals that are AWS refusals, by their HTTP status for the admin API.
_ADMIN_API_ERROR_STATUS = {
    "RepositoryNotFoundException": 404,
    "ImageNotFoundException": 404,
    "RepositoryAlreadyExistsException": 409,
    "ImageAlreadyExistsException": 409,
    "ImageTagAlreadyExistsException": 409,
}


def _admin_call(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run an admin action of ecr.py / cloudwatch.py: an AWS refusal keeps its code."""
    try:
        return call()
    except model.ApiError as error:
        raise AdminError(_ADMIN_API_ERROR_STATUS.get(error.code, 400), error.message, error.code) from None
    except LookupError as exc:
        raise AdminError(404, str(exc)) from None
    except ValueError as exc:
        raise AdminError(400, str(exc)) from None


def _json_response(status: int, document: Any, content_type: str = "application/json") -> Response:
    return Response(json.dumps(document, default=str), status=status, content_type=content_type)


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise AdminError(400, f"missing field {name!r}")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise AdminError(400, f"field {name!r} has the wrong type")
    return value


class EmulatorApp:
    """WSGI callable; one instance serves all accounts and regions."""

    def __init__(self, kube: Any = None):
        self.kube = kube
        # Who a static access key is locally: the cluster's eks-deploy role session.
        self.assume_role_guard = sts.AssumeRoleGuard(
            caller_of=(lambda key: kube.caller_role_arn(key)) if kube is not None else (lambda key: None)
        )
        # One lock for all extension state; re-entrant because engine hooks may
        # call back into complete_action while a handler holds it.
        self.lock = threading.RLock()
        self.codecommit = CodeCommitExtension(self.lock)
        self.codepipeline = CodePipelineExtension(self.lock, self.codecommit)
        self.codebuild = CodeBuildExtension(self.lock, self.codecommit)
        self.pullrequests = PullRequestExtension(self.lock, self.codecommit)
        self.reports = TestReports(self.lock, self.codebuild)
        self.ecr = ImageRegistry(self.lock)
        self.alarms = Alarms(self.lock)
        # Registers itself as the engine's hook for Invoke/Lambda actions.
        self.jobs = LambdaJobs(self.lock, self.codepipeline)
        # Every AWS call answered, for the benchmark's per-event counts.
        self.aws_requests = AwsRequestLog()
        self.faults = AwsFaults()
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._services = model.target_prefixes(tuple(VALIDATED_SERVICES))
        self._moto_operations = {
            (service, operation)
            for service, responses in VALIDATED_SERVICES.items()
            for operation in model.service_model(service).operation_names
            if hasattr(responses, xform_name(operation))
        }
        self._handlers = {
            (service, operation): handler
            for service, extension in (("codecommit", self.codecommit), ("codepipeline", self.codepipeline))
            for operation, handler in extension.operations().items()
        }
        # Kept apart from _handlers: test_aws_ext's round-trip test exercises every
        # entry of _handlers itself; test_codebuild covers these.
        self._codebuild_handlers = {("codebuild", op): h for op, h in self.codebuild.operations().items()}
        # Apart as well: test_reports covers these.
        self._report_handlers = {("codebuild", op): h for op, h in self.reports.operations().items()}
        # Apart as well: test_pull_requests covers these.
        self._pull_request_handlers = {("codecommit", op): h for op, h in self.pullrequests.operations().items()}
        # Likewise apart: test_jobs covers the job operations.
        self._job_handlers = {("codepipeline", op): h for op, h in self.jobs.operations().items()}
        # Apart as well: test_ecr and test_cloudwatch cover these.
        self._ecr_handlers = {("ecr", op): h for op, h in self.ecr.operations().items()}
        self._alarm_handlers = {("cloudwatch", op): h for op, h in self.alarms.operations().items()}
        self._cbor_services = {model.service_model(s).metadata["targetPrefix"]: s for s in CBOR_SERVICES}
        # Manual approvals: PutApprovalResult, and execution reads that first expire what is due.
        self.approvals = ManualApprovals(self.lock, self.codepipeline)
        self._handlers.update(
            (("codepipeline", operation), handler)
            for operation, handler in self.approvals.operations(self.codepipeline.operations()).items()
        )
        self._admin_routes: dict[str, dict[str, AdminHandler]] = {
            "/health": {"GET": lambda body: {"status": "ok"}},
            "/reset": {"POST": self._reset},
            "/codepipeline/complete-action": {"POST": self._complete_action},
            "/codepipeline/jobs": {"GET": self._codepipeline_jobs},
            "/codepipeline/events": {"GET": self._codepipeline_events},
            "/codebuild/complete": {"POST": self._codebuild_complete},
            "/codebuild/advance": {"POST": self._codebuild_advance},
            "/codebuild/event": {"GET": self._codebuild_event},
            "/codebuild/lose-events": {"POST": self._codebuild_lose_events},
            "/codebuild/report": {"POST": self._codebuild_report},
            "/codebuild/report-status": {"POST": self._codebuild_report_status},
            "/codepipeline/approvals": {"GET": lambda body: {"approvals": self.approvals.views()}},
            "/codepipeline/approval-ttl": {"POST": self._approval_ttl},
            "/sns/published": {"GET": self._sns_published},
            "/sns/inbox": {"GET": self._sns_inbox},
            "/codecommit/pull-request-event": {"GET": self._pull_request_event},
            "/codecommit/reopen-pull-request": {"POST": self._reopen_pull_request},
            "/kubernetes/requests": {"GET": self._request_log, "DELETE": self._clear_request_log},
            "/kubernetes/faults": {"POST": self._inject_faults, "GET": self._kubernetes_faults},
            "/kubernetes/drop-watches": {"POST": self._drop_watches},
            "/aws/requests": {"GET": self._aws_request_log, "DELETE": self._clear_aws_request_log},
            "/aws/faults": {"POST": self._add_fault, "GET": self._list_faults, "DELETE": self._clear_faults},
            "/ecr/repository": {"POST": lambda body: _admin_call(lambda: self.ecr.admin_repository(body))},
            "/ecr/image": {"POST": lambda body: _admin_call(lambda: self.ecr.admin_push(body))},
            "/ecr/scan": {"POST": lambda body: _admin_call(lambda: self.ecr.admin_scan(body))},
            "/cloudwatch/alarm": {"POST": lambda body: _admin_call(lambda: self.alarms.admin_alarm(body))},
            "/cloudwatch/alarm-state": {"POST": lambda body: _admin_call(lambda: self.alarms.admin_state(body))},
            "/iam/role": {"POST": self._iam_role},
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        is_admin = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        if not is_admin and self.faults.active():
            call = describe(environ, read_body(environ))
            fault = self.faults.take(call)
            if fault is not None:
                if fault.entries is not None:
                    # Served, less the entries it fails (see _sns_publish_batch).
                    environ[BATCH_FAULT] = fault
                    return self._serve(environ, start_response)
                if fault.status is not None:
                    time.sleep(fault.delay_seconds)
                    return error_response(fault, call)(environ, start_response)
                # Served, its effect happens, and the answer comes late.
                app_iter, status, headers = run_wsgi_app(self._serve, environ, buffered=True)
                try:
                    body = b"".join(app_iter)
                finally:
                    getattr(app_iter, "close", lambda: None)()
                time.sleep(fault.delay_seconds)
                start_response(status, list(headers))
                return [body]
        return self._serve(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        prefix, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            response = self._admin(Request(environ), path[len(ADMIN_PREFIX) :])
        else:
            self.aws_requests.record(environ)
            rpc = rpc_v2_cbor_operation(environ)
            if prefix in self._services:
                response = self._json_operation(self._services[prefix], operation, environ)
            elif rpc is not None and rpc[0] in self._cbor_services:
                response = self._cbor_operation(self._cbor_services[rpc[0]], rpc[1], environ)
            elif self.kube is not None and self._is_eks_create_cluster(environ):
                response = self._eks_create_cluster(environ)
            elif sts.is_assume_role(environ, read_body(environ)):
                refusal = self.assume_role_guard.refusal(environ, read_body(environ))
                response = None if refusal is None else query_error("sts", refusal.status, refusal.code, refusal.message)
            elif RequestContext.from_environ(environ).signing_service == "sns":
                if sns.is_publish_batch(read_body(environ)):
                    return self._sns_publish_batch(environ, start_response)
                response = self._sns_refusal(environ)
            else:
                response = None
        if response is None:
            return self._moto(environ, start_response)
        return response(environ, start_response)

    # --- JSON-protocol operations ------------------------------------------------------

    def _json_operation(self, service: str, name: str, environ: dict[str, Any]) -> Response | None:
        """Validate, then answer ourselves or return None to let moto answer."""
        body = Request(environ).get_data()
        # moto reads the body again from the environ.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        operation = None
        query_error_header = None
        try:
            operation = model.operation_model(service, name)
            params = model.parse_request(operation, body)
            handler = self._handler(service, name)
            if handler is None:
                if (service, name) in self._moto_operations:
                    return None
                # moto would crash with NotImplementedError: a 500 that SDKs retry
                raise model.ApiError("UnknownOperationException", f"{name} is not emulated (neither moto nor aws_ext implement it)")
            ctx = RequestContext.from_environ(environ)
            with self.lock:
                output = handler(ctx, params)
            status, payload = 200, model.serialize_output(operation, output)
        except model.ApiError as error:
            status, payload = self._error_answer(operation, error)
            if operation is not None and "awsQueryCompatible" in operation.service_model.metadata:
                query_error_header = self._query_error_header(operation, error)
        except Exception as exc:  # an emulator bug: answer like AWS, keep the traceback visible
            traceback.print_exc(file=sys.stderr)
            status, payload = self._error_answer(None, model.ApiError("InternalFailure", repr(exc)))
        json_version = model.service_model(service).metadata.get("jsonVersion", "1.1")
        response = Response(payload, status=status, content_type=f"application/x-amz-json-{json_version}")
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        if query_error_header is not None:
            response.headers["x-amzn-query-error"] = query_error_header
        return response

    def _handler(self, service: str, name: str) -> Callable[[RequestContext, dict[str, Any]], dict[str, Any]] | None:
        return (
            self._handlers.get((service, name))
            or self._codebuild_handlers.get((service, name))
            or self._report_handlers.get((service, name))
            or self._job_handlers.get((service, name))
            or self._pull_request_handlers.get((service, name))
            or self._ecr_handlers.get((service, name))
            or self._alarm_handlers.get((service, name))
        )

    @staticmethod
    def _query_error_header(operation: Any, error: model.ApiError) -> str | None:
        """``x-amzn-query-error`` of an awsQueryCompatible service: the query protocol's code."""
        try:
            status, code = model.error_status(operation, error)
        except model.ShapeMismatch:
            return None
        return f"{code};{'Sender' if status < 500 else 'Receiver'}"

    # --- Smithy RPC v2 CBOR operations -----------------------------------------------

    def _cbor_operation(self, service: str, name: str, environ: dict[str, Any]) -> Response:
        """Validate a CBOR request against the model and answer it in CBOR (never moto)."""
        body = Request(environ).get_data()
        operation = None
        headers: dict[str, str] = {}
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise model.ApiError("UnknownOperationException", "Smithy RPC v2 requests are POST requests")
            operation = model.operation_model(service, name)
            params = model.parse_cbor_request(operation, body)
            handler = self._handler(service, name)
            if handler is None:
                raise model.ApiError("UnknownOperationException", f"{name} is not emulated over Smithy RPC v2 CBOR")
            ctx = RequestContext.from_environ(environ)
            with self.lock:
                output = handler(ctx, params)
            status, payload = 200, model.serialize_cbor_output(operation, output)
        except model.ApiError as error:
            status, payload, headers = self._cbor_error_answer(operation, error, service)
        except Exception as exc:  # an emulator bug: answer like AWS, keep the traceback visible
            traceback.print_exc(file=sys.stderr)
            status, payload, headers = self._cbor_error_answer(None, model.ApiError("InternalFailure", repr(exc)), service)
        response = Response(payload, status=status)
        if payload:
            response.headers["Content-Type"] = model.CBOR_CONTENT_TYPE
        else:
            del response.headers["Content-Type"]
        response.headers["smithy-protocol"] = "rpc-v2-cbor"
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        for key, value in headers.items():
            response.headers[key] = value
        return response

    @staticmethod
    def _cbor_error_answer(operation: Any, error: model.ApiError, service: str) -> tuple[int, bytes, dict[str, str]]:
        try:
            return model.cbor_error_answer(operation, error, service)
        except model.ShapeMismatch as mismatch:
            traceback.print_exc(file=sys.stderr)
            return model.cbor_error_answer(None, model.ApiError("InternalFailure", str(mismatch)), service)

    @staticmethod
    def _error_answer(operation: Any, error: model.ApiError) -> tuple[int, bytes]:
        try:
            return model.error_answer(operation, error)
        except model.ShapeMismatch as mismatch:
            traceback.print_exc(file=sys.stderr)
            return model.error_answer(None, model.ApiError("InternalFailure", str(mismatch)))

    # --- SNS ---------------------------------------------------------------------------

    @staticmethod
    def _sns_refusal(environ: dict[str, Any]) -> Response | None:
        """SNS's own answer to a Publish whose subject it refuses; None lets moto publish."""
        message = sns.publish_refusal(read_body(environ))
        return None if message is None else query_error("sns", 400, "InvalidParameter", message)

    def _sns_publish_batch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """A PublishBatch: refused whole as SNS would, or moto publishes the entries that
        neither break SNS's subject rules nor are failed by a fault, and the answer lists
        those in ``Failed``."""
        body = read_body(environ)
        refusal = sns.batch_refusal(body)
        if refusal is not None:
            return query_error("sns", 400, *refusal)(environ, start_response)
        fault = environ.get(BATCH_FAULT)

        def failing(entry: dict[str, str]) -> tuple[str, str, bool] | None:
            return sns.subject_failure(entry) or (fault.entry_failure(sns.entry_text(entry)) if fault else None)

        kept, failed = sns.split_batch(body, failing)
        if fault is not None:
            self.faults.record_batch(fault, len(sns.batch_entries(body)[1]), len(failed))
        moto_answer = None
        if sns.batch_entries(kept)[1]:
            inner = dict(environ)
            inner["wsgi.input"] = io.BytesIO(kept)
            inner["CONTENT_LENGTH"] = str(len(kept))
            app_iter, status, headers = run_wsgi_app(self._moto, inner, buffered=True)
            try:
                answer = b"".join(app_iter)
            finally:
                getattr(app_iter, "close", lambda: None)()
            if not status.startswith("200"):
                start_response(status, [(k, v) for k, v in headers if k.lower() != "content-length"])
                return [answer]
            moto_answer = answer
        response = Response(sns.batch_answer(moto_answer, failed), status=200, content_type="text/xml")
        return response(environ, start_response)

    # --- EKS ---------------------------------------------------------------------------

    @staticmethod
    def _is_eks_create_cluster(environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "POST"
            and environ.get("PATH_INFO", "").rstrip("/") == "/clusters"
            and RequestContext.from_environ(environ).signing_service == "eks"
        )

    def _eks_create_cluster(self, environ: dict[str, Any]) -> Response:
        """Let moto create the cluster, then point it at the local cluster (its fault proxy and CA)."""
        app_iter, status, headers = run_wsgi_app(self._moto, environ, buffered=True)
        try:
            body = b"".join(app_iter)
        finally:
            getattr(app_iter, "close", lambda: None)()
        if status.startswith("200"):
            ctx = RequestContext.from_environ(environ)
            document = json.loads(body)
            endpoint = self.kube.server_url
            authority = {"data": base64.b64encode(self.kube.ca_pem).decode()}
            with self.lock:
                cluster = eks_backends[ctx.account_id][ctx.region].clusters[document["cluster"]["name"]]
                cluster.endpoint = endpoint
                cluster.certificate_authority = authority
            document["cluster"].update(endpoint=endpoint, certificateAuthority=authority)
            body = json.dumps(document).encode()
        return Response(body, status=status, headers=[(k, v) for k, v in headers if k.lower() != "content-length"])

    # --- admin API ---------------------------------------------------------------------

    def _admin(self, request: Request, path: str) -> Response:
        methods = self._admin_routes.get(path)
        if methods is None:
            return _json_response(404, {"error": f"no admin endpoint {ADMIN_PREFIX}{path}"})
        handler = methods.get(request.method)
        if handler is None:
            response = _json_response(405, {"error": f"{request.method} not allowed on {ADMIN_PREFIX}{path}"})
            response.headers["Allow"] = ", ".join(sorted(methods))
            return response
        try:
            raw = request.get_data()
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise AdminError(400, "the request body must be a JSON object")
            if request.method == "GET":  # GET endpoints take their fields from the query string
                body = {**request.args.to_dict(), **body}
            return _json_response(200, handler(body))
        except json.JSONDecodeError as exc:
            return _json_response(400, {"error": f"invalid JSON: {exc}"})
        except AdminError as exc:
            return _json_response(exc.status, {"error": str(exc), **({"code": exc.code} if exc.code else {})})

    def _iam_role(self, body: dict[str, Any]) -> dict[str, Any]:
        """A role in any account (``accountId``, ``roleName``, ``trustPolicy``): what a target
        account's stack makes, for STS AssumeRole to judge callers by. Its trust policy is
        replaced if it exists."""
        from moto.iam.models import iam_backends

        account = _field(body, "accountId", str)
        name = _field(body, "roleName", str)
        policy = _field(body, "trustPolicy", dict)
        if not (len(account) == 12 and account.isdigit()):
            raise AdminError(400, "accountId must be 12 digits")
        with self.lock:
            backend = iam_backends[account]["aws"]
            if name in {role.name for role in backend.get_roles()}:
                backend.update_assume_role_policy(name, json.dumps(policy))
                role = backend.get_role(name)
            else:
                role = backend.create_role(name, json.dumps(policy), "/", None, "", [], None)
        return {"arn": role.arn}

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        """Everything back to empty: moto (as POST /moto-api/reset), extensions, Kubernetes."""
        with self.lock:
            moto_api_backend.reset()
            self.codepipeline.reset()
            self.approvals.reset()
            self.codecommit.reset()
            self.codebuild.reset()
            self.reports.reset()
            self.ecr.reset()
            self.pullrequests.reset()
            self.jobs.reset()
            self.aws_requests.clear()
            self.faults.clear()
            if self.kube is not None:
                self.kube.reset()
        return {"status": "ok"}

    def _complete_action(self, body: dict[str, Any]) -> dict[str, Any]:
        status = _field(body, "status", str)
        if status not in ("Succeeded", "Failed"):
            raise AdminError(400, "status must be 'Succeeded' or 'Failed'")
        variables = _field(body, "outputVariables", dict, required=False)
        if variables is not None and not all(isinstance(v, str) for v in variables.values()):
            raise AdminError(400, "outputVariables values must be strings")
        try:
            execution = self.codepipeline.complete_action(
                _field(body, "executionId", str),
                _field(body, "stage", str),
                _field(body, "action", str),
                status,
                summary=_field(body, "summary", str, required=False),
                output_variables=variables,
                error=_field(body, "errorMessage", str, required=False),
            )
        except ExecutionNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except ActionNotInProgress as exc:
            raise AdminError(409, str(exc)) from None
        return {"pipelineExecutionId": execution.pipeline_execution_id, "status": execution.status}

    def _codepipeline_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            jobs = self.jobs.list_jobs(
                _field(body, "pipeline", str),
                execution_id=_field(body, "executionId", str, required=False),
                status=_field(body, "status", str, required=False),
            )
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return {"jobs": jobs}

    def _codepipeline_events(self, body: dict[str, Any]) -> dict[str, Any]:
        after = _field(body, "after", str, required=False) or "0"
        if not after.isdigit():
            raise AdminError(400, "after must be a sequence number")
        return self.codepipeline.events.list(_field(body, "pipeline", str, required=False), int(after))

    def _codebuild_complete(self, body: dict[str, Any]) -> dict[str, Any]:
        duration = _field(body, "durationSeconds", (int, float), required=False)
        build_id = _field(body, "buildId", str)
        status = _field(body, "status", str)
        try:
            # The reports the build filed on the way (checked first: a bad one changes nothing).
            build = self.reports.attach_all(
                build_id,
                _field(body, "reports", list, required=False) or [],
                lambda: self.codebuild.complete(
                    build_id,
                    status,
                    failed_phase=_field(body, "failedPhase", str, required=False),
                    context=_field(body, "context", str, required=False),
                    duration_seconds=duration,
                ),
            )
        except BuildNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except BuildNotInProgress as exc:
            raise AdminError(409, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return self.codebuild.build_document(build)

    def _codebuild_report(self, body: dict[str, Any]) -> dict[str, Any]:
        """File a test report of a build: ``{buildId, group, testCases, status?, pageLimit?}``."""
        page_limit = _field(body, "pageLimit", int, required=False)
        try:
            report = self.reports.attach(
                _field(body, "buildId", str),
                _field(body, "group", str),
                _field(body, "testCases", list),
                status=_field(body, "status", str, required=False),
                page_limit=page_limit,
            )
        except BuildNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return {"reportArn": report.arn, "reportGroupArn": report.group.arn, "status": report.status}

    def _codebuild_report_status(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            report = self.reports.set_status(_field(body, "reportArn", str), _field(body, "status", str))
        except ReportNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return {"reportArn": report.arn, "status": report.status}

    def _codebuild_advance(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            build = self.codebuild.advance(_field(body, "buildId", str), _field(body, "phase", str))
        except BuildNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except BuildNotInProgress as exc:
            raise AdminError(409, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return self.codebuild.build_document(build)

    def _codebuild_event(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.codebuild.event_document(
                _field(body, "buildId", str), event_id=_field(body, "eventId", str, required=False)
            )
        except BuildNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except EventLost as exc:
            raise AdminError(410, str(exc)) from None

    def _codebuild_lose_events(self, body: dict[str, Any]) -> dict[str, Any]:
        count = _field(body, "count", int, required=False)
        try:
            build = self.codebuild.lose_events(_field(body, "buildId", str), **({"count": count} if count is not None else {}))
        except BuildNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        return {"buildId": build.id, "status": "ok"}

    def _approval_ttl(self, body: dict[str, Any]) -> dict[str, Any]:
        seconds = _field(body, "seconds", (int, float))
        if seconds < 0:
            raise AdminError(400, "seconds must not be negative")
        self.approvals.set_ttl(seconds)
        return {"status": "ok"}

    def _sns_published(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return {"messages": sns.published(_field(body, "topicArn", str, required=False))}

    def _sns_inbox(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return {"messages": sns.inbox(_field(body, "endpoint", str))}

    def _pull_request_event(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.pullrequests.event_document(
                _field(body, "pullRequestId", str),
                _field(body, "event", str),
                repository=_field(body, "repositoryName", str, required=False),
                event_id=_field(body, "eventId", str, required=False),
            )
        except PullRequestNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except PullRequestStateConflict as exc:
            raise AdminError(409, str(exc)) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None

    def _reopen_pull_request(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            pull_request = self.pullrequests.reopen(
                _field(body, "pullRequestId", str), _field(body, "repositoryName", str, required=False)
            )
        except PullRequestNotFound as exc:
            raise AdminError(404, str(exc)) from None
        except PullRequestStateConflict as exc:
            raise AdminError(409, str(exc)) from None
        return {
            "pullRequestId": pull_request.pull_request_id,
            "pullRequestStatus": pull_request.status,
            "revisionId": pull_request.current.revision_id,
            "sourceCommit": pull_request.current.source_commit,
        }

    def _kubernetes(self) -> Any:
        if self.kube is None:
            raise AdminError(409, "no local Kubernetes cluster is attached to this AWS emulator")
        return self.kube

    def _request_log(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"requests": self._kubernetes().request_log()}

    def _clear_request_log(self, body: dict[str, Any]) -> dict[str, Any]:
        self._kubernetes().clear_request_log()
        return {"status": "ok"}

    def _inject_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{method, pathRegex, count?}`` and one of ``status`` (answered by the fault proxy),
        ``race: true`` (a real resourceVersion conflict) or ``reset: "before"|"after"``."""
        from fault_proxy import FaultError

        kube = self._kubernetes()
        count = _field(body, "count", int, required=False)
        try:
            kube.inject_faults(
                method=_field(body, "method", str),
                path_regex=_field(body, "pathRegex", str),
                status=_field(body, "status", int, required=False),
                race=bool(_field(body, "race", bool, required=False)),
                reset=_field(body, "reset", str, required=False),
                **({"count": count} if count is not None else {}),
            )
        except FaultError as exc:
            raise AdminError(400, str(exc)) from None
        return {"status": "ok"}

    def _kubernetes_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"faults": self._kubernetes().faults()}

    def _drop_watches(self, body: dict[str, Any]) -> dict[str, Any]:
        kube = self._kubernetes()
        count = _field(body, "count", int, required=False)
        path_regex = _field(body, "pathRegex", str, required=False)
        kube.drop_watches_after(
            events=_field(body, "events", int),
            **({"count": count} if count is not None else {}),
            **({"path_regex": path_regex} if path_regex is not None else {}),
        )
        return {"status": "ok"}

    def _add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.faults.add(body)
        except FaultError as exc:
            raise AdminError(400, str(exc)) from None

    def _list_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        faults = self.faults.views()
        wanted = body.get("id")
        return {"faults": [f for f in faults if wanted is None or f["id"] == wanted]}

    def _clear_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        self.faults.clear()
        return {"status": "ok"}

    def _aws_request_log(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"requests": self.aws_requests.entries()}

    def _clear_aws_request_log(self, body: dict[str, Any]) -> dict[str, Any]:
        self.aws_requests.clear()
        return {"status": "ok"}
