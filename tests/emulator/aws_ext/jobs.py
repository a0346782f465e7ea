"""CodePipeline Lambda invoke actions as jobs, and the job APIs the function reports with.

In AWS, when an ``Invoke``/``Lambda`` action starts, CodePipeline creates a
job and invokes the function asynchronously with ``{"CodePipeline.job": ...}``.
The function must answer with PutJobSuccessResult or PutJobFailureResult.  A
success that carries a ``continuationToken`` means "still working": that job
is over, and CodePipeline invokes the function again with a new job (new id)
whose ``data.continuationToken`` is the token, until a success without a token
or a failure finishes the action.  Here:

* the engine's hook ``on_action_started[("Invoke", "Lambda")]`` creates the
  job with the event CodePipeline would send: the action's configuration with
  ``#{namespace.name}`` already resolved (so ``UserParameters`` arrives as the
  function will see it), the input and output artifacts located in the
  pipeline's artifact store, and fake temporary ``artifactCredentials``;
* nothing invokes anything.  The test harness reads the event through the
  admin API (``GET /_emulator/codepipeline/jobs``) and runs the real function
  with it; the function then calls the job APIs on this emulator exactly as
  it would call AWS;
* PutJobSuccessResult / PutJobFailureResult end the job and, through
  ``CodePipelineExtension.complete_action``, the action, which advances or
  fails the execution; a continuation starts the next job at once and leaves
  the action ``InProgress`` with the reported summary and progress;
* GetJobDetails answers every job kept, finished ones too, in the model's
  ``JobDetails`` shape.

Jobs live here, keyed by id, and point at the engine's ``ActionRun``: the
engine knows nothing of jobs, so approvals and other action types can grow in
``codepipeline.py`` without touching this module.  A job whose action ends in
some other way (the admin ``complete-action``, an abandoning stop, a sibling
action's failure) ends with it, so a late report gets the
``InvalidJobStateException`` AWS gives for a job that is no longer running.

Not emulated: the 20-minute / 24-hour timeouts (a job waits forever), retries
of an invocation, artifacts in S3 (the event names a bucket and keys, nothing
is uploaded), ``currentRevision`` (accepted, not shown anywhere) and
``OutputVariablesSizeExceededException``.
"""

from __future__ import annotations

import datetime
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.utilities.utils import get_partition

from . import model
from .codepipeline import ActionRun, CodePipelineExtension, Execution
from .context import RequestContext
from .model import ApiError

JOB_KEY = "CodePipeline.job"
# Created, Queued, Dispatched, InProgress, TimedOut, Succeeded, Failed
JOB_STATUSES = tuple(model.service_model("codepipeline").shape_for("JobStatus").enum)
# How long the artifact credentials in an event claim to last (STS's default session).
CREDENTIALS_LIFETIME = datetime.timedelta(hours=1)
_ALPHANUMERIC = string.ascii_letters + string.digits


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def artifact_object_key(pipeline_name: str, artifact_name: str) -> str:
    """Where CodePipeline stores an artifact of an execution in the artifact bucket.

    ``<pipeline name, 20 chars>/<artifact name, 10 chars>/<7 random
    characters>``, as in real events (``my-pipeline/invokeOutp/D0YHsJn``):
    CodePipeline cuts both names short, which its troubleshooting guide
    explains as "artifact folder names appear truncated".
    """
    return f"{pipeline_name[:20]}/{artifact_name[:10]}/{_random(_ALPHANUMERIC, 7)}"


def fake_credentials(now: datetime.datetime) -> dict[str, Any]:
    """Temporary credentials shaped like STS's, valid for nothing but the emulator.

    CodePipeline hands the function session credentials of its own role for
    the artifact bucket; the emulator does not check signatures, so any
    well-formed values do.  ``expirationTime`` (epoch milliseconds) is in the
    events Lambda's guide shows, although the API's ``AWSSessionCredentials``
    shape has no such member (GetJobDetails leaves it out).
    """
    return {
        "accessKeyId": "ASIA" + _random(string.ascii_uppercase + string.digits, 16),
        "secretAccessKey": _random(_ALPHANUMERIC + "+/", 40),
        "sessionToken": "FwoGZXIvYXdzEMULATED" + _random(_ALPHANUMERIC + "+/", 180),
        "expirationTime": int((now + CREDENTIALS_LIFETIME).timestamp() * 1000),
    }


@dataclass
class Job:
    """One invocation's worth of a Lambda action: the event it was sent and what became of it."""

    id: str
    account_id: str
    region: str  # the action's region: a cross-region function reports there
    execution: Execution
    run: ActionRun
    data: dict[str, Any]  # the event's ``data``, exactly as sent
    status: str = "InProgress"
    reported: bool = False  # the function answered (as opposed to the action ending otherwise)
    continued_by: str | None = None  # the job a continuation token started
    created: datetime.datetime = field(default_factory=_now)

    def event(self) -> dict[str, Any]:
        """The payload CodePipeline invokes the function with."""
        return {JOB_KEY: {"id": self.id, "accountId": self.account_id, "data": self.data}}

    def settle(self) -> str:
        """The job's status, ended with its action if the action finished without a report."""
        if self.status == "InProgress" and self.run.status != "InProgress":
            self.status = "Succeeded" if self.run.status == "Succeeded" else "Failed"
        return self.status


class LambdaJobs:
    """The Lambda invoke hook, the job operations and the admin API's job listing."""

    def __init__(self, lock: threading.RLock, codepipeline: CodePipelineExtension):
        self._lock = lock
        self._codepipeline = codepipeline
        self._jobs: dict[str, Job] = {}  # by id, in creation order
        # (pipeline execution id, artifact name) -> object key: one key per artifact and execution,
        # shared by the action that writes it and every action that reads it.
        self._artifact_keys: dict[tuple[str, str], str] = {}
        codepipeline.on_action_started[("Invoke", "Lambda")] = self.start_job

    def operations(self) -> dict[str, Callable[[RequestContext, dict[str, Any]], dict[str, Any]]]:
        return {
            "PutJobSuccessResult": self.put_job_success_result,
            "PutJobFailureResult": self.put_job_failure_result,
            "GetJobDetails": self.get_job_details,
        }

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._artifact_keys.clear()

    # --- creating jobs -----------------------------------------------------------------

    def start_job(self, execution: Execution, run: ActionRun) -> Job:
        """The engine hook: a Lambda action started, so CodePipeline creates its first job."""
        return self._new_job(execution, run, None)

    def _new_job(self, execution: Execution, run: ActionRun, continuation_token: str | None) -> Job:
        with self._lock:
            job = Job(
                id=str(uuid.uuid4()),
                account_id=execution.account_id,
                region=run.declaration.get("region") or execution.region,
                execution=execution,
                run=run,
                data=self._job_data(execution, run, continuation_token),
            )
            self._jobs[job.id] = job
            return job

    def _job_data(self, execution: Execution, run: ActionRun, continuation_token: str | None) -> dict[str, Any]:
        """The event's ``data``, members in the order CodePipeline writes them."""
        data: dict[str, Any] = {
            "actionConfiguration": {"configuration": dict(run.configuration)},
            "inputArtifacts": self._artifacts(execution, run, "inputArtifacts"),
            "outputArtifacts": self._artifacts(execution, run, "outputArtifacts"),
            "artifactCredentials": fake_credentials(_now()),
        }
        if continuation_token is not None:
            data["continuationToken"] = continuation_token
        encryption_key = self._artifact_store(execution, run).get("encryptionKey")
        if encryption_key:
            data["encryptionKey"] = {"id": encryption_key["id"], "type": encryption_key["type"]}
        return data

    @staticmethod
    def _artifact_store(execution: Execution, run: ActionRun) -> dict[str, Any]:
        """The store of the action's region: ``artifactStore``, or the V2 per-region ``artifactStores``."""
        definition = execution.definition
        region = run.declaration.get("region") or execution.region
        return definition.get("artifactStore") or (definition.get("artifactStores") or {}).get(region) or {}

    def _artifacts(self, execution: Execution, run: ActionRun, member: str) -> list[dict[str, Any]]:
        """Input or output artifacts as the event lists them.

        An input artifact's ``revision`` is the source revision when a Source
        action of this execution produced it (the commit id for CodeCommit);
        artifacts that other actions produce, and every output artifact, have
        ``"revision": null``, as in AWS's examples.
        """
        bucket = self._artifact_store(execution, run).get("location", "")
        artifacts = []
        for declared in run.declaration.get(member) or []:
            name = declared["name"]
            key = self._artifact_keys.setdefault(
                (execution.pipeline_execution_id, name), artifact_object_key(execution.pipeline_name, name)
            )
            artifacts.append(
                {
                    "name": name,
                    "revision": self._source_revision(execution, name) if member == "inputArtifacts" else None,
                    "location": {"type": "S3", "s3Location": {"bucketName": bucket, "objectKey": key}},
                }
            )
        return artifacts

    @staticmethod
    def _source_revision(execution: Execution, artifact: str) -> str | None:
        for run in execution.source_runs():
            if any(output["name"] == artifact for output in run.declaration.get("outputArtifacts") or []):
                return run.revision.revision_id
        return None

    # --- lookups -----------------------------------------------------------------------

    def _job(self, ctx: RequestContext, job_id: str) -> Job:
        """The caller's job: jobs belong to an account and region, like every resource."""
        job = self._jobs.get(job_id)
        if job is None or (job.account_id, job.region) != (ctx.account_id, ctx.region):
            raise ApiError("JobNotFoundException", f"Job with id '{job_id}' does not exist")
        return job

    def _running(self, ctx: RequestContext, job_id: str) -> Job:
        """The caller's job if it still takes a result, else ``InvalidJobStateException``."""
        job = self._job(ctx, job_id)
        status = job.settle()
        if status != "InProgress":
            if job.continued_by is not None:
                reason = f"it was continued as job '{job.continued_by}'"
            elif job.reported:
                reason = "its result was already reported"
            else:
                reason = f"its action {job.run.stage_name}/{job.run.name} is {job.run.status}"
            raise ApiError("InvalidJobStateException", f"Job with id '{job_id}' is {status}, not InProgress: {reason}")
        return job

    # --- PutJobSuccessResult / PutJobFailureResult -------------------------------------

    def put_job_success_result(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Finish the job; with a ``continuationToken``, start the next one, else succeed the action."""
        token = params.get("continuationToken")
        variables = params.get("outputVariables")
        if token is not None and variables:
            raise ApiError(
                "ValidationException",
                "outputVariables can be included only when there is no continuation token on the request",
            )
        details = params.get("executionDetails") or {}
        with self._lock:
            job = self._running(ctx, params["jobId"])
            run, execution = job.run, job.execution
            job.status, job.reported = "Succeeded", True
            if details.get("externalExecutionId") is not None:
                run.external_execution_id = details["externalExecutionId"]
            run.percent_complete = details.get("percentComplete")
            if token is not None:
                # Still working: the action shows the latest report and CodePipeline invokes again.
                run.summary = details.get("summary")
                execution.last_update_time = _now()
                job.continued_by = self._new_job(execution, run, token).id
                return {}
            self._codepipeline.complete_action(
                execution.pipeline_execution_id,
                run.stage_name,
                run.name,
                "Succeeded",
                summary=details.get("summary"),
                output_variables=variables or {},
            )
        return {}

    def put_job_failure_result(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Finish the job and fail its action: ``errorDetails`` is the failure's type and message."""
        failure = params["failureDetails"]
        with self._lock:
            job = self._running(ctx, params["jobId"])
            run = job.run
            job.status, job.reported = "Failed", True
            if failure.get("externalExecutionId") is not None:
                run.external_execution_id = failure["externalExecutionId"]
            self._codepipeline.complete_action(
                job.execution.pipeline_execution_id,
                run.stage_name,
                run.name,
                "Failed",
                error=failure["message"],
                error_code=failure["type"],
            )
        return {}

    # --- GetJobDetails -----------------------------------------------------------------

    def get_job_details(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(ctx, params["jobId"])
            execution, run = job.execution, job.run
            data = {key: value for key, value in job.data.items() if key != "artifactCredentials"}
            credentials = job.data["artifactCredentials"]
            pipeline_arn = (
                f"arn:{get_partition(execution.region)}:codepipeline:{execution.region}:"
                f"{execution.account_id}:{execution.pipeline_name}"
            )
            return {
                "jobDetails": {
                    "id": job.id,
                    "data": {
                        "actionTypeId": run.declaration["actionTypeId"],
                        **data,
                        "artifactCredentials": {
                            name: credentials[name] for name in ("accessKeyId", "secretAccessKey", "sessionToken")
                        },
                        "pipelineContext": {
                            "pipelineName": execution.pipeline_name,
                            "stage": {"name": run.stage_name},
                            "action": {"name": run.name, "actionExecutionId": run.action_execution_id},
                            "pipelineArn": pipeline_arn,
                            "pipelineExecutionId": execution.pipeline_execution_id,
                        },
                    },
                    "accountId": job.account_id,
                }
            }

    # --- admin API ---------------------------------------------------------------------

    def list_jobs(
        self, pipeline: str, execution_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The jobs of a pipeline (any account and region), oldest first, for the test harness.

        ``event`` is the exact payload to invoke the function with, as
        CodePipeline would.
        """
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"status must be one of {', '.join(JOB_STATUSES)}")
        with self._lock:
            return [
                {
                    "jobId": job.id,
                    "pipeline": job.execution.pipeline_name,
                    "executionId": job.execution.pipeline_execution_id,
                    "stage": job.run.stage_name,
                    "action": job.run.name,
                    "status": job.settle(),
                    "event": job.event(),
                }
                for job in self._jobs.values()
                if job.execution.pipeline_name == pipeline
                and execution_id in (None, job.execution.pipeline_execution_id)
                and status in (None, job.settle())
            ]
